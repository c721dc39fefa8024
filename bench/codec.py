"""Codec benchmark: our AvroCodec against bare fastavro on the same UsageEvent.

    .venv/bin/python bench/codec.py [--n 20000] [--repeat 7]

Bare fastavro is ``schemaless_writer``/``schemaless_reader`` with the same parsed schema into
a fresh BytesIO, no framing: the floor any Avro codec in Python pays. Ours adds the
single-object header (encode) and the header check, fingerprint lookup and trailing-byte
check (decode). Reported: the best of ``repeat`` runs of ``n`` events, in µs per event, and
speed ratios (bare time / our time: 1.0 = as fast as bare fastavro). Goal: ≥ 0.8.
"""

from __future__ import annotations

import argparse
import sys
import time
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastavro import schemaless_reader, schemaless_writer

from tests.factories import usage_event
from tokenline.schemas import AvroCodec, catalog


def _best(fn: Any, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    record = usage_event()
    schema = catalog().latest("tokenline.UsageEvent").parsed
    codec = AvroCodec[Any]("tokenline.UsageEvent")
    framed = codec.encode(record)
    body = framed[10:]

    def bare_encode(n: int) -> None:
        for _ in range(n):
            buf = BytesIO()
            schemaless_writer(buf, schema, record)
            buf.getvalue()

    def ours_encode(n: int) -> None:
        for _ in range(n):
            codec.encode(record)

    def bare_decode(n: int) -> None:
        for _ in range(n):
            schemaless_reader(BytesIO(body), schema, None)

    def ours_decode(n: int) -> None:
        for _ in range(n):
            codec.decode(framed)

    rows = []
    for op, bare, ours in (
        ("encode", bare_encode, ours_encode),
        ("decode", bare_decode, ours_decode),
    ):
        b = _best(bare, args.n, args.repeat)
        o = _best(ours, args.n, args.repeat)
        rows.append((op, b, o, b / o))
    print(f"UsageEvent, {len(body)}-byte body, best of {args.repeat} x {args.n} events")
    print(f"{'op':8} {'bare fastavro µs':>17} {'tokenline µs':>13} {'speed ratio':>12}")
    for op, b, o, ratio in rows:
        print(f"{op:8} {b:17.2f} {o:13.2f} {ratio:12.2f}")


if __name__ == "__main__":
    main()
