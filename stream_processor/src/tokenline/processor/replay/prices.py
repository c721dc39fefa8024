"""Which price book a replay uses: the given file, else the current one on the prices topic.

The current table is what a running processor prices with now: the newest document on the
compacted prices topic (see ``agents._follow_prices``), or, when none was ever published,
the processor's initial book (``TOKENLINE_PRICES_FILE``, else the shipped snapshot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenline.processor.pricebook import PriceBook, load_price_book
from tokenline.processor.pricing import PricingError
from tokenline.processor.replay.errors import ReplayError
from tokenline.processor.replay.kafka import latest_price_document

if TYPE_CHECKING:
    from pathlib import Path

    from tokenline.processor.settings import ProcessorSettings

__all__ = ["choose_price_book"]


def choose_price_book(
    settings: ProcessorSettings, prices_file: Path | None, group_id: str
) -> tuple[PriceBook, str]:
    """The book to price with, and where it came from (for the summary)."""
    try:
        if prices_file is not None:
            return load_price_book(prices_file), str(prices_file)
        document = latest_price_document(settings, group_id)
        if document:
            topic = settings.topic(settings.prices_topic)
            return PriceBook.from_json(document), f"current table on {topic}"
        source = str(settings.prices_file) if settings.prices_file else "the shipped snapshot"
        return load_price_book(settings.prices_file), f"processor default ({source})"
    except PricingError as exc:
        raise ReplayError(f"cannot load prices: {exc}") from exc
