"""The native batch decoder (the ``tokenline_native`` extension module), when it is installed.

``tokenline_native`` is built from ``native/`` in the repository (Rust, pyo3, maturin;
``deploy/local/setup.sh`` builds it into the development ``.venv``). Its ``BatchDecoder``
reads a list of single-object-encoded messages in one call and returns, per message, the
record the compiled Python reader would return, or ``None`` where it refuses the message:
anything it cannot read exactly as the Python reader does (every malformed body among them).
:meth:`AvroCodec.decode_many <tokenline.schemas.AvroCodec.decode_many>` reads the refused ones
with Python, so results and errors are the same with or without the module.

The decoder is given the writer schemas it may read: the reader's own, and each older shipped
version that Avro schema resolution reads as written (the same schema but for enums that gained
symbols, as v1 ``Provider`` before ``vertex_ai``). Bodies of any other writer are left to
fastavro's resolution.

Its ``BodyWriter`` writes the other way: :func:`body_writer` gives one for a parsed schema,
whose ``write(record)`` returns the Avro binary body the compiled Python writer
(:func:`~tokenline.schemas._compiled_writer.compile_writer`) would, or ``None`` where it
refuses the value (anything not of the exact types that writer was made for, a decimal its
scale does not hold exactly...): the caller then writes that record with Python, which writes
it or raises the error it always raised.

Its ``CopyRows`` reads messages straight into PostgreSQL binary COPY rows: :func:`copy_rows`
gives one for a record, the COPY rows to make (each a key and columns, a column being a path of
fields in the record and the column's type name) and the values to return beside the rows,
made as the Python reader makes them.
A message it refuses (anything ``BatchDecoder`` refuses, and any value the column's type does
not take exactly) is ``None``: the caller takes it through the Python path.
"""

from __future__ import annotations

import importlib
import json
import logging
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, cast

from fastavro.schema import expand_schema

if TYPE_CHECKING:
    from types import ModuleType

    from tokenline.schemas._catalog import SchemaCatalog, ShippedSchema

__all__ = [
    "BatchDecoder",
    "CopyRows",
    "NativeBodyWriter",
    "batch_decoder",
    "body_writer",
    "copy_rows",
    "reads_as_written",
]

log = logging.getLogger(__name__)


class BatchDecoder(Protocol):
    """``tokenline_native.BatchDecoder``: what the codec uses of it."""

    def decode(self, values: list[bytes], /) -> list[Any]:
        """Each message's record, or ``None`` where the decoder refuses it."""

    def refusal(self, value: bytes, /) -> str | None:
        """Why ``decode`` refuses ``value``, or ``None`` if it reads it."""


class NativeBodyWriter(Protocol):
    """``tokenline_native.BodyWriter``: what its users call."""

    def write(self, record: Any, /) -> bytes | None:
        """The Avro binary body of ``record``, or ``None`` where the writer refuses it."""


class CopyRows(Protocol):
    """``tokenline_native.CopyRows``: what its users call."""

    def rows(self, values: list[bytes], /) -> list[dict[str, Any] | None]:
        """Per message: the kept values and the COPY rows (under their keys), or ``None``."""

    def refusal(self, value: bytes, /) -> str | None:
        """Why ``rows`` refuses ``value``, or ``None`` if it takes it."""


@cache
def _module() -> ModuleType | None:
    try:
        return importlib.import_module("tokenline_native")
    except ImportError as exc:
        log.debug("tokenline_native is not installed (%s): decoding with Python only", exc)
        return None


def _writers(schemas: SchemaCatalog, record_name: str) -> list[tuple[bytes, str]]:
    """The ``(fingerprint, schema JSON)`` of the writers of ``record_name`` read natively.

    Its latest schema, and each older one :func:`reads_as_written` by it.
    """
    reader = schemas.latest(record_name)
    return [
        (shipped.fingerprint, shipped.json)
        for shipped in schemas.history(record_name)
        if shipped is reader or reads_as_written(shipped, reader)
    ]


def batch_decoder(schemas: SchemaCatalog, record_name: str) -> BatchDecoder | None:
    """A native decoder of ``record_name`` for every writer it can read, or ``None``."""
    module = _module()
    if module is None:
        return None
    try:
        return cast("BatchDecoder", module.BatchDecoder(_writers(schemas, record_name)))
    except ValueError as exc:  # a schema it does not cover
        log.debug("no native decoder for %s: %s", record_name, exc)
        return None


def copy_rows(
    schemas: SchemaCatalog,
    record_name: str,
    tables: list[tuple[str, list[tuple[list[str], str]], int]],
    keep: list[tuple[str, list[str], int]],
    *,
    sums: tuple[str, list[list[str]]] | None = None,
    body: str | None = None,
) -> CopyRows | None:
    """A native reader of ``record_name`` messages into COPY rows, or ``None``.

    ``tables``: per COPY row to make, the key it is returned under, its columns (the path of
    each one's field and its PostgreSQL type name: ``uuid``, ``timestamptz``, ``text``,
    ``varchar``, ``int2``, ``int4``, ``int8``, ``bool``, ``numeric``, ``jsonb``, a map of strings
    going to ``jsonb``) and how many fields the caller appends to each row itself (its field
    count says so); ``keep``: the name and path of each value returned beside the rows, and for a
    timestamp the unit in microseconds it is truncated to (0: none; a divisor of a day). Only
    the writers the batch decoder reads are read (see :func:`batch_decoder`); ``sums``: a key
    and the paths of the values the sink's rollup and tenant-daily sums are made from (see
    ``tokenline.sink.native_sums``), for each row's dict to hold, under that key, the sums of
    every row made from the batch (as the bodies are read, without the GIL); ``body``: a key
    for each row's dict to hold its message under (the bytes object itself). ``None`` when the
    module is not installed or a schema, path or type is not covered.
    """
    module = _module()
    if module is None or not hasattr(module, "CopyRows"):
        return None
    try:
        return cast(
            "CopyRows", module.CopyRows(_writers(schemas, record_name), tables, keep, sums, body)
        )
    except ValueError as exc:  # a schema, path or type it does not cover
        log.debug("no native COPY rows for %s: %s", record_name, exc)
        return None


def body_writer(parsed: dict[str, Any]) -> NativeBodyWriter | None:
    """A native writer of bodies of the fastavro-parsed ``parsed``, or ``None``.

    ``None`` when the module is not installed or the schema has a type it does not write.
    """
    module = _module()
    if module is None:
        return None
    schema = json.dumps(_plain(expand_schema(parsed)))
    try:
        return cast("NativeBodyWriter", module.BodyWriter(schema))
    except ValueError as exc:  # a schema it does not cover
        log.debug("no native writer for %s: %s", parsed.get("name"), exc)
        return None


def _plain(schema: Any) -> Any:
    """``schema`` without fastavro's bookkeeping keys (``__fastavro_parsed``...)."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if not k.startswith("__")}
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    return schema


def reads_as_written(writer: ShippedSchema, reader: ShippedSchema) -> bool:
    """Whether resolving ``writer`` against ``reader`` yields what ``writer`` alone reads.

    True when the schemas are the same but for documentation, defaults, and enums whose
    reader symbols include every writer symbol.
    """
    return _same(json.loads(writer.json), json.loads(reader.json))


_IGNORED = frozenset({"doc", "default"})


def _same(writer: Any, reader: Any) -> bool:
    if isinstance(writer, dict) and isinstance(reader, dict):
        keys = writer.keys() - _IGNORED
        if keys != reader.keys() - _IGNORED:
            return False
        if writer.get("type") == "enum" and reader.get("type") == "enum":
            if not set(writer["symbols"]) <= set(reader["symbols"]):
                return False
            keys -= {"symbols"}
        return all(_same(writer[k], reader[k]) for k in keys)
    if isinstance(writer, list) and isinstance(reader, list):
        return len(writer) == len(reader) and all(map(_same, writer, reader))
    return type(writer) is type(reader) and writer == reader
