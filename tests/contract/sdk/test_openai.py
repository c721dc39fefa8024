"""OpenAI and Azure OpenAI through wrap().

Every call, sync and async, plain and streamed, ok and error; events read back from Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import openai
import pytest
from pydantic import BaseModel

from tests.contract.sdk.conftest import Session, reported
from tokenline import sdk

if TYPE_CHECKING:
    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

LONG = "tokens " * 1500  # long enough for the emulator to serve cached tokens on a repeat
MESSAGES = [{"role": "user", "content": "Say hello"}]


class Greeting(BaseModel):
    text: str


_open: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Any:
    yield
    while _open:
        _open.pop().close()


def _client(emulator: ProviderEmulator, *, azure: bool = False, aio: bool = False) -> Any:
    if azure:
        cls: Any = openai.AsyncAzureOpenAI if aio else openai.AzureOpenAI
        client = cls(
            azure_endpoint=emulator.url, api_key="k", api_version="2024-10-21", max_retries=0
        )
    else:
        cls = openai.AsyncOpenAI if aio else openai.OpenAI
        client = cls(base_url=f"{emulator.url}/v1", api_key="k", max_retries=0)
    if not aio:
        _open.append(client)
    return sdk.wrap(client, team="search")


def _chat_buckets(usage: dict[str, Any]) -> dict[str, int]:
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") or 0
    writes = prompt_details.get("cache_write_tokens") or 0
    reasoning = completion_details.get("reasoning_tokens") or 0
    return {
        "input_tokens": usage["prompt_tokens"] - cached - writes,
        "cache_read_input_tokens": cached,
        "cache_write_input_tokens": writes,
        "output_tokens": usage.get("completion_tokens", 0) - reasoning,
        "reasoning_tokens": reasoning,
    }


def _assert_event(event: dict[str, Any], expected: dict[str, int], **fields: Any) -> None:
    assert {k: event["usage"][k] for k in expected} == expected
    assert event["usage"]["mismatch"] is None
    assert event["usage_source"] == "reported"
    assert event["tenant_id"] == "contract"
    assert event["team"] == "search"
    for name, value in fields.items():
        assert event[name] == value, name


def _check_chat(
    event: dict[str, Any], emulator: ProviderEmulator, result: Any, azure: bool
) -> None:
    model = "chat-prod" if azure else "gpt-4o"
    _assert_event(
        event,
        _chat_buckets(reported(emulator)),
        provider="azure_openai" if azure else "openai",
        operation="chat",
        request_model=model,
        response_model=result.model,
        deployment="chat-prod" if azure else None,
        streamed=False,
        success=True,
    )


@pytest.mark.parametrize("azure", [False, True], ids=["openai", "azure"])
def test_chat_plain(emulator: ProviderEmulator, session: Session, azure: bool) -> None:
    model = "chat-prod" if azure else "gpt-4o"
    result = _client(emulator, azure=azure).chat.completions.create(model=model, messages=MESSAGES)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    _check_chat(session.events(1)[0], emulator, result, azure)


@pytest.mark.asyncio
@pytest.mark.parametrize("azure", [False, True], ids=["openai", "azure"])
async def test_chat_plain_async(emulator: ProviderEmulator, session: Session, azure: bool) -> None:
    model = "chat-prod" if azure else "gpt-4o"
    async with _client(emulator, azure=azure, aio=True) as client:
        result = await client.chat.completions.create(model=model, messages=MESSAGES)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    _check_chat(session.events(1)[0], emulator, result, azure)


def _check_stream(
    chunks: list[Any], asked: bool, session: Session, emulator: ProviderEmulator
) -> None:
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == (1 if asked else 0)  # the caller sees exactly its own stream
    (event,) = session.events(1)
    expected = _chat_buckets(reported(emulator))
    assert expected["reasoning_tokens"] > 0
    _assert_event(event, expected, streamed=True, request_model="o3-mini", success=True)
    assert event["time_to_first_token_ms"] is not None


def _stream_kwargs(asked: bool) -> dict[str, Any]:
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if asked else {}
    return {"model": "o3-mini", "messages": MESSAGES, "stream": True, **extra}


@pytest.mark.parametrize("asked", [False, True], ids=["usage-hidden", "usage-asked"])
def test_chat_stream_asks_for_usage_and_hides_it(
    emulator: ProviderEmulator, session: Session, asked: bool
) -> None:
    chunks = list(_client(emulator).chat.completions.create(**_stream_kwargs(asked)))
    _check_stream(chunks, asked, session, emulator)


def test_stream_read_in_several_loops_and_by_next_is_one_stream(
    emulator: ProviderEmulator, session: Session
) -> None:
    """A caller may break out of a loop, go on with next(), then loop again: the chunks are
    the unwrapped client's, in order, each once, and the stream is metered once, in full."""
    plain = openai.OpenAI(base_url=f"{emulator.url}/v1", api_key="k", max_retries=0)
    _open.append(plain)
    expected = [c.model_dump() for c in plain.chat.completions.create(**_stream_kwargs(False))]
    stream = _client(emulator).chat.completions.create(**_stream_kwargs(False))
    seen = []
    for chunk in stream:
        seen.append(chunk.model_dump())
        if len(seen) == 2:
            break
    seen.append(next(stream).model_dump())
    seen.append(next(iter(stream)).model_dump())
    seen += [c.model_dump() for c in stream]
    assert len(seen) == len(expected) > 4
    assert [c["choices"] for c in seen] == [c["choices"] for c in expected]
    _check_stream([], False, session, emulator)


def test_stream_left_after_a_break_is_recorded_once_when_dropped(
    emulator: ProviderEmulator, session: Session
) -> None:
    stream = _client(emulator).chat.completions.create(**_stream_kwargs(False))
    for _chunk in stream:
        break
    del stream  # no cycle holds it: dropped here, without a garbage collection
    (event,) = session.events(1)
    assert event["streamed"] is True
    assert event["success"] is True
    assert event["usage_source"] == "none"  # the usage chunk was never read: unknown, not 0


@pytest.mark.asyncio
@pytest.mark.parametrize("asked", [False, True], ids=["usage-hidden", "usage-asked"])
async def test_chat_stream_async(emulator: ProviderEmulator, session: Session, asked: bool) -> None:
    async with _client(emulator, aio=True) as client:
        stream = await client.chat.completions.create(**_stream_kwargs(asked))
        chunks = [chunk async for chunk in stream]
    _check_stream(chunks, asked, session, emulator)


def test_cached_prompt_tokens_are_their_own_bucket(
    emulator: ProviderEmulator, session: Session
) -> None:
    client = _client(emulator)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": LONG}])
    first, second = session.events(2)
    assert second["usage"]["cache_read_input_tokens"] > 0
    _assert_event(second, _chat_buckets(reported(emulator)))
    total = lambda e: sum(e["usage"][k] for k in ("input_tokens", "cache_read_input_tokens"))  # noqa: E731
    assert total(first) == total(second)  # the same prompt, split differently


def test_parse_and_stream_helper(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    parsed = client.chat.completions.parse(
        model="gpt-4o", messages=MESSAGES, response_format=Greeting
    )
    assert isinstance(parsed.choices[0].message.parsed, Greeting)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        events = list(stream)
    assert not [e for e in events if e.type == "chunk" and not e.chunk.choices]
    parse_event, stream_event = session.events(2)
    assert parse_event["operation"] == "chat"
    assert stream_event["streamed"] is True
    _assert_event(stream_event, _chat_buckets(reported(emulator)))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_responses(emulator: ProviderEmulator, session: Session, stream: bool) -> None:
    client = _client(emulator)
    result = client.responses.create(model="gpt-5", input="hello", stream=stream)
    if stream:
        list(result)
    (event,) = session.events(1)
    usage = reported(emulator)
    cached = usage["input_tokens_details"].get("cached_tokens", 0)
    reasoning = usage["output_tokens_details"]["reasoning_tokens"]
    _assert_event(
        event,
        {
            "input_tokens": usage["input_tokens"] - cached,
            "cache_read_input_tokens": cached,
            "output_tokens": usage["output_tokens"] - reasoning,
            "reasoning_tokens": reasoning,
        },
        operation="responses",
        streamed=stream,
    )


def test_completions_and_embeddings(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hello")
    completion_usage = reported(emulator)
    client.embeddings.create(model="text-embedding-3-small", input="hello world")
    embedding_usage = reported(emulator)
    completion, embedding = session.events(2)
    _assert_event(completion, _chat_buckets(completion_usage), operation="completion")
    _assert_event(embedding, {"input_tokens": embedding_usage["prompt_tokens"], "output_tokens": 0},
                  operation="embedding")  # fmt: skip


def _check_error(session: Session) -> None:
    (event,) = session.events(1)
    assert event["success"] is False
    assert event["http_status"] == 429
    assert event["error_type"] == "RateLimitError"
    assert event["usage_source"] == "none"


def test_provider_error_is_recorded_and_reraised_unchanged(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.fail_next(status=429)
    with pytest.raises(openai.RateLimitError):
        _client(emulator).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    _check_error(session)


@pytest.mark.asyncio
async def test_provider_error_async(emulator: ProviderEmulator, session: Session) -> None:
    emulator.fail_next(status=429)
    async with _client(emulator, aio=True) as client:
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    _check_error(session)


def test_stream_cut_midway_is_recorded_once(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    emulator.cut_next_stream(after_events=2)
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the SDK raises, unchanged
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    (event,) = session.events(1)
    assert event["success"] is False
    assert event["streamed"] is True


def test_abandoned_stream_is_recorded_when_collected(
    emulator: ProviderEmulator, session: Session
) -> None:
    import gc

    client = _client(emulator)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    (event,) = session.events(1)
    assert event["streamed"] is True
    assert event["success"] is True


def test_prompt_and_answer_never_leave_the_process(
    emulator: ProviderEmulator, session: Session
) -> None:
    from tokenline.schemas import AvroCodec

    secret = "the-launch-code-is-7421"
    client = _client(emulator)
    result = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": secret}]
    )
    answer = result.choices[0].message.content or ""
    (event,) = session.events(1)
    encoded = AvroCodec[Any]("tokenline.UsageEvent").encode(event)
    assert secret.encode() not in encoded
    assert answer
    assert answer.encode() not in encoded


def _check_azure_stream(chunks: list[Any], session: Session, emulator: ProviderEmulator) -> None:
    first = chunks[0]  # Azure's prompt-filter chunk reaches the caller as it came
    assert (first.id, first.model, first.choices) == ("", "", [])
    assert first.prompt_filter_results
    (event,) = session.events(1)
    _assert_event(
        event,
        _chat_buckets(reported(emulator)),
        provider="azure_openai",
        request_model="chat-prod",
        deployment="chat-prod",
        response_model="gpt-4o-2024-08-06",
        provider_request_id=chunks[1].id,
        streamed=True,
        success=True,
    )
    assert event["provider_request_id"].startswith("chatcmpl-")


@pytest.mark.parametrize("asked", [False, True], ids=["usage-hidden", "usage-asked"])
def test_azure_stream_model_and_id_come_after_the_prompt_filter_chunk(
    emulator: ProviderEmulator, session: Session, asked: bool
) -> None:
    kwargs = {**_stream_kwargs(asked), "model": "chat-prod"}
    chunks = list(_client(emulator, azure=True).chat.completions.create(**kwargs))
    _check_azure_stream(chunks, session, emulator)


@pytest.mark.asyncio
async def test_azure_stream_async(emulator: ProviderEmulator, session: Session) -> None:
    async with _client(emulator, azure=True, aio=True) as client:
        stream = await client.chat.completions.create(
            **{**_stream_kwargs(False), "model": "chat-prod"}
        )
        chunks = [chunk async for chunk in stream]
    _check_azure_stream(chunks, session, emulator)


def _check_usage_not_reported(session: Session, emulator: ProviderEmulator, **fields: Any) -> None:
    assert emulator.last_call.usage == {}  # the stream ended cleanly, without its usage
    assert emulator.last_call.completed
    (event,) = session.events(1)
    assert event["success"] is True
    assert event["streamed"] is True
    assert event["usage_source"] == "none"  # not "reported" with every bucket 0
    assert set(event["usage"].values()) <= {0, None}
    for name, value in fields.items():
        assert event[name] == value, name


@pytest.mark.parametrize("azure", [False, True], ids=["openai", "azure"])
@pytest.mark.parametrize("asked", [False, True], ids=["usage-hidden", "usage-asked"])
def test_chat_stream_ending_without_its_usage_chunk_reports_no_usage(
    emulator: ProviderEmulator, session: Session, asked: bool, azure: bool
) -> None:
    emulator.drop_next_usage()
    kwargs = {**_stream_kwargs(asked), "model": "chat-prod"} if azure else _stream_kwargs(asked)
    chunks = list(_client(emulator, azure=azure).chat.completions.create(**kwargs))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    model = "gpt-4o-2024-08-06" if azure else "o3-mini"
    _check_usage_not_reported(session, emulator, response_model=model)


@pytest.mark.asyncio
async def test_chat_stream_without_usage_async(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.drop_next_usage()
    async with _client(emulator, aio=True) as client:
        stream = await client.chat.completions.create(**_stream_kwargs(False))
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    _check_usage_not_reported(session, emulator, response_model="o3-mini")


def test_stream_helper_without_usage(emulator: ProviderEmulator, session: Session) -> None:
    emulator.drop_next_usage()
    client = _client(emulator)
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        assert stream.get_final_completion().usage is None
    _check_usage_not_reported(session, emulator, operation="chat", response_model="gpt-4o")


def test_completions_stream_without_usage(emulator: ProviderEmulator, session: Session) -> None:
    emulator.drop_next_usage()
    client = _client(emulator)
    list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stream=True))
    _check_usage_not_reported(session, emulator, operation="completion")


def test_responses_stream_ending_before_completed_reports_no_usage(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.drop_next_usage()
    events = list(_client(emulator).responses.create(model="gpt-5", input="hello", stream=True))
    assert events[-1].type == "response.output_item.done"  # no response.completed
    _check_usage_not_reported(session, emulator, operation="responses", response_model="gpt-5")


@pytest.mark.asyncio
async def test_responses_stream_without_usage_async(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.drop_next_usage()
    async with _client(emulator, aio=True) as client:
        stream = await client.responses.create(model="gpt-5", input="hello", stream=True)
        events = [event async for event in stream]
    assert events[-1].type == "response.output_item.done"
    _check_usage_not_reported(session, emulator, operation="responses", response_model="gpt-5")
