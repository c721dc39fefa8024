"""What the processor prices with: a price table plus the operator's maps and tenant terms.

The document on the compacted prices topic is a price-table document
(``PriceTable.to_document``) with three optional extra keys the table itself ignores:
``tenant_adjustments`` (tenant to percent, negative is a discount), ``azure_deployments`` and
``inference_profiles`` (the normalizer's maps). So one published document changes prices,
discounts and model maps together, live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenline.processor.pricing import (
    Normalizer,
    PriceTable,
    PriceTableError,
    TenantAdjustment,
    load_overrides,
    load_snapshot,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PriceBook", "load_price_book"]


@dataclass(frozen=True)
class PriceBook:
    """A price table, the normalizer maps and per-tenant adjustments, versioned together."""

    table: PriceTable
    normalizer: Normalizer = field(default_factory=Normalizer)
    adjustments: Mapping[str, TenantAdjustment] = field(default_factory=dict)

    @property
    def pricing_version(self) -> str:
        """The table's content version (what priced events carry)."""
        return self.table.pricing_version

    def to_document(self) -> dict[str, Any]:
        """The document published on the prices topic."""
        doc = self.table.to_document()
        doc["tenant_adjustments"] = {t: str(a.percent) for t, a in self.adjustments.items()}
        doc["azure_deployments"] = dict(self.normalizer.azure_deployments)
        doc["inference_profiles"] = dict(self.normalizer.inference_profiles)
        return doc

    def to_json(self) -> str:
        """The document as JSON text."""
        return json.dumps(self.to_document(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> PriceBook:
        """Parse a document; a bare price-table document gives empty maps and adjustments."""
        try:
            doc = json.loads(text, parse_float=str)
        except ValueError as exc:
            raise PriceTableError(f"not JSON: {exc}") from exc
        table = PriceTable.from_document(doc)
        try:
            adjustments = {
                str(tenant): TenantAdjustment(Decimal(str(percent)))
                for tenant, percent in (doc.get("tenant_adjustments") or {}).items()
            }
        except (InvalidOperation, AttributeError) as exc:
            msg = f"invalid tenant_adjustments: {exc}"
            raise PriceTableError(msg) from exc
        normalizer = Normalizer(
            {str(k): str(v) for k, v in (doc.get("azure_deployments") or {}).items()},
            {str(k): str(v) for k, v in (doc.get("inference_profiles") or {}).items()},
        )
        return cls(table, normalizer, adjustments)


def load_price_book(path: Path | str | None = None) -> PriceBook:
    """The shipped snapshot, with a YAML overrides file merged over it, or a JSON document.

    ``path`` ending in ``.json`` is read as a price-table (or price-book) document; any other
    file as an overrides YAML file; ``None`` gives the bare snapshot.
    """
    if path is None:
        return PriceBook(load_snapshot())
    file = Path(path)
    if file.suffix == ".json":
        try:
            return PriceBook.from_json(file.read_bytes())
        except OSError as exc:
            raise PriceTableError(f"{file}: {exc}") from exc
    overrides = load_overrides(file)
    return PriceBook(
        load_snapshot().merged(overrides.entries),
        overrides.normalizer(),
        dict(overrides.adjustments),
    )
