"""Codec benchmark: our AvroCodec against bare fastavro on the same UsageEvent.

    .venv/bin/python bench/codec.py [--n 20000] [--repeat 7] [--batch 5000]

Bare fastavro is ``schemaless_writer``/``schemaless_reader`` with the same parsed schema into
a fresh BytesIO, no framing: the floor any Avro codec in Python pays. Ours adds the
single-object header (encode) and the header check, fingerprint lookup and trailing-byte
check (decode). Reported: the best of ``repeat`` runs of ``n`` events, in µs per event, and
speed ratios (bare time / our time: 1.0 = as fast as bare fastavro). Goal: ≥ 0.8.

Batch decoding: ``AvroCodec.decode_many`` on ``batch`` distinct messages (random ids, times,
tenants, models, costs; ``priced_at`` shared by runs of 500, as a processor batch makes it)
of PricedUsageEvent and of UsageEvent, with the native decoder (``tokenline_native``) and with
the Python reader alone (``native=False``), checked equal; µs per record, best of ``repeat``,
and the ratio Python / native.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastavro import schemaless_reader, schemaless_writer

from tests.factories import EPOCH, host, priced_event, usage_event
from tokenline.schemas import AvroCodec, catalog

_MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "o3", "nova-pro"]
_BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning")


def _best(fn: Any, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def _varied(n: int) -> list[Any]:
    """``n`` distinct priced events, as a sink batch holds them."""
    rnd = random.Random(7)
    out = []
    for i in range(n):
        event = usage_event(
            event_id=uuid.UUID(int=rnd.getrandbits(128)),
            producer_id=uuid.UUID(int=rnd.getrandbits(128)),
            producer_seq=i,
            occurred_at=EPOCH + timedelta(microseconds=rnd.randrange(10**10)),
            tenant_id=f"tenant-{rnd.randrange(50)}",
            user_id=f"u-{rnd.randrange(10**6)}",
            session_id=f"s-{rnd.randrange(10**6)}",
            request_model=rnd.choice(_MODELS),
            response_model=rnd.choice(_MODELS),
            latency_ms=rnd.randrange(5000),
            provider_request_id=f"req_{rnd.getrandbits(64):x}",
            host=host(hostname=f"api-{rnd.randrange(100)}", k8s_pod=f"api-{rnd.getrandbits(32):x}"),
        )
        cost = {k: Decimal(rnd.randrange(10**9)).scaleb(-12) for k in _BUCKETS}
        cost["total"] = sum(cost.values())
        priced_at = EPOCH + timedelta(seconds=i // 500)
        out.append(priced_event(event=event, cost=cost, priced_at=priced_at))
    return out


def _batches(size: int, repeat: int) -> None:
    """decode_many with and without the native decoder, µs per record."""
    records = _varied(size)
    print(f"\ndecode_many, batches of {size:,} distinct records, best of {repeat}")
    print(f"{'record':18} {'body B':>7} {'Python µs':>10} {'native µs':>10} {'ratio':>6}")
    for name, items in (
        ("PricedUsageEvent", records),
        ("UsageEvent", [r["event"] for r in records]),
    ):
        native = AvroCodec[Any](f"tokenline.{name}")
        python = AvroCodec[Any](f"tokenline.{name}", native=False)
        if native.native_decoder is None:
            print(f"{name:18} tokenline_native is not installed: bash deploy/local/native.sh")
            continue
        batch = [native.encode(r) for r in items]
        assert native.decode_many(batch) == python.decode_many(batch)
        assert native.decoded_natively == len(batch)
        p = _best(lambda _n, c=python, b=batch: c.decode_many(b), len(batch), repeat)
        n = _best(lambda _n, c=native, b=batch: c.decode_many(b), len(batch), repeat)
        body = sum(map(len, batch)) / len(batch) - 10
        print(f"{name:18} {body:7.0f} {p:10.2f} {n:10.2f} {p / n:6.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--batch", type=int, default=5_000)
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
    _batches(args.batch, args.repeat)


if __name__ == "__main__":
    main()
