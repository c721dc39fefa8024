"""The validation contract covers every field of the Avro schema, and validation enforces it.

The fields come from the shipped ``UsageEvent`` schema (``tests._avro_fields``), not from the
contract: a field added to the schema without a bound fails here. Values beyond what a
PostgreSQL column or PostgreSQL text can hold (2^31, 2^63, 2^64 + 7, NUL, a lone surrogate,
a megabyte) are refused whatever the contract says; the contract's own bounds are checked at
the edge (the bound passes, one past it is refused, naming the field).
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from tests._avro_fields import Leaf, leaves
from tests.factories import EPOCH, usage_event
from tokenline.processor.contract import Closed, Count, Instant, Tags, Text, contract
from tokenline.processor.validate import ValidationLimits, validate_event

pytestmark = pytest.mark.unit

NOW = EPOCH + timedelta(seconds=30)
LIMITS = ValidationLimits()
CONTRACT = contract(LIMITS)
LEAVES = leaves()
_KINDS = {
    "long": Count,
    "int": Count,
    "string": Text,
    "map": Tags,
    "timestamp": Instant,
    "uuid": Closed,
    "enum": Closed,
    "boolean": Closed,
}
#: What PostgreSQL or its columns cannot hold, whatever the contract: never valid.
_BEYOND_COLUMNS = {
    "long": [-1, 2**63, 2**64 + 7, -(2**63) - 1, 2**200],
    "int": [-1, 2**31, 2**32 + 200],
}
_UNSTORABLE = ["a\x00b", "\x00", "x\ud800y", "\udfff", "m" * 1_000_000]


def _set(event: Any, path: tuple[str, ...], value: Any) -> Any:
    changed = copy.deepcopy(event)
    target = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return changed


def _valid_base() -> Any:
    """The factory's event with every nullable field set, and no cache-write split to cap."""
    event = usage_event(deployment="prod-sonnet", region="us-east-1", error_type="X")
    event["usage"] = {**event["usage"], "provider_total_tokens": 33_550, "mismatch": "none"}
    return event


def _ids(leaf: Leaf) -> str:
    return ".".join(leaf.path)


def test_every_schema_field_has_a_bound_and_nothing_else_does() -> None:
    assert {leaf.path for leaf in LEAVES} == set(CONTRACT)


@pytest.mark.parametrize("leaf", LEAVES, ids=_ids)
def test_the_bound_is_of_the_fields_kind(leaf: Leaf) -> None:
    bound = CONTRACT[leaf.path]
    assert isinstance(bound, _KINDS[leaf.kind])
    if isinstance(bound, Closed):
        assert bound.kind == leaf.kind


@pytest.mark.parametrize("leaf", [x for x in LEAVES if x.kind in ("long", "int")], ids=_ids)
def test_numbers_beyond_their_column_are_refused(leaf: Leaf) -> None:
    for value in _BEYOND_COLUMNS[leaf.kind]:
        violation = validate_event(_set(_valid_base(), leaf.path, value), NOW)
        assert violation is not None, (leaf.path, value)
        assert ".".join(leaf.path[-1:]) in violation.detail
        assert len(violation.detail) < 200  # a 200-bit number is described, not printed


@pytest.mark.parametrize("leaf", [x for x in LEAVES if x.kind in ("long", "int")], ids=_ids)
def test_numbers_at_their_bounds_pass_and_one_past_is_refused(leaf: Leaf) -> None:
    bound = CONTRACT[leaf.path]
    assert isinstance(bound, Count)
    base = _valid_base()
    if leaf.path[0] == "usage":
        # the split is capped by the cache writes, and the buckets checked against the total
        base["usage"].update(
            cache_write_input_tokens=LIMITS.max_tokens_per_bucket,
            cache_write_5m_input_tokens=0,
            cache_write_1h_input_tokens=0,
            mismatch=None,
        )
    for inside in (bound.low, bound.high):
        assert validate_event(_set(base, leaf.path, inside), NOW) is None, (leaf.path, inside)
    for outside in (bound.low - 1, bound.high + 1):
        violation = validate_event(_set(base, leaf.path, outside), NOW)
        assert violation is not None, (leaf.path, outside)
        assert leaf.path[-1] in violation.detail


@pytest.mark.parametrize("leaf", [x for x in LEAVES if x.kind == "string"], ids=_ids)
def test_strings_postgresql_cannot_store_are_refused(leaf: Leaf) -> None:
    for value in _UNSTORABLE:
        violation = validate_event(_set(_valid_base(), leaf.path, value), NOW)
        assert violation is not None, (leaf.path, value[:10])
        assert violation.rule in ("text_too_long", "text_not_storable")
        assert leaf.path[-1] in violation.detail
        assert len(violation.detail) < 200  # the refused text is never quoted


@pytest.mark.parametrize("leaf", [x for x in LEAVES if x.kind == "string"], ids=_ids)
def test_strings_at_their_length_pass_and_one_more_is_refused(leaf: Leaf) -> None:
    bound = CONTRACT[leaf.path]
    assert isinstance(bound, Text)
    widest = "\U0010fffd" * bound.max_chars  # 4 UTF-8 bytes each
    assert validate_event(_set(_valid_base(), leaf.path, widest), NOW) is None
    violation = validate_event(_set(_valid_base(), leaf.path, widest + "x"), NOW)
    assert violation is not None
    assert violation.rule == "text_too_long"


def test_tags_are_bounded_in_number_keys_and_values() -> None:
    bound = CONTRACT[("tags",)]
    assert isinstance(bound, Tags)
    full = {f"k{n}": "v" * bound.value.max_chars for n in range(bound.max_entries)}
    assert validate_event(usage_event(tags=full), NOW) is None
    cases = {
        "too_many_tags": {**full, "one-more": "v"},
        "text_too_long": {"k" * (bound.key.max_chars + 1): "v"},
        "text_not_storable": {"feature": "re\x00rank"},
    }
    for rule, tags in cases.items():
        violation = validate_event(usage_event(tags=tags), NOW)
        assert violation is not None
        assert violation.rule == rule
    violation = validate_event(usage_event(tags={"k": "v" * (bound.value.max_chars + 1)}), NOW)
    assert violation is not None
    assert violation.rule == "text_too_long"


@pytest.mark.parametrize(
    ("split", "valid"),
    [
        ((1_500, 500), True),  # sums to the 2,000 cache writes
        ((2_000, None), True),
        ((None, 2_000), True),
        ((1_500, 501), False),
        ((None, 2_001), False),
        ((2**62, 2**62), False),  # the $17.3 trillion event of issue 14
    ],
)
def test_the_cache_write_split_never_exceeds_the_cache_writes(
    split: tuple[int | None, int | None], valid: bool
) -> None:
    event = usage_event()
    assert event["usage"]["cache_write_input_tokens"] == 2_000
    event["usage"]["cache_write_5m_input_tokens"], event["usage"]["cache_write_1h_input_tokens"] = (
        split
    )
    violation = validate_event(event, NOW)
    assert (violation is None) is valid, violation
    if not valid:
        assert violation is not None
        assert violation.rule in ("split_exceeds_total", "absurd_tokens")


def test_time_to_first_token_and_http_status_must_be_real() -> None:
    for event in (
        usage_event(time_to_first_token_ms=-5_000),
        usage_event(http_status=2**32 + 200),
        usage_event(http_status=99),
        usage_event(http_status=600),
        usage_event(latency_ms=2**64 + 7),
    ):
        violation = validate_event(event, NOW)
        assert violation is not None
        assert violation.rule == "out_of_range"
    assert validate_event(usage_event(http_status=None, time_to_first_token_ms=None), NOW) is None


def test_the_largest_valid_identifiers_fit_a_btree_index_key() -> None:
    """The rollup's key (tenant, minute, provider, model) at 4 bytes a character fits 2,704 B."""
    tenant = CONTRACT[("tenant_id",)]
    models = [CONTRACT[(name,)] for name in ("request_model", "response_model", "deployment")]
    assert isinstance(tenant, Text)
    assert all(isinstance(m, Text) and m.indexed for m in models)
    assert tenant.indexed
    widest_model = max(m.max_chars for m in models if isinstance(m, Text))
    provider = max(len(s) for leaf in LEAVES if leaf.path == ("provider",) for s in leaf.symbols)
    # each text value: a 4-byte varlena header; the timestamp 8; the index tuple header 8
    key_bytes = 8 + (4 + 4 * tenant.max_chars) + 8 + (4 + provider) + (4 + 4 * widest_model)
    assert key_bytes <= 2_704
