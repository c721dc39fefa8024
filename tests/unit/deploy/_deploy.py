"""Shared helpers of the deploy tests: the repository's paths and the deploy/ scripts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenline.processor.budgets.settings import BudgetSettings
from tokenline.processor.settings import ProcessorSettings
from tokenline.sdk import Settings as SdkSettings
from tokenline.sink.settings import SinkSettings

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def load_script(relative: str) -> ModuleType:
    """Import a script under deploy/ (not a package) by its path."""
    path = DEPLOY / relative
    spec = importlib.util.spec_from_file_location(f"deploy_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env_names(*models: type[Any]) -> set[str]:
    return {f"TOKENLINE_{name.upper()}" for model in models for name in model.model_fields}


PROCESSOR_ENV = _env_names(ProcessorSettings, BudgetSettings)
SINK_ENV = _env_names(SinkSettings)
SDK_ENV = _env_names(SdkSettings)


def settings_kwargs(env: dict[str, str]) -> dict[str, str]:
    """Map TOKENLINE_* variables to settings keyword arguments (no os.environ involved)."""
    return {
        key.removeprefix("TOKENLINE_").lower(): value
        for key, value in env.items()
        if key.startswith("TOKENLINE_")
    }
