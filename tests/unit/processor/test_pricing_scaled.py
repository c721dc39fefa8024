"""The price book's fast path against the Decimal definition, figure for figure.

``compute_cost`` (Decimal, 80 digits, quantize per bucket) is the definition; the price book
prices with scaled integers and caches (``pricing/scaled.py``, ``pricing/cached.py``). These
properties check that both give the same ``Decimal``s, down to the exponent, for random
prices (any number of decimal places, tiers, batch prices and discounts), usage vectors
(every bucket, cache TTL splits, long-context thresholds) and tenant percents, and that a
book answers exactly what ``price_event`` answers, across price periods and dated terms.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.factories import usage_event
from tests.unit.processor.test_pricing_golden import (
    ADJUSTMENTS,
    AT,
    BUCKETS,
    CASES,
    NORMALIZER,
    TABLE,
)
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import (
    BucketPrices,
    LongContextTier,
    Normalizer,
    PriceEntry,
    PriceTable,
    TenantAdjustment,
    TenantTerms,
    Terms,
    compute_cost,
    load_snapshot,
    price_event,
    prompt_tokens,
)
from tokenline.processor.pricing.cached import CachedPricer, EntryRates
from tokenline.processor.pricing.scaled import ScaledFactor, ScaledPrices, scaled_cost

if TYPE_CHECKING:
    from tokenline.schemas import Cost, Usage

pytestmark = pytest.mark.unit

SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def _exact(cost: Cost | None) -> dict[str, Any] | None:
    """Each bucket as its Decimal tuple: equal values with another exponent or sign differ."""
    return None if cost is None else {k: cost[k].as_tuple() for k in BUCKETS}  # type: ignore[literal-required]


# Per-token prices with 0 to 18 decimal places and up to 7 significant digits.
prices_st = st.builds(
    lambda coefficient, places: Decimal(coefficient).scaleb(-places),
    st.integers(0, 9_999_999),
    st.integers(0, 18),
)
bucket_prices_st = st.builds(
    BucketPrices,
    input=prices_st,
    output=prices_st,
    cache_read=prices_st,
    cache_write_5m=prices_st,
    cache_write_1h=prices_st,
    reasoning=st.none() | prices_st,
)
batch_factor_st = st.none() | st.sampled_from(
    [Decimal("0.5"), Decimal("0.25"), Decimal("0.333"), Decimal(1), Decimal("0.123456789")]
)


@st.composite
def entries(draw: st.DrawFn) -> PriceEntry:
    tier = None
    if draw(st.booleans()):
        tier = LongContextTier(
            draw(st.integers(0, 300_000)),
            draw(bucket_prices_st),
            draw(st.none() | bucket_prices_st),
        )
    return PriceEntry(
        "p/m@2000-01-01",
        "other",
        "m",
        SINCE,
        draw(bucket_prices_st),
        long_context=tier,
        batch=draw(st.none() | bucket_prices_st),
        batch_factor=draw(batch_factor_st),
    )


@st.composite
def usages(draw: st.DrawFn, high: int = 10_000_000) -> Usage:
    """Valid usage vectors: every bucket, with and without a 5m/1h split of cache writes."""
    count = st.integers(0, high)
    write = draw(count)
    split = draw(st.sampled_from(["none", "5m", "1h", "both", "over"]))
    write_5m = write_1h = None
    if split in ("5m", "both"):
        write_5m = draw(st.integers(0, write))
    if split in ("1h", "both"):
        write_1h = draw(st.integers(0, write - (write_5m or 0)))
    if split == "over":  # splits that do not add up to the total (the rest at 5m)
        write_5m, write_1h = draw(count), draw(st.none() | count)
    return {
        "input_tokens": draw(count),
        "cache_read_input_tokens": draw(count),
        "cache_write_input_tokens": write,
        "cache_write_5m_input_tokens": write_5m,
        "cache_write_1h_input_tokens": write_1h,
        "output_tokens": draw(count),
        "reasoning_tokens": draw(count),
        "provider_total_tokens": None,
        "mismatch": None,
    }


# Discounts down to -100% (free) and markups, with up to 6 decimal places.
percents_st = st.builds(
    lambda hundred_thousandths, places: Decimal(hundred_thousandths).scaleb(-places),
    st.integers(-100_000_000, 300_000_000),
    st.integers(0, 6),
).filter(lambda p: p >= -100)


@settings(max_examples=400, deadline=None)
@given(
    entry=entries(),
    usage=usages(),
    batch=st.booleans(),
    percent=st.none() | percents_st,
)
def test_fast_path_equals_the_decimal_definition(
    entry: PriceEntry, usage: Usage, batch: bool, percent: Decimal | None
) -> None:
    adjustment = None if percent is None else TenantAdjustment(percent)
    factor = ScaledFactor.ONE if percent is None else ScaledFactor.of(percent)
    assert factor is not None
    fast = EntryRates(entry).cost(usage, batch, adjustment, factor)
    assert _exact(fast) == _exact(compute_cost(entry, usage, batch=batch, adjustment=adjustment))


@settings(max_examples=200, deadline=None)
@given(entry=entries(), usage=usages(high=2**62), batch=st.booleans(), percent=percents_st)
def test_integer_arithmetic_is_exact_for_any_64_bit_count(
    entry: PriceEntry, usage: Usage, batch: bool, percent: Decimal
) -> None:
    """Without the fallback: the integer path itself equals the definition wherever it runs."""
    adjustment = TenantAdjustment(percent)
    tier = entry.long_context
    in_tier = tier is not None and prompt_tokens(usage) > tier.threshold_tokens
    prices = EntryRates(entry).prices(long_context=in_tier, batch=batch)
    # a batch rate derived by division (batch input / input) can exceed 30 places
    assume(prices is not None)
    assert prices is not None
    factor = ScaledFactor.of(percent)
    assert factor is not None
    fast = scaled_cost(prices, usage, factor)
    assert fast is not None
    assert _exact(fast) == _exact(compute_cost(entry, usage, batch=batch, adjustment=adjustment))


@pytest.mark.parametrize(
    "price",
    [
        Decimal("0.1234567890123456789012345678901"),  # 31 significant digits
        Decimal("1E-31"),  # 31 places
        Decimal("1E+6"),  # $1M per token
        Decimal("-0.000001"),
        Decimal("-0"),
    ],
)
def test_prices_out_of_range_are_priced_by_the_definition(price: Decimal) -> None:
    prices = BucketPrices(price, Decimal("0.00001"), price, price, price)
    assert ScaledPrices.of(prices) is None
    entry = PriceEntry("p/m@2000-01-01", "other", "m", SINCE, prices)
    usage = usage_event()["usage"]
    fast = EntryRates(entry).cost(usage, False, None, ScaledFactor.ONE)
    assert _exact(fast) == _exact(compute_cost(entry, usage))


@pytest.mark.parametrize(
    "percent", [Decimal(-101), Decimal("1E-31"), Decimal("1E+20"), Decimal("NaN")]
)
def test_percents_out_of_range_are_priced_by_the_definition(percent: Decimal) -> None:
    assert ScaledFactor.of(percent) is None
    entry = next(iter(TABLE))
    usage = usage_event()["usage"]
    if not percent.is_finite():
        return
    adjustment = TenantAdjustment(percent)
    fast = EntryRates(entry).cost(usage, False, adjustment, None)
    assert _exact(fast) == _exact(compute_cost(entry, usage, adjustment=adjustment))


def test_negative_counts_are_priced_by_the_definition() -> None:
    entry = next(iter(TABLE))
    # a 1-hour split larger than the total: the 5-minute share is negative
    usage: Usage = {**usage_event()["usage"], "cache_write_5m_input_tokens": None}
    usage["cache_write_1h_input_tokens"] = usage["cache_write_input_tokens"] + 7
    prices = ScaledPrices.of(entry.prices)
    assert prices is not None
    assert scaled_cost(prices, usage, ScaledFactor.ONE) is None
    fast = EntryRates(entry).cost(usage, False, None, ScaledFactor.ONE)
    assert _exact(fast) == _exact(compute_cost(entry, usage))


def test_snapshot_prices_all_take_the_integer_path() -> None:
    """The shipped prices have at most 13 decimal places: every one is held exactly."""
    for entry in load_snapshot():
        rates = EntryRates(entry)
        for in_tier in (False, True):
            for batch in (False, True):
                prices = rates.prices(long_context=in_tier, batch=batch)
                assert prices is not None, entry.entry_id
                assert prices.places <= 13, entry.entry_id


BOOK = PriceBook(TABLE, NORMALIZER, ADJUSTMENTS)


@pytest.mark.parametrize(
    ("overrides", "expected", "canonical"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_book_prices_the_golden_cases(
    overrides: dict[str, Any], expected: tuple[str, ...] | str, canonical: str | None
) -> None:
    event = usage_event(**{"occurred_at": AT, **overrides})
    for _ in range(2):  # the first call fills the caches, the second is answered from them
        result = BOOK.price(event)
        assert result == price_event(event, TABLE, NORMALIZER, ADJUSTMENTS)
        assert _exact(result.cost) == _exact(
            price_event(event, TABLE, NORMALIZER, ADJUSTMENTS).cost
        )
        assert result.canonical_model == canonical
        if isinstance(expected, str):
            assert result.unpriced_reason == expected
        else:
            assert result.cost is not None
            assert [str(result.cost[k]) for k in BUCKETS] == [  # type: ignore[literal-required]
                str(Decimal(v).quantize(Decimal("1E-12"))) for v in expected
            ]


def _day(days: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=days)


def _entry(model: str, since: datetime, inp: str, region: str | None = None) -> PriceEntry:
    rate = Decimal(inp)
    prices = BucketPrices(rate, rate * 4, rate / 10, rate, rate)
    entry_id = PriceEntry.make_id("bedrock", model, since, region)
    return PriceEntry(entry_id, "bedrock", model, since, prices, region=region)


# Prices changing over time, a model only known from later on, regional rates and a pattern;
# events from before the first price on.
DATED = PriceTable(
    [
        _entry("claude-sonnet-4-5", _day(0), "0.000003"),
        _entry("claude-sonnet-4-5", _day(30), "0.0000025"),
        _entry("claude-sonnet-4-5", _day(90), "0.000002"),
        _entry("claude-sonnet-4-5", _day(30), "0.0000033", "eu-central-1"),
        _entry("claude-sonnet-4-5", _day(60), "0.0000031", "eu-central-1"),
        _entry("nova-pro", _day(45), "0.0000008"),
        _entry("titan-*", _day(-20), "0.0000001"),
    ]
)
TERMS: dict[str, Terms] = {
    "acme": TenantTerms.of(
        TenantAdjustment(Decimal(-10), _day(10), _day(40)),
        TenantAdjustment(Decimal("-12.5"), _day(50)),
    ),
    "globex": TenantAdjustment(Decimal("7.25")),
}
MODELS = [
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.titan-embed-text-v2:0",
    "meta.llama-unknown-v1:0",
]


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.fixed_dictionaries(
            {
                "request_model": st.sampled_from(MODELS),
                "region": st.sampled_from([None, "us-east-1", "eu-central-1", "ap-south-1"]),
                "occurred_at": st.integers(-40, 140).map(_day),
                "tenant_id": st.sampled_from(["acme", "globex", "initech"]),
                "batch": st.booleans(),
                "usage_source": st.sampled_from(["reported", "reported", "none"]),
                "usage": usages(),
            }
        ),
        min_size=1,
        max_size=12,
    )
)
def test_book_answers_what_price_event_answers(events: list[dict[str, Any]]) -> None:
    """Across price periods, regions and dated terms, cached answers included."""
    book = PriceBook(DATED, Normalizer(), TERMS)
    for fields in events:
        event = usage_event(provider="bedrock", response_model=None, **fields)
        expected = price_event(event, DATED, Normalizer(), TERMS)
        got = book.price(event)
        assert got == expected
        assert _exact(got.cost) == _exact(expected.cost)


def test_model_caches_are_bounded() -> None:
    pricer = CachedPricer(DATED, Normalizer(), {}, "v", max_models=64)
    for n in range(1000):
        event = usage_event(provider="bedrock", request_model=f"made-up-{n}", response_model=None)
        assert pricer.price(event).unpriced_reason == "unknown_model"
    assert pricer.cached() == (64, 64)


def test_a_pickled_book_prices_alike() -> None:
    event = usage_event(occurred_at=AT)
    BOOK.price(event)
    copy = pickle.loads(pickle.dumps(BOOK))
    assert copy.pricing_version == BOOK.pricing_version
    assert copy.price(event) == BOOK.price(event)


def test_a_naive_time_is_priced_as_price_event_prices_it() -> None:
    for model in ("made-up", "claude-sonnet-4-5"):
        event = usage_event(occurred_at=datetime(2026, 11, 1), response_model=model)  # noqa: DTZ001
        try:
            expected: object = price_event(event, TABLE, NORMALIZER, ADJUSTMENTS)
        except TypeError as exc:
            expected = type(exc)
        try:
            got: object = BOOK.price(event)
        except TypeError as exc:
            got = type(exc)
        assert got == expected
