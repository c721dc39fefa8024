"""AWS Bedrock (boto3 bedrock-runtime) through wrap().

converse, converse_stream, invoke_model and invoke_model_with_response_stream, for Anthropic,
Meta, Amazon (Nova, Titan) and Mistral bodies, with inference-profile ids and ARNs; ok and
error; events read back from Kafka. boto3 is sync only.
"""

from __future__ import annotations

import gc
import json
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
import pytest
import urllib3.exceptions
from botocore.config import Config

from tests.contract.sdk.conftest import Session, reported
from tokenline import sdk
from tokenline.sdk.providers import _bedrock

if TYPE_CHECKING:
    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.meta.llama3-70b-v1:0"
MESSAGES: list[Any] = [{"role": "user", "content": [{"text": "Hello Bedrock"}]}]
CACHED_SYSTEM: list[Any] = [
    {"text": "policy " * 500},
    {"cachePoint": {"type": "default"}},
    {"text": "manual " * 300},
    {"cachePoint": {"type": "default", "ttl": "1h"}},
]
ANTHROPIC_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 9,
    "messages": [{"role": "user", "content": "Hi"}],
}
FAMILIES = [
    (CLAUDE, ANTHROPIC_BODY),
    ("meta.llama3-1-8b-instruct-v1:0", {"prompt": "Hi", "max_gen_len": 9}),
    ("us.amazon.nova-lite-v1:0", {"messages": MESSAGES, "inferenceConfig": {"maxTokens": 9}}),
    ("amazon.titan-text-express-v1",
     {"inputText": "Hi", "textGenerationConfig": {"maxTokenCount": 9}}),
    ("mistral.mistral-large-2402-v1:0", {"prompt": "<s>[INST] Hi [/INST]", "max_tokens": 9}),
]  # fmt: skip
FAMILY_IDS = ["anthropic", "meta", "nova", "titan", "mistral"]
_HEADERS = [
    f"x-amzn-bedrock-{name}-token-count"
    for name in ("input", "output", "cache-read-input", "cache-write-input")
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


def _raw(emulator: ProviderEmulator, service: str = "bedrock-runtime") -> Any:
    client = boto3.client(
        service,
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    _open.append(client)
    return client


def _client(emulator: ProviderEmulator) -> Any:
    return sdk.wrap(_raw(emulator), team="search")


def _converse_buckets(usage: dict[str, Any]) -> dict[str, Any]:
    details = {d["ttl"]: d["inputTokens"] for d in usage.get("cacheDetails") or []}
    split = bool(usage.get("cacheDetails"))
    return {
        "input_tokens": usage["inputTokens"],
        "cache_read_input_tokens": usage.get("cacheReadInputTokens", 0),
        "cache_write_input_tokens": usage.get("cacheWriteInputTokens", 0),
        "cache_write_5m_input_tokens": details.get("5m", 0) if split else None,
        "cache_write_1h_input_tokens": details.get("1h", 0) if split else None,
        "output_tokens": usage["outputTokens"],
        "reasoning_tokens": 0,
        "provider_total_tokens": usage["totalTokens"],
        "mismatch": None,
    }


def _invoke_buckets(counts: dict[str, Any]) -> dict[str, Any]:
    return {
        "input_tokens": counts["input_token_count"],
        "cache_read_input_tokens": counts["cache_read_input_token_count"],
        "cache_write_input_tokens": counts["cache_write_input_token_count"],
        "cache_write_5m_input_tokens": None,
        "cache_write_1h_input_tokens": None,
        "output_tokens": counts["output_token_count"],
        "reasoning_tokens": 0,
        "provider_total_tokens": None,
        "mismatch": None,
    }


def _body_buckets(payload: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The buckets an InvokeModel body reports about itself; the headers' when it has none."""
    usage = payload.get("usage") or {}
    buckets = _invoke_buckets(record)
    if "cache_creation" in usage:  # Anthropic: its own counts, with the cache-write TTL split
        split = usage["cache_creation"]
        buckets["cache_write_5m_input_tokens"] = split["ephemeral_5m_input_tokens"]
        buckets["cache_write_1h_input_tokens"] = split["ephemeral_1h_input_tokens"]
        buckets["input_tokens"] = usage["input_tokens"]
        buckets["cache_read_input_tokens"] = usage["cache_read_input_tokens"]
        buckets["cache_write_input_tokens"] = usage["cache_creation_input_tokens"]
        buckets["output_tokens"] = usage["output_tokens"]
    elif "totalTokens" in usage:  # Amazon Nova
        buckets["provider_total_tokens"] = usage["totalTokens"]
    return buckets


def _check(
    event: dict[str, Any],
    usage: dict[str, Any],
    *,
    model: str,
    streamed: bool,
    operation: str = "chat",
    response_model: str | None = None,
) -> None:
    assert event["usage"] == usage
    assert event["usage_source"] == "reported"
    assert event["tenant_id"] == "contract"
    assert event["team"] == "search"
    assert event["provider"] == "bedrock"
    assert event["operation"] == operation
    assert event["request_model"] == model
    assert event["response_model"] == response_model  # only an InvokeModel body names one
    profile = model.startswith(("arn:", "us.", "eu.", "apac.", "global."))
    assert event["deployment"] == (model if profile else None)
    assert event["region"] == "us-east-1"
    assert event["streamed"] is streamed
    assert event["success"] is True
    assert event["http_status"] is None
    assert event["error_type"] is None
    assert event["provider_request_id"]


@pytest.mark.parametrize(
    "model", [CLAUDE, f"us.{CLAUDE}", f"eu.{CLAUDE}", f"apac.{CLAUDE}", f"global.{CLAUDE}", ARN]
)
def test_converse(emulator: ProviderEmulator, session: Session, model: str) -> None:
    response = _client(emulator).converse(modelId=model, messages=MESSAGES)
    assert type(response) is dict
    (event,) = session.events(1)
    _check(event, _converse_buckets(reported(emulator)), model=model, streamed=False)


def test_converse_cache_points_split_by_ttl(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    client.converse(modelId=CLAUDE, system=CACHED_SYSTEM, messages=MESSAGES)
    written = reported(emulator)
    client.converse(modelId=CLAUDE, system=CACHED_SYSTEM, messages=MESSAGES)
    first, second = session.events(2)
    _check(first, _converse_buckets(written), model=CLAUDE, streamed=False)
    assert first["usage"]["cache_write_5m_input_tokens"] > 0
    assert first["usage"]["cache_write_1h_input_tokens"] > 0
    _check(second, _converse_buckets(reported(emulator)), model=CLAUDE, streamed=False)
    assert second["usage"]["cache_read_input_tokens"] == first["usage"]["cache_write_input_tokens"]


def test_converse_reasoning_stays_in_output(emulator: ProviderEmulator, session: Session) -> None:
    _client(emulator).converse(
        modelId=f"us.{CLAUDE}",
        messages=MESSAGES,
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 2048}},
    )
    (event,) = session.events(1)
    _check(event, _converse_buckets(reported(emulator)), model=f"us.{CLAUDE}", streamed=False)


@pytest.mark.parametrize("model", [f"global.{CLAUDE}", ARN])
def test_converse_stream_metadata_usage(
    emulator: ProviderEmulator, session: Session, model: str
) -> None:
    response = _client(emulator).converse_stream(
        modelId=model, system=CACHED_SYSTEM, messages=MESSAGES, inferenceConfig={"maxTokens": 5}
    )
    assert type(response) is dict  # the caller's own dict, its stream metered
    events = list(response["stream"])
    assert next(iter(events[-1])) == "metadata"  # nothing hidden
    (event,) = session.events(1)
    _check(event, _converse_buckets(reported(emulator)), model=model, streamed=True)
    assert event["usage"]["output_tokens"] == 5
    assert event["time_to_first_token_ms"] is not None


@pytest.mark.parametrize(("model", "body"), FAMILIES, ids=FAMILY_IDS)
def test_invoke_model_reads_the_body_and_leaves_it_to_the_caller(
    emulator: ProviderEmulator, session: Session, model: str, body: Any
) -> None:
    response = _client(emulator).invoke_model(modelId=model, body=json.dumps(body))
    payload = json.loads(response["body"].read())  # the body is still the caller's to read
    assert payload
    (event,) = session.events(1)
    expected = _body_buckets(payload, reported(emulator))
    _check(event, expected, model=model, streamed=False, response_model=payload.get("model"))


def test_invoke_model_anthropic_body_names_the_model(
    emulator: ProviderEmulator, session: Session
) -> None:
    response = _client(emulator).invoke_model(
        modelId=f"us.{CLAUDE}", body=json.dumps(ANTHROPIC_BODY)
    )
    assert json.loads(response["body"].read())["model"] == "claude-sonnet-4-5-20250929"
    (event,) = session.events(1)
    assert event["response_model"] == "claude-sonnet-4-5-20250929"
    assert event["request_model"] == f"us.{CLAUDE}"


def _cached_body() -> dict[str, Any]:
    system = [{"type": "text", "text": "policy " * 500, "cache_control": {"type": "ephemeral"}}]
    return {**ANTHROPIC_BODY, "system": system}


def test_invoke_model_anthropic_cache_counts(emulator: ProviderEmulator, session: Session) -> None:
    client = _client(emulator)
    payloads = [
        json.loads(
            client.invoke_model(modelId=CLAUDE, body=json.dumps(_cached_body()))["body"].read()
        )
        for _ in range(2)
    ]
    first, second = session.events(2)
    assert first["usage"]["cache_write_input_tokens"] > 0
    assert (
        first["usage"]["cache_write_5m_input_tokens"] == first["usage"]["cache_write_input_tokens"]
    )
    assert first["usage"]["mismatch"] is None
    expected = _body_buckets(payloads[1], reported(emulator))
    _check(second, expected, model=CLAUDE, streamed=False, response_model=payloads[1]["model"])
    assert second["usage"]["cache_read_input_tokens"] == first["usage"]["cache_write_input_tokens"]


def test_invoke_model_headers_that_disagree_with_the_body_are_reported(
    emulator: ProviderEmulator, session: Session
) -> None:
    client = _client(emulator)
    emulator.rewrite_next_headers(
        {"x-amzn-bedrock-input-token-count": "9999", "x-amzn-bedrock-output-token-count": "1"},
        provider="bedrock",
    )
    response = client.invoke_model(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"] == "9999"
    usage = json.loads(response["body"].read())["usage"]
    (event,) = session.events(1)
    assert event["usage_source"] == "reported"
    assert event["usage"]["input_tokens"] == usage["input_tokens"]  # the body wins
    assert event["usage"]["output_tokens"] == usage["output_tokens"]
    mismatch = event["usage"]["mismatch"]
    assert "x-amzn-bedrock-input-token-count" in mismatch
    assert f"buckets give {usage['input_tokens']}, provider reports 9999" in mismatch
    assert "x-amzn-bedrock-output-token-count" in mismatch


def test_invoke_model_cache_counts_the_headers_leave_out(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.rewrite_next_headers(
        {
            "x-amzn-bedrock-cache-read-input-token-count": None,
            "x-amzn-bedrock-cache-write-input-token-count": None,
        },
        provider="bedrock",
    )
    response = _client(emulator).invoke_model(modelId=CLAUDE, body=json.dumps(_cached_body()))
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert "x-amzn-bedrock-cache-write-input-token-count" not in headers
    payload = json.loads(response["body"].read())
    assert payload["usage"]["cache_creation_input_tokens"] > 0
    (event,) = session.events(1)
    expected = _body_buckets(payload, reported(emulator))
    _check(event, expected, model=CLAUDE, streamed=False, response_model=payload["model"])


def test_invoke_model_headers_are_the_usage_when_the_body_has_none(
    emulator: ProviderEmulator, session: Session
) -> None:
    model, body = FAMILIES[-1]  # Mistral bodies carry no counts
    emulator.rewrite_next_headers({"x-amzn-bedrock-input-token-count": "77"}, provider="bedrock")
    response = _client(emulator).invoke_model(modelId=model, body=json.dumps(body))
    assert "usage" not in json.loads(response["body"].read())
    (event,) = session.events(1)
    assert event["usage"]["input_tokens"] == 77
    assert event["usage"]["mismatch"] is None
    assert event["usage_source"] == "reported"


def test_invoke_model_without_any_counts_reports_no_usage(
    emulator: ProviderEmulator, session: Session
) -> None:
    model, body = FAMILIES[-1]
    emulator.rewrite_next_headers(dict.fromkeys(_HEADERS), provider="bedrock")
    _client(emulator).invoke_model(modelId=model, body=json.dumps(body))["body"].read()
    (event,) = session.events(1)
    assert event["success"] is True
    assert event["usage_source"] == "none"


def test_invoke_model_embedding(emulator: ProviderEmulator, session: Session) -> None:
    model = "amazon.titan-embed-text-v2:0"
    response = _client(emulator).invoke_model(
        modelId=model, body=json.dumps({"inputText": "embed me"})
    )
    assert json.loads(response["body"].read())["embedding"]
    (event,) = session.events(1)
    usage = _invoke_buckets(reported(emulator))
    assert usage["output_tokens"] == 0
    _check(event, usage, model=model, streamed=False, operation="embedding")


@pytest.mark.parametrize(("model", "body"), FAMILIES, ids=FAMILY_IDS)
def test_invoke_model_with_response_stream_metrics(
    emulator: ProviderEmulator, session: Session, model: str, body: Any
) -> None:
    response = _client(emulator).invoke_model_with_response_stream(
        modelId=model, body=json.dumps(body)
    )
    assert type(response) is dict
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    assert "amazon-bedrock-invocationMetrics" in chunks[-1]  # nothing hidden
    (event,) = session.events(1)
    expected = _invoke_buckets(reported(emulator))
    start = chunks[0].get("message") or {}
    if start:  # Anthropic: its own counts, with the cache-write TTL split, and its model
        expected["cache_write_5m_input_tokens"] = 0
        expected["cache_write_1h_input_tokens"] = 0
    _check(event, expected, model=model, streamed=True, response_model=start.get("model"))
    assert (event["response_model"] is not None) == model.startswith("anthropic.")


def test_invoke_stream_metrics_that_disagree_with_the_body_are_reported(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.rewrite_next_headers({"x-amzn-bedrock-output-token-count": "500"}, provider="bedrock")
    response = _client(emulator).invoke_model_with_response_stream(
        modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY)
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 500
    delta = next(c for c in chunks if c["type"] == "message_delta")
    (event,) = session.events(1)
    assert event["usage_source"] == "reported"
    assert event["usage"]["output_tokens"] == delta["usage"]["output_tokens"]  # the body wins
    assert event["usage"]["mismatch"] == (
        "amazon-bedrock-invocationMetrics.outputTokenCount: "
        f"buckets give {delta['usage']['output_tokens']}, provider reports 500"
    )


def test_invoke_stream_closed_after_message_start_reports_no_usage(
    emulator: ProviderEmulator, session: Session
) -> None:
    response = _client(emulator).invoke_model_with_response_stream(
        modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY)
    )
    first = json.loads(next(iter(response["body"]))["chunk"]["bytes"])
    response["body"].close()
    (event,) = session.events(1)
    assert event["success"] is True
    assert event["usage_source"] == "none"  # message_start's output count is a placeholder
    assert event["usage"]["input_tokens"] == first["message"]["usage"]["input_tokens"]
    assert event["usage"]["mismatch"] == (
        "output_tokens not reported: the stream ended before message_delta"
    )
    assert event["response_model"] == "claude-sonnet-4-5-20250929"


def test_stream_closed_early_is_recorded_once(emulator: ProviderEmulator, session: Session) -> None:
    response = _client(emulator).converse_stream(modelId=CLAUDE, messages=MESSAGES)
    next(iter(response["stream"]))
    response["stream"].close()
    response["stream"].close()
    (event,) = session.events(1)
    assert event["streamed"] is True
    assert event["success"] is True
    assert event["usage_source"] == "none"  # no usage was reported before the close


def test_abandoned_stream_is_recorded_when_collected(
    emulator: ProviderEmulator, session: Session
) -> None:
    response = _client(emulator).invoke_model_with_response_stream(
        modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY)
    )
    next(iter(response["body"]))
    connection = response["body"].__wrapped__._raw_stream  # closed by hand below, as a caller
    del response
    gc.collect()
    (event,) = session.events(1)
    connection.close()
    assert event["streamed"] is True
    assert event["success"] is True
    assert event["request_model"] == CLAUDE


def test_converse_stream_ending_without_metadata_reports_no_usage(
    emulator: ProviderEmulator, session: Session
) -> None:
    emulator.drop_next_usage(provider="bedrock")
    response = _client(emulator).converse_stream(modelId=CLAUDE, messages=MESSAGES)
    events = list(response["stream"])
    assert next(iter(events[-1])) == "messageStop"  # ended cleanly, no metadata event
    assert emulator.last_call.usage == {}
    (event,) = session.events(1)
    assert event["success"] is True
    assert event["usage_source"] == "none"
    assert set(event["usage"].values()) <= {0, None}


def test_stream_cut_midway_is_recorded_once(emulator: ProviderEmulator, session: Session) -> None:
    emulator.cut_next_stream(after_events=2)
    response = _client(emulator).converse_stream(modelId=CLAUDE, messages=MESSAGES)
    with pytest.raises(urllib3.exceptions.ProtocolError):  # botocore lets it through
        list(response["stream"])
    (event,) = session.events(1)
    assert event["success"] is False
    assert event["streamed"] is True
    assert event["error_type"] == "ProtocolError"


@pytest.mark.parametrize(
    "operation",
    ["converse", "converse_stream", "invoke_model", "invoke_model_with_response_stream"],
)
def test_throttling_is_recorded_and_reraised_unchanged(
    emulator: ProviderEmulator, session: Session, operation: str
) -> None:
    client = _client(emulator)
    kwargs: dict[str, Any] = (
        {"messages": MESSAGES}
        if operation.startswith("converse")
        else {"body": json.dumps(ANTHROPIC_BODY)}
    )
    emulator.fail_next(status=429, provider="bedrock")
    with pytest.raises(client.exceptions.ThrottlingException) as info:
        getattr(client, operation)(modelId=CLAUDE, **kwargs)
    assert isinstance(info.value, botocore.exceptions.ClientError)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    (event,) = session.events(1)
    assert event["provider"] == "bedrock"
    assert event["request_model"] == CLAUDE
    assert event["region"] == "us-east-1"
    assert event["success"] is False
    assert event["http_status"] == 429
    assert event["error_type"] == "ThrottlingException"
    assert event["usage_source"] == "none"


def test_other_aws_services_are_not_metered() -> None:
    s3 = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    try:
        assert _bedrock.methods_for(s3) == {}
        assert _bedrock.method_for(s3, ("PutObject", {})) is None
    finally:
        s3.close()


@_GOOGLE_IMPORT_WARNINGS[0]
@_GOOGLE_IMPORT_WARNINGS[1]
def test_instrument_meters_bedrock_runtime_only(
    emulator: ProviderEmulator, session: Session
) -> None:
    sdk.instrument()
    try:
        plain = _raw(emulator)
        plain.converse(modelId=f"eu.{CLAUDE}", messages=MESSAGES)
        usage = _converse_buckets(reported(emulator))
        _client(emulator).converse(modelId=CLAUDE, messages=MESSAGES)  # wrapped: counted once
        with pytest.raises(botocore.exceptions.ClientError):
            _raw(emulator, "s3").list_buckets()  # another service: not metered
    finally:
        sdk.uninstrument()
    instrumented, wrapped = session.events(2)
    assert instrumented["usage"] == usage
    assert instrumented["provider"] == "bedrock"
    assert instrumented["request_model"] == f"eu.{CLAUDE}"
    assert instrumented["deployment"] == f"eu.{CLAUDE}"
    assert instrumented["region"] == "us-east-1"
    assert wrapped["team"] == "search"
