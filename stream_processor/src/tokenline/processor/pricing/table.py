"""An immutable, effective-dated table of price entries, and its JSON document form."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenline.processor.pricing.entry import PriceEntry
from tokenline.processor.pricing.errors import PriceTableError
from tokenline.processor.pricing.normalize import base_rate_applies

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from datetime import datetime

__all__ = ["DOCUMENT_FORMAT", "LookupResult", "PriceTable", "read_document"]

DOCUMENT_FORMAT = "tokenline.price-table/v1"


def read_document(text: str | bytes) -> Any:
    """A price document from JSON text; numbers are read as text for Decimal, never float."""
    try:
        return json.loads(text, parse_float=str)
    except ValueError as exc:
        raise PriceTableError(f"not JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The entry found for a model at a time, or why none was found.

    ``reason`` is ``unknown_model`` when no entry covers the model at all,
    ``no_price_at_date`` when entries exist but all start after the requested time, and
    ``no_price_in_region`` when the model's price differs by region and the map has none
    for the requested one.
    """

    entry: PriceEntry | None
    reason: str | None


class PriceTable:
    """Price entries keyed by (provider, model), each model's entries ordered by valid_from.

    Two entries with the same provider, model, region and valid_from are one entry: the later
    one given wins (so overrides replace base prices of the same date). Entries with a
    ``region`` are kept apart and only chosen for a lookup in that region.
    """

    __slots__ = ("_exact", "_metadata", "_patterns", "_regional", "_regions_of", "_version")

    def __init__(
        self, entries: Iterable[PriceEntry], metadata: Mapping[str, Any] | None = None
    ) -> None:
        unique: dict[tuple[str, str, datetime, str | None], PriceEntry] = {}
        for entry in entries:
            unique[(entry.provider, entry.model, entry.valid_from, entry.region)] = entry
        exact: dict[tuple[str, str], list[PriceEntry]] = {}
        patterns: dict[str, list[PriceEntry]] = {}
        regional: dict[tuple[str, str, str], list[PriceEntry]] = {}
        regions_of: dict[tuple[str, str], set[str]] = {}
        for entry in unique.values():
            if entry.region is not None:
                regional.setdefault((entry.provider, entry.model, entry.region), []).append(entry)
                regions_of.setdefault((entry.provider, entry.model), set()).add(entry.region)
            elif entry.is_pattern:
                patterns.setdefault(entry.provider, []).append(entry)
            else:
                exact.setdefault((entry.provider, entry.model), []).append(entry)
        for versions in [*exact.values(), *regional.values()]:
            versions.sort(key=lambda e: e.valid_from)
        for provider_patterns in patterns.values():
            # Most specific pattern first (most literal characters), then by date.
            provider_patterns.sort(key=lambda e: (-_literal_length(e.model), e.valid_from))
        self._exact = exact
        self._patterns = patterns
        self._regional = regional
        self._regions_of = {key: frozenset(found) for key, found in regions_of.items()}
        self._metadata = dict(metadata or {})
        self._version = _content_hash(unique.values())

    @property
    def pricing_version(self) -> str:
        """First 16 hex digits of the sha256 of the canonical content (order-independent)."""
        return self._version

    @property
    def metadata(self) -> dict[str, Any]:
        """Where the table came from (not part of ``pricing_version``)."""
        return dict(self._metadata)

    def __iter__(self) -> Iterator[PriceEntry]:
        for versions in self._exact.values():
            yield from versions
        for provider_patterns in self._patterns.values():
            yield from provider_patterns
        for scoped in self._regional.values():
            yield from scoped

    def __len__(self) -> int:
        return sum(len(v) for v in [*self._exact.values(), *self._regional.values()]) + sum(
            len(v) for v in self._patterns.values()
        )

    def lookup(
        self, provider: str, canonical_model: str, at: datetime, region: str | None = None
    ) -> PriceEntry | None:
        """The entry for ``canonical_model`` valid at ``at``: exact ids first, then patterns."""
        return self.find(provider, canonical_model, at, region).entry

    def regions(self, provider: str, model: str) -> frozenset[str]:
        """The regions (or zones) that have a price of their own for ``model``."""
        return self._regions_of.get((provider, model), frozenset())

    def find(
        self, provider: str, canonical_model: str, at: datetime, region: str | None = None
    ) -> LookupResult:
        """Like :meth:`lookup`, with the reason when nothing applies.

        With a ``region``: that region's entry when the table has one; else the base entry
        where the provider's rule says the base price applies there
        (:func:`~tokenline.processor.pricing.normalize.base_rate_applies`), else nothing
        (``no_price_in_region``).
        """
        if region is not None:
            scoped = self._regional.get((provider, canonical_model, region))
            if scoped:
                entry = _valid_at(scoped, at)
                return LookupResult(entry, None if entry else "no_price_at_date")
            if not base_rate_applies(provider, region, self.regions(provider, canonical_model)):
                known = (provider, canonical_model) in self._exact
                return LookupResult(None, "no_price_in_region" if known else "unknown_model")
        versions = self._exact.get((provider, canonical_model))
        if versions:
            entry = _valid_at(versions, at)
            return LookupResult(entry, None if entry else "no_price_at_date")
        matching = [e for e in self._patterns.get(provider, ()) if e.matches(canonical_model)]
        if not matching:
            return LookupResult(None, "unknown_model")
        best_pattern = matching[0].model
        entry = _valid_at([e for e in matching if e.model == best_pattern], at)
        return LookupResult(entry, None if entry else "no_price_at_date")

    def merged(self, entries: Iterable[PriceEntry]) -> PriceTable:
        """A new table with ``entries`` added; same provider, model and valid_from replaces."""
        return PriceTable([*self, *entries], self._metadata)

    def to_document(self) -> dict[str, Any]:
        """The JSON document (for files and the compacted prices topic)."""
        return {
            "format": DOCUMENT_FORMAT,
            "pricing_version": self.pricing_version,
            "metadata": self._metadata,
            "entries": [e.to_dict() for e in _sorted(self)],
        }

    def to_json(self) -> str:
        """The JSON document as compact, stable text (one entry per line)."""
        doc = self.to_document()
        lines = [json.dumps(e, sort_keys=True, separators=(",", ":")) for e in doc["entries"]]
        head = {k: doc[k] for k in ("format", "pricing_version", "metadata")}
        body = ",\n".join(lines)
        prefix = json.dumps(head, sort_keys=True, separators=(",", ":"))[:-1]
        return f'{prefix},"entries":[\n{body}\n]}}\n'

    @classmethod
    def from_document(cls, doc: Any) -> PriceTable:
        """Read a document written by :meth:`to_document`; the stated version is checked."""
        if not isinstance(doc, dict) or doc.get("format") != DOCUMENT_FORMAT:
            msg = f"not a {DOCUMENT_FORMAT} document"
            raise PriceTableError(msg)
        raw_entries = doc.get("entries")
        if not isinstance(raw_entries, list):
            msg = "the document has no 'entries' list"
            raise PriceTableError(msg)
        metadata = doc.get("metadata") or {}
        table = cls([PriceEntry.from_dict(e) for e in raw_entries], metadata)
        stated = doc.get("pricing_version")
        if stated is not None and stated != table.pricing_version:
            msg = f"pricing_version {stated!r} does not match the content ({table.pricing_version})"
            raise PriceTableError(msg)
        return table

    @classmethod
    def from_json(cls, text: str | bytes) -> PriceTable:
        """Parse JSON text into a table; numbers are read as Decimal, never float."""
        return cls.from_document(read_document(text))


def _valid_at(versions: list[PriceEntry], at: datetime) -> PriceEntry | None:
    found = None
    for entry in versions:
        if entry.valid_from <= at:
            found = entry
        else:
            break
    return found


def _literal_length(pattern: str) -> int:
    return sum(1 for ch in pattern if ch not in "*?[]")


def _sorted(entries: Iterable[PriceEntry]) -> list[PriceEntry]:
    return sorted(entries, key=lambda e: (e.provider, e.model, e.region or "", e.valid_from))


def _content_hash(entries: Iterable[PriceEntry]) -> str:
    canonical = [e.to_dict() for e in _sorted(entries)]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
