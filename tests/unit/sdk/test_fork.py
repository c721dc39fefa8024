"""Fork and reconfiguration: one set of process hooks, and a child never writes its parent's
records."""

from __future__ import annotations

import atexit
import gc
import os
import weakref
from typing import TYPE_CHECKING

import pytest

from tokenline import sdk
from tokenline.dev._proc import free_port
from tokenline.sdk import _exit
from tokenline.sdk.emitters import BackgroundEmitter, DiskSpool, SpoolingEmitter

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tokenline.sdk._runtime import Runtime

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _closed() -> Iterator[None]:
    yield
    sdk.close(0)


def configure(spool_dir: Path) -> Runtime:
    """The default emitters (background sender, spool, Kafka), with no broker to reach."""
    return sdk.configure(
        tenant_id="acme",
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        spool_dir=spool_dir,
        detect_host=False,
    )


def spool_of(runtime: Runtime) -> DiskSpool:
    sender = runtime.emitter
    assert isinstance(sender, BackgroundEmitter)
    assert isinstance(sender.inner, SpoolingEmitter)
    return sender.inner.spool


def read_all(directory: Path) -> list[tuple[bytes | None, bytes]]:
    reader = DiskSpool(directory, max_bytes=1 << 30)
    out: list[tuple[bytes | None, bytes]] = []
    while (segment := reader.claim()) is not None:
        out.extend(reader.records(segment))
        reader.release(segment)
    return out


def test_a_forked_child_never_writes_its_parents_spooled_records(tmp_path: Path) -> None:
    spool = spool_of(configure(tmp_path))
    records = [(b"acme", f"parent-{i}".encode()) for i in range(10)]
    for key, value in records:
        spool.append(key, value)  # spooled, not yet fsync'd: the batch is not full
    pid = os.fork()
    if pid == 0:  # the child ends the way a worker does, closing the SDK first
        code = 1
        try:
            sdk.close(1)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sdk.close(1)
    assert read_all(tmp_path) == records  # each once


def test_a_forked_child_spools_its_own_records_in_its_own_segment(tmp_path: Path) -> None:
    spool = spool_of(configure(tmp_path))
    spool.append(b"acme", b"parent-before")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if spool.append(b"acme", b"child") else 2
            sdk.close(1)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    spool.append(b"acme", b"parent-after")
    sdk.close(1)
    assert sorted(v for _, v in read_all(tmp_path)) == [b"child", b"parent-after", b"parent-before"]
    assert len(list(tmp_path.glob("*.seg"))) == 0


def test_configuring_again_adds_no_process_hook_and_keeps_no_old_runtime(tmp_path: Path) -> None:
    configure(tmp_path)
    callbacks = atexit._ncallbacks()
    old: list[weakref.ref[object]] = []
    for _ in range(50):
        runtime = configure(tmp_path)
        old += [weakref.ref(runtime.emitter), weakref.ref(runtime.identity)]
    assert atexit._ncallbacks() == callbacks  # one exit hook, however many configure() calls
    assert _exit.installed()[0]
    live = configure(tmp_path)
    del runtime
    gc.collect()
    # A per-object fork hook would keep every earlier emitter and identity alive for good.
    assert [ref for ref in old if ref() is not None] == []

    parent_producer = live.identity.producer_id
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        # The one fork hook renewed the live runtime's identity.
        ok = live.identity.producer_id != parent_producer and live.identity.next_seq() == 0
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 1)
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert answer == b"1"
    assert live.identity.producer_id == parent_producer
