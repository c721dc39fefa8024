"""Errors raised by the Avro contract.

Every error of this package derives from ``SchemaError``::

    SchemaError
    ├── EncodeError              a record does not fit its schema
    ├── RegistryError            the schema registry failed (transient: retry, never dead-letter)
    └── DecodeError              bytes that cannot be read; carries the bytes and a reason_code
        ├── TruncatedMessage     shorter than its header
        ├── WrongMagic           neither single-object (C3 01) nor Confluent (00) framing
        ├── UnknownFingerprint   single-object framing, writer schema not among those shipped
        ├── UnknownSchemaId      Confluent framing, id unknown to the registry (or none configured)
        └── SchemaMismatch       the body does not fit the writer schema, or is another record type

A ``DecodeError`` keeps the offending bytes in ``data`` and a stable ``reason_code`` so a
consumer can route the record to the dead-letter topic as it is.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "DecodeError",
    "EncodeError",
    "RegistryError",
    "SchemaError",
    "SchemaMismatch",
    "TruncatedMessage",
    "UnknownFingerprint",
    "UnknownSchemaId",
    "WrongMagic",
]


class SchemaError(Exception):
    """Root of every error raised by tokenline.schemas."""


class EncodeError(SchemaError):
    """A record does not fit the schema it is encoded with."""


class RegistryError(SchemaError):
    """The schema registry could not be reached or answered with an error."""


class DecodeError(SchemaError):
    """Bytes that cannot be decoded; ``data`` holds them, ``reason_code`` says why."""

    reason_code: ClassVar[str] = "undecodable"

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        self.data = data


class TruncatedMessage(DecodeError):
    """The message is shorter than the header its magic announces."""

    reason_code = "truncated"


class WrongMagic(DecodeError):
    """The first byte(s) match no encoding Tokenline reads."""

    reason_code = "wrong_magic"


class UnknownFingerprint(DecodeError):
    """A single-object message whose writer-schema fingerprint is not shipped."""

    reason_code = "unknown_fingerprint"


class UnknownSchemaId(DecodeError):
    """A Confluent-framed message whose schema id the registry does not know."""

    reason_code = "unknown_schema_id"


class SchemaMismatch(DecodeError):
    """The body does not match its writer schema, or is not the expected record type."""

    reason_code = "schema_mismatch"
