"""The schemas shipped with this package, by name, version and fingerprint.

Each ``avro/vN/`` folder is one version of the contract: one ``<full name>.avsc`` file per
named type, referring to the others by name. A record whose schema did not change since the
previous version is left out of the new folder (its fingerprint would repeat); the named types
the changed records use are all there. The newest version of a record is its reader schema;
every older one stays shipped so its bytes remain readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

from fastavro.schema import expand_schema, fingerprint, load_schema, to_parsing_canonical_form

__all__ = ["RECORD_NAMES", "SchemaCatalog", "ShippedSchema", "catalog"]

_AVRO_DIR = Path(__file__).parent / "avro"

#: The top-level records that travel on Kafka topics.
RECORD_NAMES = (
    "tokenline.UsageEvent",
    "tokenline.PricedUsageEvent",
    "tokenline.UsageRollup",
    "tokenline.DeadLetter",
    "tokenline.Budget",
    "tokenline.BudgetAlert",
    "tokenline.BudgetStatus",
)


@dataclass(frozen=True)
class ShippedSchema:
    """One version of one record schema, parsed and fingerprinted."""

    name: str
    version: int
    parsed: dict[str, Any] = field(repr=False)
    canonical: str = field(repr=False)
    fingerprint: bytes
    """CRC-64-AVRO of the parsing canonical form, little-endian (single-object order)."""

    @property
    def json(self) -> str:
        """The schema as self-contained JSON, logical types kept (what a registry stores)."""
        return json.dumps(_strip_private(expand_schema(self.parsed)), sort_keys=True)


def _strip_private(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_private(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_strip_private(v) for v in node]
    return node


class SchemaCatalog:
    """Shipped record schemas, looked up by name (and version) or by fingerprint."""

    def __init__(self, root: Path = _AVRO_DIR, names: tuple[str, ...] = RECORD_NAMES) -> None:
        self._by_name: dict[str, list[ShippedSchema]] = {}
        self._by_fingerprint: dict[bytes, ShippedSchema] = {}
        for version_dir in sorted(root.glob("v*"), key=lambda p: int(p.name[1:])):
            version = int(version_dir.name[1:])
            for name in names:
                path = version_dir / f"{name}.avsc"
                if not path.exists():
                    continue
                parsed = cast("dict[str, Any]", load_schema(str(path)))
                canonical = to_parsing_canonical_form(parsed)
                shipped = ShippedSchema(
                    name=name,
                    version=version,
                    parsed=parsed,
                    canonical=canonical,
                    fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
                )
                self._by_name.setdefault(name, []).append(shipped)
                self._by_fingerprint[shipped.fingerprint] = shipped

    def latest(self, name: str) -> ShippedSchema:
        """The newest shipped version of ``name``: the reader schema."""
        return self.history(name)[-1]

    def history(self, name: str) -> list[ShippedSchema]:
        """Every shipped version of ``name``, oldest first."""
        try:
            return list(self._by_name[name])
        except KeyError:
            known = ", ".join(sorted(self._by_name))
            msg = f"no shipped schema named {name!r}; shipped: {known}"
            raise KeyError(msg) from None

    def by_fingerprint(self, fp: bytes) -> ShippedSchema | None:
        """The shipped schema whose CRC-64-AVRO fingerprint is ``fp``, if any."""
        return self._by_fingerprint.get(fp)

    @property
    def names(self) -> list[str]:
        """Names of the shipped records."""
        return sorted(self._by_name)


@cache
def catalog() -> SchemaCatalog:
    """The catalog of the schemas this package ships (loaded once, on first use)."""
    return SchemaCatalog()
