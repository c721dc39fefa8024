"""Encoding a priced event without re-encoding the event it wraps (processor and replay).

A ``PricedUsageEvent``'s first field is the ``UsageEvent`` it priced, and an Avro record is the
concatenation of its fields. When the raw record is single-object encoded with the same
``UsageEvent`` schema the priced schema embeds, the priced body is the raw body followed by
the pricing fields: only those are encoded (a tenth of the work). Anything else (an older or
newer writer schema, Confluent framing) is encoded whole by the codec. Both give records that
decode identically; a unit test holds the two to the same bytes.

The pricing fields are written by the native writer (``tokenline_native.BodyWriter``) when it
is installed, and by the compiled Python writer for any record it refuses (and without it):
the bytes are the same, and so is every error.
"""

from __future__ import annotations

from io import BytesIO
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from tokenline.schemas import AvroCodec, EncodeError, catalog
from tokenline.schemas._compiled_writer import compile_writer
from tokenline.schemas._native import body_writer

if TYPE_CHECKING:
    from tokenline.schemas import PricedUsageEvent

__all__ = ["PricedEncoder"]

_SINGLE_OBJECT = b"\xc3\x01"
_HEADER = 10


class PricedEncoder:
    """Encodes ``PricedUsageEvent`` records, reusing the raw event's bytes when it can."""

    def __init__(self) -> None:
        self.codec: AvroCodec[PricedUsageEvent] = AvroCodec("tokenline.PricedUsageEvent")
        priced = catalog().latest("tokenline.PricedUsageEvent")
        fields: list[dict[str, Any]] = list(priced.parsed["fields"])
        embedded = fields[0]["type"]
        self._splice = fields[0]["name"] == "event" and isinstance(embedded, dict)
        # The writer fingerprint a raw record must carry for its body to be the embedded one.
        canonical = to_parsing_canonical_form(embedded) if self._splice else ""
        self._raw_header = _SINGLE_OBJECT + bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        self._header = _SINGLE_OBJECT + priced.fingerprint
        self._tail = parse_schema(
            {"type": "record", "name": "tokenline.replay.PricingTail", "fields": fields[1:]}
        )
        self._write_tail = None
        self._native_tail = None
        if isinstance(self._tail, dict):
            self._write_tail = compile_writer(self._tail)
            # Native only beside the compiled writer: its refusals fall back to that one.
            self._native_tail = body_writer(self._tail) if self._write_tail else None
        self.spliced = 0

    def encode(self, record: PricedUsageEvent, raw: bytes) -> bytes:
        """The encoded ``record``; ``raw`` is the encoded ``UsageEvent`` it was priced from."""
        if not (self._splice and raw[:_HEADER] == self._raw_header):
            return self.codec.encode(record)
        tail = self._native_tail.write(record) if self._native_tail is not None else None
        if tail is None:
            tail = self._python_tail(record)
        self.spliced += 1
        return b"".join((self._header, memoryview(raw)[_HEADER:], tail))

    def _python_tail(self, record: PricedUsageEvent) -> bytes:
        try:
            if self._write_tail is not None:
                tail = self._write_tail(record)
            else:
                buf = BytesIO()
                schemaless_writer(buf, self._tail, record)
                tail = buf.getvalue()
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            msg = f"tokenline.PricedUsageEvent does not fit its schema: {exc}"
            raise EncodeError(msg) from exc
        return tail
