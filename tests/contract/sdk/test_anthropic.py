"""Anthropic through wrap().

messages.create (plain and raw stream), the messages.stream helper, sync and async, ok and
error; caching with the 5m/1h write split, thinking; events read back from Kafka.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2
import pytest

from tests.contract.sdk.conftest import Session, reported
from tokenline import sdk
from tokenline.sdk.providers._anthropic import provider_of

if TYPE_CHECKING:
    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

MODEL = "claude-sonnet-4-6"
MESSAGES: list[Any] = [{"role": "user", "content": "Hello Claude"}]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
CACHED_SYSTEM: list[Any] = [
    {"type": "text", "text": "long policy " * 400, "cache_control": {"type": "ephemeral"}},
    {
        "type": "text",
        "text": "longer manual " * 300,
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    },
]

# instrument() imports every installed adapter, the Gemini ones included, whose SDKs warn on import
_GOOGLE_IMPORT_WARNINGS = (
    pytest.mark.filterwarnings(
        "ignore:\\s*All support for the `google.generativeai` package has ended:FutureWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:You are using a Python version .* which Google will stop supporting:FutureWarning"
    ),
)

_open: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Any:
    yield
    while _open:
        _open.pop().close()


def _client(emulator: ProviderEmulator, *, aio: bool = False) -> Any:
    cls: Any = anthropic.AsyncAnthropic if aio else anthropic.Anthropic
    client = cls(api_key="k", base_url=emulator.url, max_retries=0)
    if not aio:
        _open.append(client)
    return sdk.wrap(client, team="search")


def _buckets(usage: dict[str, Any]) -> dict[str, Any]:
    """What the event must hold, from the usage the emulator reported (Anthropic semantics)."""
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens", 0)
    split = usage.get("cache_creation") or {}
    return {
        "input_tokens": usage["input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "cache_write_input_tokens": usage["cache_creation_input_tokens"],
        "cache_write_5m_input_tokens": split.get("ephemeral_5m_input_tokens"),
        "cache_write_1h_input_tokens": split.get("ephemeral_1h_input_tokens"),
        "output_tokens": usage["output_tokens"] - thinking,
        "reasoning_tokens": thinking,
        "provider_total_tokens": None,
        "mismatch": None,
    }


def _check(event: dict[str, Any], emulator: ProviderEmulator, *, streamed: bool) -> None:
    assert event["usage"] == _buckets(reported(emulator))
    assert event["usage_source"] == "reported"
    assert event["tenant_id"] == "contract"
    assert event["team"] == "search"
    assert event["provider"] == "anthropic"
    assert event["operation"] == "chat"
    assert event["request_model"] == MODEL
    assert event["response_model"] == MODEL
    assert event["deployment"] is None
    assert event["streamed"] is streamed
    assert event["success"] is True
    assert event["http_status"] is None
    assert event["error_type"] is None
    assert event["provider_request_id"]
    if streamed:
        assert event["time_to_first_token_ms"] is not None


def test_create_plain(emulator: ProviderEmulator, session: Session) -> None:
    message = _client(emulator).messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert isinstance(message, anthropic.types.Message)
    (event,) = session.events(1)
    _check(event, emulator, streamed=False)
    assert event["usage"]["reasoning_tokens"] == 0


@pytest.mark.asyncio
async def test_create_plain_async(emulator: ProviderEmulator, session: Session) -> None:
    async with _client(emulator, aio=True) as client:
        message = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert isinstance(message, anthropic.types.Message)
    _check(session.events(1)[0], emulator, streamed=False)


def test_cache_writes_split_by_ttl_then_reads(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    kwargs: Any = {"model": MODEL, "max_tokens": 50, "system": CACHED_SYSTEM, "messages": MESSAGES}
    client.messages.create(**kwargs)
    written = reported(emulator)
    client.messages.create(**kwargs)
    first, second = session.events(2)
    assert first["usage"] == _buckets(written)
    assert first["usage"]["cache_write_5m_input_tokens"] > 0
    assert first["usage"]["cache_write_1h_input_tokens"] > 0
    assert first["usage"]["cache_read_input_tokens"] == 0
    _check(second, emulator, streamed=False)
    assert second["usage"]["cache_read_input_tokens"] == first["usage"]["cache_write_input_tokens"]
    assert second["usage"]["cache_write_input_tokens"] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_thinking_is_reasoning(emulator: ProviderEmulator, session: Session, stream: bool) -> None:
    result = _client(emulator).messages.create(
        model=MODEL, max_tokens=2000, thinking=THINKING, messages=MESSAGES, stream=stream
    )
    if stream:
        list(result)
    (event,) = session.events(1)
    _check(event, emulator, streamed=stream)
    assert event["usage"]["reasoning_tokens"] == 48
    assert event["usage"]["output_tokens"] > 0


def test_raw_stream_with_cache_split(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    events = list(
        client.messages.create(
            model=MODEL, max_tokens=100, system=CACHED_SYSTEM, messages=MESSAGES, stream=True
        )
    )
    assert events[0].type == "message_start"  # the caller's stream, unchanged
    assert events[-1].type == "message_stop"
    (event,) = session.events(1)
    _check(event, emulator, streamed=True)
    # the split comes from message_start; message_delta repeated (did not add) the inputs
    assert event["usage"]["cache_write_1h_input_tokens"] > 0


@pytest.mark.asyncio
async def test_raw_stream_async(emulator: ProviderEmulator, session: Session) -> None:
    async with _client(emulator, aio=True) as client:
        stream = await client.messages.create(
            model=MODEL, max_tokens=20, system=CACHED_SYSTEM, messages=MESSAGES, stream=True
        )
        kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start"
    _check(session.events(1)[0], emulator, streamed=True)


def test_stream_helper(emulator: ProviderEmulator, session: Session) -> None:
    with _client(emulator).messages.stream(
        model=MODEL, max_tokens=2000, thinking=THINKING, system=CACHED_SYSTEM, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[-1].text  # type: ignore[union-attr]
    (event,) = session.events(1)
    _check(event, emulator, streamed=True)
    assert event["usage"]["reasoning_tokens"] == final.usage.output_tokens_details.thinking_tokens  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_stream_helper_async(emulator: ProviderEmulator, session: Session) -> None:
    async with (
        _client(emulator, aio=True) as client,
        client.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream,
    ):
        final = await stream.get_final_message()
    assert final.usage.output_tokens > 0
    _check(session.events(1)[0], emulator, streamed=True)


def test_stream_helper_closed_early_is_recorded_once(
    emulator: ProviderEmulator, session: Session
) -> None:
    with _client(emulator).messages.stream(
        model=MODEL, max_tokens=100, messages=MESSAGES
    ) as stream:
        next(iter(stream))
    (event,) = session.events(1)
    assert event["streamed"] is True
    assert event["success"] is True
    assert event["usage"]["input_tokens"] == reported(emulator)["input_tokens"]


def test_raw_stream_closed_early_is_recorded_once(
    emulator: ProviderEmulator, session: Session
) -> None:
    stream = _client(emulator).messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    next(iter(stream))
    stream.close()
    stream.close()
    (event,) = session.events(1)
    assert event["streamed"] is True
    assert event["usage"]["input_tokens"] == reported(emulator)["input_tokens"]


def test_abandoned_stream_is_recorded_when_collected(
    emulator: ProviderEmulator, session: Session
) -> None:
    stream = _client(emulator).messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    next(iter(stream))
    del stream
    gc.collect()
    (event,) = session.events(1)
    assert event["streamed"] is True
    assert event["success"] is True


@pytest.mark.parametrize("helper", [False, True], ids=["raw", "helper"])
def test_stream_cut_midway_is_recorded_once(
    emulator: ProviderEmulator, session: Session, helper: bool
) -> None:
    client = _client(emulator)
    emulator.cut_next_stream(after_events=3)

    def consume() -> None:
        if helper:
            with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as s:
                s.until_done()
        else:
            list(
                client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
            )

    with pytest.raises(httpx2.RemoteProtocolError):  # unchanged: anthropic lets it through
        consume()
    (event,) = session.events(1)
    assert event["success"] is False
    assert event["streamed"] is True
    assert event["error_type"] == "RemoteProtocolError"


def _check_unfinished(event: dict[str, Any], input_tokens: int) -> None:
    assert event["success"] is True
    assert event["streamed"] is True
    assert event["usage_source"] == "none"  # the output count never came: not priced as known
    assert event["usage"]["input_tokens"] == input_tokens  # what message_start did report
    assert event["usage"]["mismatch"] == (
        "output_tokens not reported: the stream ended before message_delta"
    )
    assert event["response_model"] == MODEL


def test_raw_stream_ending_before_message_delta_reports_no_usage(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.drop_next_usage(provider="anthropic")
    events = list(
        _client(emulator).messages.create(
            model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
        )
    )
    assert "message_delta" not in {e.type for e in events}
    assert events[-1].type == "message_stop"  # ended cleanly
    assert emulator.last_call.usage == {}
    _check_unfinished(session.events(1)[0], events[0].message.usage.input_tokens)


@pytest.mark.asyncio
async def test_stream_helper_ending_before_message_delta_async(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.drop_next_usage(provider="anthropic")
    async with (
        _client(emulator, aio=True) as client,
        client.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream,
    ):
        final = await stream.get_final_message()
    _check_unfinished(session.events(1)[0], final.usage.input_tokens)


def test_raw_stream_closed_after_message_start_reports_no_usage(
    emulator: ProviderEmulator, session: Session
) -> None:
    stream = _client(emulator).messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
    )
    first = next(iter(stream))
    stream.close()
    _check_unfinished(session.events(1)[0], first.message.usage.input_tokens)


def _check_error(event: dict[str, Any], status: int, error_type: str) -> None:
    assert event["provider"] == "anthropic"
    assert event["request_model"] == MODEL
    assert event["success"] is False
    assert event["http_status"] == status
    assert event["error_type"] == error_type
    assert event["usage_source"] == "none"
    assert event["usage"]["input_tokens"] == 0


def test_provider_errors_are_recorded_and_reraised_unchanged(
    emulator: ProviderEmulator, session: Session
) -> None:
    client = _client(emulator)
    emulator.fail_next(status=429, provider="anthropic")
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "1"
    emulator.fail_next(status=529, provider="anthropic")
    with (
        pytest.raises(anthropic.OverloadedError),
        client.messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES),
    ):
        pass
    rate_limited, overloaded = session.events(2)
    _check_error(rate_limited, 429, "RateLimitError")
    _check_error(overloaded, 529, "OverloadedError")


@pytest.mark.asyncio
async def test_provider_error_async(emulator: ProviderEmulator, session: Session) -> None:
    emulator.fail_next(status=500, provider="anthropic")
    async with _client(emulator, aio=True) as client:
        with pytest.raises(anthropic.InternalServerError):
            await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    _check_error(session.events(1)[0], 500, "InternalServerError")


def test_count_tokens_is_not_metered(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    assert client.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens > 0
    client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    (event,) = session.events(1)  # only the billed call
    _check(event, emulator, streamed=False)


def test_beta_messages(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    client.beta.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    first = reported(emulator)
    with client.beta.messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES) as stream:
        stream.until_done()
    plain, streamed = session.events(2)
    assert plain["usage"] == _buckets(first)
    assert plain["streamed"] is False
    _check(streamed, emulator, streamed=True)


def test_provider_of_platform_clients() -> None:
    bedrock = anthropic.AnthropicBedrock(
        aws_region="us-east-1", aws_access_key="x", aws_secret_key="y"
    )
    vertex = anthropic.AnthropicVertex(region="us-east5", project_id="p", access_token="t")
    plain = anthropic.Anthropic(api_key="k")
    try:
        assert provider_of(bedrock) == "bedrock"
        assert provider_of(vertex) == "vertex_ai"
        assert provider_of(plain) == "anthropic"
    finally:
        for client in (bedrock, vertex, plain):
            client.close()


@_GOOGLE_IMPORT_WARNINGS[0]
@_GOOGLE_IMPORT_WARNINGS[1]
def test_instrument_meters_unwrapped_clients_once(
    emulator: ProviderEmulator, session: Session
) -> None:
    sdk.instrument()
    try:
        plain = anthropic.Anthropic(api_key="k", base_url=emulator.url, max_retries=0)
        _open.append(plain)
        plain.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
        first = reported(emulator)
        # through a wrapped client as well: still one event per call
        _client(emulator).messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    finally:
        sdk.uninstrument()
    instrumented, wrapped = session.events(2)
    assert instrumented["usage"] == _buckets(first)
    assert instrumented["provider"] == "anthropic"
    assert instrumented["request_model"] == MODEL
    assert instrumented["team"] is None
    assert wrapped["team"] == "search"
