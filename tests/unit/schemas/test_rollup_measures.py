"""Every UsageRollup field is a key, a summed measure, the maximum, or bookkeeping."""

from __future__ import annotations

import json

import pytest

from tokenline.schemas import catalog
from tokenline.schemas.rollup import ROLLUP_KEY, ROLLUP_MAX, ROLLUP_SUMS

pytestmark = pytest.mark.unit

BOOKKEEPING = {"window_seconds", "currency", "source_partition", "max_source_offset", "updated_at"}


def test_a_new_rollup_field_must_be_given_a_meaning() -> None:
    schema = json.loads(catalog().latest("tokenline.UsageRollup").json)
    fields = [f["name"] for f in schema["fields"]]
    named = [*ROLLUP_KEY, *ROLLUP_SUMS, ROLLUP_MAX, *BOOKKEEPING]
    assert sorted(fields) == sorted(named)
