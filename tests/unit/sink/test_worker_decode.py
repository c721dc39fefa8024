"""The sink decodes each batch natively; what the decoder refuses is dead-lettered as before."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests import factories
from tokenline.schemas import AvroCodec
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
    def __init__(self, value: bytes | None) -> None:
        self._value = value

    def value(self) -> bytes | None:
        return self._value


def test_the_worker_decodes_batches_natively() -> None:
    settings = SinkSettings(database_url="postgresql://tokenline@127.0.0.1:1/none")
    worker = SinkWorker(settings, store=_NoStore())
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
