"""Hostile input through the real processor and sink: nothing stops, vanishes or reaches a bill.

One pipeline (``tokenline processor`` and ``tokenline sink run`` as subprocesses, driven only
through Kafka and PostgreSQL) takes:

- the hostile mix of ``tests.hostile`` (``TOKENLINE_E2E_HOSTILE`` records, 20,000 by default,
  among ``TOKENLINE_E2E_VALID`` valid events, 5,000): both parts keep running; every hostile
  record is in the dead-letter topic with a reason its kind allows (counts by reason are
  printed); every valid event lands once with its exact cost, and nothing else lands; the
  rollups are the sums of the stored events;
- each poison record of issue 14 between canary events of its own tenant that must land
  after it.

A dead letter names its raw record by topic, partition and offset: the processor's directly,
the sink's through the priced record it carries (its ``source``).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from tests._rollup_truth import check_rollups
from tests.e2e._pipeline import running_pipeline
from tests.e2e._truth import PRICES, price_file
from tests.hostile import USAGE, Hostile, Mix, Valid, generate, valid_event
from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tokenline.dev.demo.services import DemoPipeline

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HOSTILE = int(os.environ.get("TOKENLINE_E2E_HOSTILE", "20000"))
VALID = int(os.environ.get("TOKENLINE_E2E_VALID", "5000"))
DEAD = AvroCodec[Any]("tokenline.DeadLetter")
PRICED = AvroCodec[Any]("tokenline.PricedUsageEvent")
Coordinates = tuple[int, int]


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoPipeline]:
    work = tmp_path_factory.mktemp("hostile")
    with running_pipeline(
        kafka_bootstrap, database_url, work, price_file(PRICES), "hostile"
    ) as handle:
        yield handle


def _produce(bootstrap: str, topic: str, records: list[tuple[Any, ...]]) -> list[Coordinates]:
    """Produce ``(key, value, timestamp_ms)`` in order; return each one's partition and offset."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,  # in order, even when retried
            "linger.ms": 20,
            "message.max.bytes": 1_048_000,  # a 1 MB record; the broker takes 1,048,588
            "partitioner": "murmur2_random",  # the SDK's
        }
    )
    where: list[Any] = [None] * len(records)

    def delivered(n: int) -> Callable[[Any, Any], None]:
        def report(error: Any, message: Any) -> None:
            where[n] = error if error is not None else (message.partition(), message.offset())

        return report

    for n, (key, value, timestamp) in enumerate(records):
        while True:
            try:
                producer.produce(
                    topic, key=key, value=value, timestamp=timestamp, on_delivery=delivered(n)
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0
    failed = [w for w in where if not isinstance(w, tuple)]
    assert not failed, failed[:3]
    return where


@dataclass
class DeadLetters:
    """Every record of the dead-letter topic, by the raw record it names."""

    pipeline: DemoPipeline
    found: dict[Coordinates, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._raw = self.pipeline.topic("raw")
        self._priced = self.pipeline.topic("priced")
        topic = self.pipeline.topic("dlq")
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.pipeline.bootstrap,
                "group.id": f"dlq-tap-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.message.max.bytes": 2 * 2**20,
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def poll(self) -> None:
        for message in self._consumer.consume(5_000, timeout=0.5):
            if message.error() is not None:
                continue
            dead = DEAD.decode(message.value() or b"")
            if dead["source_topic"] == self._raw:
                where = (dead["source_partition"], dead["source_offset"])
            else:
                assert dead["source_topic"] == self._priced, dead["source_topic"]
                source = PRICED.decode(dead["value"])["source"]
                where = (source["partition"], source["offset"])
            self.found.setdefault(where, []).append(dead)

    def close(self) -> None:
        self._consumer.close()


def _stored(url: str, tenants: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id, occurred_at, cost_total, input_tokens, output_tokens, latency_ms, "
            "http_status, request_model, user_id, tenant_id FROM usage_events "
            "WHERE tenant_id LIKE %s",
            (tenants,),
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _expected(valid: Valid) -> tuple[Any, ...]:
    event = valid.event
    return (
        event["occurred_at"],
        valid.cost,
        event["usage"]["input_tokens"],
        event["usage"]["output_tokens"],
        event["latency_ms"],
        event["http_status"],
        event["request_model"],
        event["user_id"],
        event["tenant_id"],
    )


def _wait(
    pipeline: DemoPipeline,
    dead: DeadLetters,
    expect_dead: set[Coordinates],
    tenants: str,
    expect_rows: int,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        pipeline.check_running()
        dead.poll()
        missing = expect_dead - set(dead.found)
        rows = len(_stored(pipeline.database_url, tenants))
        assert rows <= expect_rows, f"{rows} rows landed, {expect_rows} expected: hostile ones"
        if not missing and rows == expect_rows:
            return
        assert time.monotonic() < deadline, (
            f"{len(missing)} hostile records not dead-lettered (e.g. {sorted(missing)[:3]}), "
            f"{rows} of {expect_rows} rows landed"
        )
        time.sleep(0.5)


def _no_crash_in_logs(pipeline: DemoPipeline) -> None:
    for log in ("processor.log", "sink.log"):
        text = (pipeline.work_dir / log).read_text(errors="replace")
        assert "Traceback" not in text, f"{log}: {text[text.index('Traceback') :][:2000]}"


def _reason(dead: Any) -> str:
    rule = dead["reason"].split(":", 1)[0] if dead["reason_code"] == "invalid_event" else ""
    return f"{dead['stage']}/{dead['reason_code']}{'/' + rule if rule else ''}"


def _check_dead_letter(hostile: Hostile, letters: list[Any]) -> None:
    assert letters, hostile.kind
    letter = letters[0]
    assert letter["reason_code"] in hostile.reasons, (hostile.kind, letter["reason"][:300])
    assert letter["reason"], hostile.kind
    assert letter["stage"] == ("sink" if hostile.by_sink else letter["stage"])
    if hostile.mentions and letter["reason_code"] not in ("schema_mismatch",):
        assert hostile.mentions in letter["reason"], (hostile.kind, letter["reason"][:300])
    if not hostile.by_sink:
        assert hostile.value.startswith(letter["value"])  # whole, or cut to fit a message
        assert letter["key"] == hostile.key


def test_hostile_records_are_dead_lettered_and_valid_events_land_exactly(
    pipeline: DemoPipeline, summary_line: Callable[[str], None]
) -> None:
    began = time.monotonic()
    mix: Mix = generate(VALID, HOSTILE, now=datetime.now(UTC))
    copies = [h for h in mix.hostile if h.by_sink]
    spoiled = [h for h in mix.hostile if not h.by_sink]
    stream: list[Any] = [*mix.valid, *spoiled]
    random.Random(1).shuffle(stream)
    # Copies and redeliveries after their originals, keyed alike: the same partition, later.
    stream += [*copies, *mix.redelivered]
    records = [(r.key, r.value, r.timestamp_ms) for r in stream]
    where = _produce(pipeline.bootstrap, pipeline.topic("raw"), records)
    hostile_at = {where[n]: r for n, r in enumerate(stream) if isinstance(r, Hostile)}
    valid_at = {where[n] for n, r in enumerate(stream) if isinstance(r, Valid)}
    produced = time.monotonic()

    dead = DeadLetters(pipeline)
    try:
        _wait(pipeline, dead, set(hostile_at), "h-%", len(mix.valid), timeout_s=600)
        time.sleep(3)  # anything landing or dead-lettered late would show now
        dead.poll()
    finally:
        dead.close()
    settled = time.monotonic()

    pipeline.check_running()
    _no_crash_in_logs(pipeline)
    reasons: Counter[str] = Counter()
    for coordinates, hostile in hostile_at.items():
        _check_dead_letter(hostile, dead.found[coordinates])
        reasons[_reason(dead.found[coordinates][0])] += 1
    assert not valid_at & set(dead.found), "a valid event was dead-lettered"

    stored = _stored(pipeline.database_url, "h-%")
    assert stored == {v.event["event_id"]: _expected(v) for v in mix.valid}
    with psycopg.connect(pipeline.database_url) as conn:
        duplicates = conn.execute("SELECT event_id FROM usage_event_duplicates").fetchall()
    assert sorted(d[0] for d in duplicates) == sorted(h.original for h in copies)
    check = check_rollups(pipeline.database_url)
    assert check.exact, check.differing[:3]

    summary_line(
        f"hostile suite: {len(mix.hostile)} hostile and {len(mix.valid)} valid records "
        f"(+{len(mix.redelivered)} redelivered), produced in {produced - began:.0f} s, "
        f"settled {settled - produced:.0f} s later; every hostile record dead-lettered, "
        f"every valid event stored once at its exact cost"
    )
    summary_line(
        "hostile suite, dead letters by stage/reason: "
        + ", ".join(f"{k} {n}" for k, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    )
    kinds = Counter(h.kind.split(":")[0] for h in mix.hostile)
    summary_line(
        "hostile suite, records by kind: "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    )


# ---------------------------------------------------------------- the poison records of issue 14
CANARIES = 8


def _poison_event(tenant: str, rng: random.Random, **changes: Any) -> Any:
    base = valid_event(rng.randrange(10_000), rng, datetime.now(UTC), tenant_prefix="x")
    event = {**base.event, "tenant_id": tenant, **changes}
    if "usage" in changes:
        event["usage"] = {**base.event["usage"], **changes["usage"]}
    return event


def _megabyte_model(tenant: str, rng: random.Random) -> list[bytes]:
    return [USAGE.encode(_poison_event(tenant, rng, request_model="m" * 1_000_000))]


POISONS: dict[str, tuple[Callable[[str, random.Random], list[bytes]], set[str], str]] = {
    # name: (the poison records, their reason codes, what the reasons say)
    "latency 2^64 + 7": (
        lambda t, r: [USAGE.encode(_poison_event(t, r, latency_ms=2**64 + 7))],
        {"schema_mismatch"},
        "wider than a long",
    ),
    "two latencies of 2^62 + 1 in one window": (
        lambda t, r: [USAGE.encode(_poison_event(t, r, latency_ms=2**62 + 1)) for _ in "ab"],
        {"invalid_event"},
        "latency_ms",
    ),
    "100 kB tenant": (
        lambda t, r: [USAGE.encode(_poison_event(t, r, tenant_id="t" * 100_000))],
        {"invalid_event"},
        "tenant_id has 100000 characters",
    ),
    "100 kB model": (
        lambda t, r: [USAGE.encode(_poison_event(t, r, response_model="m" * 100_000))],
        {"invalid_event"},
        "response_model has 100000 characters",
    ),
    "1 MB model string": (_megabyte_model, {"invalid_event"}, "value truncated from"),
    "1 MB of random bytes": (
        lambda _t, r: [b"\xc3\x02" + r.randbytes(1_000_000)],
        {"wrong_magic"},
        "value truncated from",
    ),
    "cache write split of 2^62 + 2^62": (
        lambda t, r: [
            USAGE.encode(
                _poison_event(
                    t,
                    r,
                    usage={
                        "cache_write_5m_input_tokens": 2**62,
                        "cache_write_1h_input_tokens": 2**62,
                    },
                )
            )
        ],
        {"invalid_event"},
        "cache_write",
    ),
    "http_status 2^32 + 200": (
        lambda t, r: [USAGE.encode(_poison_event(t, r, http_status=2**32 + 200))],
        {"invalid_event"},
        "http_status",
    ),
    "time to first token -5000": (
        lambda t, r: [USAGE.encode(_poison_event(t, r, time_to_first_token_ms=-5_000))],
        {"invalid_event"},
        "time_to_first_token_ms",
    ),
    "NUL in model, tag, user and project": (
        lambda t, r: [
            USAGE.encode(_poison_event(t, r, **change))
            for change in (
                {"request_model": "gpt\x00-4o"},
                {"tags": {"feature": "re\x00rank"}},
                {"user_id": "u\x00"},
                {"project": "\x00"},
            )
        ],
        {"invalid_event"},
        "NUL",
    ),
}


@dataclass
class _Group:
    """One poison's tenant, canaries and where its records went."""

    tenant: str
    before: list[Valid]
    after: list[Valid]
    poison_at: list[Coordinates] = field(default_factory=list)


@pytest.fixture(scope="module")
def poisoned(pipeline: DemoPipeline) -> Iterator[tuple[dict[str, _Group], DeadLetters]]:
    """Every poison between canaries of its own tenant (one partition: in order), all landed."""
    rng = random.Random(99)
    now = datetime.now(UTC)
    groups: dict[str, _Group] = {}
    records: list[Any] = []
    owners: list[tuple[str, bool]] = []
    for n, (name, (make, _codes, _says)) in enumerate(POISONS.items()):
        tenant = f"p-{n}"
        canaries = [valid_event(i, rng, now, tenant_prefix=f"p-{n}-c") for i in range(2 * CANARIES)]
        canaries = [_retenant(c, tenant) for c in canaries]
        group = groups[name] = _Group(tenant, canaries[:CANARIES], canaries[CANARIES:])
        key = tenant.encode()
        for canary in group.before:
            records.append((key, canary.value, canary.timestamp_ms))
            owners.append((name, False))
        for value in make(tenant, rng):
            records.append((key, value, int(now.timestamp() * 1000)))
            owners.append((name, True))
        for canary in group.after:
            records.append((key, canary.value, canary.timestamp_ms))
            owners.append((name, False))
    # The same event again, at another time, after its canaries: the sink refuses it.
    duplicate = groups["time to first token -5000"].after[0]
    earlier = duplicate.event["occurred_at"] - timedelta(seconds=90)
    records.append((duplicate.key, USAGE.encode({**duplicate.event, "occurred_at": earlier}), 0))
    owners.append(("same event_id, another occurred_at", True))
    groups["same event_id, another occurred_at"] = _Group(duplicate.event["tenant_id"], [], [])

    where = _produce(pipeline.bootstrap, pipeline.topic("raw"), records)
    for (name, poison), at in zip(owners, where, strict=True):
        if poison:
            groups[name].poison_at.append(at)
    dead = DeadLetters(pipeline)
    expect = {at for g in groups.values() for at in g.poison_at}
    canaries = sum(len(g.before) + len(g.after) for g in groups.values())
    try:
        _wait(pipeline, dead, expect, "p-%", canaries, timeout_s=300)
        yield groups, dead
    finally:
        dead.close()


def _retenant(valid: Valid, tenant: str) -> Valid:
    event = {**valid.event, "tenant_id": tenant}
    return Valid(event, tenant.encode(), USAGE.encode(event), valid.cost)


@pytest.mark.parametrize("name", list(POISONS))
def test_a_poison_record_is_dead_lettered_and_the_canaries_after_it_land(
    pipeline: DemoPipeline, poisoned: tuple[dict[str, _Group], DeadLetters], name: str
) -> None:
    groups, dead = poisoned
    group = groups[name]
    _make, codes, says = POISONS[name]
    for at in group.poison_at:
        letters = dead.found[at]
        assert letters[0]["reason_code"] in codes, letters[0]["reason"][:300]
        assert says in letters[0]["reason"], letters[0]["reason"][:300]
    stored = _stored(pipeline.database_url, group.tenant)
    canaries = [*group.before, *group.after]
    assert stored == {c.event["event_id"]: _expected(c) for c in canaries}
    total = sum((c.cost for c in canaries), Decimal(0))
    with psycopg.connect(pipeline.database_url) as conn:
        billed = conn.execute(
            "SELECT sum(cost_total) FROM usage_rollup_1m WHERE tenant_id = %s", (group.tenant,)
        ).fetchone()
    assert billed == (total,)  # never $17.3 trillion
    pipeline.check_running()


def test_a_copy_of_an_event_at_another_time_is_refused_by_the_sink(
    pipeline: DemoPipeline, poisoned: tuple[dict[str, _Group], DeadLetters]
) -> None:
    groups, dead = poisoned
    (at,) = groups["same event_id, another occurred_at"].poison_at
    (letter,) = dead.found[at]
    assert (letter["stage"], letter["reason_code"]) == ("sink", "duplicate_event_id")
    original = groups["time to first token -5000"].after[0]
    stored = _stored(pipeline.database_url, original.event["tenant_id"])
    assert stored[original.event["event_id"]] == _expected(original)
    check = check_rollups(pipeline.database_url)
    assert check.exact, check.differing[:3]
    _no_crash_in_logs(pipeline)
