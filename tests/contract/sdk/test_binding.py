"""A wrapped client reports to the runtime in force at each call, not at wrap() time.

Real OpenAI clients against the emulator; the runtimes send to in-memory emitters.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tokenline import sdk

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("TOKENLINE_TENANT_ID", "TOKENLINE_BOOTSTRAP_SERVERS", "TOKENLINE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    sdk.close(0)
    yield
    sdk.close(0)


@pytest.fixture
def client(emulator: ProviderEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{emulator.url}/v1", api_key="k", max_retries=0) as bare:
        yield bare


def _configure(project: str, **settings: Any) -> sdk.InMemoryEmitter:
    emitter = sdk.InMemoryEmitter()
    sdk.configure(emitter=emitter, project=project, detect_host=False, strict=True, **settings)
    return emitter


def test_configure_after_wrap_sends_to_the_new_runtime(
    unconfigured: None, client: openai.OpenAI
) -> None:
    first = _configure("one", tenant_id="acme")
    wrapped = sdk.wrap(client, team="search")
    wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    second = _configure("two", tenant_id="acme")
    reply = wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.usage is not None
    assert [e["project"] for e in first.events] == ["one"]
    (event,) = second.events
    assert event["project"] == "two"
    assert event["team"] == "search"
    assert event["usage"]["input_tokens"] == reply.usage.prompt_tokens


def test_wrap_before_any_configuration_then_configure(
    unconfigured: None,
    client: openai.OpenAI,
    emulator: ProviderEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrapped = sdk.wrap(client)  # nothing configured, no tenant anywhere: no error yet
    with caplog.at_level(logging.WARNING, logger="tokenline"):
        for _ in range(3):  # the calls still happen, unmetered, and say so once
            reply = wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
            assert reply.choices[0].message.content
    assert len(emulator.calls) == 3
    assert len([r for r in caplog.records if "unmetered" in r.getMessage()]) == 1

    sent = _configure("late", tenant_id="acme")
    wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    (event,) = sent.events
    assert event["tenant_id"] == "acme"
    assert event["project"] == "late"


def test_a_tenant_given_to_wrap_is_enough(unconfigured: None, emulator: ProviderEmulator) -> None:
    sent = _configure("p")  # no tenant in the settings

    async def main() -> None:
        async with openai.AsyncOpenAI(
            base_url=f"{emulator.url}/v1", api_key="k", max_retries=0
        ) as bare:
            wrapped = sdk.wrap(bare, tenant_id="globex")
            await wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]

    asyncio.run(main())
    assert [e["tenant_id"] for e in sent.events] == ["globex"]


# instrument() imports every installed adapter, the Gemini ones included, whose SDKs warn on import
@pytest.mark.filterwarnings(
    "ignore:\\s*All support for the `google.generativeai` package has ended:FutureWarning"
)
@pytest.mark.filterwarnings(
    "ignore:You are using a Python version .* which Google will stop supporting:FutureWarning"
)
def test_instrumented_calls_follow_the_runtime_in_force(
    unconfigured: None, client: openai.OpenAI
) -> None:
    first = _configure("one", tenant_id="acme")
    sdk.instrument()
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        second = _configure("two", tenant_id="acme")
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    finally:
        sdk.uninstrument()
    assert [e["project"] for e in first.events] == ["one"]
    assert [e["project"] for e in second.events] == ["two"]
