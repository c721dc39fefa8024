"""What the processor prices with: a price table plus the operator's maps and tenant terms.

The document on the compacted prices topic is a price-table document
(``PriceTable.to_document``) with extra keys the table itself ignores: ``tenant_adjustments``
(tenant to a percent, negative is a discount, for one undated term, else to a list of terms
``{percent, effective_from, effective_to}``), ``azure_deployments`` and
``inference_profiles`` (the normalizer's maps). So one published document changes prices,
terms and model maps together, live.

The book's :attr:`PriceBook.pricing_version` covers all of it and the pricing code's rules
version (:func:`~tokenline.processor.pricing.engine.pricing_version_of`): whatever can change a
cost changes the version, so a replay after any such change re-prices what it affects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenline.processor.pricing import (
    Normalizer,
    PriceTable,
    PriceTableError,
    TenantAdjustment,
    load_overrides,
    load_snapshot,
    pricing_version_of,
)
from tokenline.processor.pricing.cached import CachedPricer
from tokenline.processor.pricing.entry import canonical_decimal
from tokenline.processor.pricing.table import read_document
from tokenline.processor.pricing.terms import terms_document, terms_from_document

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.processor.pricing import PricingResult, Terms
    from tokenline.processor.pricing.overrides import Overrides
    from tokenline.schemas import UsageEvent

__all__ = ["PriceBook", "load_price_book"]


@dataclass(frozen=True)
class PriceBook:
    """A price table, the normalizer maps and per-tenant terms, versioned together.

    ``pricing_version`` is computed once, when the book is made. The book is immutable: its
    caches assume the table, maps and terms never change after.
    """

    table: PriceTable
    normalizer: Normalizer = field(default_factory=Normalizer)
    adjustments: Mapping[str, Terms] = field(default_factory=dict)
    pricing_version: str = field(init=False, compare=False)
    _pricer: CachedPricer = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        version = pricing_version_of(self.table, self.normalizer, self.adjustments)
        object.__setattr__(self, "pricing_version", version)
        pricer = CachedPricer(self.table, self.normalizer, self.adjustments, version)
        object.__setattr__(self, "_pricer", pricer)

    def price(self, event: UsageEvent) -> PricingResult:
        """Price one event with this book (carrying the book's version).

        The result of ``price_event`` with the book's table, maps and terms; normalization,
        lookup and each entry's integer prices are cached (:class:`CachedPricer`).
        """
        return self._pricer.price(event)

    def with_overrides(self, overrides: Overrides) -> PriceBook:
        """This book with an overrides file merged over it.

        The file's prices are added (the same provider, model and valid_from replaced), its
        tenants' terms and model maps set; everything else this book has is kept (other
        tenants' terms, other maps).
        """
        normalizer = Normalizer(
            {**self.normalizer.azure_deployments, **overrides.azure_deployments},
            {**self.normalizer.inference_profiles, **overrides.inference_profiles},
        )
        return PriceBook(
            self.table.merged(overrides.entries),
            normalizer,
            {**self.adjustments, **overrides.adjustments},
        )

    def to_document(self) -> dict[str, Any]:
        """The document published on the prices topic."""
        doc = self.table.to_document()
        doc["tenant_adjustments"] = {
            tenant: _terms_entry(terms) for tenant, terms in sorted(self.adjustments.items())
        }
        doc["azure_deployments"] = dict(self.normalizer.azure_deployments)
        doc["inference_profiles"] = dict(self.normalizer.inference_profiles)
        return doc

    def to_json(self) -> str:
        """The document as JSON text."""
        return json.dumps(self.to_document(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> PriceBook:
        """Parse a document; a bare price-table document gives empty maps and terms."""
        doc = read_document(text)
        table = PriceTable.from_document(doc)
        raw_terms = doc.get("tenant_adjustments") or {}
        if not isinstance(raw_terms, dict):
            msg = "tenant_adjustments: expected an object of tenant to terms"
            raise PriceTableError(msg)
        adjustments: dict[str, Terms] = {}
        problems = []
        for tenant, value in raw_terms.items():
            try:
                adjustments[str(tenant)] = terms_from_document(value)
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                problems.append(f"tenant_adjustments.{tenant}: {exc}")
        if problems:
            raise PriceTableError("; ".join(problems))
        normalizer = Normalizer(
            {str(k): str(v) for k, v in (doc.get("azure_deployments") or {}).items()},
            {str(k): str(v) for k, v in (doc.get("inference_profiles") or {}).items()},
        )
        return cls(table, normalizer, adjustments)


def _terms_entry(terms: Terms) -> Any:
    """One undated term as the bare percent (what every processor version reads), else a list."""
    if isinstance(terms, TenantAdjustment) and terms.effective_from is terms.effective_to is None:
        return canonical_decimal(terms.percent)
    return terms_document(terms)


def _read_table(file: Path) -> PriceTable:
    try:
        return PriceTable.from_json(file.read_bytes())
    except OSError as exc:
        raise PriceTableError(f"{file}: {exc}") from exc


def load_price_book(path: Path | str | None = None, base: Path | str | None = None) -> PriceBook:
    """The shipped snapshot, with a YAML overrides file merged over it, or a JSON document.

    ``path`` ending in ``.json`` is read as a price-table (or price-book) document; any other
    file as an overrides YAML file; ``None`` gives the bare snapshot. ``base``: a price-table
    JSON (``tokenline prices refresh --output``) to merge the overrides over instead of the
    shipped snapshot.
    """
    snapshot = load_snapshot if base is None else lambda: _read_table(Path(base))
    if path is None:
        return PriceBook(snapshot())
    file = Path(path)
    if file.suffix == ".json":
        try:
            return PriceBook.from_json(file.read_bytes())
        except OSError as exc:
            raise PriceTableError(f"{file}: {exc}") from exc
    overrides = load_overrides(file)
    return PriceBook(
        snapshot().merged(overrides.entries),
        overrides.normalizer(),
        dict(overrides.adjustments),
    )
