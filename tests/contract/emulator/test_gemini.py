"""The real google-genai client (sync and aio) against the emulator."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

MODEL = "gemini-2.5-flash"


def _usage(usage: types.GenerateContentResponseUsageMetadata | None) -> dict[str, Any]:
    assert usage is not None
    return usage.model_dump(mode="json", by_alias=True, exclude_none=True)


def _recorded(emulator: ProviderEmulator) -> dict[str, Any]:
    """The recorded usage in the SDK's alias spelling (camelCase) without detail lists."""
    return emulator.last_call.usage


def _same(sdk: types.GenerateContentResponseUsageMetadata | None, wire: dict[str, Any]) -> None:
    assert sdk is not None
    assert sdk.prompt_token_count == wire["promptTokenCount"]
    assert sdk.candidates_token_count == wire["candidatesTokenCount"]
    assert sdk.total_token_count == wire["totalTokenCount"]
    assert sdk.cached_content_token_count == wire.get("cachedContentTokenCount")
    assert sdk.thoughts_token_count == wire.get("thoughtsTokenCount")
    assert sdk.tool_use_prompt_token_count == wire.get("toolUsePromptTokenCount")


@pytest.fixture
def client(emulator: ProviderEmulator) -> Iterator[genai.Client]:
    with genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emulator.url)) as c:
        yield c


@pytest_asyncio.fixture
async def aclient(emulator: ProviderEmulator) -> AsyncIterator[genai.client.AsyncClient]:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emulator.url))
    async with client.aio as aio:
        yield aio
    client.close()


class Answer(BaseModel):
    title: str
    score: int


def test_generate_content_usage(client: genai.Client, emulator: ProviderEmulator) -> None:
    response = client.models.generate_content(model=MODEL, contents="Hello Gemini")
    call = emulator.last_call
    _same(response.usage_metadata, call.usage)
    assert (call.provider, call.route, call.model, call.streamed) == (
        "gemini",
        "generateContent",
        MODEL,
        False,
    )
    assert response.text


def test_thinking_and_tool_use_tokens_are_outside_candidates(
    client: genai.Client, emulator: ProviderEmulator
) -> None:
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=1024, include_thoughts=True),
        tools=[types.Tool(google_search=types.GoogleSearch())],
    )
    response = client.models.generate_content(model=MODEL, contents="Search", config=config)
    usage = response.usage_metadata
    assert usage is not None
    assert usage.thoughts_token_count == 64
    assert usage.tool_use_prompt_token_count == 32
    assert usage.total_token_count == (
        (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0) + 64 + 32
    )
    _same(usage, emulator.last_call.usage)
    parts = response.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts is not None
    assert parts[0].thought


def test_cached_content_is_inside_prompt(client: genai.Client, emulator: ProviderEmulator) -> None:
    config = types.GenerateContentConfig(cached_content="cachedContents/abc123")
    response = client.models.generate_content(model=MODEL, contents="Hi", config=config)
    usage = response.usage_metadata
    assert usage is not None
    assert usage.cached_content_token_count == 2048
    assert (usage.prompt_token_count or 0) > 2048
    _same(usage, emulator.last_call.usage)


def test_structured_output(client: genai.Client, emulator: ProviderEmulator) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=Answer
    )
    response = client.models.generate_content(model=MODEL, contents="Rate", config=config)
    assert isinstance(response.parsed, Answer)


def test_stream_usage_is_cumulative(client: genai.Client, emulator: ProviderEmulator) -> None:
    config = types.GenerateContentConfig(max_output_tokens=6)
    chunks = list(
        client.models.generate_content_stream(model=MODEL, contents="Count", config=config)
    )
    counts = [c.usage_metadata.candidates_token_count or 0 for c in chunks]  # type: ignore[union-attr]
    assert counts == sorted(counts)
    assert counts[-1] == 6
    _same(chunks[-1].usage_metadata, emulator.last_call.usage)
    assert emulator.last_call.streamed


def test_count_tokens(client: genai.Client, emulator: ProviderEmulator) -> None:
    counted = client.models.count_tokens(model=MODEL, contents="Hello Gemini")
    response = client.models.generate_content(model=MODEL, contents="Hello Gemini")
    assert response.usage_metadata is not None
    assert counted.total_tokens == response.usage_metadata.prompt_token_count


def test_injected_errors(client: genai.Client, emulator: ProviderEmulator) -> None:
    emulator.fail_next(status=429, provider="gemini")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="Hi")
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"
    emulator.fail_next(status=500)
    with pytest.raises(errors.ServerError) as server:
        client.models.generate_content(model=MODEL, contents="Hi")
    assert isinstance(server.value, errors.APIError)


def test_cut_stream_raises(client: genai.Client, emulator: ProviderEmulator) -> None:
    emulator.cut_next_stream(after_events=2)
    with pytest.raises(Exception, match="incomplete chunked read"):
        list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert emulator.last_call.completed is False


# google-genai's aio client subclasses aiohttp.ClientSession when aiohttp is installed, and
# aiohttp warns about that subclassing; the warning is the SDK's, not ours.
@pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)
@pytest.mark.asyncio
async def test_async_generate_and_stream(
    aclient: genai.client.AsyncClient, emulator: ProviderEmulator
) -> None:
    response = await aclient.models.generate_content(model=MODEL, contents="Hello")
    _same(response.usage_metadata, emulator.last_call.usage)
    stream = await aclient.models.generate_content_stream(model=MODEL, contents="Hello")
    chunks = [chunk async for chunk in stream]
    _same(chunks[-1].usage_metadata, emulator.last_call.usage)
    emulator.fail_next(status=503)
    with pytest.raises(errors.ServerError):
        await aclient.models.generate_content(model=MODEL, contents="Hello")


def test_vertex_ai_stream_sends_its_counts_on_the_last_chunk(emulator: ProviderEmulator) -> None:
    options = types.HttpOptions(base_url=emulator.url)  # express mode: an API key, no project
    with genai.Client(vertexai=True, api_key="k", http_options=options) as vertex:
        plain = vertex.models.generate_content(model=MODEL, contents="Hi")
        _same(plain.usage_metadata, _recorded(emulator))
        chunks = list(vertex.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert emulator.last_call.route == "streamGenerateContent"
    first, *middle, last = chunks
    assert first.usage_metadata is not None
    assert first.usage_metadata.model_dump(exclude_none=True) == {}
    assert middle
    assert all(c.usage_metadata is None for c in middle)
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    _same(last.usage_metadata, _recorded(emulator))


def test_vertex_ai_project_path(emulator: ProviderEmulator) -> None:
    # what a project-scoped client (vertexai=True, project, location) posts to
    path = f"/v1/projects/p/locations/us-central1/publishers/google/models/{MODEL}:generateContent"
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}).encode()
    request = urllib.request.Request(f"{emulator.url}{path}", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert payload["usageMetadata"] == _recorded(emulator)
    assert emulator.last_call.model == MODEL


def test_dropped_last_chunk_ends_the_stream_cleanly(
    client: genai.Client, emulator: ProviderEmulator
) -> None:
    emulator.drop_next_usage(provider="gemini")
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Hi"))
    assert all(c.candidates is not None and c.candidates[0].finish_reason is None for c in chunks)
    assert emulator.last_call.usage == {}


TEXTS = ["Embed this sentence.", "And this rather longer second sentence, please."]


def test_embed_content_gemini_api_batch(client: genai.Client, emulator: ProviderEmulator) -> None:
    config = types.EmbedContentConfig(output_dimensionality=8)
    response = client.models.embed_content(
        model="gemini-embedding-001", contents=TEXTS, config=config
    )
    call = emulator.last_call
    assert (call.provider, call.route, call.model) == (
        "gemini",
        "batchEmbedContents",
        "gemini-embedding-001",
    )
    assert response.embeddings is not None
    assert [len(e.values or []) for e in response.embeddings] == [8, 8]
    # the documented BatchEmbedContentsResponse carries no token count
    assert response.usage_metadata is None
    assert all(e.statistics is None for e in response.embeddings)


def test_embed_content_vertex_ai_predict_and_embed_content(emulator: ProviderEmulator) -> None:
    options = types.HttpOptions(base_url=emulator.url)
    with genai.Client(vertexai=True, api_key="k", http_options=options) as vertex:
        predicted = vertex.models.embed_content(model="text-embedding-005", contents=TEXTS)
        assert emulator.last_call.route == "predict"
        recorded = _recorded(emulator)
        embedded = vertex.models.embed_content(model="gemini-embedding-2", contents=TEXTS[1])
        assert emulator.last_call.route == "embedContent"
    assert predicted.embeddings is not None
    counts = [e.statistics.token_count for e in predicted.embeddings if e.statistics]
    assert len(counts) == 2
    # ceil(characters / 4) a text, the emulator's count, summed as the recorded prompt
    assert counts == [-(-len(t) // 4) for t in TEXTS]
    assert recorded["promptTokenCount"] == sum(counts)
    assert predicted.metadata is not None
    assert predicted.metadata.billable_character_count == sum(len(t) for t in TEXTS)
    assert embedded.embeddings is not None
    (single,) = embedded.embeddings
    assert single.statistics is not None
    assert single.statistics.token_count == -(-len(TEXTS[1]) // 4)
