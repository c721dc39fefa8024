"""The price book in force, for readers outside the stream (the HTTP API's price list).

The book is the one a running processor prices with: the newest document on the compacted
prices topic, else the processor's initial book (``TOKENLINE_PRICES_FILE``, else the shipped
snapshot), chosen as ``tokenline replay`` chooses it. It is read again after ``ttl_s``.

The sink's API finds :func:`current_prices` through the ``tokenline.prices`` entry point, so
the sink never imports the processor; where tokenline-processor is not installed the API
answers that prices are not served there.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from tokenline.processor.pricing import PricingError
from tokenline.processor.pricing.catalog import model_prices
from tokenline.processor.replay.errors import ReplayError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from tokenline.processor.pricebook import PriceBook

__all__ = ["BookPrices", "current_prices"]


class BookPrices:
    """A provider's models at a date from a price book that ``load`` gives (kept ``ttl_s``)."""

    def __init__(
        self,
        load: Callable[[], tuple[PriceBook, str]],
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: tuple[float, PriceBook, str] | None = None

    def _book(self) -> tuple[PriceBook, str]:
        with self._lock:
            if self._loaded is None or self._clock() - self._loaded[0] >= self._ttl_s:
                try:
                    book, source = self._load()
                except (ReplayError, PricingError) as exc:
                    raise ConnectionError(f"the prices cannot be read: {exc}") from exc
                self._loaded = (self._clock(), book, source)
            return self._loaded[1], self._loaded[2]

    def models(self, provider: str, at: datetime) -> dict[str, Any]:
        """``{pricing_version, source, models: [...]}`` (see :func:`model_prices`).

        Raises ``ConnectionError`` (an ``OSError``) when the book cannot be read.
        """
        book, source = self._book()
        return {
            "pricing_version": book.pricing_version,
            "source": source,
            "models": model_prices(book.table, provider, at),
        }


def current_prices() -> BookPrices:
    """The processor's current book, from ``TOKENLINE_*`` settings (the entry point)."""
    from tokenline.processor.replay.prices import choose_price_book
    from tokenline.processor.settings import load_settings

    settings = load_settings()
    return BookPrices(lambda: choose_price_book(settings, None, "tokenline-api-prices"))
