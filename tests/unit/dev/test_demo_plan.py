"""The demo's traffic plan and price files."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from tokenline.dev.demo.prices import write_correction, write_initial_prices
from tokenline.dev.demo.traffic import TENANTS, UNKNOWN_MODEL, planned_calls
from tokenline.processor.pricing.overrides import load_overrides

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


def test_every_round_calls_all_five_providers_for_every_tenant() -> None:
    assert planned_calls(1) == 34
    assert planned_calls(40) == 40 * 34
    assert len({t.timezone for t in TENANTS}) == len(TENANTS)


def test_initial_prices_leave_the_fine_tuned_model_unpriced(tmp_path: Path) -> None:
    overrides = load_overrides(write_initial_prices(tmp_path / "prices.yaml"))

    assert overrides.entries == ()
    assert overrides.azure_deployments == {"chat-prod": "gpt-4o"}


def test_the_correction_prices_the_fine_tuned_model_and_discounts_globex(tmp_path: Path) -> None:
    overrides = load_overrides(write_correction(tmp_path / "correction.yaml"))

    (entry,) = overrides.entries
    assert entry.provider == "openai"
    assert entry.model == UNKNOWN_MODEL.lower()
    assert entry.prices.input == Decimal("0.30") / 1_000_000
    assert set(overrides.adjustments) == {"globex"}
