"""Load generator of the end-to-end benchmark: UsageEvents through the SDK at a steady rate.

    .venv/bin/python bench/e2e_load.py --bootstrap HOST:PORT --topic T --rate 5000 \\
        --seconds 60 --out sends.bin

Runs in its own process (so the watcher's polling never competes with it for the GIL) and
sends with ``sdk.record(...)`` through the emitter chain ``sdk.configure`` builds for a
service (background sender → disk spool → idempotent Kafka producer). One wrapper in front of
that chain notes each event's ``event_id`` and ``time.time_ns()`` as ``record`` hands it over.

Pacing: every ``--tick-ms`` the generator sends what the schedule owes (rate * elapsed), so the
rate is even at that grain. It writes ``<16-byte event id><8-byte send ns>`` per event to
``--out`` and, as one JSON object, to the same path with ``.json``: sent, dropped by the SDK,
left unflushed, achieved rate, how late the ticks ran and the process's CPU time.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenline import sdk
from tokenline.sdk._runtime import default_emitter  # the chain configure() builds by default
from tokenline.sdk.emitters import BackgroundEmitter

if TYPE_CHECKING:
    from tokenline.schemas import Provider, UsageEvent
    from tokenline.sdk import Emitter

RECORD = struct.Struct(">16sq")

#: (provider, model) pairs, all in the shipped price list, so every event is priced.
MODELS: tuple[tuple[Provider, str], ...] = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
)


class SendClock:
    """Wraps the SDK's emitter: notes each event's id and wall-clock send time, then emits."""

    def __init__(self, inner: Emitter) -> None:
        self.inner = inner
        self.sent: list[tuple[bytes, int]] = []

    def emit(self, event: UsageEvent) -> None:
        """Note the send time and hand the event on."""
        self.sent.append((event["event_id"].bytes, time.time_ns()))
        self.inner.emit(event)

    def poll(self) -> None:
        """Delegate."""
        self.inner.poll()

    def flush(self, timeout: float) -> int:
        """Delegate."""
        return self.inner.flush(timeout)

    def close(self, timeout: float) -> None:
        """Delegate."""
        self.inner.close(timeout)


def _configure(bootstrap: str, topic: str, spool_dir: Path) -> SendClock:
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "spool_dir": spool_dir,
        "service_name": "e2e-bench",
        "detect_host": False,  # no cloud-metadata probes from a benchmark
    }
    clock = SendClock(default_emitter(sdk.Settings(**settings)))
    sdk.configure(emitter=clock, **settings)
    return clock


def run(
    bootstrap: str, topic: str, rate: int, seconds: int, tick_ms: int, tenants: int
) -> tuple[SendClock, dict[str, Any]]:
    """Send ``rate * seconds`` events, paced in ticks; return the clock and a summary."""
    with tempfile.TemporaryDirectory(prefix="tl-e2e-spool-") as spool:
        clock = _configure(bootstrap, topic, Path(spool))
        total = rate * seconds
        tick_ns = tick_ms * 1_000_000
        names = [f"e2e-tenant-{n:02d}" for n in range(tenants)]
        late_ns = 0
        sent = 0
        start = time.monotonic_ns()
        while sent < total:
            now = time.monotonic_ns()
            owed = min(total, (now - start) * rate // 1_000_000_000 + 1)
            while sent < owed:
                provider, model = MODELS[sent % len(MODELS)]
                sdk.record(
                    provider=provider,
                    operation="chat",
                    model=model,
                    input_tokens=200 + sent % 1000,
                    output_tokens=50 + sent % 300,
                    cache_read_input_tokens=(sent % 4) * 256,
                    latency_ms=300 + sent % 700,
                    tenant_id=names[sent % tenants],
                    project="e2e",
                    user_id=f"u-{sent % 97}",
                )
                sent += 1
            next_tick = start + (now - start) // tick_ns * tick_ns + tick_ns
            after = time.monotonic_ns()
            if after < next_tick:
                time.sleep((next_tick - after) / 1e9)
            else:
                late_ns = max(late_ns, after - next_tick)
        elapsed_ns = time.monotonic_ns() - start
        left = sdk.flush(60.0)
        dropped = clock.inner.dropped if isinstance(clock.inner, BackgroundEmitter) else 0
        sdk.close(5.0)
    summary = {
        "sent": sent,
        "recorded": len(clock.sent),
        "dropped": dropped,
        "unflushed": left,
        "rate": sent * 1_000_000_000 // max(elapsed_ns, 1),
        "max_tick_late_ms": late_ns // 1_000_000,
        "cpu_ms": time.process_time_ns() // 1_000_000,
    }
    return clock, summary


def read_sends(path: Path) -> dict[int, int]:
    """Read a ``--out`` file back: event id (as an int) → send time in ns."""
    data = path.read_bytes()
    return {
        int.from_bytes(event_id, "big"): sent_ns for event_id, sent_ns in RECORD.iter_unpack(data)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--tick-ms", type=int, default=10)
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    clock, summary = run(
        args.bootstrap, args.topic, args.rate, args.seconds, args.tick_ms, args.tenants
    )
    args.out.write_bytes(b"".join(RECORD.pack(e, t) for e, t in clock.sent))
    args.out.with_suffix(".json").write_text(json.dumps(summary))
    print(json.dumps(summary), flush=True)
    sys.exit(0 if summary["dropped"] == 0 and summary["unflushed"] == 0 else 1)


if __name__ == "__main__":
    main()
