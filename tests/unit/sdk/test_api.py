"""The SDK's hand-written paths: record, track, context, configuration errors."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from tokenline import sdk

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.unit


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[sdk.InMemoryEmitter]:
    for name in ("TOKENLINE_TENANT_ID", "TOKENLINE_BOOTSTRAP_SERVERS", "TOKENLINE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    emitter = sdk.InMemoryEmitter()
    sdk.configure(
        emitter=emitter, tenant_id="acme", project="search", detect_host=False, strict=True
    )
    yield emitter
    sdk.close(1)


def test_record_sends_one_event_with_attribution(sent: sdk.InMemoryEmitter) -> None:
    with sdk.context(user_id="u-17", tags={"feature": "rerank"}):
        sdk.record(provider="openai", operation="chat", model="gpt-4o", input_tokens=10,
                   output_tokens=3, latency_ms=250, team="relevance")  # fmt: skip
    (event,) = sent.events
    assert event["tenant_id"] == "acme"
    assert event["project"] == "search"
    assert event["user_id"] == "u-17"
    assert event["team"] == "relevance"
    assert event["tags"] == {"feature": "rerank"}
    assert event["usage"]["input_tokens"] == 10
    assert event["usage"]["output_tokens"] == 3
    assert event["usage_source"] == "reported"
    assert event["latency_ms"] == 250
    assert event["producer_seq"] == 0


def test_producer_seq_is_gapless_and_event_ids_unique(sent: sdk.InMemoryEmitter) -> None:
    for _ in range(50):
        sdk.record(provider="anthropic", model="claude-sonnet-4-5", input_tokens=1)
    assert [e["producer_seq"] for e in sent.events] == list(range(50))
    assert len({e["event_id"] for e in sent.events}) == 50
    assert len({e["producer_id"] for e in sent.events}) == 1
    assert sent.events[0]["event_id"].version == 7


def test_track_decorator_uses_the_extractor_and_reraises(sent: sdk.InMemoryEmitter) -> None:
    @sdk.track(provider="other", model="local-llm", extractor=lambda r: {"output_tokens": len(r)})
    def generate(prompt: str) -> str:
        if prompt == "boom":
            raise ValueError("model server down")
        return "four"

    assert generate("hi") == "four"
    with pytest.raises(ValueError, match="model server down"):
        generate("boom")
    ok, failed = sent.events
    assert ok["usage"]["output_tokens"] == 4
    assert ok["success"] is True
    assert failed["success"] is False
    assert failed["error_type"] == "ValueError"


def test_track_as_context_manager(sent: sdk.InMemoryEmitter) -> None:
    with sdk.track(provider="other", model="m") as call:
        sdk.set_usage(call, input_tokens=7, output_tokens=2)
    assert sent.events[0]["usage"]["input_tokens"] == 7


def test_context_follows_asyncio_tasks(sent: sdk.InMemoryEmitter) -> None:
    async def one(user: str) -> None:
        with sdk.context(user_id=user):
            await asyncio.sleep(0)
            sdk.record(provider="gemini", model="gemini-2.5-flash")

    async def main() -> None:
        await asyncio.gather(*(one(f"u{i}") for i in range(5)))

    asyncio.run(main())
    assert sorted(e["user_id"] or "" for e in sent.events) == [f"u{i}" for i in range(5)]


def test_wrap_lists_every_problem_of_the_settings_as_they_stand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sdk.close(0)
    monkeypatch.delenv("TOKENLINE_TENANT_ID", raising=False)
    monkeypatch.delenv("TOKENLINE_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("TOKENLINE_COMPRESSION", "brotli")
    monkeypatch.setenv("TOKENLINE_LINGER_MS", "-1")
    with pytest.raises(sdk.ConfigError) as info:
        sdk.wrap(object())
    text = str(info.value)
    assert "compression" in text
    assert "linger_ms" in text
    # no tenant and no Kafka yet is not wrong: a later configure() may give them
    assert "tenant_id" not in text
    assert "bootstrap_servers" not in text


def test_wrap_needs_a_tenant_once_a_runtime_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENLINE_TENANT_ID", raising=False)
    sdk.configure(emitter=sdk.InMemoryEmitter(), detect_host=False)
    try:
        with pytest.raises(sdk.ConfigError, match="tenant_id: required"):
            sdk.wrap(object())
    finally:
        sdk.close(1)


def test_wrap_refuses_an_unknown_client(sent: sdk.InMemoryEmitter) -> None:
    with pytest.raises(TypeError, match="cannot wrap object"):
        sdk.wrap(object())
