"""The real anthropic SDK against the emulator: messages, streams, caching and thinking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anthropic
import httpx2
import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

MODEL = "claude-sonnet-4-6"  # not in the SDK's deprecated list
MESSAGES: list[Any] = [{"role": "user", "content": "Hello Claude"}]
CACHED_SYSTEM: list[Any] = [
    {"type": "text", "text": "long policy " * 400, "cache_control": {"type": "ephemeral"}},
    {
        "type": "text",
        "text": "longer manual " * 300,
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    },
]


@pytest.fixture
def client(emulator: ProviderEmulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="k", base_url=emulator.url, max_retries=0) as c:
        yield c


@pytest_asyncio.fixture
async def aclient(emulator: ProviderEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(api_key="k", base_url=emulator.url, max_retries=0) as c:
        yield c


def test_message_usage_matches_record(
    client: anthropic.Anthropic, emulator: ProviderEmulator
) -> None:
    message = client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    call = emulator.last_call
    assert message.usage.model_dump(exclude_none=True) == call.usage
    assert (call.provider, call.route, call.streamed) == ("anthropic", "messages", False)
    assert message.content[0].type == "text"
    assert message.usage.cache_read_input_tokens == 0


def test_max_tokens_caps_output(client: anthropic.Anthropic, emulator: ProviderEmulator) -> None:
    message = client.messages.create(model=MODEL, max_tokens=3, messages=MESSAGES)
    assert message.usage.output_tokens == 3


def test_cache_write_then_read_with_ttl_split(
    client: anthropic.Anthropic, emulator: ProviderEmulator
) -> None:
    first = client.messages.create(
        model=MODEL, max_tokens=50, system=CACHED_SYSTEM, messages=MESSAGES
    )
    split = first.usage.cache_creation
    assert split is not None
    assert split.ephemeral_5m_input_tokens > 0
    assert split.ephemeral_1h_input_tokens > 0
    assert first.usage.cache_creation_input_tokens == (
        split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens
    )
    assert first.usage.cache_read_input_tokens == 0
    second = client.messages.create(
        model=MODEL, max_tokens=50, system=CACHED_SYSTEM, messages=MESSAGES
    )
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens
    assert second.usage.model_dump(exclude_none=True) == emulator.last_call.usage


def test_thinking_block_and_thinking_tokens(
    client: anthropic.Anthropic, emulator: ProviderEmulator
) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=MESSAGES,
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    details = message.usage.output_tokens_details
    assert details is not None
    assert details.thinking_tokens == 48
    assert message.usage.output_tokens > details.thinking_tokens
    assert message.usage.model_dump(exclude_none=True) == emulator.last_call.usage


def test_raw_stream_events(client: anthropic.Anthropic, emulator: ProviderEmulator) -> None:
    events = list(
        client.messages.create(
            model=MODEL, max_tokens=100, system=CACHED_SYSTEM, messages=MESSAGES, stream=True
        )
    )
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert delta.type == "message_delta"
    assert events[-1].type == "message_stop"
    recorded = emulator.last_call.usage
    assert start.message.usage.cache_creation is not None
    assert start.message.usage.cache_creation.model_dump() == recorded["cache_creation"]
    # message_delta usage is cumulative and repeats the input counts
    assert delta.usage.input_tokens == recorded["input_tokens"]
    assert delta.usage.cache_creation_input_tokens == recorded["cache_creation_input_tokens"]
    assert delta.usage.output_tokens == recorded["output_tokens"]
    assert emulator.last_call.streamed


def test_stream_helper_final_message(
    client: anthropic.Anthropic, emulator: ProviderEmulator
) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=MESSAGES,
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[-1].text  # type: ignore[union-attr]
    assert final.content[0].type == "thinking"
    assert final.usage.model_dump(exclude_none=True) == emulator.last_call.usage


def test_forced_tool_use(client: anthropic.Anthropic, emulator: ProviderEmulator) -> None:
    tool: Any = {
        "name": "lookup",
        "description": "look up",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=MESSAGES,
        tools=[tool],
        tool_choice={"type": "tool", "name": "lookup"},
    )
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "tool_use"


def test_count_tokens(client: anthropic.Anthropic, emulator: ProviderEmulator) -> None:
    counted = client.messages.count_tokens(model=MODEL, messages=MESSAGES)
    message = client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    assert counted.input_tokens == message.usage.input_tokens


def test_injected_errors(client: anthropic.Anthropic, emulator: ProviderEmulator) -> None:
    emulator.fail_next(status=429, provider="anthropic")
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "1"
    emulator.fail_next(status=500)
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    emulator.fail_next(status=529)
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)


def test_cut_stream_raises(client: anthropic.Anthropic, emulator: ProviderEmulator) -> None:
    emulator.cut_next_stream(after_events=3)
    # anthropic, unlike openai, lets the transport's error through unwrapped
    with (
        pytest.raises(httpx2.RemoteProtocolError),
        client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream,
    ):
        for _ in stream:
            pass
    assert emulator.last_call.completed is False


@pytest.mark.asyncio
async def test_async_create_and_stream(
    aclient: anthropic.AsyncAnthropic, emulator: ProviderEmulator
) -> None:
    message = await aclient.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    assert message.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    async with aclient.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream:
        final = await stream.get_final_message()
    assert final.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    raw = await aclient.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES, stream=True)
    kinds = [event.type async for event in raw]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"


@pytest.mark.asyncio
async def test_async_errors(aclient: anthropic.AsyncAnthropic, emulator: ProviderEmulator) -> None:
    emulator.fail_next(status=500, provider="anthropic")
    with pytest.raises(anthropic.InternalServerError):
        await aclient.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    emulator.cut_next_stream(after_events=2)
    with pytest.raises(httpx2.RemoteProtocolError):
        async with aclient.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream:
            await stream.get_final_message()


VERTEX_MODEL = "claude-sonnet-4-5@20250929"


@pytest.fixture
def vertex(emulator: ProviderEmulator) -> Iterator[anthropic.AnthropicVertex]:
    with anthropic.AnthropicVertex(
        region="us-east5",
        project_id="proj",
        access_token="test",
        base_url=f"{emulator.url}/v1",
        max_retries=0,
    ) as c:
        yield c


def test_vertex_raw_predict_and_stream(
    vertex: anthropic.AnthropicVertex, emulator: ProviderEmulator
) -> None:
    message = vertex.messages.create(model=VERTEX_MODEL, max_tokens=10, messages=MESSAGES)
    assert message.model == "claude-sonnet-4-5-20250929"
    assert message.usage.output_tokens == 10
    assert emulator.last_call.route == "rawPredict"
    with vertex.messages.stream(model=VERTEX_MODEL, max_tokens=10, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens == 10
    assert emulator.last_call.route == "streamRawPredict"
    assert emulator.last_call.streamed is True


def test_vertex_body_is_checked_like_vertex(emulator: ProviderEmulator) -> None:
    url = (
        f"{emulator.url}/v1/projects/proj/locations/us-east5/publishers/anthropic/models/"
        f"{VERTEX_MODEL}:rawPredict"
    )
    body: dict[str, Any] = {"max_tokens": 10, "messages": MESSAGES}
    no_version = httpx2.post(url, json=body)
    assert no_version.status_code == 400
    named = httpx2.post(url, json={**body, "anthropic_version": "vertex-2023-10-16", "model": "x"})
    assert named.status_code == 400
    ok = httpx2.post(url, json={**body, "anthropic_version": "vertex-2023-10-16"})
    assert ok.status_code == 200
    assert ok.json()["type"] == "message"
