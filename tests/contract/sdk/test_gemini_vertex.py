"""Gemini on Vertex AI through google-genai (``vertexai=True``): reported as ``vertex_ai``.

A project-scoped client (project, location and OAuth credentials, as on Google Cloud) against
the emulator's ``projects/…/publishers/google/models`` paths, wrapped and instrumented, sync
and ``aio``, plain and streamed, with context-cache reads; events read back from Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from tests.contract.sdk.conftest import Session, reported
from tokenline import sdk
from tokenline.emulator._gemini import CACHED_CONTENT_TOKENS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = [
    pytest.mark.contract,
    pytest.mark.filterwarnings(
        "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:\\s*All support for the `google.generativeai` package has ended:FutureWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:You are using a Python version .* which Google will stop supporting:FutureWarning"
    ),
]

MODEL = "gemini-2.5-pro"
CACHED = types.GenerateContentConfig(cached_content="projects/proj/locations/x/cachedContents/1")


@pytest.fixture
def bare(emulator: ProviderEmulator) -> Iterator[genai.Client]:
    with genai.Client(
        vertexai=True,
        project="proj",
        location="us-central1",
        credentials=Credentials(token="test"),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=emulator.url),
    ) as client:
        yield client


def _buckets(usage: dict[str, Any]) -> dict[str, int]:
    """Vertex AI's wire usage → the canonical buckets (cached inside the prompt count)."""
    cached = usage.get("cachedContentTokenCount", 0)
    return {
        "input_tokens": usage["promptTokenCount"] - cached,
        "cache_read_input_tokens": cached,
        "cache_write_input_tokens": 0,
        "output_tokens": usage["candidatesTokenCount"],
        "reasoning_tokens": usage.get("thoughtsTokenCount", 0),
        "provider_total_tokens": usage["totalTokenCount"],
    }


def _check(event: dict[str, Any], usage: dict[str, Any], *, streamed: bool) -> None:
    assert event["provider"] == "vertex_ai"
    assert event["request_model"] == MODEL
    assert event["operation"] == "chat"
    assert event["usage_source"] == "reported"
    assert event["streamed"] is streamed
    assert event["success"] is True
    assert {k: event["usage"][k] for k in _buckets(usage)} == _buckets(usage)


def test_generate_content_with_cache_reads(
    bare: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    sdk.wrap(bare).models.generate_content(model=MODEL, contents="Hi", config=CACHED)
    usage = reported(emulator)
    assert emulator.calls[-1].route == "generateContent"
    (event,) = session.events(1)
    _check(event, usage, streamed=False)
    assert event["usage"]["cache_read_input_tokens"] == CACHED_CONTENT_TOKENS
    assert event["usage"]["input_tokens"] == usage["promptTokenCount"] - CACHED_CONTENT_TOKENS


def test_generate_content_stream_with_cache_reads(
    bare: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    stream = sdk.wrap(bare).models.generate_content_stream(
        model=MODEL, contents="Count", config=CACHED
    )
    chunks = list(stream)
    assert chunks[0].usage_metadata is not None
    assert chunks[0].usage_metadata.prompt_token_count is None  # Vertex AI's shape
    (event,) = session.events(1)
    _check(event, reported(emulator), streamed=True)
    assert event["usage"]["cache_read_input_tokens"] == CACHED_CONTENT_TOKENS


@pytest.mark.asyncio
async def test_aio_generate_content_and_stream(
    bare: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    async with sdk.wrap(bare).aio as aio:
        await aio.models.generate_content(model=MODEL, contents="Hi")
        plain = reported(emulator)
        stream = await aio.models.generate_content_stream(model=MODEL, contents="Count")
        async for _ in stream:
            pass
        streamed = reported(emulator)
    first, second = session.events(2)
    _check(first, plain, streamed=False)
    _check(second, streamed, streamed=True)


def test_instrument_reports_a_bare_vertex_client_as_vertex_ai(
    bare: genai.Client, emulator: ProviderEmulator, session: Session
) -> None:
    with genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=emulator.url)
    ) as developer:
        sdk.instrument()
        try:
            bare.models.generate_content(model=MODEL, contents="Hi", config=CACHED)
            on_vertex = reported(emulator)
            developer.models.generate_content(model=MODEL, contents="Hi")
        finally:
            sdk.uninstrument()
    vertex_event, developer_event = session.events(2)
    _check(vertex_event, on_vertex, streamed=False)
    assert developer_event["provider"] == "gemini"
