"""observe_many against prometheus_client's own Histogram.observe, on the same amounts."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from tokenline.sink.metrics import observe_many

_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Amounts on and beside every bound, and past the last one (+Inf).
_AMOUNTS = st.one_of(
    st.sampled_from(_BUCKETS),
    st.floats(min_value=0, max_value=10_000, allow_nan=False),
)


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    (metric,) = histogram.collect()
    return {
        (s.name, s.labels.get("le", "")): s.value for s in metric.samples if "created" not in s.name
    }


@given(batches=st.lists(st.lists(_AMOUNTS, max_size=40), max_size=4))
def test_observe_many_counts_as_observe_does(batches: list[list[float]]) -> None:
    one, many = (Histogram("h", "h", buckets=_BUCKETS, registry=CollectorRegistry()) for _ in "ab")
    for batch in batches:
        for amount in batch:
            one.observe(amount)
        observe_many(many, iter(batch))
    expected, got = _samples(one), _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if key[0] == "h_sum":  # the same amounts, added in another order
            assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-9), key
        else:
            assert got[key] == value, key
