"""Claude through the Anthropic SDK's cloud clients: AnthropicVertex and AnthropicBedrock.

Each is a real client against the emulator (Vertex AI's rawPredict/streamRawPredict paths,
Bedrock's invoke paths), wrapped or instrumented; events read back from Kafka. A Vertex client
is reported as ``vertex_ai`` with Vertex's model name, a Bedrock client as ``bedrock`` with the
Bedrock model id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anthropic
import pytest

from tests.contract.sdk.conftest import Session, reported
from tokenline import sdk

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

VERTEX_MODEL = "claude-sonnet-4-5@20250929"
BEDROCK_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
ANSWERED_MODEL = "claude-sonnet-4-5-20250929"  # both clouds answer with Anthropic's name
MESSAGES: list[Any] = [{"role": "user", "content": "Hello Claude"}]
CACHED_SYSTEM: list[Any] = [
    {"type": "text", "text": "long policy " * 400, "cache_control": {"type": "ephemeral"}},
]

_GOOGLE_IMPORT_WARNINGS = (
    pytest.mark.filterwarnings(
        "ignore:\\s*All support for the `google.generativeai` package has ended:FutureWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:You are using a Python version .* which Google will stop supporting:FutureWarning"
    ),
)


@pytest.fixture
def vertex(emulator: ProviderEmulator) -> Iterator[anthropic.AnthropicVertex]:
    client = anthropic.AnthropicVertex(
        region="us-east5",
        project_id="proj",
        access_token="test",
        base_url=f"{emulator.url}/v1",
        max_retries=0,
    )
    yield client
    client.close()


@pytest.fixture
def bedrock(emulator: ProviderEmulator) -> Iterator[anthropic.AnthropicBedrock]:
    client = anthropic.AnthropicBedrock(
        aws_region="us-east-1",
        aws_access_key="x",
        aws_secret_key="y",
        base_url=emulator.url,
        max_retries=0,
    )
    yield client
    client.close()


def _anthropic_buckets(usage: dict[str, Any]) -> dict[str, Any]:
    split = usage["cache_creation"]
    return {
        "input_tokens": usage["input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "cache_write_input_tokens": usage["cache_creation_input_tokens"],
        "cache_write_5m_input_tokens": split["ephemeral_5m_input_tokens"],
        "cache_write_1h_input_tokens": split["ephemeral_1h_input_tokens"],
        "output_tokens": usage["output_tokens"],
        "reasoning_tokens": 0,
        "provider_total_tokens": None,
        "mismatch": None,
    }


def _check(event: dict[str, Any], *, provider: str, request_model: str, streamed: bool) -> None:
    assert event["provider"] == provider
    assert event["request_model"] == request_model
    assert event["response_model"] == ANSWERED_MODEL
    assert event["operation"] == "chat"
    assert event["usage_source"] == "reported"
    assert event["streamed"] is streamed
    assert event["success"] is True
    assert event["team"] == "search"


def test_vertex_create_with_cache_reads(
    vertex: anthropic.AnthropicVertex, emulator: ProviderEmulator, session: Session
) -> None:
    client = sdk.wrap(vertex, team="search")
    kwargs: Any = {"model": VERTEX_MODEL, "max_tokens": 20, "messages": MESSAGES}
    client.messages.create(system=CACHED_SYSTEM, **kwargs)
    write = reported(emulator)
    client.messages.create(system=CACHED_SYSTEM, **kwargs)
    read = reported(emulator)
    assert emulator.calls[-1].route == "rawPredict"
    assert write["cache_creation_input_tokens"] > 0
    assert read["cache_read_input_tokens"] == write["cache_creation_input_tokens"]
    first, second = session.events(2)
    for event, usage in ((first, write), (second, read)):
        _check(event, provider="vertex_ai", request_model=VERTEX_MODEL, streamed=False)
        assert event["usage"] == _anthropic_buckets(usage)
    assert second["usage"]["cache_read_input_tokens"] == read["cache_read_input_tokens"]
    assert second["usage"]["cache_write_input_tokens"] == 0


def test_vertex_stream(
    vertex: anthropic.AnthropicVertex, emulator: ProviderEmulator, session: Session
) -> None:
    client = sdk.wrap(vertex, team="search")
    with client.messages.stream(model=VERTEX_MODEL, max_tokens=10, messages=MESSAGES) as stream:
        text = stream.get_final_text()
    assert text
    assert emulator.calls[-1].route == "streamRawPredict"
    (event,) = session.events(1)
    _check(event, provider="vertex_ai", request_model=VERTEX_MODEL, streamed=True)
    assert event["usage"] == _anthropic_buckets(reported(emulator))
    assert event["usage"]["output_tokens"] == 10


@pytest.mark.asyncio
async def test_async_vertex_raw_stream(emulator: ProviderEmulator, session: Session) -> None:
    bare = anthropic.AsyncAnthropicVertex(
        region="europe-west1",
        project_id="proj",
        access_token="test",
        base_url=f"{emulator.url}/v1",
        max_retries=0,
    )
    async with sdk.wrap(bare, team="search") as client:
        stream = await client.messages.create(
            model=VERTEX_MODEL, max_tokens=10, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass
    (event,) = session.events(1)
    _check(event, provider="vertex_ai", request_model=VERTEX_MODEL, streamed=True)
    assert event["usage"] == _anthropic_buckets(reported(emulator))


def test_bedrock_create(
    bedrock: anthropic.AnthropicBedrock, emulator: ProviderEmulator, session: Session
) -> None:
    sdk.wrap(bedrock, team="search").messages.create(
        model=BEDROCK_MODEL, max_tokens=10, messages=MESSAGES
    )
    call = emulator.calls[-1]
    assert (call.route, call.model) == ("invoke_model", BEDROCK_MODEL)
    (event,) = session.events(1)
    _check(event, provider="bedrock", request_model=BEDROCK_MODEL, streamed=False)
    assert event["usage"]["input_tokens"] == call.usage["input_token_count"]
    assert event["usage"]["output_tokens"] == call.usage["output_token_count"] == 10


def test_bedrock_stream(
    bedrock: anthropic.AnthropicBedrock, emulator: ProviderEmulator, session: Session
) -> None:
    client = sdk.wrap(bedrock, team="search")
    with client.messages.stream(model=BEDROCK_MODEL, max_tokens=10, messages=MESSAGES) as stream:
        stream.until_done()
    call = emulator.calls[-1]
    assert call.route == "invoke_model_with_response_stream"
    (event,) = session.events(1)
    _check(event, provider="bedrock", request_model=BEDROCK_MODEL, streamed=True)
    assert event["usage"]["output_tokens"] == call.usage["output_token_count"] == 10


@_GOOGLE_IMPORT_WARNINGS[0]
@_GOOGLE_IMPORT_WARNINGS[1]
def test_instrument_reports_each_cloud_as_its_provider(
    vertex: anthropic.AnthropicVertex,
    bedrock: anthropic.AnthropicBedrock,
    session: Session,
) -> None:
    sdk.instrument()
    try:
        with sdk.context(team="search"):
            vertex.messages.create(model=VERTEX_MODEL, max_tokens=10, messages=MESSAGES)
            bedrock.messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=MESSAGES)
    finally:
        sdk.uninstrument()
    on_vertex, on_bedrock = session.events(2)
    _check(on_vertex, provider="vertex_ai", request_model=VERTEX_MODEL, streamed=False)
    _check(on_bedrock, provider="bedrock", request_model=BEDROCK_MODEL, streamed=False)


@_GOOGLE_IMPORT_WARNINGS[0]
@_GOOGLE_IMPORT_WARNINGS[1]
def test_instrument_reaches_each_clouds_beta_messages(
    vertex: anthropic.AnthropicVertex,
    bedrock: anthropic.AnthropicBedrock,
    session: Session,
) -> None:
    sdk.instrument()
    try:
        with sdk.context(team="search"):
            vertex.beta.messages.create(model=VERTEX_MODEL, max_tokens=10, messages=MESSAGES)
            bedrock.beta.messages.create(model=BEDROCK_MODEL, max_tokens=10, messages=MESSAGES)
    finally:
        sdk.uninstrument()
    on_vertex, on_bedrock = session.events(2)
    _check(on_vertex, provider="vertex_ai", request_model=VERTEX_MODEL, streamed=False)
    _check(on_bedrock, provider="bedrock", request_model=BEDROCK_MODEL, streamed=False)


def test_wrap_meters_each_clouds_beta_messages_once(
    vertex: anthropic.AnthropicVertex,
    bedrock: anthropic.AnthropicBedrock,
    session: Session,
) -> None:
    sdk.wrap(vertex, team="search").beta.messages.create(
        model=VERTEX_MODEL, max_tokens=10, messages=MESSAGES
    )
    sdk.wrap(bedrock, team="search").beta.messages.create(
        model=BEDROCK_MODEL, max_tokens=10, messages=MESSAGES
    )
    on_vertex, on_bedrock = session.events(2)
    _check(on_vertex, provider="vertex_ai", request_model=VERTEX_MODEL, streamed=False)
    _check(on_bedrock, provider="bedrock", request_model=BEDROCK_MODEL, streamed=False)
