"""A generator of hostile raw records, mixed with valid events whose exact cost is known.

Every hostile record says what it is (``kind``), which dead-letter reason codes may name it,
what its reason must mention (the field), and whether the processor or the sink refuses it.
Kinds, all derived from the shipped Avro schema (``tests._avro_fields``) rather than from the
code under test, except where the contract's own bounds pick the first value past them:

* bytes that are no UsageEvent: random, a valid event truncated, a wrong magic, an unknown
  fingerprint, another record's schema, Confluent framing without a registry, a body with
  invalid UTF-8 or a lone surrogate, an enum index out of range, a timestamp past any date;
* events out of bounds: every integer field below and above its bound and beyond its column
  (2^31, 2^63, 2^64 + 7, 2^200), every string field one character too long, 100 kB or
  1 MB long, or holding NUL; tags too many, too long or holding NUL; an empty tenant; a cache
  write split above the cache writes; flagged buckets far from the provider's total;
  far-future and ancient ``occurred_at``;
* copies of valid events with another ``occurred_at`` (the sink refuses them);
* ``None`` keys on some records of every kind.

The valid events are priced only by the test's price file (``tests.e2e._truth``), and their
cost is computed here from their buckets, never asked of Tokenline.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import TYPE_CHECKING, Any

from fastavro import parse_schema, schemaless_writer

from tests._avro_fields import Leaf, leaves
from tests.e2e._truth import PRICES, cost
from tests.factories import host, priced_event, rollup
from tokenline.processor.contract import Count, Text, contract
from tokenline.processor.validate import ValidationLimits
from tokenline.schemas import AvroCodec, catalog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from decimal import Decimal

__all__ = ["DECODE_REASONS", "Hostile", "Mix", "Valid", "generate", "valid_event"]

USAGE = AvroCodec[Any]("tokenline.UsageEvent")
DECODE_REASONS = frozenset(
    {"truncated", "wrong_magic", "unknown_fingerprint", "unknown_schema_id", "schema_mismatch"}
)
_INVALID = frozenset({"invalid_event"})
_MISMATCH = frozenset({"schema_mismatch"})
_HEADER = b"\xc3\x01" + catalog().latest("tokenline.UsageEvent").fingerprint
_CONTRACT = contract(ValidationLimits())
_MODELS = sorted(PRICES)


@dataclass(frozen=True)
class Valid:
    """A valid event, its raw record and its exact cost."""

    event: Any
    key: bytes | None
    value: bytes
    cost: Decimal

    @property
    def timestamp_ms(self) -> int:
        return int(self.event["occurred_at"].timestamp() * 1000)


@dataclass(frozen=True)
class Hostile:
    """A record the pipeline must dead-letter: how, and with which reason."""

    kind: str
    key: bytes | None
    value: bytes
    timestamp_ms: int
    reasons: frozenset[str]
    mentions: str | None = None
    by_sink: bool = False
    original: uuid.UUID | None = None
    """For a copy of a valid event: that event's id."""


@dataclass
class Mix:
    """What :func:`generate` makes: valid events, hostile records, and exact redeliveries."""

    valid: list[Valid] = field(default_factory=list)
    hostile: list[Hostile] = field(default_factory=list)
    redelivered: list[Valid] = field(default_factory=list)


def valid_event(n: int, rng: random.Random, now: datetime, tenant_prefix: str = "h") -> Valid:
    """Valid event ``n``: one of the test's priced models, its cost from its buckets."""
    provider, model = _MODELS[n % len(_MODELS)]
    tokens = {
        "input": rng.randint(1, 20_000),
        "cache_read": rng.choice((0, rng.randint(1, 50_000))),
        "cache_write": rng.choice((0, rng.randint(1, 5_000))),
        "output": rng.randint(1, 4_000),
        "reasoning": rng.choice((0, rng.randint(1, 3_000))),
    }
    tenant = f"{tenant_prefix}-{n % 7}"
    event = {
        "event_id": uuid.UUID(int=rng.getrandbits(128)),
        "producer_id": uuid.UUID(int=1 + n % 5),
        "producer_seq": n,
        "occurred_at": now - timedelta(microseconds=rng.randrange(3_600_000_000)),
        "tenant_id": tenant,
        "project": f"p{n % 3}",
        "user_id": f"u{n % 11}",
        "session_id": None,
        "team": None,
        "tags": {"feature": f"f{n % 4}"},
        "provider": provider,
        "operation": "chat",
        "request_model": model,
        "response_model": model,
        "deployment": None,
        "region": "us-east-1" if provider == "bedrock" else None,
        "batch": False,
        "usage": {
            "input_tokens": tokens["input"],
            "cache_read_input_tokens": tokens["cache_read"],
            "cache_write_input_tokens": tokens["cache_write"],
            "cache_write_5m_input_tokens": None,
            "cache_write_1h_input_tokens": None,
            "output_tokens": tokens["output"],
            "reasoning_tokens": tokens["reasoning"],
            "provider_total_tokens": None,
            "mismatch": None,
        },
        "usage_source": "reported",
        "streamed": bool(n % 2),
        "latency_ms": rng.randint(20, 30_000),
        "time_to_first_token_ms": rng.choice((None, rng.randint(0, 20))),
        "success": rng.random() > 0.05,
        "error_type": None,
        "error_message": None,
        "http_status": 200,
        "provider_request_id": f"req-{n}",
        "host": host(),
    }
    key = None if n % 20 == 7 else tenant.encode()
    return Valid(event, key, USAGE.encode(event), cost((provider, model), tokens))


# ------------------------------------------------------------------ encodings no codec makes
def _liar(transform: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], bytes]:
    """An encoder writing UsageEvent's layout with some types changed, under its true header."""
    schema = json.loads(catalog().latest("tokenline.UsageEvent").json)
    transform(schema)
    parsed = parse_schema(schema)

    def encode(record: dict[str, Any]) -> bytes:
        buf = BytesIO()
        schemaless_writer(buf, parsed, record)
        return _HEADER + buf.getvalue()

    return encode


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _as_int(name: str) -> Callable[[dict[str, Any]], None]:
    def transform(schema: dict[str, Any]) -> None:
        _field(schema, name)["type"] = "long"

    return transform


_ENUM_AS_INT = _liar(_as_int("provider"))
_TIME_AS_LONG = _liar(_as_int("occurred_at"))


def _plain(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``event`` with ``changes``, its uuids as strings and its time as micros (for _liar)."""
    record = {**event, **changes}
    for name in ("event_id", "producer_id"):
        record[name] = str(record[name])
    if isinstance(record["occurred_at"], datetime):
        at = record["occurred_at"] - datetime(1970, 1, 1, tzinfo=UTC)
        record["occurred_at"] = at // timedelta(microseconds=1)
    return record


def _set(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = {**event, "usage": dict(event["usage"]), "host": dict(event["host"])}
    target = changed if len(path) == 1 else changed[path[0]]
    target[path[-1]] = value
    return changed


def _replace_marker(event: dict[str, Any], path: tuple[str, ...], raw: bytes) -> bytes:
    """The event's bytes with the string at ``path`` replaced by ``raw`` (same length)."""
    marker = "Q" * len(raw)
    encoded = USAGE.encode(_set(event, path, marker))
    assert encoded.count(marker.encode()) == 1
    return encoded.replace(marker.encode(), raw)


# ------------------------------------------------------------------ the kinds
class _Maker:
    """Hostile records of every kind, from a valid event to spoil."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        self.now_ms = int(now.timestamp() * 1000)
        self.leaves = [leaf for leaf in leaves() if leaf.kind in ("long", "int", "string")]

    def _hostile(
        self,
        kind: str,
        value: bytes,
        reasons: frozenset[str],
        mentions: str | None = None,
        key: bytes | None = b"hostile",
    ) -> Hostile:
        if self.rng.random() < 0.1:
            key = None
        return Hostile(kind, key, value, self.now_ms, reasons, mentions)

    # -- bytes that are no UsageEvent
    def random_bytes(self, base: Valid) -> Hostile:
        size = self.rng.choice((0, 1, 2, 5, 9, 10, 11, self.rng.randrange(12, 3_000)))
        return self._hostile("random bytes", self.rng.randbytes(size), DECODE_REASONS)

    def truncated(self, base: Valid) -> Hostile:
        cut = self.rng.randrange(len(base.value))
        reasons = frozenset({"truncated", "schema_mismatch"})
        return self._hostile("truncated event", base.value[:cut], reasons)

    def wrong_magic(self, base: Valid) -> Hostile:
        first = self.rng.choice([b for b in range(1, 256) if b != 0xC3])
        value = bytes([first, self.rng.randrange(256)]) + base.value[2:]
        return self._hostile("wrong magic", value, frozenset({"wrong_magic"}))

    def unknown_fingerprint(self, base: Valid) -> Hostile:
        value = b"\xc3\x01" + self.rng.randbytes(8) + base.value[10:]
        return self._hostile("unknown fingerprint", value, frozenset({"unknown_fingerprint"}))

    def other_record(self, base: Valid) -> Hostile:
        name, record = self.rng.choice(
            [
                ("tokenline.PricedUsageEvent", priced_event(event=base.event)),
                ("tokenline.UsageRollup", rollup()),
            ]
        )
        value = AvroCodec[Any](name).encode(record)
        return self._hostile("another record's schema", value, _MISMATCH, "expected")

    def confluent_frame(self, base: Valid) -> Hostile:
        value = b"\x00" + self.rng.randbytes(4) + base.value[10:]
        return self._hostile("Confluent framing", value, frozenset({"unknown_schema_id"}))

    def bad_utf8(self, base: Valid) -> Hostile:
        path = self.rng.choice([leaf.path for leaf in self.leaves if leaf.kind == "string"])
        raw = self.rng.choice((b"\xed\xa0\x80\xed\xb0\x80", b"\xff\xfe\xc0\xaf", b"ok\x80"))
        value = _replace_marker(base.event, path, raw)
        return self._hostile("invalid UTF-8 or a surrogate", value, _MISMATCH, "Unicode")

    def enum_index(self, base: Valid) -> Hostile:
        index = self.rng.choice((7, 8, 99, -1, -100, 2**40))
        value = _ENUM_AS_INT(_plain(base.event, provider=index))
        return self._hostile("enum index out of range", value, _MISMATCH)

    def time_overflow(self, base: Valid) -> Hostile:
        micros = self.rng.choice((2**62, 2**63 - 1, -(2**62), 290_000 * 365 * 86_400 * 10**6))
        value = _TIME_AS_LONG(_plain(base.event, occurred_at=micros))
        return self._hostile("timestamp past any date", value, _MISMATCH)

    # -- events out of bounds
    def number(self, base: Valid, leaf: Leaf | None = None) -> Hostile:
        leaf = leaf or self.rng.choice([x for x in self.leaves if x.kind != "string"])
        bound = _CONTRACT[leaf.path]
        assert isinstance(bound, Count)
        beyond = [bound.low - 1, bound.high + 1, 2**31, 2**32 + 200, 2**63, 2**64 + 7, 2**200]
        outside = [v for v in beyond if not bound.low <= v <= bound.high]
        value = USAGE.encode(_set(base.event, leaf.path, self.rng.choice(outside)))
        reasons = frozenset({"invalid_event", "schema_mismatch"})
        return self._hostile(f"number out of range: {'.'.join(leaf.path)}", value, reasons)

    def long_text(self, base: Valid, leaf: Leaf | None = None, chars: int | None = None) -> Hostile:
        leaf = leaf or self.rng.choice([x for x in self.leaves if x.kind == "string"])
        bound = _CONTRACT[leaf.path]
        assert isinstance(bound, Text)
        chars = chars or self.rng.choice((bound.max_chars + 1, bound.max_chars + 1, 5_000))
        # Some 2- and 3-byte characters, but a megabyte stays one record the broker takes.
        letters = "abcdefghij-" if chars >= 500_000 else "abcdefghij-é☃"
        text = "".join(self.rng.choices(letters, k=chars))
        value = USAGE.encode(_set(base.event, leaf.path, text))
        name = leaf.path[-1]
        return self._hostile(f"string too long: {'.'.join(leaf.path)}", value, _INVALID, name)

    def nul_text(self, base: Valid) -> Hostile:
        leaf = self.rng.choice([x for x in self.leaves if x.kind == "string"])
        text = self.rng.choice(("\x00", "gpt\x00-4o", "x" * 10 + "\x00"))
        value = USAGE.encode(_set(base.event, leaf.path, text))
        name = leaf.path[-1]
        return self._hostile(f"NUL in a string: {'.'.join(leaf.path)}", value, _INVALID, name)

    def bad_tags(self, base: Valid) -> Hostile:
        tags = self.rng.choice(
            (
                {f"k{n}": "v" for n in range(65)},
                {"k\x00": "v"},
                {"k": "v\x00"},
                {"k" * 129: "v"},
                {"k": "v" * 513},
            )
        )
        value = USAGE.encode({**base.event, "tags": tags})
        return self._hostile("tags out of bounds", value, _INVALID, "tags")

    def empty_tenant(self, base: Valid) -> Hostile:
        tenant = self.rng.choice(("", " ", "\t\n"))
        value = USAGE.encode({**base.event, "tenant_id": tenant})
        return self._hostile("empty tenant", value, _INVALID, "tenant_id")

    def split(self, base: Valid) -> Hostile:
        total = base.event["usage"]["cache_write_input_tokens"]
        five, hour = self.rng.choice(
            ((total + 1, None), (None, total + 1), (total, 1), (2**62,) * 2)
        )
        usage = {
            **base.event["usage"],
            "cache_write_5m_input_tokens": five,
            "cache_write_1h_input_tokens": hour,
        }
        value = USAGE.encode({**base.event, "usage": usage})
        return self._hostile("cache write split above the cache writes", value, _INVALID, "cache")

    def mismatch(self, base: Valid) -> Hostile:
        usage = {**base.event["usage"], "provider_total_tokens": 10, "mismatch": "total differs"}
        value = USAGE.encode({**base.event, "usage": usage})
        return self._hostile("buckets far from the provider's total", value, _INVALID, "buckets")

    def bad_time(self, base: Valid) -> Hostile:
        at = self.rng.choice(
            (
                self.now + timedelta(days=1),
                datetime(2200, 1, 1, tzinfo=UTC),
                self.now - timedelta(days=8),
                datetime(1970, 1, 1, tzinfo=UTC),
                datetime(1, 1, 1, tzinfo=UTC),
            )
        )
        value = USAGE.encode({**base.event, "occurred_at": at})
        return self._hostile("far-future or ancient occurred_at", value, _INVALID, "occurred_at")

    def kinds(self) -> list[Callable[[Valid], Hostile]]:
        """Every random kind, weighted by how many variants it has."""
        return [
            self.random_bytes,
            self.random_bytes,
            self.truncated,
            self.truncated,
            self.wrong_magic,
            self.unknown_fingerprint,
            self.other_record,
            self.confluent_frame,
            self.bad_utf8,
            self.enum_index,
            self.time_overflow,
            *[self.number] * 6,
            *[self.long_text] * 3,
            *[self.nul_text] * 3,
            self.bad_tags,
            self.empty_tenant,
            self.split,
            self.mismatch,
            self.bad_time,
        ]

    def every_field(self, base: Valid) -> Iterator[Hostile]:
        """Each integer field out of range and each string field too long and NUL-bearing."""
        for leaf in self.leaves:
            if leaf.kind == "string":
                yield self.long_text(base, leaf)
                yield self.long_text(base, leaf, chars=100_000)
                value = USAGE.encode(_set(base.event, leaf.path, "a\x00b"))
                yield self._hostile("NUL in a string", value, _INVALID, leaf.path[-1])
            else:
                yield self.number(base, leaf)

    def megabyte(self, base: Valid) -> Iterator[Hostile]:
        """A 1 MB model string and 1 MB of random bytes: their dead letters must be cut."""
        request = next(x for x in self.leaves if x.path == ("request_model",))
        yield self.long_text(base, request, chars=1_000_000)
        value = b"\xc3\x02" + self.rng.randbytes(1_000_000)
        yield self._hostile("1 MB of random bytes", value, frozenset({"wrong_magic"}))


def _fresh_id(base: Valid, rng: random.Random) -> Valid:
    """``base`` under an event_id of its own: a hostile record that landed would show."""
    event = {**base.event, "event_id": uuid.UUID(int=rng.getrandbits(128))}
    return Valid(event, base.key, USAGE.encode(event), base.cost)


def generate(valid: int, hostile: int, *, now: datetime, seed: int = 14) -> Mix:
    """``valid`` valid events, ``hostile`` hostile records, mixed; then copies and redeliveries.

    Every hostile record spoils a valid event under an event_id of its own. Copies of valid
    events at another (earlier) time are to be produced after every original, in the same
    partition (they are keyed as the original), so the original is the one the sink stores.
    """
    rng = random.Random(seed)
    mix = Mix(valid=[valid_event(n, rng, now) for n in range(valid)])
    maker = _Maker(rng, now)
    kinds = maker.kinds()
    fixed = [
        *maker.every_field(_fresh_id(mix.valid[0], rng)),
        *maker.megabyte(_fresh_id(mix.valid[1], rng)),
    ]
    keyed = [v for v in mix.valid if v.key is not None]
    copies = max(hostile // 50, 1)
    randoms = hostile - len(fixed) - copies
    bases = [_fresh_id(v, rng) for v in mix.valid[:200]]
    mix.hostile = [*fixed, *(rng.choice(kinds)(rng.choice(bases)) for _ in range(randoms))]
    for original in rng.sample(keyed, copies):
        later = original.event["occurred_at"] - timedelta(seconds=rng.randint(1, 600))
        mix.hostile.append(
            Hostile(
                "copy of an event at another time",
                original.key,
                USAGE.encode({**original.event, "occurred_at": later}),
                int(later.timestamp() * 1000),
                frozenset({"duplicate_event_id"}),
                "first stored copy wins",
                by_sink=True,
                original=original.event["event_id"],
            )
        )
    mix.redelivered = rng.sample(keyed, max(valid // 50, 1))
    return mix
