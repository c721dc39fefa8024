"""A provider's models and the price entry of each in force at an instant.

What ``tokenline prices models`` prints and ``GET /v1/providers/{provider}/models`` serves:
for every model (exact id or glob pattern) and region of the provider, the entry a call at
``at`` is priced with (:meth:`PriceTable.find`'s rule: the newest ``valid_from`` at or before
``at``), and when the next entry takes over. Models without an entry in force yet are left
out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from tokenline.processor.pricing.entry import PriceEntry
    from tokenline.processor.pricing.table import PriceTable

__all__ = ["model_prices"]


def model_prices(table: PriceTable, provider: str, at: datetime) -> list[dict[str, Any]]:
    """The entries of ``provider`` in force at ``at`` in JSON form, by model then region.

    Each is :meth:`PriceEntry.to_dict` (prices per token, decimal text; ``reasoning`` null
    when reasoning is billed at the output rate) with ``valid_to``: the next entry's
    ``valid_from``, or null.
    """
    versions: dict[tuple[str, str], list[PriceEntry]] = {}
    for entry in table:
        if entry.provider == provider:
            versions.setdefault((entry.model, entry.region or ""), []).append(entry)
    found = []
    for key in sorted(versions):
        ordered = sorted(versions[key], key=lambda e: e.valid_from)
        current = [e for e in ordered if e.valid_from <= at]
        if not current:
            continue
        later = [e for e in ordered if e.valid_from > at]
        document = current[-1].to_dict()
        document["valid_to"] = later[0].to_dict()["valid_from"] if later else None
        found.append(document)
    return found
