"""Replays after a change of a tenant's terms only, or of a model map only, on the real services.

One module world (the replay tests' own, ``_replay_env``): three tenants' raw events over five
minutes of Sonnet, GPT-4o, a model no table knows, and an Azure deployment (``team-chat``)
that no map names, so it is stored unpriced. The seed replay prices everything with acme at
10 % off and globex at 5 % markup; then only acme's discount becomes 25 %; then only the
deployment map changes (``team-chat`` is GPT-4o). Each replay must change exactly the rows it
affects, and the same replay again must change nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.factories import usage_event
from tests.integration.processor import _replay_env as env
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import Normalizer, PriceTable, TenantAdjustment

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

FROM = env.T0 + timedelta(minutes=1)
TO = env.T0 + timedelta(minutes=4)
TENANTS = ("acme", "globex", "initech")

TABLE = PriceTable(
    [
        env.entry("anthropic", "claude-sonnet-4-5", "3", "15"),
        env.entry("openai", "gpt-4o", "2.50", "10"),
        env.entry("azure_openai", "gpt-4o", "2.75", "11"),
    ]
)
SEED_TERMS: dict[str, Any] = {
    "acme": TenantAdjustment.discount(Decimal(10)),
    "globex": TenantAdjustment.markup(Decimal(5)),
}
NEW_TERMS = {**SEED_TERMS, "acme": TenantAdjustment.discount(Decimal(25))}
SEED = PriceBook(TABLE, Normalizer(), SEED_TERMS)
DISCOUNT = PriceBook(TABLE, Normalizer(), NEW_TERMS)  # only acme's discount differs
MAPPED = PriceBook(TABLE, Normalizer({"team-chat": "gpt-4o"}), NEW_TERMS)  # only the map differs

# Per-token prices (input, cache read, output), written out: the tables give them per million,
# cache reads at a tenth of input. The events have no cache writes and no reasoning tokens.
PRICES = {
    key: tuple(Decimal(p) for p in prices)
    for key, prices in {
        ("anthropic", "claude-sonnet-4-5"): ("0.000003", "0.0000003", "0.000015"),
        ("openai", "gpt-4o"): ("0.0000025", "0.00000025", "0.00001"),
        ("azure_openai", "team-chat"): ("0.00000275", "0.000000275", "0.000011"),
    }.items()
}
QUANTUM = Decimal("1E-12")


def expected_cost(event: Any, factor: Decimal) -> tuple[Decimal, ...]:
    """tokens x per-token price x factor per bucket, each to 12 places half-even; the total."""
    inp, read, out = PRICES[(event["provider"], event["request_model"])]
    usage = event["usage"]
    buckets = [
        usage["input_tokens"] * inp * factor,
        usage["cache_read_input_tokens"] * read * factor,
        Decimal(0),
        usage["output_tokens"] * out * factor,
        Decimal(0),
    ]
    quantized = [b.quantize(QUANTUM, rounding=ROUND_HALF_EVEN) for b in buckets]
    return (*quantized, sum(quantized, Decimal(0)))


def azure_events() -> list[Any]:
    """Two calls a minute per tenant to the Azure deployment ``team-chat``."""
    out = []
    for t, tenant in enumerate(TENANTS):
        for w in range(5):
            for i in range(2):
                n = 100 * t + 10 * w + i
                out.append(
                    usage_event(
                        event_id=uuid.uuid4(),
                        producer_seq=10_000 + n,
                        tenant_id=tenant,
                        occurred_at=env.T0 + timedelta(minutes=w, seconds=20 + 9 * i),
                        provider="azure_openai",
                        request_model="team-chat",
                        response_model=None,
                        deployment="team-chat",
                        usage={
                            "input_tokens": 500 + n,
                            "cache_read_input_tokens": 3 * n,
                            "cache_write_input_tokens": 0,
                            "cache_write_5m_input_tokens": None,
                            "cache_write_1h_input_tokens": None,
                            "output_tokens": 40 + n,
                            "reasoning_tokens": 0,
                            "provider_total_tokens": None,
                            "mismatch": None,
                        },
                    )
                )
    return out


@pytest.fixture(scope="module")
def world(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[env.World]:
    records = [*env.events(TENANTS, windows=5, per_window=6), *azure_events()]
    tmp = tmp_path_factory.mktemp("replay-terms")
    with env.open_world(kafka_bootstrap, database_url, tmp, records, (FROM, TO)) as handle:
        for name, book in (("seed", SEED), ("discount", DISCOUNT), ("mapped", MAPPED)):
            handle.add_book(name, book)
        yield handle


COLUMNS = (
    "cost_input, cost_cache_read, cost_cache_write, cost_output, cost_reasoning, cost_total, "
    "pricing_status, unpriced_reason, canonical_model, pricing_version, priced_at"
)


def rows(url: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        found = conn.execute(f"SELECT event_id, {COLUMNS} FROM usage_events").fetchall()
    return {r[0]: r[1:] for r in found}


def stored_total(url: str) -> Decimal:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COALESCE(sum(cost_total), 0) FROM usage_events "
            "WHERE occurred_at >= %s AND occurred_at < %s",
            (FROM, TO),
        ).fetchone()
    assert row is not None
    return Decimal(row[0])


def replay_again_changes_nothing(world: env.World, prices: str) -> None:
    env.wait_caught_up(world.settings, world.group)
    first = env.snapshot(world.url)
    report = world.replay(world.prices[prices], wait_landed_s=120)
    env.wait_caught_up(world.settings, world.group)

    assert report.landed is True
    assert env.snapshot(world.url) == first
    assert report.summary.before == report.summary.after
    assert report.rollups_sent == 0


def test_1_seed(world: env.World) -> None:
    report = world.replay(world.prices["seed"], wait_landed_s=120)

    assert report.landed is True
    stored = rows(world.url)
    assert set(stored) == {e["event_id"] for e in world.in_range()}
    assert {v[9] for v in stored.values()} == {SEED.pricing_version}
    team_chat = [stored[e["event_id"]] for e in world.in_range() if e["deployment"]]
    assert team_chat
    assert {v[:9] for v in team_chat} == {(*[None] * 6, "unpriced", "unknown_model", "team-chat")}


def test_2_a_discount_change_reprices_exactly_that_tenants_events(world: env.World) -> None:
    before = rows(world.url)
    report = world.replay(world.prices["discount"], wait_landed_s=120)
    after = rows(world.url)

    assert report.landed is True
    assert after.keys() == before.keys()
    acme_priced = {
        e["event_id"]: e
        for e in world.in_range()
        if e["tenant_id"] == "acme" and (e["provider"], e["request_model"]) in PRICES
        and e["deployment"] is None
    }  # fmt: skip
    assert acme_priced
    changed = {k for k in after if after[k] != before[k]}
    assert changed == set(acme_priced)
    for event_id, event in acme_priced.items():
        row = after[event_id]
        assert row[:6] == expected_cost(event, Decimal("0.75")), event_id
        assert row[:6] != before[event_id][:6]
        assert row[6:10] == ("priced", None, before[event_id][8], DISCOUNT.pricing_version)
        assert row[10] > before[event_id][10]
    # One of them worked by hand: Sonnet, 1007 input, 70 cache-read and 221 output tokens,
    # (1007 x 0.000003 + 70 x 0.0000003 + 221 x 0.000015) x 0.75.
    first = min(
        (e for e in acme_priced.values() if e["provider"] == "anthropic"),
        key=lambda e: e["occurred_at"],
    )
    assert (first["usage"]["input_tokens"], first["usage"]["output_tokens"]) == (1007, 221)
    assert after[first["event_id"]][5] == Decimal("0.004767750000")
    assert report.summary.after == stored_total(world.url)
    assert report.summary.after < report.summary.before

    replay_again_changes_nothing(world, "discount")


def test_3_a_deployment_mapped_prices_its_unpriced_events(world: env.World) -> None:
    before = rows(world.url)
    report = world.replay(world.prices["mapped"], wait_landed_s=120)
    after = rows(world.url)

    assert report.landed is True
    team_chat = {e["event_id"]: e for e in world.in_range() if e["deployment"] == "team-chat"}
    assert {e["tenant_id"] for e in team_chat.values()} == set(TENANTS)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == set(team_chat)
    factor = {"acme": Decimal("0.75"), "globex": Decimal("1.05"), "initech": Decimal(1)}
    for event_id, event in team_chat.items():
        assert before[event_id][:8] == (*[None] * 6, "unpriced", "unknown_model")
        row = after[event_id]
        assert row[:6] == expected_cost(event, factor[event["tenant_id"]]), event_id
        assert row[6:10] == ("priced", None, "gpt-4o", MAPPED.pricing_version)
    assert report.summary.after == stored_total(world.url)
    assert report.summary.after > report.summary.before

    replay_again_changes_nothing(world, "mapped")
