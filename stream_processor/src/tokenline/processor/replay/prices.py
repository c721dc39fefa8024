"""Which price book a replay uses: the current one on the prices topic, with a file.

The current table is what a running processor prices with now: the newest document on the
compacted prices topic (see ``agents._follow_prices``), or, when none was ever published,
the processor's initial book (``TOKENLINE_PRICES_FILE``, else the shipped snapshot).

``--prices FILE``: an overrides YAML file is merged over the current table (a what-if with one
price keeps every tenant's terms and the model maps in force); a price-book JSON document
replaces it whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenline.processor.pricebook import PriceBook, load_price_book
from tokenline.processor.pricing import PricingError, load_overrides
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
        if prices_file is not None and prices_file.suffix == ".json":
            return load_price_book(prices_file), f"{prices_file} (replacing the current table)"
        document = latest_price_document(settings, group_id)
        if document:
            topic = settings.topic(settings.prices_topic)
            book, source = PriceBook.from_json(document), f"current table on {topic}"
        else:
            default = str(settings.prices_file) if settings.prices_file else "shipped snapshot"
            book = load_price_book(settings.prices_file)
            source = f"processor default ({default})"
        if prices_file is None:
            return book, source
        return book.with_overrides(load_overrides(prices_file)), f"{prices_file} over the {source}"
    except PricingError as exc:
        raise ReplayError(f"cannot load prices: {exc}") from exc
