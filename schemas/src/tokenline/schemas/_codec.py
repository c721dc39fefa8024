"""Encode and decode Tokenline records in both wire encodings.

* Avro single-object encoding (the default): ``C3 01``, the writer schema's 8-byte
  CRC-64-AVRO fingerprint (little-endian), then the Avro body. The writer schema is found by
  fingerprint among the schemas this package ships, so no registry is needed.
* Confluent wire format, when a schema registry client is given: ``00``, a 4-byte big-endian
  schema id, then the Avro body. Schemas are registered and looked up through
  confluent-kafka's ``SchemaRegistryClient`` under the record-name subject.

A codec reads both encodings whatever it writes. Its ``encode(record, ctx)`` and
``decode(data, ctx)`` follow confluent-kafka's serializer call contract, so they can be
handed to a ``SerializingProducer`` or ``DeserializingConsumer`` as they are.

Decoding speed: a body written with the reader's own schema (the common case) is read by a
reader compiled once per writer schema (:mod:`tokenline.schemas._compiled`): straight-line
Python that returns exactly what fastavro's ``schemaless_reader`` returns, several times
faster on wide records. Bodies that need schema resolution, and schemas using a type the
compiled reader does not cover, go through fastavro. Encoding likewise goes through a writer
compiled once per codec (:mod:`tokenline.schemas._compiled_writer`), byte for byte fastavro's.

Batches: :meth:`AvroCodec.decode_many` reads a list of messages with the native decoder
(:mod:`tokenline.schemas._native`) when ``tokenline_native`` is installed, and each message it
refuses (and every message, without it) with :meth:`AvroCodec.decode`: the same records and
the same errors either way.
"""

from __future__ import annotations

import json
import struct
from io import BytesIO
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from tokenline.schemas._catalog import SchemaCatalog, ShippedSchema, catalog
from tokenline.schemas._compiled import BodyReader, compile_reader
from tokenline.schemas._compiled_writer import compile_writer
from tokenline.schemas._native import BatchDecoder, batch_decoder
from tokenline.schemas.errors import (
    DecodeError,
    EncodeError,
    RegistryError,
    SchemaMismatch,
    TruncatedMessage,
    UnknownFingerprint,
    UnknownSchemaId,
    WrongMagic,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from confluent_kafka.schema_registry import SchemaRegistryClient

__all__ = ["AvroCodec"]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_SINGLE_OBJECT_HEADER = 10
CONFLUENT_MAGIC = 0
_CONFLUENT_HEADER = 5
_CONFLUENT_PREFIX = struct.Struct(">bI")

R = TypeVar("R")


class _Writer:
    """A writer schema read from bytes: either shipped or fetched from the registry."""

    __slots__ = ("needs_resolution", "parsed", "read")

    def __init__(self, parsed: dict[str, Any], needs_resolution: bool) -> None:
        self.parsed = parsed
        self.needs_resolution = needs_resolution
        #: The compiled reader, when no resolution is needed and the schema is covered.
        self.read: BodyReader | None = None if needs_resolution else compile_reader(parsed)


class AvroCodec(Generic[R]):
    """Encodes and decodes one record type, e.g. ``AvroCodec("tokenline.UsageEvent")``.

    Decoding always yields the newest shipped version of the record: bytes written with an
    older (or newer) compatible schema are resolved against it. ``native=False`` keeps
    :meth:`decode_many` off the native decoder (benchmarks and comparisons).
    """

    def __init__(
        self,
        record_name: str,
        *,
        registry: SchemaRegistryClient | None = None,
        schemas: SchemaCatalog | None = None,
        native: bool = True,
    ) -> None:
        self._catalog = schemas or catalog()
        self.reader: ShippedSchema = self._catalog.latest(record_name)
        self.record_name = record_name
        self._registry = registry
        self._registry_id: int | None = None
        self._by_fingerprint: dict[bytes, _Writer] = {}
        self._by_id: dict[int, _Writer] = {}
        self._header = SINGLE_OBJECT_MAGIC + self.reader.fingerprint
        self._write = compile_writer(self.reader.parsed)
        self._native: BatchDecoder | bool | None = native  # built on first decode_many
        #: Messages :meth:`decode_many` read with the native decoder (the rest went to Python).
        self.decoded_natively = 0

    # ------------------------------------------------------------------ encode
    def encode(self, record: Mapping[str, Any] | R, _ctx: object = None) -> bytes:
        """Encode ``record`` with the newest schema, framed for the configured encoding."""
        header = self._header if self._registry is None else self._confluent_header()
        try:
            if self._write is not None:
                return header + self._write(record)
            buf = BytesIO()
            buf.write(header)
            schemaless_writer(buf, self.reader.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            msg = f"{self.record_name} does not fit its schema: {exc}"
            raise EncodeError(msg) from exc
        return buf.getvalue()

    def _confluent_header(self) -> bytes:
        if self._registry_id is None:
            self._registry_id = self._register()
        return _CONFLUENT_PREFIX.pack(CONFLUENT_MAGIC, self._registry_id)

    def _register(self) -> int:
        from confluent_kafka.schema_registry import Schema  # optional extra

        assert self._registry is not None
        try:
            schema = Schema(self.reader.json, "AVRO")
            return int(self._registry.register_schema(self.record_name, schema))
        except Exception as exc:
            msg = f"registering {self.record_name} failed: {exc}"
            raise RegistryError(msg) from exc

    # ------------------------------------------------------------------ decode
    def decode(self, data: bytes, _ctx: object = None) -> R:
        """Decode single-object or Confluent-framed ``data`` into the newest record shape.

        Raises a ``DecodeError`` subclass naming what is wrong with the bytes.
        """
        if len(data) < 2:
            msg = f"{len(data)} byte(s) is shorter than any header"
            raise TruncatedMessage(msg, data)
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < _SINGLE_OBJECT_HEADER:
                msg = f"single-object header needs {_SINGLE_OBJECT_HEADER} bytes, got {len(data)}"
                raise TruncatedMessage(msg, data)
            writer = self._writer_by_fingerprint(data)
            offset = _SINGLE_OBJECT_HEADER
        elif data[0] == CONFLUENT_MAGIC:
            if len(data) < _CONFLUENT_HEADER:
                msg = f"Confluent header needs {_CONFLUENT_HEADER} bytes, got {len(data)}"
                raise TruncatedMessage(msg, data)
            writer = self._writer_by_id(data)
            offset = _CONFLUENT_HEADER
        else:
            msg = f"magic {data[:2].hex()} is neither single-object (c301) nor Confluent (00)"
            raise WrongMagic(msg, data)
        return self._read_body(data, offset, writer)  # type: ignore[no-any-return]

    def decode_many(self, values: Sequence[bytes]) -> list[R | DecodeError]:
        """Decode a batch: per value, what :meth:`decode` returns, or the error it raises.

        The native decoder reads the batch in one call when it is installed; each message it
        refuses goes through :meth:`decode`, which reads it or raises today's error.
        """
        native = self.native_decoder
        if native is None:
            results: list[Any] = [None] * len(values)
        else:
            results = native.decode(values if isinstance(values, list) else list(values))
        refused = 0
        for i, record in enumerate(results):
            if record is None:
                refused += 1
                try:
                    results[i] = self.decode(values[i])
                except DecodeError as exc:
                    results[i] = exc
        if native is not None:
            self.decoded_natively += len(results) - refused
        return results

    @property
    def native_decoder(self) -> BatchDecoder | None:
        """The native batch decoder in use, or ``None`` (not installed, or turned off)."""
        if isinstance(self._native, bool):
            self._native = batch_decoder(self._catalog, self.record_name) if self._native else None
        return self._native

    def _read_body(self, data: bytes, offset: int, writer: _Writer) -> Any:
        if writer.read is not None:
            try:
                record, end = writer.read(data, offset)
            except Exception as exc:  # IndexError, EOFError, ValueError, UnicodeDecodeError
                msg = f"body does not match {self.record_name}: {type(exc).__name__}: {exc}"
                raise SchemaMismatch(msg, data) from exc
            if end != len(data):
                msg = f"body does not match {self.record_name}: {len(data) - end} trailing byte(s)"
                raise SchemaMismatch(msg, data)
            return record
        buf = BytesIO(data)
        buf.seek(offset)
        reader = self.reader.parsed if writer.needs_resolution else None
        try:
            record = schemaless_reader(buf, writer.parsed, reader)
        except Exception as exc:  # fastavro raises many types on bad bodies
            msg = f"body does not match {self.record_name}: {type(exc).__name__}: {exc}"
            raise SchemaMismatch(msg, data) from exc
        if buf.tell() != len(data):
            extra = len(data) - buf.tell()
            msg = f"body does not match {self.record_name}: {extra} trailing byte(s)"
            raise SchemaMismatch(msg, data)
        return record

    def _writer_by_fingerprint(self, data: bytes) -> _Writer:
        fp = data[2:_SINGLE_OBJECT_HEADER]
        writer = self._by_fingerprint.get(fp)
        if writer is None:
            shipped = self._catalog.by_fingerprint(fp)
            if shipped is None:
                msg = f"writer schema fingerprint {fp.hex()} is not among the shipped schemas"
                raise UnknownFingerprint(msg, data)
            if shipped.name != self.record_name:
                msg = f"expected {self.record_name}, got {shipped.name} v{shipped.version}"
                raise SchemaMismatch(msg, data)
            writer = _Writer(shipped.parsed, shipped.fingerprint != self.reader.fingerprint)
            self._by_fingerprint[fp] = writer
        return writer

    def _writer_by_id(self, data: bytes) -> _Writer:
        schema_id = _CONFLUENT_PREFIX.unpack_from(data)[1]
        writer = self._by_id.get(schema_id)
        if writer is None:
            writer = self._fetch(schema_id, data)
            self._by_id[schema_id] = writer
        return writer

    def _fetch(self, schema_id: int, data: bytes) -> _Writer:
        if self._registry is None:
            msg = f"Confluent framing (schema id {schema_id}) but no schema registry is configured"
            raise UnknownSchemaId(msg, data)
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                msg = f"schema id {schema_id} is unknown to the registry"
                raise UnknownSchemaId(msg, data) from exc
            msg = f"fetching schema id {schema_id} failed: {exc}"
            raise RegistryError(msg) from exc
        except Exception as exc:
            msg = f"fetching schema id {schema_id} failed: {exc}"
            raise RegistryError(msg) from exc
        parsed = parse_schema(json.loads(schema.schema_str or "null"))
        name = parsed.get("name") if isinstance(parsed, dict) else None
        if name != self.record_name:
            msg = f"expected {self.record_name}, schema id {schema_id} is {name}"
            raise SchemaMismatch(msg, data)
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        return _Writer(cast("dict[str, Any]", parsed), fp != self.reader.fingerprint)
