"""The priced event's tail (its fields after ``event``): native writer against the Python one.

    .venv/bin/python bench/tail_writer.py [--n 20000] [--repeat 7]

N priced records as the processor makes them (the load of ``bench/processor.py``: 50 tenants,
their models, ~0.5% unpriced; priced with the shipped price snapshot, one ``priced_at``).
Timed, CPU µs per record, best of ``repeat``: the tail written by the compiled Python writer,
by ``tokenline_native.BodyWriter``, and by fastavro's ``schemaless_writer`` (the reference);
then ``PricedEncoder.encode`` (the whole splice) with the native writer and without it. Every
native tail is checked equal to the Python writer's and to fastavro's bytes first; the
ratio is Python / native.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.factories
sys.path.insert(0, str(Path(__file__).resolve().parent))  # proc.load, proc.work

from fastavro import schemaless_writer
from proc.load import _event, _tenants
from proc.work import make_runtime

from tokenline.processor import splice
from tokenline.processor.pipeline import price_and_enrich
from tokenline.processor.splice import PricedEncoder
from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from collections.abc import Callable


def _records(n: int) -> tuple[list[Any], list[bytes]]:
    rng = random.Random(1)
    tenants = _tenants(50, rng)
    codec = AvroCodec[Any]("tokenline.UsageEvent")
    now = datetime.now(UTC)
    start = now - timedelta(hours=1)
    events = [_event(rng, rng.choice(tenants), start + timedelta(seconds=i / 10)) for i in range(n)]
    raws = [codec.encode(e) for e in events]
    book = make_runtime("127.0.0.1:1", "bench").book
    source = {"topic": "raw", "partition": 0, "offset": 1}
    priced = [price_and_enrich(e, book=book, rules=(), source=source, now=now) for e in events]
    return priced, raws


def _best(repeat: int, n: int, run: Callable[[], object]) -> float:
    run()
    times = []
    for _ in range(repeat):
        t = time.process_time()
        run()
        times.append(time.process_time() - t)
    return min(times) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    records, raws = _records(args.n)
    native = PricedEncoder()
    python_writer, native_writer = native._write_tail, native._native_tail
    if python_writer is None or native_writer is None:
        sys.exit("no native tail writer: bash deploy/local/native.sh")
    splice_body_writer = splice.body_writer
    splice.body_writer = lambda _parsed: None  # type: ignore[assignment]
    python_only = PricedEncoder()
    splice.body_writer = splice_body_writer

    def fastavro(record: Any) -> bytes:
        buf = BytesIO()
        schemaless_writer(buf, native._tail, record)
        return buf.getvalue()

    refused = 0
    for record in records:
        written = native_writer.write(record)
        if written is None:
            refused += 1
            continue
        if not written == python_writer(record) == fastavro(record):
            sys.exit(f"WRONG: the native tail differs for {record!r}")
    print(f"{args.n} priced records, {refused} refused by the native writer; best of {args.repeat}")
    rows = [
        ("tail, fastavro", lambda: [fastavro(r) for r in records]),
        ("tail, Python", lambda: [python_writer(r) for r in records]),
        ("tail, native", lambda: [native_writer.write(r) for r in records]),
        (
            "splice, Python",
            lambda: [python_only.encode(r, w) for r, w in zip(records, raws, strict=True)],
        ),
        (
            "splice, native",
            lambda: [native.encode(r, w) for r, w in zip(records, raws, strict=True)],
        ),
    ]
    figures = {name: _best(args.repeat, args.n, run) for name, run in rows}
    for name, us in figures.items():
        print(f"{name:16s} {us:7.2f} µs/record")
    for what in ("tail", "splice"):
        ratio = figures[f"{what}, Python"] / figures[f"{what}, native"]
        print(f"{what}: Python / native = {ratio:.2f}")


if __name__ == "__main__":
    main()
