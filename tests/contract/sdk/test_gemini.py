"""Google Gemini through wrap() and instrument(): google-genai and the legacy google-generativeai.

Every call, sync and async, plain and streamed, ok and error; events read back from Kafka and
checked field by field against what the emulator reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from google import genai
from google.genai import errors, types

from tests.contract.sdk.conftest import Session, reported
from tokenline import sdk
from tokenline.emulator._gemini import CACHED_CONTENT_TOKENS, TOOL_USE_PROMPT_TOKENS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = [
    pytest.mark.contract,
    # google-genai's aio client subclasses aiohttp.ClientSession; aiohttp warns about that.
    pytest.mark.filterwarnings(
        "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
    ),
    # google.generativeai announces its end of support at import time, and the google.api_core
    # it imports warns about the Python version's support window.
    pytest.mark.filterwarnings(
        "ignore:\\s*All support for the `google.generativeai` package has ended:FutureWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:You are using a Python version .* which Google will stop supporting:FutureWarning"
    ),
]

MODEL = "gemini-2.5-flash"
LEGACY_MODEL = "gemini-1.5-flash"
NO_RETRY: dict[str, Any] = {"retry": None}


# ---------------------------------------------------------------------------------- helpers
def _buckets(usage: dict[str, Any]) -> dict[str, int]:
    """Gemini's wire usage → the canonical buckets, computed independently of the adapter."""
    prompt = usage["promptTokenCount"]
    cached = usage.get("cachedContentTokenCount", 0)
    tool_use = usage.get("toolUsePromptTokenCount", 0)
    return {
        "input_tokens": prompt - cached + tool_use,
        "cache_read_input_tokens": cached,
        "cache_write_input_tokens": 0,
        "output_tokens": usage["candidatesTokenCount"],
        "reasoning_tokens": usage.get("thoughtsTokenCount", 0),
        "provider_total_tokens": usage["totalTokenCount"],
    }


def _check(event: dict[str, Any], usage: dict[str, Any], **fields: Any) -> None:
    assert {k: event["usage"][k] for k in _buckets(usage)} == _buckets(usage)
    assert event["usage"]["mismatch"] is None
    assert event["usage"]["cache_write_5m_input_tokens"] is None
    assert event["usage"]["cache_write_1h_input_tokens"] is None
    assert event["usage_source"] == "reported"
    assert event["provider"] == fields.pop("provider", "gemini")
    assert event["tenant_id"] == "contract"
    assert event["success"] is True
    assert event["http_status"] is None
    assert event["error_type"] is None
    assert event["error_message"] is None
    for name, value in fields.items():
        assert event[name] == value, name


def _check_failed(
    event: dict[str, Any], *, error: type[Exception], status: int | None, **fields: Any
) -> None:
    assert event["provider"] == "gemini"
    assert event["success"] is False
    assert event["error_type"] == error.__name__
    assert event["http_status"] == status
    for name, value in fields.items():
        assert event[name] == value, name


# ------------------------------------------------------------------------------ google-genai
@pytest.fixture
def bare(emulator: ProviderEmulator) -> Iterator[genai.Client]:
    with genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emulator.url)) as c:
        yield c


@pytest.fixture
def client(bare: genai.Client) -> genai.Client:
    return sdk.wrap(bare, team="search")


@pytest_asyncio.fixture
async def aclient(client: genai.Client) -> AsyncIterator[genai.client.AsyncClient]:
    async with client.aio as aio:
        yield aio


def _check_generate(event: dict[str, Any], emulator: ProviderEmulator, response: Any) -> None:
    assert response.response_id
    _check(
        event,
        reported(emulator),
        operation="chat",
        request_model=MODEL,
        response_model=response.model_version,
        provider_request_id=response.response_id,
        streamed=False,
        team="search",
    )


def test_generate_content(
    client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    response = client.models.generate_content(model=MODEL, contents="Hello Gemini")
    assert isinstance(response, types.GenerateContentResponse)
    assert response.text
    _check_generate(session.events(1)[0], emulator, response)


@pytest.mark.asyncio
async def test_generate_content_async(
    aclient: genai.client.AsyncClient, emulator: ProviderEmulator, session: Session
) -> None:
    response = await aclient.models.generate_content(model=MODEL, contents="Hello Gemini")
    assert isinstance(response, types.GenerateContentResponse)
    _check_generate(session.events(1)[0], emulator, response)


def _check_stream(chunks: list[Any], emulator: ProviderEmulator, session: Session) -> None:
    assert len(chunks) == 6  # the caller sees every chunk
    counts = [c.usage_metadata.candidates_token_count for c in chunks]
    assert counts == [1, 2, 3, 4, 5, 6]  # cumulative: summing would give 21
    (event,) = session.events(1)
    _check(
        event,
        reported(emulator),
        operation="chat",
        request_model=MODEL,
        response_model=chunks[-1].model_version,
        provider_request_id=chunks[-1].response_id,
        streamed=True,
    )
    assert event["usage"]["output_tokens"] == 6
    assert event["time_to_first_token_ms"] is not None


STREAM_CONFIG = types.GenerateContentConfig(max_output_tokens=6)


def test_generate_content_stream(
    client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    stream = client.models.generate_content_stream(
        model=MODEL, contents="Count", config=STREAM_CONFIG
    )
    _check_stream(list(stream), emulator, session)


@pytest.mark.asyncio
async def test_generate_content_stream_async(
    aclient: genai.client.AsyncClient, emulator: ProviderEmulator, session: Session
) -> None:
    stream = await aclient.models.generate_content_stream(
        model=MODEL, contents="Count", config=STREAM_CONFIG
    )
    _check_stream([chunk async for chunk in stream], emulator, session)


@pytest.fixture
def vertex(emulator: ProviderEmulator) -> Iterator[genai.Client]:
    """A Vertex AI client (express mode: an API key, no project), wrapped."""
    options = types.HttpOptions(base_url=emulator.url)
    with genai.Client(vertexai=True, api_key="k", http_options=options) as c:
        yield sdk.wrap(c, team="search")


def test_vertex_stream_counts_come_on_its_last_chunk(
    vertex: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    chunks = list(
        vertex.models.generate_content_stream(model=MODEL, contents="Count", config=STREAM_CONFIG)
    )
    assert chunks[0].usage_metadata is not None  # Vertex AI's empty first usage
    assert chunks[0].usage_metadata.prompt_token_count is None
    assert [c.usage_metadata for c in chunks[1:-1]] == [None] * (len(chunks) - 2)
    (event,) = session.events(1)
    _check(
        event,
        reported(emulator),
        provider="vertex_ai",
        streamed=True,
        request_model=MODEL,
        team="search",
    )
    assert event["usage"]["output_tokens"] == 6


@pytest.mark.asyncio
async def test_vertex_stream_ending_before_its_counts_reports_no_usage(
    vertex: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    emulator.drop_next_usage(provider="gemini")
    async with vertex.aio as aio:
        stream = await aio.models.generate_content_stream(
            model=MODEL, contents="Count", config=STREAM_CONFIG
        )
        chunks = [chunk async for chunk in stream]
    assert all(c.candidates[0].finish_reason is None for c in chunks)  # ended cleanly, early
    assert emulator.last_call.usage == {}
    (event,) = session.events(1)
    assert event["success"] is True
    assert event["usage_source"] == "none"  # not "reported" zeros from the empty first usage
    assert set(event["usage"].values()) <= {0, None}


THINK_AND_SEARCH = types.GenerateContentConfig(
    thinking_config=types.ThinkingConfig(thinking_budget=1024, include_thoughts=True),
    tools=[types.Tool(google_search=types.GoogleSearch())],
)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_thinking_is_reasoning_and_tool_use_prompt_is_input(
    client: genai.Client, emulator: ProviderEmulator, session: Session, stream: bool
) -> None:
    if stream:
        list(
            client.models.generate_content_stream(
                model=MODEL, contents="Search", config=THINK_AND_SEARCH
            )
        )
    else:
        client.models.generate_content(model=MODEL, contents="Search", config=THINK_AND_SEARCH)
    (event,) = session.events(1)
    usage = reported(emulator)
    assert usage["thoughtsTokenCount"] == 64
    assert usage["toolUsePromptTokenCount"] == TOOL_USE_PROMPT_TOKENS
    _check(event, usage, streamed=stream)
    assert event["usage"]["reasoning_tokens"] == 64
    assert event["usage"]["output_tokens"] == usage["candidatesTokenCount"]  # thoughts excluded
    assert event["usage"]["input_tokens"] == usage["promptTokenCount"] + TOOL_USE_PROMPT_TOKENS


@pytest.mark.asyncio
async def test_thinking_and_tool_use_async_stream(
    aclient: genai.client.AsyncClient, emulator: ProviderEmulator, session: Session
) -> None:
    stream = await aclient.models.generate_content_stream(
        model=MODEL, contents="Search", config=THINK_AND_SEARCH
    )
    async for _ in stream:
        pass
    (event,) = session.events(1)
    _check(event, reported(emulator), streamed=True)
    assert event["usage"]["reasoning_tokens"] == 64


def test_cached_content_is_its_own_bucket(
    client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    config = types.GenerateContentConfig(cached_content="cachedContents/abc123")
    client.models.generate_content(model=MODEL, contents="Hi", config=config)
    usage = reported(emulator)
    client.models.generate_content(model=MODEL, contents="Hi")
    cached, plain = session.events(2)
    _check(cached, usage)
    assert cached["usage"]["cache_read_input_tokens"] == CACHED_CONTENT_TOKENS
    assert cached["usage"]["input_tokens"] == usage["promptTokenCount"] - CACHED_CONTENT_TOKENS
    assert cached["usage"]["input_tokens"] == plain["usage"]["input_tokens"]  # same prompt
    assert plain["usage"]["cache_read_input_tokens"] == 0


def _generate(client: genai.Client, *, stream: bool) -> None:
    if stream:
        list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    else:
        client.models.generate_content(model=MODEL, contents="Hi")


async def _generate_async(aclient: genai.client.AsyncClient, *, stream: bool) -> None:
    if stream:
        async for _ in await aclient.models.generate_content_stream(model=MODEL, contents="Hi"):
            pass
    else:
        await aclient.models.generate_content(model=MODEL, contents="Hi")


ERRORS = [(429, errors.ClientError), (500, errors.ServerError)]
ERROR_IDS = ["429", "500"]


@pytest.mark.parametrize(("status", "error"), ERRORS, ids=ERROR_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_provider_errors_are_recorded_and_reraised(
    client: genai.Client,
    emulator: ProviderEmulator,
    session: Session,
    status: int,
    error: type[Exception],
    stream: bool,
) -> None:
    emulator.fail_next(status=status, provider="gemini")
    with pytest.raises(error) as info:
        _generate(client, stream=stream)
    assert type(info.value) is error
    assert info.value.code == status  # type: ignore[attr-defined]
    (event,) = session.events(1)
    _check_failed(
        event, error=error, status=status, streamed=stream, request_model=MODEL, operation="chat"
    )
    assert event["usage_source"] == "none"


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "error"), ERRORS, ids=ERROR_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_provider_errors_async(
    aclient: genai.client.AsyncClient,
    emulator: ProviderEmulator,
    session: Session,
    status: int,
    error: type[Exception],
    stream: bool,
) -> None:
    emulator.fail_next(status=status, provider="gemini")
    with pytest.raises(error) as info:
        await _generate_async(aclient, stream=stream)
    assert type(info.value) is error
    (event,) = session.events(1)
    _check_failed(event, error=error, status=status, streamed=stream, request_model=MODEL)


def test_stream_cut_midway_is_one_failed_event(
    bare: genai.Client, client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    emulator.cut_next_stream(after_events=2)
    with pytest.raises(Exception) as unwrapped:  # noqa: PT011 - what the SDK raises, unwrapped
        list(bare.models.generate_content_stream(model=MODEL, contents="Hi"))
    emulator.cut_next_stream(after_events=2)
    seen: list[Any] = []
    with pytest.raises(type(unwrapped.value), match="incomplete chunked read"):
        seen.extend(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert len(seen) == 2
    (event,) = session.events(1)
    _check_failed(event, error=type(unwrapped.value), status=None, streamed=True)
    # the usage the provider reported before the cut is kept
    assert event["usage"]["output_tokens"] == seen[-1].usage_metadata.candidates_token_count


@pytest.mark.asyncio
async def test_stream_cut_midway_async(
    aclient: genai.client.AsyncClient, emulator: ProviderEmulator, session: Session
) -> None:
    emulator.cut_next_stream(after_events=2)
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the SDK raises, unchanged
        async for _ in await aclient.models.generate_content_stream(model=MODEL, contents="Hi"):
            pass
    (event,) = session.events(1)
    assert event["success"] is False
    assert event["streamed"] is True


def test_abandoned_stream_is_recorded_when_closed(
    client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    stream = client.models.generate_content_stream(
        model=MODEL, contents="Count", config=STREAM_CONFIG
    )
    first: Any = next(iter(stream))
    stream.close()  # type: ignore[attr-defined]
    (event,) = session.events(1)
    assert event["success"] is True
    assert event["streamed"] is True
    assert event["usage"]["output_tokens"] == first.usage_metadata.candidates_token_count


def test_abandoned_stream_is_recorded_when_collected(
    client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    import gc

    stream = client.models.generate_content_stream(
        model=MODEL, contents="Count", config=STREAM_CONFIG
    )
    next(iter(stream))
    del stream
    gc.collect()
    (event,) = session.events(1)
    assert event["success"] is True
    assert event["streamed"] is True
    assert event["usage_source"] == "reported"


def test_vertex_ai_clients_are_vertex_ai() -> None:
    from tokenline.sdk.providers import adapter_for

    vertex = genai.Client(vertexai=True, project="p", location="us-central1", credentials=None)
    developer = genai.Client(api_key="k")
    try:
        adapter = adapter_for(vertex)
        for surface in (vertex, vertex.aio, vertex.models, vertex.aio.models):
            assert adapter.provider_of(surface) == "vertex_ai"
        for surface in (developer, developer.aio, developer.models, developer.aio.models):
            assert adapter.provider_of(surface) == "gemini"
        assert "models.generate_content" in adapter.methods_for(vertex)
    finally:
        vertex.close()
        developer.close()


def test_chat_messages_are_metered_once_each(
    client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    chat = client.chats.create(model=MODEL)
    chat.send_message("Hi")
    first = reported(emulator)
    chat.send_message("And again")
    second = reported(emulator)
    chunks = list(chat.send_message_stream("Stream it"))
    third = reported(emulator)
    assert len(emulator.calls) == 3
    events = session.events(3)
    for event, usage, streamed in zip(
        events, (first, second, third), (False, False, True), strict=True
    ):
        _check(event, usage, operation="chat", request_model=MODEL, streamed=streamed)
    assert events[1]["usage"]["input_tokens"] > events[0]["usage"]["input_tokens"]  # history
    assert events[2]["provider_request_id"] == chunks[-1].response_id


@pytest.mark.asyncio
async def test_chat_async(
    aclient: genai.client.AsyncClient, emulator: ProviderEmulator, session: Session
) -> None:
    chat = aclient.chats.create(model=MODEL)
    await chat.send_message("Hi")
    first = reported(emulator)
    async for _ in await chat.send_message_stream("Stream it"):
        pass
    second = reported(emulator)
    plain, streamed = session.events(2)
    _check(plain, first, streamed=False, request_model=MODEL)
    _check(streamed, second, streamed=True, request_model=MODEL)


def test_embed_content_failure_is_an_embedding_event(
    client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    emulator.fail_next(status=404, provider="gemini")
    with pytest.raises(errors.ClientError):
        client.models.embed_content(model="text-embedding-004", contents="hello")
    (event,) = session.events(1)
    _check_failed(
        event,
        error=errors.ClientError,
        status=404,
        operation="embedding",
        request_model="text-embedding-004",
    )


def test_embed_content_against_the_emulator(
    client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    # the Gemini API's batchEmbedContents reports no count: usage_source "none"
    client.models.embed_content(model="gemini-embedding-001", contents=["one", "two words"])
    options = types.HttpOptions(base_url=emulator.url)
    with genai.Client(vertexai=True, api_key="k", http_options=options) as bare_vertex:
        vertex = sdk.wrap(bare_vertex)
        response = vertex.models.embed_content(model="text-embedding-005", contents=["a", "bc d"])
    assert response.embeddings is not None
    counts = [int(e.statistics.token_count or 0) for e in response.embeddings if e.statistics]
    gemini_event, vertex_event = session.events(2)
    for event, provider in ((gemini_event, "gemini"), (vertex_event, "vertex_ai")):
        assert (event["provider"], event["operation"], event["success"]) == (
            provider,
            "embedding",
            True,
        )
    assert gemini_event["usage_source"] == "none"
    assert gemini_event["usage"]["input_tokens"] == 0
    assert vertex_event["usage_source"] == "reported"
    assert len(counts) == 2
    assert vertex_event["usage"]["input_tokens"] == sum(counts) > 0
    assert vertex_event["usage"]["output_tokens"] == 0
    assert vertex_event["usage"]["mismatch"] is None


def test_embed_content_usage() -> None:
    from tokenline.sdk._call import Call
    from tokenline.sdk.providers._genai import EMBED

    gemini_api = types.EmbedContentResponse(
        usage_metadata=types.UsageMetadata(prompt_token_count=7, total_token_count=7)
    )
    vertex = types.EmbedContentResponse(
        embeddings=[
            types.ContentEmbedding(
                values=[0.1], statistics=types.ContentEmbeddingStatistics(token_count=3.0)
            ),
            types.ContentEmbedding(
                values=[0.2], statistics=types.ContentEmbeddingStatistics(token_count=4.0)
            ),
        ]
    )
    for response, tokens in ((gemini_api, 7), (vertex, 7)):
        call = Call(provider="gemini", operation="embedding")
        EMBED.finish(call, response)
        assert call.usage is not None
        assert call.usage["input_tokens"] == tokens
        assert call.usage["mismatch"] is None
        assert call.usage_source == "reported"
    call = Call(provider="gemini", operation="embedding")
    EMBED.finish(call, types.EmbedContentResponse(embeddings=[types.ContentEmbedding()]))
    assert call.usage is None


def test_instrument_meters_bare_clients_and_counts_wrapped_calls_once(
    bare: genai.Client, client: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    sdk.instrument()
    try:
        bare.models.generate_content(model=MODEL, contents="bare")
        bare_usage = reported(emulator)
        client.models.generate_content(model=MODEL, contents="wrapped")
        wrapped_usage = reported(emulator)
        list(bare.models.generate_content_stream(model=MODEL, contents="stream"))
        stream_usage = reported(emulator)
    finally:
        sdk.uninstrument()
    bare_event, wrapped_event, stream_event = session.events(3)
    _check(bare_event, bare_usage, request_model=MODEL, streamed=False, team=None)
    _check(wrapped_event, wrapped_usage, request_model=MODEL, team="search")
    _check(stream_event, stream_usage, request_model=MODEL, streamed=True)


# ---------------------------------------------------------------------- google-generativeai
class _AsyncOverRest:
    """The legacy package's async client does not work over REST; this one runs the REST
    client's calls in coroutines, so generate_content_async reaches the emulator."""

    def __init__(self, sync_client: Any) -> None:
        self._sync = sync_client

    async def generate_content(self, request: Any, **options: Any) -> Any:
        return self._sync.generate_content(request, **options)

    async def stream_generate_content(self, request: Any, **options: Any) -> Any:
        chunks = self._sync.stream_generate_content(request, **options)

        async def iterate() -> Any:
            for chunk in chunks:
                yield chunk

        return iterate()


@pytest.fixture
def legacy(emulator: ProviderEmulator) -> Any:
    import google.generativeai

    legacy_genai: Any = google.generativeai
    legacy_genai.configure(
        api_key="k", transport="rest", client_options={"api_endpoint": emulator.url}
    )
    return legacy_genai


def _legacy_model(legacy: Any, **kwargs: Any) -> Any:
    from google.generativeai import client as legacy_client

    model = legacy.GenerativeModel(f"models/{LEGACY_MODEL}", **kwargs)
    model._async_client = _AsyncOverRest(legacy_client.get_default_generative_client())
    return model


def _check_legacy(event: dict[str, Any], usage: dict[str, Any], streamed: bool) -> None:
    _check(
        event,
        usage,
        operation="chat",
        request_model=LEGACY_MODEL,  # "models/" stripped
        response_model=LEGACY_MODEL,
        provider_request_id=None,
        streamed=streamed,
        team="legacy",
    )


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_legacy_generate_content(
    legacy: Any, emulator: ProviderEmulator, session: Session, stream: bool
) -> None:
    model = sdk.wrap(
        _legacy_model(legacy, generation_config={"max_output_tokens": 4}), team="legacy"
    )
    response = model.generate_content("Hello legacy", stream=stream, request_options=NO_RETRY)
    if stream:
        counts = [chunk.usage_metadata.candidates_token_count for chunk in response]
        assert counts == [1, 2, 3, 4]
    assert response.text
    (event,) = session.events(1)
    _check_legacy(event, reported(emulator), stream)
    assert event["usage"]["output_tokens"] == 4


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_legacy_generate_content_async(
    legacy: Any, emulator: ProviderEmulator, session: Session, stream: bool
) -> None:
    model = sdk.wrap(
        _legacy_model(legacy, generation_config={"max_output_tokens": 4}), team="legacy"
    )
    response = await model.generate_content_async("Hello", stream=stream, request_options=NO_RETRY)
    if stream:
        counts = [chunk.usage_metadata.candidates_token_count async for chunk in response]
        assert counts == [1, 2, 3, 4]
    (event,) = session.events(1)
    _check_legacy(event, reported(emulator), stream)


def test_legacy_stream_resolved_without_iterating(
    legacy: Any, emulator: ProviderEmulator, session: Session
) -> None:
    import gc

    model = sdk.wrap(_legacy_model(legacy), team="legacy")
    response = model.generate_content("Hello", stream=True, request_options=NO_RETRY)
    response.resolve()
    assert response.text
    del response
    gc.collect()
    (event,) = session.events(1)
    _check_legacy(event, reported(emulator), streamed=True)


@pytest.mark.parametrize("instrumented", [False, True], ids=["wrap", "wrap+instrument"])
def test_legacy_chat_is_metered_once_per_message(
    legacy: Any, emulator: ProviderEmulator, session: Session, instrumented: bool
) -> None:
    model = sdk.wrap(_legacy_model(legacy), team="legacy")
    if instrumented:
        sdk.instrument()
    try:
        chat = model.start_chat()
        assert chat.model is model  # the session holds the wrapped model
        chat.send_message("Hi", request_options=NO_RETRY)
        first = reported(emulator)
        chat.send_message("And again", request_options=NO_RETRY)
        second = reported(emulator)
        for _ in chat.send_message("Stream it", stream=True, request_options=NO_RETRY):
            pass
        third = reported(emulator)
    finally:
        if instrumented:
            sdk.uninstrument()
    assert len(chat.history) == 6
    assert len(emulator.calls) == 3
    events = session.events(3)
    for event, usage, streamed in zip(
        events, (first, second, third), (False, False, True), strict=True
    ):
        _check_legacy(event, usage, streamed)


def test_legacy_instrument_meters_a_bare_model_and_its_chat(
    legacy: Any, emulator: ProviderEmulator, session: Session
) -> None:
    sdk.instrument()
    try:
        model = _legacy_model(legacy)
        model.generate_content("Hi", request_options=NO_RETRY)
        first = reported(emulator)
        model.start_chat().send_message("Hello", request_options=NO_RETRY)
        second = reported(emulator)
    finally:
        sdk.uninstrument()
    events = session.events(2)
    for event, usage in zip(events, (first, second), strict=True):
        # without the instance, instrument() knows the model only from the response
        _check(event, usage, request_model=None, response_model=LEGACY_MODEL, team=None)


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_legacy_provider_errors(
    legacy: Any, emulator: ProviderEmulator, session: Session, status: int, stream: bool
) -> None:
    from google.api_core import exceptions

    error = exceptions.TooManyRequests if status == 429 else exceptions.InternalServerError
    model = sdk.wrap(_legacy_model(legacy), team="legacy")
    emulator.fail_next(status=status, provider="gemini")
    with pytest.raises(error):
        model.generate_content("Hi", stream=stream, request_options=NO_RETRY)
    (event,) = session.events(1)
    # the legacy stream asks for its first chunk inside generate_content: the call fails there
    _check_failed(event, error=error, status=status, streamed=stream, request_model=LEGACY_MODEL)


@pytest.mark.asyncio
async def test_legacy_provider_error_async(
    legacy: Any, emulator: ProviderEmulator, session: Session
) -> None:
    from google.api_core import exceptions

    model = sdk.wrap(_legacy_model(legacy), team="legacy")
    emulator.fail_next(status=429, provider="gemini")
    with pytest.raises(exceptions.TooManyRequests):
        await model.generate_content_async("Hi", request_options=NO_RETRY)
    (event,) = session.events(1)
    _check_failed(event, error=exceptions.TooManyRequests, status=429, request_model=LEGACY_MODEL)


def test_legacy_stream_cut_midway(
    legacy: Any, emulator: ProviderEmulator, session: Session
) -> None:
    import requests

    model = sdk.wrap(_legacy_model(legacy), team="legacy")
    emulator.cut_next_stream(after_events=2)
    response = model.generate_content("Hi", stream=True, request_options=NO_RETRY)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for _ in response:
            pass
    (event,) = session.events(1)
    _check_failed(
        event,
        error=requests.exceptions.ChunkedEncodingError,
        status=None,
        streamed=True,
        request_model=LEGACY_MODEL,
    )
