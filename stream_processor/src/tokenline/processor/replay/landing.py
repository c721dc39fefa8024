"""How a replay tells that the sink has landed a re-priced event: by its pricing, not its version.

The sink replaces a stored pricing only when the result differs (see the sink's
``PRICED_VALUE_COLUMNS``): a re-priced event whose cost, status, reason, model, price entry
and currency equal the stored ones keeps its row, old ``pricing_version`` and ``priced_at``
included. So an event has landed when the stored row's pricing *values* are the replay's.

Both sides compute one 64-bit fingerprint of those values: :func:`fingerprint` here from the
priced record, :data:`STORED_FINGERPRINT` in SQL from the row (the first 8 bytes of the MD5 of
the values joined with a unit separator, NULL written as a record separator, costs with their
12 decimal places). Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenline.schemas import PricedUsageEvent

__all__ = ["STORED_FINGERPRINT", "VALUE_COLUMNS", "fingerprint"]

#: The sink's ``PRICED_VALUE_COLUMNS``, in its order (a unit test keeps the two equal).
VALUE_COLUMNS = (
    "canonical_model",
    "pricing_status",
    "unpriced_reason",
    "cost_input",
    "cost_cache_read",
    "cost_cache_write",
    "cost_output",
    "cost_reasoning",
    "cost_total",
    "currency",
    "price_entry_id",
)
_COSTS = ("input", "cache_read", "cache_write", "output", "reasoning", "total")
_QUANTUM = Decimal("1E-12")
_SEP = "\x1f"
_NULL = "\x1e"

#: The fingerprint of a stored ``usage_events`` row aliased ``u``, as a bigint.
STORED_FINGERPRINT = (
    "('x' || substr(md5(concat_ws(chr(31), "
    + ", ".join(f"coalesce(u.{c}::text, chr(30))" for c in VALUE_COLUMNS)
    + ")), 1, 16))::bit(64)::bigint"
)


def _text(value: str | None) -> str:
    return _NULL if value is None else value


def fingerprint(record: PricedUsageEvent) -> int:
    """The signed 64-bit fingerprint of the pricing values the sink stores for ``record``."""
    cost = record["cost"]
    costs = (
        [_NULL] * len(_COSTS)
        if cost is None
        else [format(cost[name].quantize(_QUANTUM), "f") for name in _COSTS]  # type: ignore[literal-required]
    )
    parts = [
        _text(record["canonical_model"]),
        record["pricing_status"],
        _text(record["unpriced_reason"]),
        *costs,
        record["currency"],
        _text(record["price_entry_id"]),
    ]
    digest = hashlib.md5(_SEP.join(parts).encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
