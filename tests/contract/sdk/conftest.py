"""Contract tests of the SDK: real provider clients → emulator; events read back from Kafka."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests._kafka import KafkaTap, new_topic
from tokenline import sdk
from tokenline.emulator import ProviderEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[ProviderEmulator]:
    with ProviderEmulator(azure_deployments={"chat-prod": "gpt-4o-2024-08-06"}) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: ProviderEmulator) -> ProviderEmulator:
    emulator_server.reset()
    return emulator_server


@pytest.fixture(scope="module")
def tap(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaTap]:
    """The SDK configured to send to a fresh topic on the real broker, and a reader of it."""
    topic = new_topic(kafka_bootstrap, "sdk-contract")
    sdk.configure(
        tenant_id="contract",
        project="tests",
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        spool_dir=tmp_path_factory.mktemp("spool"),
        detect_host=False,
        strict=True,
    )
    reader = KafkaTap(kafka_bootstrap, topic)
    yield reader
    sdk.close(10)
    reader.close()


class Session:
    """One test's calls, told apart by session_id; their events come back from Kafka."""

    def __init__(self, tap: KafkaTap) -> None:
        self.id = uuid.uuid4().hex
        self._tap = tap

    def events(self, count: int) -> list[Any]:
        assert sdk.flush(10) == 0
        found = self._tap.wait_for(lambda e: e["session_id"] == self.id, count)
        assert len(found) == count, f"expected {count} event(s), got {len(found)}"
        return sorted(found, key=lambda e: e["producer_seq"])


@pytest.fixture
def session(tap: KafkaTap) -> Iterator[Session]:
    current = Session(tap)
    with sdk.context(session_id=current.id):
        yield current


def reported(emulator: ProviderEmulator) -> dict[str, Any]:
    """The usage the emulator reported on its last served call."""
    return dict(emulator.calls[-1].usage)
