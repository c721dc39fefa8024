"""Generate ``records.py``, the Python types of the newest shipped schemas.

The ``.avsc`` files are the contract; the TypedDicts are derived from them, never written by
hand. Run ``python -m tokenline.schemas._codegen`` after changing a schema; a test fails while
``records.py`` is stale.

Besides one TypedDict per record, :data:`PARTS` names groups of a record's fields that one
piece of code makes alone (the processor's enrichment makes a PricedUsageEvent's attribution):
each becomes a TypedDict of its own, with the field types of the schema, and the record's
TypedDict inherits it (the field order of a TypedDict means nothing to the codec).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

from tokenline.schemas._catalog import RECORD_NAMES, catalog

TARGET = Path(__file__).with_name("records.py")

_PRIMITIVES = {
    "string": "str",
    "long": "int",
    "int": "int",
    "boolean": "bool",
    "bytes": "bytes",
    "double": "float",
    "float": "float",
    "null": "None",
}
_LOGICAL = {
    "uuid": "UUID",
    "timestamp-micros": "datetime",
    "timestamp-millis": "datetime",
    "decimal": "Decimal",
}

_Part = tuple[str, str, tuple[str, ...], str]

#: Parts of records: (name, record, fields, docstring). A field the record lacks fails the run.
PARTS: tuple[_Part, ...] = (
    (
        "Attribution",
        "PricedUsageEvent",
        ("team", "cost_center", "cloud", "cloud_region", "cluster", "namespace", "service"),
        "The normalized host and attribution the processor adds to a PricedUsageEvent.",
    ),
)


class _Generator:
    def __init__(self, parts: tuple[_Part, ...]) -> None:
        self.blocks: dict[str, str] = {}
        self.parts = parts

    def type_of(self, schema: Any) -> str:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            return str(schema.rsplit(".", 1)[-1])
        if isinstance(schema, list):
            kinds = [self.type_of(s) for s in schema if s != "null"]
            return " | ".join(kinds + ["None"] * (len(kinds) < len(schema)))
        if "logicalType" in schema and schema["logicalType"] in _LOGICAL:
            return _LOGICAL[str(schema["logicalType"])]
        kind = schema["type"]
        if kind == "record":
            return self.record(schema)
        if kind == "enum":
            short = str(schema["name"]).rsplit(".", 1)[-1]
            symbols = ", ".join(f'"{s}"' for s in schema["symbols"])
            self.blocks.setdefault(short, f"{short} = Literal[{symbols}]\n")
            return short
        if kind == "map":
            return f"dict[str, {self.type_of(schema['values'])}]"
        if kind == "array":
            return f"list[{self.type_of(schema['items'])}]"
        return self.type_of(kind)

    def record(self, schema: dict[str, Any]) -> str:
        short = str(schema["name"]).rsplit(".", 1)[-1]
        if short in self.blocks:
            return short
        self.blocks[short] = ""  # reserve the name before nested types are emitted
        fields = {f["name"]: self.type_of(f["type"]) for f in schema["fields"]}
        bases: list[str] = []
        for part, record, names, doc in self.parts:
            if record == short:
                self.part(part, fields, names, doc)
                bases.append(part)
        inherited = {n for part, _, names, _ in self.parts if part in bases for n in names}
        lines = [f"class {short}({', '.join(bases) or 'TypedDict'}):"]
        summary, _, rest = schema.get("doc", f"The {short} record.").partition(". ")
        summary = summary if summary.endswith(".") else summary + "."
        if bases:
            rest = f"{rest} Inherits the fields of {', '.join(bases)}.".strip()
        if rest:
            body = textwrap.fill(rest, width=96, initial_indent="    ", subsequent_indent="    ")
            lines.append(f'    """{summary}\n\n{body}\n    """\n')
        else:
            lines.append(f'    """{summary}"""\n')
        lines.extend(f"    {n}: {kind}" for n, kind in fields.items() if n not in inherited)
        del self.blocks[short]
        self.blocks[short] = "\n".join(lines) + "\n"
        return short

    def part(self, name: str, fields: dict[str, str], names: tuple[str, ...], doc: str) -> None:
        missing = [n for n in names if n not in fields]
        if missing:
            msg = f"part {name}: no field {', '.join(missing)} in its record"
            raise ValueError(msg)
        lines = [f"class {name}(TypedDict):", f'    """{doc}"""\n']
        lines.extend(f"    {n}: {fields[n]}" for n in names)
        self.blocks[name] = "\n".join(lines) + "\n"


def render(parts: tuple[_Part, ...] = PARTS) -> str:
    """The source of ``records.py`` for the newest shipped schemas."""
    gen = _Generator(parts)
    for name in RECORD_NAMES:
        gen.record(catalog().latest(name).parsed)
    header = (
        '"""Python types of the newest shipped Avro schemas.\n\n'
        "Generated from the .avsc files by ``python -m tokenline.schemas._codegen``; do not edit.\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
        "from datetime import datetime  # noqa: TC003\n"
        "from decimal import Decimal  # noqa: TC003\n"
        "from typing import Literal, TypedDict\n"
        "from uuid import UUID  # noqa: TC003\n\n"
    )
    names = sorted(gen.blocks)
    exports = "__all__ = [\n" + "".join(f'    "{n}",\n' for n in names) + "]\n\n\n"
    return header + exports + "\n\n".join(gen.blocks.values())


def main() -> int:
    """Write ``records.py``; with ``--check``, exit 1 when it is stale instead."""
    source = render()
    if "--check" in sys.argv[1:]:
        return 0 if TARGET.read_text() == source else 1
    TARGET.write_text(source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
