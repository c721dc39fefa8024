"""Compile an Avro schema into a writer of its binary bodies: the counterpart of ``_compiled``.

fastavro's ``schemaless_writer`` walks the schema for every record, and converts each logical
value through a generic dispatch; on ``PricedUsageEvent`` that costs several times the
writing itself. The writer made here walks the schema once and emits one Python function that
writes the fields in order. Its bytes are exactly fastavro's (a property test compares the
two), including the checks fastavro makes: a decimal with more digits than the precision or a
finer scale than the schema's is refused (``ValueError``), except a scale finer only by
trailing zeros, which is written exactly (see ``_decimal``).

Covered: records, enums, maps, unions of ``null`` and one other type, ``null``, ``boolean``,
``int``, ``long``, ``string``, ``bytes``, and the logical types ``uuid`` (string),
``timestamp-micros`` (long) and ``decimal`` (bytes). For anything else
:func:`compile_writer` returns ``None`` and the caller uses fastavro. A record field missing
from the dict takes its default, as in fastavro.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastavro.logical_writers import LOGICAL_WRITERS

from tokenline.schemas._emit import SchemaSource, Unsupported

__all__ = ["BodyWriter", "compile_writer"]

BodyWriter = Callable[[Any], bytes]
"""``write(record) -> body``: the record's Avro binary encoding, without any header."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FASTAVRO_MICROS = LOGICAL_WRITERS["long-timestamp-micros"]
_SMALL = {n: bytes([(n << 1) ^ (n >> 63)]) for n in range(-64, 64)}  # one-byte varints
_MAX_UNION_BRANCHES = 63


def _long(n: int) -> bytes:
    """The zig-zag varint of ``n``."""
    small = _SMALL.get(n)
    if small is not None:
        return small
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_TEXT: dict[str, bytes] = {}
"""Encoded short strings (length prefix and UTF-8), by value: most repeat record after record
(models, tenants, versions, hosts), and a lookup costs a tenth of encoding one."""
_TEXT_MAX = 16_384
_TEXT_CACHED_CHARS = 64


def _text(value: str) -> bytes:
    """A string's Avro encoding; a short one is remembered (the cache is emptied when full)."""
    raw = value.encode()
    encoded = _long(len(raw)) + raw
    if type(value) is str and len(value) <= _TEXT_CACHED_CHARS:
        if len(_TEXT) >= _TEXT_MAX:
            _TEXT.clear()
        _TEXT[value] = encoded
    return encoded


def _micros(value: Any) -> Any:
    """A timestamp-micros value: aware datetimes exactly, anything else as fastavro does."""
    if type(value) is datetime and value.tzinfo is not None:
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return _FASTAVRO_MICROS(value, {})  # an int passes; anything else fails in _long


def _decimal(value: decimal.Decimal, precision: int, scale: int) -> bytes:
    """The unscaled value's bytes; the exact integer ratio first (twice as fast as the tuple).

    Anything that path does not settle (NaN, a remainder finer than the scale, more digits
    than the precision) goes through :func:`_decimal_checked`, fastavro's checks. One value
    fastavro refuses is written here: finer than the scale only by trailing zeros
    (``Decimal("1.0000000000000")`` at scale 12), since its unscaled integer is exact.
    """
    try:
        numerator, denominator = value.as_integer_ratio()
    except (ValueError, OverflowError):
        return _decimal_checked(value, precision, scale)
    unscaled, rest = divmod(numerator * _POWERS[scale], denominator)
    if rest or not -_POWERS[precision] < unscaled < _POWERS[precision]:
        return _decimal_checked(value, precision, scale)
    return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)


_POWERS: list[int] = [10**n for n in range(80)]
_LENGTHS = [_long(n) for n in range(64)]
_ZERO_FIELD = _long(1) + b"\x00"
"""A zero decimal's field, at any scale: a length of one and the unscaled byte 0."""


def _decimal_field(value: decimal.Decimal, precision: int, scale: int) -> bytes:
    """A non-zero decimal's field: its length and its bytes (as :func:`_decimal`), inlined.

    A precision-38 value takes at most 17 bytes: the length is always one table entry.
    """
    try:
        numerator, denominator = value.as_integer_ratio()
    except (ValueError, OverflowError):
        raw = _decimal_checked(value, precision, scale)
        return _long(len(raw)) + raw
    unscaled, rest = divmod(numerator * _POWERS[scale], denominator)
    limit = _POWERS[precision]
    if rest or not -limit < unscaled < limit:
        raw = _decimal_checked(value, precision, scale)
        return _long(len(raw)) + raw
    size = (unscaled.bit_length() + 8) // 8
    return (_LENGTHS[size] if size < 64 else _long(size)) + unscaled.to_bytes(
        size, "big", signed=True
    )


def _decimal_checked(value: decimal.Decimal, precision: int, scale: int) -> bytes:
    """Fastavro's ``prepare_bytes_decimal``, with the same checks and bytes."""
    sign, digits, exponent = value.as_tuple()
    if len(digits) > precision:
        msg = "The decimal precision is bigger than allowed by schema"
        raise ValueError(msg)
    delta = int(exponent) + scale
    if delta < 0:
        msg = "Scale provided in schema does not match the decimal"
        raise ValueError(msg)
    unscaled: int = int(decimal.Decimal((0, digits, 0))) * 10**delta
    size = (unscaled.bit_length() + 8) // 8
    return (-unscaled if sign else unscaled).to_bytes(size, "big", signed=True)


class _Source(SchemaSource):
    """Emits the body of ``write(record)`` for one schema; ``w`` appends to the output."""

    def text(self, indent: int, value: str) -> None:
        self.emit(indent, f"t = _TEXT.get({value}) if {value}.__class__ is str else None")
        self.emit(indent, "if t is None:")
        self.emit(indent + 1, f"t = _text({value})")
        self.emit(indent, "w(t)")

    def kind_null(self, _schema: Any, logical: Any, indent: int, value: str) -> None:
        self.plain(logical)
        self.emit(indent, f"if {value} is not None: raise ValueError('null expected')")

    def kind_boolean(self, _schema: Any, logical: Any, indent: int, value: str) -> None:
        self.plain(logical)
        self.emit(indent, f"w(b'\\x01' if {value} else b'\\x00')")

    def kind_int(self, _schema: Any, logical: Any, indent: int, value: str) -> None:
        self.plain(logical)
        self.emit(indent, f"w(_long({value}))")

    def kind_long(self, _schema: Any, logical: Any, indent: int, value: str) -> None:
        if logical == "timestamp-micros":
            self.emit(indent, f"w(_long(_micros({value})))")
        else:
            self.plain(logical)
            self.emit(indent, f"w(_long({value}))")

    def kind_string(self, _schema: Any, logical: Any, indent: int, value: str) -> None:
        if logical == "uuid":
            self.emit(indent, f"if isinstance({value}, _UUID): {value} = str({value})")
        else:
            self.plain(logical)
        self.text(indent, value)

    def kind_bytes(self, schema: Any, logical: Any, indent: int, value: str) -> None:
        if logical == "decimal":
            precision, scale = int(schema["precision"]), int(schema.get("scale", 0))
            # Most cost buckets are zero: one method call settles those.
            self.emit(indent, f"if isinstance({value}, _Decimal):")
            self.emit(
                indent + 1,
                f"w(_ZERO_FIELD if {value}.is_zero() "
                f"else _decimal_field({value}, {precision}, {scale}))",
            )
            self.emit(indent, "else:")
            indent += 1
        else:
            self.plain(logical)
        self.emit(indent, f"w(_long(len({value})))")
        self.emit(indent, f"w({value})")

    def kind_enum(self, schema: Any, logical: Any, indent: int, value: str) -> None:
        self.plain(logical)
        index = self.constant({s: _long(i) for i, s in enumerate(schema["symbols"])})
        self.emit(indent, f"w({index}[{value}])")

    def kind_record(self, schema: Any, logical: Any, indent: int, value: str) -> None:
        self.plain(logical)
        for field in schema["fields"]:
            item = self.var()
            name = repr(str(field["name"]))
            if "default" in field:
                default = self.constant(field["default"])
                self.emit(indent, f"{item} = {value}.get({name}, {default})")
            else:
                self.emit(indent, f"{item} = {value}.get({name})")
            self.visit(field["type"], indent, item)

    def kind_map(self, schema: Any, logical: Any, indent: int, value: str) -> None:
        self.plain(logical)
        key, item = self.var(), self.var()
        self.emit(indent, f"if {value}:")
        self.emit(indent + 1, f"w(_long(len({value})))")
        self.emit(indent + 1, f"for {key}, {item} in {value}.items():")
        self.text(indent + 2, key)
        self.visit(schema["values"], indent + 2, item)
        self.emit(indent, "w(b'\\x00')")

    def union(self, branches: list[Any], indent: int, value: str) -> None:
        kinds = [b if isinstance(b, str) else b.get("type") for b in branches]
        if len(branches) != 2 or kinds.count("null") != 1:
            raise Unsupported("only unions of null and one other type")
        null = kinds.index("null")
        self.emit(indent, f"if {value} is None:")
        self.emit(indent + 1, f"w({_long(null)!r})")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"w({_long(1 - null)!r})")
        self.visit(branches[1 - null], indent + 1, value)


def compile_writer(parsed: dict[str, Any]) -> BodyWriter | None:
    """Return a writer of bodies for the fastavro-parsed ``parsed``, or ``None``."""
    source = _Source(dict(parsed.get("__named_schemas", {})))
    try:
        source.visit(parsed, 0, "record")
    except Unsupported:
        return None
    text = "\n".join(
        [
            "def write(record):",
            "    out = []",
            "    w = out.append",
            *source.lines,
            "    return b''.join(out)",
            "",
        ]
    )
    namespace: dict[str, Any] = {
        "_long": _long,
        "_text": _text,
        "_TEXT": _TEXT,
        "_micros": _micros,
        "_decimal": _decimal,
        "_decimal_field": _decimal_field,
        "_ZERO_FIELD": _ZERO_FIELD,
        "_Decimal": decimal.Decimal,
        "_UUID": UUID,
        **source.constants,
    }
    exec(compile(text, f"<avro writer {parsed.get('name')}>", "exec"), namespace)  # noqa: S102
    writer: BodyWriter = namespace["write"]
    return writer
