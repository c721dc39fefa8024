"""How a replay tells that the sink has landed a re-priced event: by its pricing, not its version.

The sink replaces a stored pricing only when the result differs in one of the contract's price
columns (``tokenline.schemas.priced.PRICE_COLUMNS``): a re-priced event whose cost, status,
reason, model, price entry and currency equal the stored ones keeps its row, old
``pricing_version`` and ``priced_at`` included. So an event has landed when the stored row's
pricing *values* are the replay's.

Both sides compute one 64-bit fingerprint of those values: :func:`fingerprint` here from the
priced record, :data:`STORED_FINGERPRINT` in SQL from the row (the first 8 bytes of the MD5 of
the values joined with a unit separator, NULL written as a record separator, costs with their
12 decimal places). Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokenline.schemas.priced import COST_PARTS, PRICE_COLUMNS, PRICE_FIELDS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.schemas import PricedUsageEvent

__all__ = ["STORED_FINGERPRINT", "fingerprint"]

_QUANTUM = Decimal("1E-12")
_SEP = "\x1f"
_NULL = "\x1e"

#: The fingerprint of a stored ``usage_events`` row aliased ``u``, as a bigint.
STORED_FINGERPRINT = (
    "('x' || substr(md5(concat_ws(chr(31), "
    + ", ".join(f"coalesce(u.{c}::text, chr(30))" for c in PRICE_COLUMNS)
    + ")), 1, 16))::bit(64)::bigint"
)


def _text(value: str | None) -> str:
    return _NULL if value is None else value


def fingerprint(record: PricedUsageEvent) -> int:
    """The signed 64-bit fingerprint of the pricing values the sink stores for ``record``."""
    values: Mapping[str, Any] = record
    parts: list[str] = []
    for name in PRICE_FIELDS:
        if name != "cost":
            parts.append(_text(values[name]))
        elif (cost := record["cost"]) is None:
            parts.extend([_NULL] * len(COST_PARTS))
        else:
            parts.extend(format(cost[part].quantize(_QUANTUM), "f") for part in COST_PARTS)  # type: ignore[literal-required]
    digest = hashlib.md5(_SEP.join(parts).encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
