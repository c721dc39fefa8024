"""The sink reads each batch natively; what the native readers refuse takes the Python path.

With native COPY rows (``tokenline.sink.native_rows``) a good message becomes a native row;
one they refuse is decoded (natively when the decoder takes it) and flattened by
``event_row``, and an undecodable one is dead-lettered, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests import factories
from tokenline.schemas import AvroCodec
from tokenline.sink.native_rows import COPY_ROW, KEEP, LEAN, complete
from tokenline.sink.rows import event_row
from tokenline.sink.settings import SinkSettings
from tokenline.sink.worker import SinkWorker

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenline.sink.store import Rejected, Row

pytestmark = pytest.mark.unit


class _NoStore:
    def write(self, priced_rows: Sequence[Row]) -> list[Rejected]:
        raise AssertionError("not written in this test")

    def close(self) -> None:
        pass


class _Message:
    """A consumed record: its value, at an offset of partition 0 (the n-th made here)."""

    made = 0

    def __init__(self, value: bytes | None) -> None:
        self._value = value
        self._offset = _Message.made
        _Message.made += 1

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return "priced"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def _worker() -> SinkWorker:
    settings = SinkSettings(database_url="postgresql://tokenline@127.0.0.1:1/none")
    return SinkWorker(settings, store=_NoStore())


def test_the_worker_reads_batches_into_native_rows() -> None:
    worker = _worker()
    codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
    good = [codec.encode(factories.priced_event(currency=f"X{n}")) for n in range(20)]
    # Decodable, but PostgreSQL takes no NUL in text: the Python path flattens it (and the
    # store refuses it there, as before).
    wide = codec.encode(factories.priced_event(event=factories.usage_event(project="a\x00b")))
    bad = [b"\xc3\x01" + bytes(8), good[0][:-1], None]
    batch: list[Any] = [_Message(v) for v in [*good, wide, *bad]]
    decoded = worker._decode(batch)
    # What landing the batch commits: the offset after its last record.
    assert decoded.offsets == {("priced", 0): batch[-1].offset() + 1}
    assert worker._native_rows is not None
    rows = decoded.events
    assert [COPY_ROW in row for row in rows] == [True] * len(good) + [False]
    for row, value in zip(rows, good, strict=False):
        expected = event_row(codec.decode(value))
        # Lean as read; complete() gives the rest when the store needs it.
        assert {c: row[c] for c in LEAN} == {c: expected[c] for c in LEAN}
        assert not set(KEEP) - set(LEAN) & row.keys()
        complete([row])
        assert {c: row[c] for c in KEEP} == {c: expected[c] for c in KEEP}
    assert rows[-1] == event_row(codec.decode(wide))
    assert worker._codec.decoded_natively == 1  # the wide one; the bad ones fell to Python
    assert [decoded.origin[id(row)].value() for row in rows] == [*good, wide]
    assert [(m.value(), code, stage) for m, code, _reason, stage in decoded.dead] == [
        (bad[0], "unknown_fingerprint", "decode"),
        (bad[1], "schema_mismatch", "decode"),
        (None, "truncated", "decode"),
    ]


def test_the_worker_decodes_batches_natively() -> None:
    worker = _worker()
    worker._native_rows = None  # the path without native rows
    codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
    good = [codec.encode(factories.priced_event(currency=f"X{n}")) for n in range(20)]
    bad = [b"\xc3\x01" + bytes(8), good[0][:-1], None]
    batch: list[Any] = [_Message(v) for v in [*good, *bad]]
    decoded = worker._decode(batch)
    assert worker._codec.native_decoder is not None
    assert worker._codec.decoded_natively == len(good)  # not one fell back to Python
    assert decoded.events == [event_row(codec.decode(v)) for v in good]
    assert [(m.value(), code, stage) for m, code, _reason, stage in decoded.dead] == [
        (bad[0], "unknown_fingerprint", "decode"),
        (bad[1], "schema_mismatch", "decode"),
        (None, "truncated", "decode"),
    ]


def test_what_meanwhile_raises_is_raised_when_the_write_returns_never_to_the_store() -> None:
    """A failure while the server inserts (a chore, a fetch) is not the store's to retry: the
    store's ``meanwhile`` keeps it and the worker raises it once the write returns, with the
    chores after the failed one still to do."""
    worker = _worker()
    done: list[str] = []

    def fails() -> None:
        raise RuntimeError("the broker said no")

    worker._chores.extend([lambda: done.append("first"), fails, lambda: done.append("third")])
    worker._events_sent()  # what the store calls while its COPY runs: it must not raise
    assert done == ["first"]
    with pytest.raises(RuntimeError, match="the broker said no"):
        worker._raise_meanwhile_error()
    worker._raise_meanwhile_error()  # raised once
    worker._run_chores()
    assert done == ["first", "third"]
