"""Size guards for what the processor and the sink produce: nothing too large to send.

A Kafka producer refuses a message larger than its maximum (``max_request_size`` in aiokafka
and Faust, ``message.max.bytes`` in librdkafka: 1,000,000 bytes by default), and a refused
record is neither sent nor dead-lettered: it vanishes, or crashes the sender. Both parts
check before producing, with these pure functions (no Kafka here):

* :func:`oversized` tells whether a key and value are over a maximum, counting the record's
  framing (:data:`RECORD_OVERHEAD`);
* :func:`fit_dead_letter` encodes a DeadLetter so that it fits: when it does not, the
  original value is truncated (then the original key, then the reason), and the reason says
  what was cut, from how many bytes. The record keeps its coordinates (source topic,
  partition, offset), so the whole original can be read back from its topic.

The one case no dead letter can fit is a Kafka key that alone exceeds the maximum; the caller
sends the dead letter under that key, so it stays too large (such a raw record is itself at the
broker's limit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenline.schemas.records import DeadLetter

__all__ = ["MAX_REASON_CHARS", "RECORD_OVERHEAD", "fit_dead_letter", "oversized"]

#: Bytes a producer adds around a record's key and value, with room to spare: aiokafka
#: estimates 61 (batch header) + 21 (record overhead) + the varint lengths; librdkafka less.
RECORD_OVERHEAD = 512
#: A reason longer than this is cut when a dead letter has to shrink.
MAX_REASON_CHARS = 4_096


def oversized(key: bytes | None, value: bytes, max_bytes: int) -> int | None:
    """The message's size when ``key`` and ``value`` exceed ``max_bytes``, else ``None``."""
    size = len(key or b"") + len(value) + RECORD_OVERHEAD
    return size if size > max_bytes else None


def _note(original: int, kept: int, what: str, max_bytes: int) -> str:
    return f" [{what} truncated from {original} to {kept} bytes to fit {max_bytes}-byte messages]"


def fit_dead_letter(
    record: DeadLetter,
    *,
    kafka_key: bytes | None,
    max_bytes: int,
    encode: Callable[[DeadLetter], bytes],
) -> bytes:
    """``record`` encoded, cut down to fit one message of ``max_bytes`` under ``kafka_key``.

    Unchanged when it fits. Else the original ``value`` keeps as many leading bytes as fit,
    and the ``reason`` ends with what was truncated; if even an empty value does not fit, the
    original ``key`` is truncated too, and the reason to :data:`MAX_REASON_CHARS`.
    """
    encoded = encode(record)
    if oversized(kafka_key, encoded, max_bytes) is None:
        return encoded
    budget = max_bytes - RECORD_OVERHEAD - len(kafka_key or b"")
    value = record["value"] or b""
    key = record["key"] or b""
    reason = record["reason"][:MAX_REASON_CHARS]
    # Room for the value with the longest note it can get; the kept length only shortens it.
    widest = reason + _note(len(value), len(value), "value", max_bytes)
    bare = encode({**record, "reason": widest, "value": b""})
    room = budget - len(bare) - 10  # a value's length prefix is at most 10 bytes
    if room >= 0:
        kept = value[: min(room, len(value))]
        note = _note(len(value), len(kept), "value", max_bytes)
        return encode({**record, "reason": reason + note, "value": kept})
    # Not even the value's place: the original key goes too (it is the message's key as well).
    note = _note(len(value), 0, "value", max_bytes) + _note(len(key), 0, "key", max_bytes)
    return encode({**record, "reason": reason + note, "value": b"", "key": None})
