"""The job every processing contender of ``bench/processor.py`` does, in one place.

Imported by ``runner.py`` in the project's ``.venv`` (the plain confluent-kafka loop) and in
the Quix Streams venv (where ``tokenline-common``, ``-schemas`` and ``-processor`` are installed
editable from this checkout), so both run the processor's own per-record work:

* :func:`make_runtime` builds a :class:`~tokenline.processor.runtime.ProcessorRuntime` the way
  ``tokenline.processor.app.create_app`` does, without Faust;
* :func:`handle` is ``ProcessorRuntime.handle`` for one Kafka record, with the source position and
  ``now`` the processor's agent passes;
* :func:`contribution` turns a priced event into the integer measures of its window
  (``cost_total`` in units of 10^-12, the scale of the Avro decimal), :func:`add` sums them
  (``latency_ms_max`` is a max) and :func:`rollup` encodes a window's sums as a
  ``tokenline.UsageRollup`` record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, Rounded
from typing import TYPE_CHECKING

from tokenline.processor.metrics import Metrics
from tokenline.processor.pricebook import load_price_book
from tokenline.processor.runtime import Handled, ProcessorRuntime
from tokenline.processor.settings import ProcessorSettings
from tokenline.processor.windows import parse_key
from tokenline.schemas import AvroCodec
from tokenline.schemas.rollup import ROLLUP_MAX, ROLLUP_SUMS

if TYPE_CHECKING:
    from tokenline.schemas import PricedUsageEvent, UsageRollup

__all__ = [
    "MEASURES",
    "WINDOW_MS",
    "add",
    "contribution",
    "handle",
    "make_runtime",
    "occurred_ms",
    "rollup",
]

#: The measures of a window, in the order of a contribution row.
MEASURES = (*ROLLUP_SUMS, ROLLUP_MAX)
_MAX = MEASURES.index(ROLLUP_MAX)
_COST = MEASURES.index("cost_total")
WINDOW_MS = 60_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_EXACT = Context(prec=80, traps=[Inexact, Rounded])
_ROLLUP: AvroCodec[UsageRollup] = AvroCodec("tokenline.UsageRollup")


def make_runtime(bootstrap: str, worker: str) -> ProcessorRuntime:
    """A runtime with the processor's default settings and the shipped price snapshot."""
    settings = ProcessorSettings(bootstrap_servers=bootstrap, metrics_port=0, worker_name=worker)
    return ProcessorRuntime(
        settings=settings, metrics=Metrics(), book=load_price_book(settings.prices_file)
    )


def handle(
    runtime: ProcessorRuntime,
    value: bytes | None,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
) -> Handled:
    """``ProcessorRuntime.handle`` of one raw record, as the processor's agent calls it."""
    return runtime.handle(
        value or b"",
        key=key,
        source={"topic": topic, "partition": partition, "offset": offset},
        timestamp_ms=timestamp_ms,
        now=datetime.now(UTC),
    )


def occurred_ms(priced: PricedUsageEvent) -> int:
    """The event's ``occurred_at`` in epoch milliseconds (floored, exact)."""
    return (priced["event"]["occurred_at"] - _EPOCH) // _MS


def cost_units(total: Decimal) -> int:
    """A cost as an integer of 10^-12 units; raises if it has finer digits."""
    return int(total.scaleb(12, _EXACT).to_integral_exact(context=_EXACT))


def contribution(priced: PricedUsageEvent) -> list[int]:
    """What one priced event adds to its window, in :data:`MEASURES` order."""
    event = priced["event"]
    usage = event["usage"]
    cost = priced["cost"]
    latency = event["latency_ms"]
    return [
        1,
        0 if event["success"] else 1,
        usage["input_tokens"],
        usage["cache_read_input_tokens"],
        usage["cache_write_input_tokens"],
        usage["output_tokens"],
        usage["reasoning_tokens"],
        0 if cost is None else cost_units(cost["total"]),
        1 if cost is None else 0,
        latency,
        latency,
    ]


def add(into: list[int], row: list[int]) -> list[int]:
    """``into`` with ``row`` added (sums; ``latency_ms_max`` a max); modified in place."""
    for i in range(_MAX):
        into[i] += row[i]
    if row[_MAX] > into[_MAX]:
        into[_MAX] = row[_MAX]
    return into


def rollup(
    window_key: str, start_ms: int, sums: list[int], partition: int = -1, offset: int = -1
) -> tuple[bytes, bytes]:
    """(key, encoded ``tokenline.UsageRollup``) of one window's sums (a delta or a total)."""
    tenant_id, provider, model = parse_key(window_key)
    record = {
        "tenant_id": tenant_id,
        "window_start": _EPOCH + start_ms * _MS,
        "window_seconds": WINDOW_MS // 1000,
        "provider": provider,
        "model": model,
        **{name: sums[i] for i, name in enumerate(MEASURES) if i != _COST},
        "cost_total": Decimal(sums[_COST]).scaleb(-12, _EXACT),
        "currency": "USD",
        "source_partition": partition,
        "max_source_offset": offset,
        "updated_at": datetime.now(UTC),
    }
    return tenant_id.encode(), _ROLLUP.encode(record)
