"""What a ``PricedUsageEvent``'s price is, in the flat names it is stored under.

The fields of :data:`PRICE_FIELDS` say what an event costs; a newer ``pricing_version`` with
the same values prices it the same. The sink replaces a stored pricing only when one of them
differs, and a replay tells that the sink has landed a re-priced event by comparing them: both
read the column names from here (:data:`PRICE_COLUMNS`). Stored flat, the ``Cost`` record is
one column per part, ``cost_<part>``; the parts come from the generated ``Cost`` type, so a
part added to the contract reaches both.
"""

from __future__ import annotations

from tokenline.schemas.records import Cost

__all__ = ["COST_COLUMNS", "COST_PARTS", "PRICE_COLUMNS", "PRICE_FIELDS"]

COST_PARTS: tuple[str, ...] = tuple(Cost.__annotations__)
"""The parts of ``Cost``, in the contract's order (``input`` ... ``total``)."""

COST_COLUMNS = tuple(f"cost_{part}" for part in COST_PARTS)
"""``Cost`` stored flat: one column per part."""

PRICE_FIELDS = (
    "canonical_model",
    "pricing_status",
    "unpriced_reason",
    "cost",
    "currency",
    "price_entry_id",
)
"""The ``PricedUsageEvent`` fields that say what an event costs, in the contract's order."""

PRICE_COLUMNS = tuple(
    column for name in PRICE_FIELDS for column in (COST_COLUMNS if name == "cost" else (name,))
)
""":data:`PRICE_FIELDS` stored flat, in order (the sink's ``PRICED_VALUE_COLUMNS``)."""
