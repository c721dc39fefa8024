"""Each package's public API is pinned: a change to it is a deliberate change to this test."""

from __future__ import annotations

import importlib

import pytest

pytestmark = pytest.mark.unit

PUBLIC = {
    "tokenline.schemas": {
        "RECORD_NAMES", "AvroCodec", "SchemaCatalog", "ShippedSchema", "catalog",
        "SchemaError", "EncodeError", "RegistryError", "DecodeError", "TruncatedMessage",
        "WrongMagic", "UnknownFingerprint", "UnknownSchemaId", "SchemaMismatch",
        "UsageEvent", "PricedUsageEvent", "Attribution", "UsageRollup", "DeadLetter", "Usage",
        "Host", "Cost",
        "SourcePosition", "Provider", "Operation", "UsageSource", "PricingStatus",
        "Budget", "BudgetAlert", "BudgetStatus",
    },
    "tokenline.sdk": {
        "ConfigError", "Emitter", "InMemoryEmitter", "JsonLinesEmitter", "Settings", "Stats",
        "TokenlineError", "UnsupportedProviderVersion", "close", "configure", "context", "flush",
        "instrument", "record", "record_batch_results", "set_usage", "stats", "track",
        "uninstrument", "wrap", "BudgetExceeded",
    },
    "tokenline.emulator": {"Call", "ProviderEmulator"},
    "tokenline.processor": set(),
    "tokenline.sink": set(),
    "tokenline.sink.report": {
        "DIMENSIONS", "Report", "ReportRow", "ReportSpec", "Selection", "Totals", "billing_spec",
        "connect", "iter_events", "render", "run_report", "write_billing_csv", "write_export",
    },
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_api_is_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == PUBLIC[module]
    for name in mod.__all__:
        assert hasattr(mod, name), name


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_nothing_private_leaks(module: str) -> None:
    mod = importlib.import_module(module)
    assert not [n for n in mod.__all__ if n.startswith("_")]
