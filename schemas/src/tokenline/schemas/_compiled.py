"""Compile an Avro schema into a reader of its binary bodies: straight-line Python, no dispatch.

fastavro's ``schemaless_reader`` walks the schema for every record (a type switch, a dict
lookup and a logical-type check per field), which costs about as much as the reading itself
on a record as wide as ``PricedUsageEvent``. The reader made here walks the schema once, at
compile time, and emits one Python function that reads the fields in order with local
variables only. Its results are exactly fastavro's (same types, same ``Decimal`` digits and
exponent, same aware UTC datetimes, same ``UUID`` objects); a property test compares the two.

Covered: records, enums, unions, maps, ``null``, ``boolean``, ``int``, ``long``, ``string``,
``bytes``, and the logical types ``uuid`` (string), ``timestamp-micros`` (long) and
``decimal`` (bytes). For anything else :func:`compile_reader` returns ``None`` and the caller
uses fastavro. The reader never resolves one schema against another: it reads bodies written
with the schema it was compiled from.

The generated source holds no text taken from the schema except field names, written as
``repr`` literals; symbols and decimal contexts are passed in as constants.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from tokenline.schemas._emit import SchemaSource, Unsupported

__all__ = ["BodyReader", "compile_reader"]

BodyReader = Callable[[bytes, int], tuple[Any, int]]
"""``read(data, offset) -> (record, end)``: the record and the offset after its last byte."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_UNION_BRANCHES = 63  # every branch index fits one zig-zag byte
_LONG_SHIFT_MAX = 63  # the 10th byte of a varint holds bits 63 and up


def _long(data: bytes, p: int, b: int) -> tuple[int, int]:
    """Finish a zig-zag varint whose first byte ``b`` (continuation bit set) is already read.

    An Avro long is at most 10 bytes and 64 bits: a longer varint (hostile bytes could make it
    a megabyte, read in quadratic time) or a wider value is refused, as fastavro cannot read
    it either (it wraps it to 64 bits).
    """
    n = b & 0x7F
    shift = 7
    while True:
        b = data[p]
        p += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if n >> 64:
                raise ValueError(f"varint of {n.bit_length()} bits is wider than a long")
            return (n >> 1) ^ -(n & 1), p
        shift += 7
        if shift > _LONG_SHIFT_MAX:
            raise ValueError(f"varint at {p} is longer than 10 bytes")


class _Source(SchemaSource):
    """Emits the body of ``read(data, p)`` for one schema."""

    def long(self, indent: int, target: str) -> None:
        self.emit(indent, "b = data[p]")
        self.emit(indent, "p += 1")
        self.emit(indent, f"if b & 128: {target}, p = _long(data, p, b)")
        self.emit(indent, f"else: {target} = (b >> 1) ^ -(b & 1)")

    def raw_bytes(self, indent: int, target: str) -> None:
        self.long(indent, "n")
        self.emit(indent, "e = p + n")
        self.emit(indent, "if n < 0 or e > size: raise EOFError(f'{n} byte(s) at {p} of {size}')")
        self.emit(indent, f"{target} = data[p:e]")
        self.emit(indent, "p = e")

    def kind_null(self, _schema: Any, logical: Any, indent: int, target: str) -> None:
        self.plain(logical)
        self.emit(indent, f"{target} = None")

    def kind_boolean(self, _schema: Any, logical: Any, indent: int, target: str) -> None:
        self.plain(logical)
        self.emit(indent, f"{target} = data[p] != 0")
        self.emit(indent, "p += 1")

    def kind_int(self, _schema: Any, logical: Any, indent: int, target: str) -> None:
        self.plain(logical)
        self.long(indent, target)

    def kind_long(self, _schema: Any, logical: Any, indent: int, target: str) -> None:
        self.long(indent, target)
        if logical == "timestamp-micros":
            self.emit(indent, f"{target} = _EPOCH + _timedelta(microseconds={target})")
        else:
            self.plain(logical)

    def kind_string(self, _schema: Any, logical: Any, indent: int, target: str) -> None:
        self.raw_bytes(indent, target)
        self.emit(indent, f"{target} = {target}.decode()")
        if logical == "uuid":
            self.emit(indent, f"{target} = _UUID({target})")
        else:
            self.plain(logical)

    def kind_bytes(self, schema: Any, logical: Any, indent: int, target: str) -> None:
        self.raw_bytes(indent, target)
        if logical == "decimal":
            # fastavro's read_decimal, step for step: round to the precision, then scale.
            context = self.constant(decimal.Context(prec=int(schema["precision"])))
            scale = -int(schema.get("scale", 0))
            self.emit(
                indent,
                f"{target} = {context}.create_decimal("
                f"_from_bytes({target}, 'big', signed=True)).scaleb({scale}, {context})",
            )
        else:
            self.plain(logical)

    def kind_enum(self, schema: Any, logical: Any, indent: int, target: str) -> None:
        self.plain(logical)
        symbols = self.constant(tuple(schema["symbols"]))
        self.long(indent, "i")
        self.emit(indent, "if i < 0: raise IndexError(f'enum index {i}')")
        self.emit(indent, f"{target} = {symbols}[i]")

    def kind_record(self, schema: Any, logical: Any, indent: int, target: str) -> None:
        self.plain(logical)
        items = []
        for field in schema["fields"]:
            value = self.var()
            self.visit(field["type"], indent, value)
            items.append(f"{str(field['name'])!r}: {value}")
        self.emit(indent, f"{target} = {{{', '.join(items)}}}")

    def kind_map(self, schema: Any, logical: Any, indent: int, target: str) -> None:
        self.plain(logical)
        key, value = self.var(), self.var()
        self.emit(indent, f"{target} = {{}}")
        self.long(indent, "k")
        self.emit(indent, "while k:")
        self.emit(indent + 1, "if k < 0:")  # a negative count is followed by the block's size
        self.emit(indent + 2, "k = -k")
        self.long(indent + 2, "_")
        self.emit(indent + 1, "for _ in range(k):")
        self.raw_bytes(indent + 2, key)
        self.visit(schema["values"], indent + 2, value)
        self.emit(indent + 2, f"{target}[{key}.decode()] = {value}")
        self.long(indent + 1, "k")

    def union(self, branches: list[Any], indent: int, target: str) -> None:
        if not branches or len(branches) > _MAX_UNION_BRANCHES:
            raise Unsupported("union size")
        # Branch i is the one-byte zig-zag varint 2*i; anything else is not a branch.
        self.emit(indent, "b = data[p]")
        self.emit(indent, "p += 1")
        for i, branch in enumerate(branches):
            self.emit(indent, f"{'if' if i == 0 else 'elif'} b == {2 * i}:")
            self.visit(branch, indent + 1, target)
        self.emit(indent, "else: raise IndexError(f'union index byte {b}')")


def compile_reader(parsed: dict[str, Any]) -> BodyReader | None:
    """Return a reader of bodies written with the fastavro-parsed ``parsed``, or ``None``."""
    source = _Source(dict(parsed.get("__named_schemas", {})))
    try:
        source.visit(parsed, 0, "record")
    except Unsupported:
        return None
    text = "\n".join(
        ["def read(data, p):", "    size = len(data)", *source.lines, "    return record, p", ""]
    )
    namespace: dict[str, Any] = {
        "_long": _long,
        "_EPOCH": _EPOCH,
        "_timedelta": timedelta,
        "_UUID": UUID,
        "_from_bytes": int.from_bytes,
        **source.constants,
    }
    exec(compile(text, f"<avro reader {parsed.get('name')}>", "exec"), namespace)  # noqa: S102
    reader: BodyReader = namespace["read"]
    return reader
