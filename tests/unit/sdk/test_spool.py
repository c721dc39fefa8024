"""The disk spool: bounded, readable after a crash mid-write, drained by any process."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import pytest

from tokenline.sdk.emitters import DiskSpool

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


def _drain_all(spool: DiskSpool) -> list[tuple[bytes | None, bytes]]:
    out: list[tuple[bytes | None, bytes]] = []
    while (segment := spool.claim()) is not None:
        out.extend(spool.records(segment))
        spool.release(segment)
    return out


def test_records_come_back_in_order_with_their_keys(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    records: list[tuple[bytes | None, bytes]] = [
        (f"t{i % 3}".encode(), f"value-{i}".encode() * 3) for i in range(50)
    ]
    records.append((None, b"keyless"))
    for key, value in records:
        assert spool.append(key, value)
    assert len(list(tmp_path.glob("*.seg"))) > 1  # rotated by size
    assert _drain_all(spool) == records
    assert not spool.pending()
    assert not list(tmp_path.glob("*.seg"))


def test_past_the_bound_records_are_dropped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = DiskSpool(tmp_path, max_bytes=4096)
    with caplog.at_level(logging.ERROR):
        results = [spool.append(b"k", b"x" * 100) for _ in range(100)]
    kept = sum(results)
    assert 0 < kept < 100
    assert spool.dropped == 100 - kept
    assert "usage event(s) dropped" in caplog.text
    assert len(_drain_all(spool)) == kept


def test_a_torn_tail_leaves_the_complete_records_readable(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20)
    for i in range(10):
        spool.append(b"acme", f"event-{i}".encode())
    spool.rotate()
    (segment_path,) = tmp_path.glob("*.seg")
    data = segment_path.read_bytes()
    segment_path.write_bytes(data[:-5])  # the process died in the middle of the last record
    reopened = DiskSpool(tmp_path, max_bytes=1 << 20)
    assert [v for _, v in _drain_all(reopened)] == [f"event-{i}".encode() for i in range(9)]


def test_a_corrupt_record_stops_the_read_there(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        spool.append(b"k", f"event-{i}".encode())
    spool.rotate()
    (segment_path,) = tmp_path.glob("*.seg")
    data = bytearray(segment_path.read_bytes())
    data[-1] ^= 0xFF
    segment_path.write_bytes(bytes(data))
    assert len(_drain_all(DiskSpool(tmp_path, max_bytes=1 << 20))) == 2


def test_records_are_fsynced_in_batches(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20, fsync_every=4)
    for _ in range(4):
        spool.append(b"k", b"v")
    (segment_path,) = tmp_path.glob("*.seg")
    # the batch of 4 was flushed through to the file without closing it
    assert segment_path.stat().st_size == 4 * (8 + 2 + 1 + 1)
    spool.close()


def test_another_process_cannot_claim_a_segment_being_written(tmp_path: Path) -> None:
    writer = DiskSpool(tmp_path, max_bytes=1 << 20)
    writer.append(b"k", b"v")
    writer.sync()
    pid = os.fork()
    if pid == 0:  # child: another process sharing the directory
        other = DiskSpool(tmp_path, max_bytes=1 << 20)
        os._exit(0 if other._try_lock(next(tmp_path.glob("*.seg"))) is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _drain_all(writer) == [(b"k", b"v")]  # the writer itself rotates and drains
