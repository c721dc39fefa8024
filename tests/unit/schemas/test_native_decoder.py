"""The native batch decoder reads exactly what the Python reader reads, and refuses the rest.

Three readers on the same messages: fastavro's ``schemaless_reader`` (the reference), the
codec's Python path (``AvroCodec.decode``: the compiled reader, or fastavro's resolution for
v1 writers) and ``tokenline_native``. On valid messages of every shipped UsageEvent and
PricedUsageEvent version all three agree, to the types, Decimal exponents, tzinfo and UUID
slots. On damaged ones, whatever Python refuses the native decoder refuses too, whatever it
accepts equals Python's, and it may refuse what Python reads only where the bytes are not
the encoding of what Python read (a boolean byte of 7, a uuid in braces, an int past 32
bits...): ``decode_many`` reads those with Python, so nothing changes for them.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests import factories
from tokenline.schemas import AvroCodec, DecodeError, ShippedSchema, catalog
from tokenline.schemas._compiled import compile_reader

pytestmark = pytest.mark.unit

USAGE = "tokenline.UsageEvent"
PRICED = "tokenline.PricedUsageEvent"
VERSIONS = [(name, s.version) for name in (USAGE, PRICED) for s in catalog().history(name)]
V1_PROVIDERS = ["openai", "azure_openai", "anthropic", "bedrock", "gemini", "other"]


def _native() -> Any:
    """The extension module: a test failure, never a skip, when it is not built."""
    try:
        import tokenline_native
    except ImportError as exc:  # pragma: no cover - only on a machine that did not build it
        pytest.fail(f"tokenline_native is not installed ({exc}): bash deploy/local/native.sh")
    return tokenline_native


def _schema(name: str, version: int) -> ShippedSchema:
    return next(s for s in catalog().history(name) if s.version == version)


@cache
def _codec(name: str) -> AvroCodec[Any]:
    return AvroCodec[Any](name)


def _decoder(name: str) -> Any:
    decoder = _codec(name).native_decoder
    assert decoder is not None
    return decoder


def _frame(schema: ShippedSchema, record: Any) -> bytes:
    buf = BytesIO()
    buf.write(b"\xc3\x01" + schema.fingerprint)
    schemaless_writer(buf, schema.parsed, record)
    return buf.getvalue()


def _fastavro(name: str, data: bytes) -> Any:
    writer = catalog().by_fingerprint(data[2:10])
    assert writer is not None
    buf = BytesIO(data[10:])
    record = schemaless_reader(buf, writer.parsed, catalog().latest(name).parsed)
    assert buf.tell() == len(data) - 10
    return record


def _python(codec: AvroCodec[Any], data: bytes) -> Any:
    try:
        return codec.decode(data)
    except DecodeError as exc:
        return exc


def _same(native: Any, python: Any) -> None:
    """Equal, and equal in every detail a caller could see."""
    assert native == python
    assert repr(native) == repr(python)
    _alike(native, python)


def _alike(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _alike(a[key], b[key])
    elif isinstance(a, uuid.UUID):
        assert (a.int, a.is_safe) == (b.int, b.is_safe)
    elif isinstance(a, Decimal):
        assert a.as_tuple() == b.as_tuple()
    elif isinstance(a, datetime):
        assert a.tzinfo is b.tzinfo is UTC


def _same_error(got: Any, expected: DecodeError) -> None:
    """The same error class, bytes and message (fastavro's messages may name object ids)."""
    assert type(got) is type(expected)
    assert got.data == expected.data
    assert _ADDRESS.sub("0x?", str(got)) == _ADDRESS.sub("0x?", str(expected))


_ADDRESS = re.compile(r"0x[0-9a-f]+")


# ----------------------------------------------------------------------------- strategies
_any_time = st.datetimes(
    min_value=datetime(1, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by contract
    max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),  # noqa: DTZ001
    timezones=st.just(UTC),
)
_wide_money = st.decimals(
    min_value=Decimal("-" + "9" * 26 + "." + "9" * 12),
    max_value=Decimal("9" * 26 + "." + "9" * 12),
    places=12,
    allow_nan=False,
    allow_infinity=False,
)
_wide_costs = st.fixed_dictionaries(
    dict.fromkeys(
        ("input", "cache_read", "cache_write", "output", "reasoning", "total"), _wide_money
    )
)


@st.composite
def _usage_events(draw: st.DrawFn, version: int) -> dict[str, Any]:
    event = draw(factories.usage_events)
    event["occurred_at"] = draw(_any_time)
    if version == 1:
        event["provider"] = draw(st.sampled_from(V1_PROVIDERS))
    return event


@st.composite
def _records(draw: st.DrawFn, name: str, version: int) -> dict[str, Any]:
    if name == USAGE:
        return draw(_usage_events(version))
    record = draw(factories.priced_events)
    record["event"] = draw(_usage_events(version))
    record["cost"] = draw(st.none() | _wide_costs)
    record["priced_at"] = draw(_any_time)
    return record


# ----------------------------------------------------------------------------- valid messages
def test_the_codecs_use_the_native_decoder_for_every_version() -> None:
    _native()
    for name in (USAGE, PRICED):
        decoder = _decoder(name)
        for shipped in catalog().history(name):
            good = _frame(
                shipped, factories.usage_event() if name == USAGE else factories.priced_event()
            )
            assert decoder.refusal(good) is None, (name, shipped.version)


@pytest.mark.parametrize(("name", "version"), VERSIONS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_valid_messages_read_like_fastavro_and_the_python_reader(
    name: str, version: int, data: st.DataObject
) -> None:
    records = data.draw(st.lists(_records(name, version), min_size=1, max_size=4), label="records")
    codec = _codec(name)
    messages = [_frame(_schema(name, version), r) for r in records]
    native = _decoder(name).decode(messages)
    for message, got in zip(messages, native, strict=True):
        _same(got, codec.decode(message))
        _same(got, _fastavro(name, message))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_batch_reads_each_record_as_if_alone(data: st.DataObject) -> None:
    """The decoder keeps the last string and timestamp of each field for the next record:
    repeats, near repeats and refused records in between change nothing."""
    first = data.draw(_records(PRICED, 2), label="first")
    second = {**data.draw(_records(PRICED, 2), label="second"), "currency": first["currency"]}
    second["event"] = {**second["event"], "tenant_id": first["event"]["tenant_id"]}
    second["priced_at"] = first["priced_at"]
    a, b = (_frame(_schema(PRICED, 2), r) for r in (first, second))
    older = _frame(_schema(PRICED, 1), {**first, "event": {**first["event"], "provider": "openai"}})
    messages = [a, b, a[:-2], a, older, b + b"\x00", b, a]
    codec = _codec(PRICED)
    batch = _decoder(PRICED).decode(messages)
    for message, got in zip(messages, batch, strict=True):
        python = _python(codec, message)
        if isinstance(python, DecodeError):
            assert got is None
        else:
            _same(got, python)


def test_records_read_from_one_batch_share_nothing_mutable() -> None:
    decoder = _decoder(PRICED)
    message = AvroCodec[Any](PRICED).encode(factories.priced_event())
    first, second = decoder.decode([message, message])
    first["event"]["tags"]["x"] = "y"
    first["event"]["usage"]["input_tokens"] = -1
    assert second == AvroCodec[Any](PRICED).decode(message)


# ----------------------------------------------------------------------------- damaged messages
def _canonical(data: bytes, python: Any) -> bool:
    """Whether ``data`` is exactly the encoding of ``python`` with its writer schema."""
    writer = catalog().by_fingerprint(data[2:10])
    assert writer is not None
    try:
        return _frame(writer, python) == data
    except Exception:  # noqa: BLE001 - a value its writer schema cannot hold is not canonical
        return False


@pytest.mark.parametrize(("name", "version"), VERSIONS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_damaged_messages_are_refused_where_python_refuses_them(
    name: str, version: int, data: st.DataObject
) -> None:
    good = bytearray(_frame(_schema(name, version), data.draw(_records(name, version))))
    damage = data.draw(st.sampled_from(["cut", "overwrite", "trailing", "insert"]), label="damage")
    at = data.draw(st.integers(0, len(good) - 1), label="at")
    if damage == "cut":
        del good[at:]
    elif damage == "overwrite":
        good[at] = data.draw(st.integers(0, 255), label="byte")
    elif damage == "trailing":
        good += data.draw(st.binary(min_size=1, max_size=3), label="tail")
    else:
        good.insert(at, data.draw(st.integers(0, 255), label="byte"))
    damaged = bytes(good)
    codec = _codec(name)
    [native] = _decoder(name).decode([damaged])
    python = _python(codec, damaged)
    if isinstance(python, DecodeError):
        event("both refuse")
        assert native is None, python
    elif native is not None:
        event("both read")
        _same(native, python)
    else:
        event("only Python reads")
        assert not _canonical(damaged, python), _decoder(name).refusal(damaged)
    # decode_many gives what decode gives, whichever reader read it.
    [many] = codec.decode_many([damaged])
    if isinstance(python, DecodeError):
        _same_error(many, python)
    else:
        _same(many, python)


# ----------------------------------------------------------------------------- one type at a time
EDGE = parse_schema(
    {
        "type": "record",
        "name": "Edge",
        "namespace": "test",
        "fields": [
            {"name": "b", "type": "boolean"},
            {"name": "i", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "s", "type": "string"},
            {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {
                "name": "d",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 12},
            },
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["x", "y", "z"]}},
            {"name": "n", "type": ["null", "string"]},
            {"name": "m", "type": {"type": "map", "values": "long"}},
            {"name": "r", "type": {"type": "bytes"}},
        ],
    }
)
EDGE_FP = bytes.fromhex(fingerprint(to_parsing_canonical_form(EDGE), "CRC-64-AVRO"))
EDGE_READ = compile_reader(EDGE)
_U = "01934b6e-8f7a-7cc2-9d1e-5b3c2a1f0e9d"


def _zz(n: int) -> bytes:
    """Zig-zag varint of any Python int (wider than 64 bits too)."""
    z = n * 2 if n >= 0 else -n * 2 - 1
    out = bytearray()
    while z >= 0x80:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _str(raw: bytes) -> bytes:
    return _zz(len(raw)) + raw


def _edge(**parts: bytes) -> bytes:
    """An Edge message, each field's bytes given or a plain default."""
    plain = {
        "b": b"\x01",
        "i": _zz(-7),
        "l": _zz(2**40),
        "s": _str("héllo".encode()),
        "u": _str(_U.encode()),
        "t": _zz(1_764_000_000_123_456),
        "d": _str((123).to_bytes(1, "big")),
        "e": _zz(2),
        "n": b"\x02" + _str(b"x"),
        "m": _zz(1) + _str(b"k") + _zz(5) + b"\x00",
        "r": _str(b"\x00\xff"),
    }
    plain.update(parts)
    return b"\xc3\x01" + EDGE_FP + b"".join(plain[f["name"]] for f in EDGE["fields"])


def _edge_python(data: bytes) -> Any:
    assert EDGE_READ is not None
    try:
        record, end = EDGE_READ(data, 10)
    except Exception:  # noqa: BLE001 - any failure is a refusal (SchemaMismatch in the codec)
        return "refused"
    return record if end == len(data) else "refused"


@pytest.fixture(scope="module")
def edge() -> Any:
    return _native().BatchDecoder([(EDGE_FP, json.dumps(EDGE))])


def test_the_plain_edge_record(edge: Any) -> None:
    data = _edge()
    [got] = edge.decode([data])
    _same(got, _edge_python(data))
    assert got["u"] == uuid.UUID(_U)
    assert got["d"] == Decimal("1.23E-10")
    assert got["m"] == {"k": 5}


READ_ALIKE = {
    "uuid in capitals": {"u": _str(_U.upper().encode())},
    "a varint padded within ten bytes": {"l": b"\x80\x80\x80\x00"},
    "the largest long": {"l": _zz(2**63 - 1)},
    "the smallest long": {"l": _zz(-(2**63))},
    "the largest int": {"i": _zz(2**31 - 1)},
    "the smallest int": {"i": _zz(-(2**31))},
    "the first microsecond of year 1": {"t": _zz(-62_135_596_800_000_000)},
    "the last microsecond of year 9999": {"t": _zz(253_402_300_799_999_999)},
    "a leap day": {"t": _zz(int(datetime(2000, 2, 29, 23, 59, tzinfo=UTC).timestamp()) * 10**6)},
    "before the epoch": {"t": _zz(-1)},
    "a 38-digit decimal": {"d": _str((10**38 - 1).to_bytes(16, "big", signed=True))},
    "a negative 38-digit decimal": {"d": _str((1 - 10**38).to_bytes(16, "big", signed=True))},
    "a zero-length decimal": {"d": _str(b"")},
    "a negative decimal": {"d": _str(b"\xff")},
    "an empty string": {"s": _str(b"")},
    "null": {"n": b"\x00"},
    "a map in two blocks, one with its size": {
        "m": _zz(1) + _str(b"a") + _zz(1) + _zz(-2) + _zz(6) + _str(b"b") + _zz(2)
        + _str(b"c") + _zz(3) + b"\x00"
    },
    "a map with a key twice": {"m": _zz(2) + _str(b"a") + _zz(1) + _str(b"a") + _zz(2) + b"\x00"},
    "an empty map": {"m": b"\x00"},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(READ_ALIKE))
def test_edges_read_alike(edge: Any, case: str) -> None:
    data = _edge(**READ_ALIKE[case])
    [got] = edge.decode([data])
    assert got is not None, edge.refusal(data)
    _same(got, _edge_python(data))


REFUSED_BOTH = {
    "truncated": (_edge()[:-1], "truncated"),
    "a trailing byte": (_edge() + b"\x00", "trailing"),
    "a union index of 1": (_edge(n=b"\x01"), "union index"),
    "a union index past the branches": (_edge(n=b"\x04"), "union index"),
    "a union index in two bytes": (_edge(n=b"\x80\x00"), "union index"),
    "an enum index past the symbols": (_edge(e=_zz(3)), "enum index"),
    "a negative enum index": (_edge(e=_zz(-1)), "enum index"),
    "invalid UTF-8": (_edge(s=_str(b"\xff")), "UTF-8"),
    "an encoded surrogate": (_edge(s=_str(b"\xed\xa0\x80")), "UTF-8"),
    "an overlong encoding": (_edge(s=_str(b"\xc0\xaf")), "UTF-8"),
    "invalid UTF-8 in a map key": (_edge(m=_zz(1) + _str(b"\xff") + _zz(1) + b"\x00"), "UTF-8"),
    "a string longer than the message": (_edge(s=_zz(1000) + b"abc"), "truncated"),
    "a negative string length": (_edge(s=_zz(-1)), "truncated"),
    "a uuid that is no uuid": (_edge(u=_str(b"x" * 36)), "uuid"),
    "a timestamp before year 1": (_edge(t=_zz(-62_135_596_800_000_001)), "out of range"),
    "a timestamp after year 9999": (_edge(t=_zz(253_402_300_800_000_000)), "out of range"),
    "a map count past the message": (_edge(m=_zz(10**6) + _str(b"a")), "truncated"),
    "a varint past 64 bits": (_edge(l=_zz(2**63)), "longer than 64 bits"),
    "a varint padded past ten bytes": (_edge(l=b"\x80" * 10 + b"\x00"), "longer than 64 bits"),
    "wrong magic": (b"\xc3\x02" + _edge()[2:], "header"),
    "Confluent framing": (b"\x00\x00\x00\x00\x01" + _edge()[10:], "header"),
    "an unknown fingerprint": (b"\xc3\x01" + bytes(8) + _edge()[10:], "fingerprint"),
    "a header cut short": (_edge()[:9], "header"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BOTH))
def test_edges_refused_alike(edge: Any, case: str) -> None:
    data, reason = REFUSED_BOTH[case]
    assert edge.decode([data]) == [None]
    assert reason in edge.refusal(data)
    if data[:10] == _edge()[:10]:
        assert _edge_python(data) == "refused"


# Bytes the Python reader reads though no writer makes them: left to it.
STRICTER = {
    "a boolean byte of 2": (_edge(b=b"\x02"), "boolean byte 2"),
    "an int past 32 bits": (_edge(i=_zz(2**31)), "int 2147483648 out of range"),
    "a uuid in braces": (_edge(u=_str(("{" + _U + "}").encode())), "uuid"),
    "a uuid without hyphens": (_edge(u=_str(_U.replace("-", "").encode())), "uuid"),
    "a 39-digit decimal (Python rounds it)": (
        _edge(d=_str((10**38).to_bytes(17, "big", signed=True))), "decimal"),
    "a decimal in 17 bytes": (_edge(d=_str(b"\x00" * 16 + b"\x01")), "decimal"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(STRICTER))
def test_edges_only_python_reads(edge: Any, case: str) -> None:
    data, reason = STRICTER[case]
    assert edge.decode([data]) == [None]
    assert reason in edge.refusal(data)
    assert _edge_python(data) != "refused"


def test_anything_but_bytes_is_refused(edge: Any) -> None:
    assert edge.decode([None, "text", bytearray(_edge()), _edge()])[:3] == [None, None, None]


def test_uncovered_schemas_are_refused_at_construction() -> None:
    native = _native()
    for name, field in (
        ("A", "double"),
        ("A", {"type": "array", "items": "long"}),
        ("A", {"type": "int", "logicalType": "date"}),
        ("L", ["null", "L"]),
    ):
        schema = {"type": "record", "name": name, "fields": [{"name": "x", "type": field}]}
        with pytest.raises(ValueError, match="schema not covered"):
            native.BatchDecoder([(bytes(8), json.dumps(schema))])


# ----------------------------------------------------------------------------- decode_many
def test_decode_many_mixes_native_records_and_python_errors() -> None:
    codec = AvroCodec[Any](PRICED)
    good = codec.encode(factories.priced_event())
    v1 = _frame(_schema(PRICED, 1), factories.priced_event())
    braces = good.replace(
        _U.encode(), ("{" + _U[:-2] + "}").encode()
    )  # same length: the Python reader reads it
    values = [good, b"", b"\x00\x00\x00\x00\x07" + good[10:], good[:-1], v1, braces, good + b"\x00"]
    got = codec.decode_many(values)
    assert codec.decoded_natively == 2
    for value, result in zip(values, got, strict=True):
        expected = _python(codec, value)
        if isinstance(expected, DecodeError):
            _same_error(result, expected)
        else:
            _same(result, expected)


def test_without_the_module_decode_many_reads_with_python(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tokenline.schemas import _native as native_module

    real = native_module.importlib.import_module

    def missing(name: str) -> Any:
        if name == "tokenline_native":
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(native_module.importlib, "import_module", missing)
    native_module._module.cache_clear()
    try:
        with caplog.at_level("DEBUG", logger="tokenline.schemas._native"):
            codecs = [AvroCodec[Any](PRICED), AvroCodec[Any](PRICED)]
            message = codecs[0].encode(factories.priced_event())
            for codec in codecs:
                assert codec.native_decoder is None
                [record] = codec.decode_many([message])
                _same(record, codec.decode(message))
                assert codec.decoded_natively == 0
        assert [r.getMessage() for r in caplog.records].count(
            "tokenline_native is not installed (tokenline_native): decoding with Python only"
        ) == 1
    finally:
        native_module._module.cache_clear()


def test_native_false_keeps_a_codec_on_python() -> None:
    codec = AvroCodec[Any](USAGE, native=False)
    message = codec.encode(factories.usage_event())
    assert codec.native_decoder is None
    assert codec.decode_many([message]) == [codec.decode(message)]
    assert codec.decoded_natively == 0


def test_only_writers_that_resolve_as_written_go_native() -> None:
    from tokenline.schemas._native import reads_as_written

    for name in (USAGE, PRICED):
        v1, v2 = _schema(name, 1), _schema(name, 2)
        assert reads_as_written(v1, v2)  # v2 only added an enum symbol
        # v2's vertex_ai is not a v1 symbol: resolution to v1 would not read it as written.
        assert not reads_as_written(v2, v1)
    reader = catalog().latest(PRICED)
    reordered = json.loads(reader.json)
    reordered["fields"] = reordered["fields"][::-1]
    other = ShippedSchema(PRICED, 99, parse_schema(reordered), "", bytes(8))
    assert not reads_as_written(other, reader)
