"""A bounded, crash-safe on-disk spool of encoded Kafka records.

Layout: a directory of segment files ``<pid>-<ns>.seg``. Each record is::

    length  u32 big-endian   length of the body
    crc     u32 big-endian   CRC-32 of the body
    body    key length (u16, 0xFFFF = no key) | key | value

Records are appended to the process's active segment, each with one unbuffered ``write``
(no Python buffer holds a record, so a forked child has nothing of its parent's to write
again), and fsync'd in batches. A process
killed mid-write leaves at worst one partial record at the end of a segment; the reader
stops there (length or CRC do not check out), so a spool is always readable. The active
segment is held with an exclusive ``flock``; any process may drain a segment it can lock,
so a crashed process's spool is re-sent by the next one. Past ``max_bytes`` a record is
dropped, counted and logged: the only way the SDK ever loses an event.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from io import FileIO
from typing import IO, TYPE_CHECKING

from tokenline.sdk.emitters._counters import Counters

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["DiskSpool", "Segment"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_KEYLEN = struct.Struct(">H")
_NO_KEY = 0xFFFF


@dataclass
class Segment:
    """A closed segment claimed for draining (its lock is held until released)."""

    path: Path
    size: int
    handle: IO[bytes] = field(repr=False)


class DiskSpool:
    """Appends records to disk while the broker is away and hands them back for re-sending."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        fsync_every: int = 256,
        fsync_interval_s: float = 0.2,
        segment_bytes: int = 4 * 1024 * 1024,
        counters: Counters | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._fsync_every = fsync_every
        self._fsync_interval_s = fsync_interval_s
        self._segment_bytes = segment_bytes
        self._active: FileIO | None = None
        self._active_size = 0
        self._unsynced = 0
        self._last_sync = time.monotonic()
        self.dropped = 0
        self.appended = 0
        self._counters = counters if counters is not None else Counters()
        directory.mkdir(parents=True, exist_ok=True)
        self.size = sum(p.stat().st_size for p in directory.glob("*.seg"))

    def after_fork(self) -> None:
        """In a forked child: let go of the parent's segment; the child writes one of its own.

        Closing the child's copy of the descriptor writes nothing (there is no buffer) and
        leaves the parent's lock in place (the parent's descriptor still holds it).
        """
        if self._active is not None:
            self._active.close()
        self._active, self._active_size, self._unsynced = None, 0, 0
        self.dropped = self.appended = 0

    # ------------------------------------------------------------------ writing
    def append(self, key: bytes | None, value: bytes) -> bool:
        """Append one record; False (counted, logged) when the spool is full."""
        body = (_KEYLEN.pack(_NO_KEY) if key is None else _KEYLEN.pack(len(key)) + key) + value
        record = _HEADER.pack(len(body), zlib.crc32(body)) + body
        if self.size + len(record) > self.max_bytes:
            self.dropped += 1
            self._counters.add("spool_full")
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "tokenline spool full (%d bytes in %s): %d usage event(s) dropped",
                    self.size, self.directory, self.dropped,
                )  # fmt: skip
            return False
        _write_all(self._active_segment(), record)
        self._active_size += len(record)
        self.size += len(record)
        self.appended += 1
        self._counters.add("spooled")
        self._unsynced += 1
        if self._unsynced >= self._fsync_every:
            self.sync()
        if self._active_size >= self._segment_bytes:
            self.rotate()
        return True

    def _active_segment(self) -> FileIO:
        if self._active is None:
            path = self.directory / f"{os.getpid()}-{time.time_ns()}.seg"
            handle = FileIO(str(path), "ab")  # unbuffered: each record goes to the file at once
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._active, self._active_size = handle, 0
        return self._active

    def sync(self) -> None:
        """Write buffered records through to disk."""
        if self._active is not None and self._unsynced:
            os.fsync(self._active.fileno())
        self._unsynced = 0
        self._last_sync = time.monotonic()

    def sync_if_due(self) -> None:
        """Sync when the batch interval has passed (called from the sender's poll loop)."""
        if self._unsynced and time.monotonic() - self._last_sync >= self._fsync_interval_s:
            self.sync()

    def rotate(self) -> None:
        """Close the active segment so it can be drained."""
        if self._active is not None:
            self.sync()
            fcntl.flock(self._active, fcntl.LOCK_UN)
            self._active.close()
            self._active = None

    # ------------------------------------------------------------------ draining
    def pending(self) -> bool:
        """Whether any record is on disk."""
        return self.size > 0

    def rescan(self) -> None:
        """Count the bytes on disk again (other processes may have added segments since)."""
        total = 0
        for path in self.directory.glob("*.seg"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        self.size = total

    def claim(self) -> Segment | None:
        """Lock the oldest segment no process is writing, rotating our own if it is the last."""
        active_name = self._active.name if self._active is not None else None
        candidates = sorted(self.directory.glob("*.seg"), key=lambda p: p.stat().st_mtime_ns)
        for path in candidates:
            if str(path) == active_name:
                continue
            segment = self._try_lock(path)
            if segment is not None:
                return segment
        if active_name is not None and self._active_size:
            self.rotate()
            return self.claim()
        return None

    @staticmethod
    def _try_lock(path: Path) -> Segment | None:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        if not path.exists():  # drained and deleted by another process meanwhile
            handle.close()
            return None
        return Segment(path=path, size=path.stat().st_size, handle=handle)

    @staticmethod
    def records(segment: Segment) -> Iterator[tuple[bytes | None, bytes]]:
        """The segment's complete records; stops at a torn tail."""
        data = segment.handle.read()
        pos = 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            body = data[pos + _HEADER.size : pos + _HEADER.size + length]
            if len(body) != length or zlib.crc32(body) != crc:
                log.warning("tokenline spool %s: torn record at byte %d skipped", segment.path, pos)
                return
            (keylen,) = _KEYLEN.unpack_from(body)
            if keylen == _NO_KEY:
                yield None, body[_KEYLEN.size :]
            else:
                yield body[2 : 2 + keylen], body[2 + keylen :]
            pos += _HEADER.size + length

    def release(self, segment: Segment) -> None:
        """Delete a drained segment (every record in it was delivered or spooled again)."""
        segment.path.unlink(missing_ok=True)
        fcntl.flock(segment.handle, fcntl.LOCK_UN)
        segment.handle.close()
        self.size = max(0, self.size - segment.size)

    def close(self) -> None:
        """Sync and close the active segment."""
        self.rotate()


def _write_all(handle: FileIO, record: bytes) -> None:
    """Write ``record`` (in one call, unless the kernel takes only part of it)."""
    view = memoryview(record)
    while view:
        written = handle.write(view)
        if not written:
            msg = f"could not write to {handle.name}"
            raise OSError(msg)
        view = view[written:]
