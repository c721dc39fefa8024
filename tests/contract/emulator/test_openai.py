"""The real openai SDK against the emulator: chat, parse, responses, completions, embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2
import openai
import pytest
import pytest_asyncio
from pydantic import BaseModel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

MESSAGES: list[Any] = [{"role": "user", "content": "Say something short."}]


@pytest.fixture
def client(emulator: ProviderEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="sk-test", base_url=f"{emulator.url}/v1", max_retries=0) as c:
        yield c


@pytest_asyncio.fixture
async def aclient(emulator: ProviderEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    base_url = f"{emulator.url}/v1"
    async with openai.AsyncOpenAI(api_key="sk-test", base_url=base_url, max_retries=0) as c:
        yield c


class Weather(BaseModel):
    city: str
    celsius: int
    sunny: bool


def test_chat_completion_usage_matches_record(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    call = emulator.last_call
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == call.usage
    assert (call.provider, call.route, call.streamed, call.status) == (
        "openai",
        "chat.completions",
        False,
        200,
    )
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.choices[0].message.content


def test_reasoning_model_reports_reasoning_tokens(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    completion = client.chat.completions.create(
        model="o4-mini", messages=MESSAGES, reasoning_effort="low"
    )
    assert completion.usage is not None
    details = completion.usage.completion_tokens_details
    assert details is not None
    assert details.reasoning_tokens == 64
    assert (
        details.reasoning_tokens
        == emulator.last_call.usage["completion_tokens_details"]["reasoning_tokens"]
    )


def test_long_prompt_is_cached_on_the_second_call(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    long: list[Any] = [{"role": "system", "content": "policy " * 1200}, *MESSAGES]
    first = client.chat.completions.create(model="gpt-4o", messages=long)
    second = client.chat.completions.create(model="gpt-4o", messages=long)
    assert first.usage is not None
    assert second.usage is not None
    assert first.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached is not None
    assert cached >= 1024
    assert cached % 128 == 0
    assert cached <= second.usage.prompt_tokens
    assert emulator.last_call.usage["prompt_tokens_details"]["cached_tokens"] == cached


def test_stream_without_include_usage_has_no_usage_chunk(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert emulator.last_call.streamed
    assert emulator.last_call.usage == {}


def test_stream_with_include_usage_ends_with_usage_chunk(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    assert all(c.usage is None for c in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert len(text.split()) == last.usage.completion_tokens


def test_parse_returns_the_requested_schema(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    parsed = client.chat.completions.parse(
        model="gpt-4o-2024-08-06", messages=MESSAGES, response_format=Weather
    )
    weather = parsed.choices[0].message.parsed
    assert isinstance(weather, Weather)
    assert parsed.usage is not None
    assert parsed.usage.completion_tokens == emulator.last_call.usage["completion_tokens"]


def test_stream_helper_final_completion(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    with client.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.usage is not None
    assert final.usage.model_dump(exclude_none=True) == emulator.last_call.usage


def test_forced_tool_call(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    tool: Any = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    completion = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=[tool], tool_choice="required"
    )
    calls = completion.choices[0].message.tool_calls
    assert calls
    assert completion.choices[0].finish_reason == "tool_calls"


def test_responses_api(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    response = client.responses.create(model="gpt-5-mini", input="Hello", instructions="Be brief")
    assert response.usage is not None
    assert response.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    assert response.usage.output_tokens_details.reasoning_tokens == 192
    assert response.output_text


def test_responses_stream_completed_event_carries_usage(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    events = list(client.responses.create(model="gpt-4.1", input="Hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert "response.output_text.delta" in kinds
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None
    assert completed.response.usage.model_dump(exclude_none=True) == emulator.last_call.usage


def test_responses_stream_helper(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    with client.responses.stream(model="o3", input="Hello") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 192
    assert final.usage.model_dump(exclude_none=True) == emulator.last_call.usage


def test_legacy_completions(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once")
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    stream = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Once",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(exclude_none=True) == emulator.last_call.usage


def test_embeddings(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == 1536
    assert result.usage.model_dump() == emulator.last_call.usage
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="x", dimensions=8, encoding_format="float"
    )
    assert len(floats.data[0].embedding) == 8


@pytest.mark.asyncio
async def test_async_chat_and_stream(
    aclient: openai.AsyncOpenAI, emulator: ProviderEmulator
) -> None:
    completion = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(exclude_none=True) == emulator.last_call.usage


@pytest.mark.asyncio
async def test_async_responses_and_embeddings(
    aclient: openai.AsyncOpenAI, emulator: ProviderEmulator
) -> None:
    response = await aclient.responses.create(model="gpt-4o", input="Hi")
    assert response.usage is not None
    assert response.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    stream = await aclient.responses.create(model="gpt-4o", input="Hi", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    embedding = await aclient.embeddings.create(model="text-embedding-3-small", input="x")
    assert embedding.usage.prompt_tokens == emulator.last_call.usage["prompt_tokens"]


def test_injected_rate_limit_raises_rate_limit_error(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    emulator.fail_next(status=429, provider="openai")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "1"
    assert emulator.last_call.status == 429
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).usage is not None


def test_injected_server_error(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    emulator.fail_next(status=500, times=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.responses.create(model="gpt-4o", input="Hi")


@pytest.mark.asyncio
async def test_async_injected_error(
    aclient: openai.AsyncOpenAI, emulator: ProviderEmulator
) -> None:
    emulator.fail_next(status=429)
    with pytest.raises(openai.RateLimitError):
        await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_cut_stream_raises_in_the_client(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    emulator.cut_next_stream(after_events=2)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError) as info:
        list(stream)
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert emulator.last_call.completed is False


def test_delay_then_timeout(client: openai.OpenAI, emulator: ProviderEmulator) -> None:
    emulator.delay_next(0.5)
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.1).chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_dropped_usage_chunk_ends_the_stream_cleanly(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    emulator.drop_next_usage(provider="openai")
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert (emulator.last_call.usage, emulator.last_call.completed) == ({}, True)
    events = list(client.responses.create(model="gpt-4o", input="Hi", stream=True))
    assert events[-1].type == "response.completed"  # one dropped report only
    assert emulator.last_call.usage


def test_dropped_usage_leaves_plain_answers_alone(
    client: openai.OpenAI, emulator: ProviderEmulator
) -> None:
    emulator.drop_next_usage()
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.usage is not None  # a JSON answer does not take the fault
    events = list(client.responses.create(model="gpt-4o", input="Hi", stream=True))
    assert "response.completed" not in {e.type for e in events}
    assert events[-1].type == "response.output_item.done"
    assert emulator.last_call.usage == {}
