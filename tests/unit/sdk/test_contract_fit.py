"""What the SDK records fits the processor's contract: a caller's odd inputs never cost a bill.

The processor dead-letters an event outside its validation contract; so every event the SDK
builds from legitimate but unusual inputs (long tags, many tags, an error whose ``code`` is no
HTTP status) must pass ``validate_event``, the processor's own check.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokenline import sdk
from tokenline.processor.validate import validate_event
from tokenline.sdk.emitters import InMemoryEmitter

pytestmark = pytest.mark.unit


class _GrpcError(Exception):
    code = 14  # a gRPC status (UNAVAILABLE), not an HTTP one


def test_odd_but_legitimate_inputs_make_valid_events() -> None:
    emitter = InMemoryEmitter()
    sdk.configure(emitter=emitter, tenant_id="acme", max_tags=64)
    try:
        tags = {f"key-{n}-" + "k" * 300: "v" * 5000 for n in range(80)}
        with sdk.context(tags=tags):
            sdk.record(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=2)
            with pytest.raises(_GrpcError), sdk.track(provider="gemini", model="gemini-2.5-pro"):
                raise _GrpcError("unavailable")
        sdk.flush(5)
        events = list(emitter.events)
    finally:
        sdk.close()
    assert len(events) == 2
    assert events[1]["http_status"] is None
    for event in events:
        assert validate_event(event, datetime.now(UTC)) is None


def test_more_tags_than_the_contract_allows_is_a_configuration_error() -> None:
    with pytest.raises(sdk.ConfigError, match="max_tags"):
        sdk.configure(emitter=InMemoryEmitter(), tenant_id="acme", max_tags=65)
