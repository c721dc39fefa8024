"""One provider emulator for the contract tests; every test starts from a clean record."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tokenline.emulator import ProviderEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[ProviderEmulator]:
    with ProviderEmulator(azure_deployments={"chat-prod": "gpt-4o-2024-08-06"}) as server:
        yield server


@pytest.fixture
def emulator(_emulator_server: ProviderEmulator) -> ProviderEmulator:
    """The running emulator, with no recorded calls, pending faults or cached prompts."""
    _emulator_server.reset()
    return _emulator_server
