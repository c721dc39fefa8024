"""The pre-loaded raw topic of ``bench/processor.py``: a realistic backlog, then closing events.

Events are built with ``tests.factories.usage_event`` and encoded with the SDK's codec
(``AvroCodec("tokenline.UsageEvent")``, single-object encoding), keyed by tenant, produced as
the SDK produces (idempotent, acks=all, zstd, murmur2 partitioner):

* ``events`` valid events over ``tenants`` tenants (skewed: a few tenants send most), each
  tenant with 1-4 models of its own from OpenAI, Azure OpenAI, Anthropic, Bedrock, Gemini and
  Vertex AI (and ~0.5% of calls to a model no price list knows, left unpriced), usage with
  cache reads and writes, reasoning tokens, ~2% failed calls; each tenant's services are 1-3
  SDK producers with contiguous sequence numbers; ``occurred_at`` rising over ``hours`` hours
  and ending 15 minutes ago (a backlog: older than window + grace), jittered by up to 5 s;
* ``bad`` records for the dead-letter queue among them: half not Avro at all, half valid Avro
  with a negative latency (rejected by validation);
* one closing event per partition, last in it (tenant :data:`CLOSING_TENANT`, 12 minutes after
  the backlog's end): a live event after the backlog. It advances event time past window +
  grace in every partition, so contenders that close windows by event time (Quix Streams)
  emit every backlog window. The closing events' own windows stay open and are left out of
  every contender's check.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from confluent_kafka import Producer

from tests.factories import host, usage_event
from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from tokenline.schemas import UsageEvent

__all__ = ["CLOSING_TENANT", "Loaded", "preload"]

CLOSING_TENANT = "bench-close"
#: (provider, request model, response model, deployment, region, operation)
MODELS: tuple[tuple[str, str, str | None, str | None, str | None, str], ...] = (
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", None, None, "chat"),
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", None, None, "chat"),
    ("openai", "gpt-4.1", "gpt-4.1-2025-04-14", None, None, "responses"),
    ("openai", "o3-mini", "o3-mini-2025-01-31", None, None, "chat"),
    ("openai", "text-embedding-3-small", "text-embedding-3-small", None, None, "embedding"),
    ("azure_openai", "gpt-4o", "gpt-4o", "prod-gpt4o", "eastus", "chat"),
    ("azure_openai", "gpt-4o-mini", "gpt-4o-mini", "mini", "eastus", "chat"),
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", None, None, "chat"),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", None, None, "us-east-1", "chat"),
    ("bedrock", "amazon.nova-pro-v1:0", None, None, "us-east-1", "chat"),
    ("bedrock", "meta.llama3-1-70b-instruct-v1:0", None, None, "us-west-2", "chat"),
    ("gemini", "gemini-2.5-pro", "gemini-2.5-pro", None, None, "chat"),
    ("gemini", "gemini-2.5-flash", "gemini-2.5-flash", None, None, "chat"),
    ("vertex_ai", "gemini-2.5-flash", "gemini-2.5-flash", None, "us-central1", "chat"),
    ("vertex_ai", "claude-sonnet-4-5@20250929", None, None, "us-east5", "chat"),
)
UNKNOWN_MODEL = ("openai", "acme-internal-llm", None, None, None, "chat")
PRODUCER = {
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "zstd",
    "linger.ms": 50,
    "partitioner": "murmur2_random",
}


@dataclass
class _Tenant:
    name: str
    models: list[tuple[str, str, str | None, str | None, str | None, str]]
    weights: list[float]
    producers: list[list[Any]]  # [producer_id, next_seq]


@dataclass(frozen=True)
class Loaded:
    """What the topic holds."""

    valid: int
    bad: int
    closing: int
    tenants: int
    models: int
    bytes: int
    first: datetime
    last: datetime

    @property
    def records(self) -> int:
        """Every record in the topic."""
        return self.valid + self.bad + self.closing


def _tenants(count: int, rng: random.Random) -> list[_Tenant]:
    tenants = []
    for i in range(count):
        models = rng.sample(MODELS, rng.randint(1, 4))
        producers = [[uuid.UUID(int=rng.getrandbits(128), version=4), 0]
                     for _ in range(rng.randint(1, 3))]  # fmt: skip
        tenants.append(_Tenant(f"tenant-{i:03d}", models, [1 / (r + 1) for r in range(len(models))],
                               producers))  # fmt: skip
    return tenants


def _event(rng: random.Random, tenant: _Tenant, at: datetime) -> UsageEvent:
    model = UNKNOWN_MODEL if rng.random() < 0.005 else rng.choices(tenant.models, tenant.weights)[0]
    provider, request_model, response_model, deployment, region, operation = model
    producer = rng.choice(tenant.producers)
    producer[1] += 1
    embedding = operation == "embedding"
    prompt = rng.randint(20, 200) if embedding else int(rng.lognormvariate(6.5, 1.2))
    cached = 0 if embedding or rng.random() < 0.6 else rng.randint(0, prompt * 4)
    written = (
        0 if embedding or provider != "anthropic" or rng.random() < 0.8 else rng.randint(1, 4096)
    )
    output = 0 if embedding else int(rng.lognormvariate(5, 1))
    reasoning = rng.randint(0, output * 3) if request_model.startswith("o") else 0
    success = rng.random() >= 0.02
    return usage_event(
        event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        producer_id=producer[0],
        producer_seq=producer[1],
        occurred_at=at,
        tenant_id=tenant.name,
        project=f"project-{rng.randrange(5)}",
        user_id=f"u-{rng.randrange(500)}",
        session_id=None,
        team=rng.choice(("search", "support", "growth", None)),
        tags={"feature": rng.choice(("rerank", "chat", "summarize"))},
        provider=provider,
        operation=operation,
        request_model=request_model,
        response_model=response_model,
        deployment=deployment,
        region=region,
        batch=False,
        usage={
            "input_tokens": prompt,
            "cache_read_input_tokens": cached,
            "cache_write_input_tokens": written,
            "cache_write_5m_input_tokens": written or None,
            "cache_write_1h_input_tokens": 0 if written else None,
            "output_tokens": output,
            "reasoning_tokens": reasoning,
            "provider_total_tokens": None,
            "mismatch": None,
        },
        streamed=rng.random() < 0.5,
        latency_ms=rng.randint(80, 8000),
        time_to_first_token_ms=None,
        success=success,
        error_type=None if success else "RateLimitError",
        error_message=None if success else "rate limited",
        http_status=200 if success else 429,
        provider_request_id=f"req_{rng.getrandbits(48):012x}",
        host=host(hostname=f"{tenant.name}-pod-{rng.randrange(8)}"),
    )


def preload(
    bootstrap: str,
    topic: str,
    *,
    events: int,
    bad: int,
    partitions: int,
    tenants: int,
    hours: float,
    seed: int,
) -> Loaded:
    """Produce the backlog, the bad records and the closing events to ``topic``; wait for acks."""
    rng = random.Random(seed)
    codec: AvroCodec[UsageEvent] = AvroCodec("tokenline.UsageEvent")
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    errors: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    everyone = _tenants(tenants, rng)
    weights = [1 / (r + 1) ** 0.7 for r in range(tenants)]
    last = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
    first = last - timedelta(hours=hours)
    step = (last - first) / max(events, 1)
    bad_at = set(rng.sample(range(events), min(bad, events)))
    size = sent_bad = 0

    def send(value: bytes, key: bytes, partition: int | None = None) -> None:
        nonlocal size
        size += len(value)
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value, key, on_delivery=delivered)
                else:
                    producer.produce(topic, value, key, partition, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)

    for i in range(events):
        tenant = rng.choices(everyone, weights)[0]
        at = first + step * i - timedelta(microseconds=rng.randrange(5_000_000))
        event = _event(rng, tenant, max(at, first))
        send(codec.encode(event), tenant.name.encode())
        if i in bad_at:
            sent_bad += 1
            if sent_bad % 2:
                send(b"not an avro record " + str(i).encode(), tenant.name.encode())
            else:
                event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                invalid = {**event, "event_id": event_id, "latency_ms": -1}
                send(codec.encode(invalid), tenant.name.encode())
    closing = _tenants(1, rng)[0]
    closing.name = CLOSING_TENANT
    for partition in range(partitions):
        event = _event(rng, closing, last + timedelta(minutes=12))
        send(codec.encode(event), CLOSING_TENANT.encode(), partition)
    left = producer.flush(120)
    if left or errors:
        raise SystemExit(f"pre-loading {topic}: {left} not acknowledged, errors: {errors[:3]}")
    return Loaded(events, bad, partitions, tenants, len(MODELS) + 1, size, first, last)
