"""The real boto3 bedrock-runtime client against the emulator: converse and invoke, streamed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
import pytest
import urllib3.exceptions
from botocore.config import Config

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
MESSAGES: list[Any] = [{"role": "user", "content": [{"text": "Hello Bedrock"}]}]
HEADER = "x-amzn-bedrock-{}-token-count"
MESSAGES_TEXT: list[Any] = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def client(emulator: ProviderEmulator) -> Iterator[Any]:
    bedrock = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=emulator.url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    yield bedrock
    bedrock.close()


def _headers(response: dict[str, Any]) -> dict[str, str]:
    return dict(response["ResponseMetadata"]["HTTPHeaders"])


def test_converse_usage_matches_record(client: Any, emulator: ProviderEmulator) -> None:
    response = client.converse(modelId=CLAUDE, messages=MESSAGES)
    call = emulator.last_call
    assert response["usage"] == call.usage
    assert (call.provider, call.route, call.model) == ("bedrock", "converse", CLAUDE)
    usage = response["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert response["output"]["message"]["content"][0]["text"]
    assert response["metrics"]["latencyMs"] > 0


def test_converse_cache_points(client: Any, emulator: ProviderEmulator) -> None:
    system = [
        {"text": "policy " * 500},
        {"cachePoint": {"type": "default"}},
        {"text": "manual " * 300},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
    ]
    first = client.converse(modelId=CLAUDE, system=system, messages=MESSAGES)["usage"]
    assert first["cacheWriteInputTokens"] > 0
    assert first["cacheReadInputTokens"] == 0
    assert {d["ttl"] for d in first["cacheDetails"]} == {"5m", "1h"}
    assert sum(d["inputTokens"] for d in first["cacheDetails"]) == first["cacheWriteInputTokens"]
    second = client.converse(modelId=CLAUDE, system=system, messages=MESSAGES)["usage"]
    assert second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    assert second["totalTokens"] == (
        second["inputTokens"] + second["cacheReadInputTokens"] + second["outputTokens"]
    )
    assert second == emulator.last_call.usage


def test_converse_reasoning(client: Any, emulator: ProviderEmulator) -> None:
    response = client.converse(
        modelId=f"us.{CLAUDE}",
        messages=MESSAGES,
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 2048}},
    )
    content = response["output"]["message"]["content"]
    assert "reasoningContent" in content[0]
    assert response["usage"] == emulator.last_call.usage


def test_converse_stream_metadata_event(client: Any, emulator: ProviderEmulator) -> None:
    response = client.converse_stream(
        modelId=f"global.{CLAUDE}", messages=MESSAGES, inferenceConfig={"maxTokens": 5}
    )
    events = list(response["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart"
    assert kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events[1:-3])
    assert len(text.split()) == 5
    metadata = events[-1]["metadata"]
    assert metadata["usage"] == emulator.last_call.usage
    assert metadata["usage"]["outputTokens"] == 5
    assert emulator.last_call.streamed


def test_arn_model_id(client: Any, emulator: ProviderEmulator) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.meta.llama3-70b-v1:0"
    response = client.converse(modelId=arn, messages=MESSAGES)
    assert emulator.last_call.model == arn
    assert response["usage"] == emulator.last_call.usage


def test_invoke_anthropic_body_and_headers(client: Any, emulator: ProviderEmulator) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    response = client.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    payload = json.loads(response["body"].read())
    headers = _headers(response)
    recorded = emulator.last_call.usage
    assert int(headers[HEADER.format("input")]) == payload["usage"]["input_tokens"]
    assert int(headers[HEADER.format("output")]) == payload["usage"]["output_tokens"]
    assert int(headers[HEADER.format("input")]) == recorded["input_token_count"]
    assert payload["type"] == "message"


@pytest.mark.parametrize(
    ("model_id", "body", "counts"),
    [
        (
            "meta.llama3-1-8b-instruct-v1:0",
            {"prompt": "Hello llama", "max_gen_len": 7},
            lambda p: (p["prompt_token_count"], p["generation_token_count"]),
        ),
        (
            "us.amazon.nova-lite-v1:0",
            {"messages": MESSAGES, "inferenceConfig": {"maxTokens": 7}},
            lambda p: (p["usage"]["inputTokens"], p["usage"]["outputTokens"]),
        ),
        (
            "amazon.titan-text-express-v1",
            {"inputText": "Hello titan", "textGenerationConfig": {"maxTokenCount": 7}},
            lambda p: (p["inputTextTokenCount"], p["results"][0]["tokenCount"]),
        ),
        (
            "mistral.mistral-large-2402-v1:0",
            {"prompt": "<s>[INST] Hello [/INST]", "max_tokens": 7},
            None,
        ),
        (
            "amazon.titan-embed-text-v2:0",
            {"inputText": "embed me"},
            lambda p: (p["inputTextTokenCount"], 0),
        ),
    ],
)
def test_invoke_model_families(
    client: Any, emulator: ProviderEmulator, model_id: str, body: Any, counts: Any
) -> None:
    response = client.invoke_model(modelId=model_id, body=json.dumps(body))
    payload = json.loads(response["body"].read())
    headers = _headers(response)
    reported = (int(headers[HEADER.format("input")]), int(headers[HEADER.format("output")]))
    recorded = emulator.last_call.usage
    assert reported == (recorded["input_token_count"], recorded["output_token_count"])
    if counts is not None:
        assert counts(payload) == reported
    else:
        assert payload["outputs"][0]["text"]


@pytest.mark.parametrize(
    ("model_id", "body"),
    [
        (CLAUDE, {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9, "messages": [
            {"role": "user", "content": "Hi"}]}),
        ("meta.llama3-1-8b-instruct-v1:0", {"prompt": "Hi", "max_gen_len": 9}),
        ("amazon.nova-pro-v1:0", {"messages": MESSAGES, "inferenceConfig": {"maxTokens": 9}}),
        ("amazon.titan-text-lite-v1", {"inputText": "Hi"}),
        ("mistral.mistral-7b-instruct-v0:2", {"prompt": "Hi", "max_tokens": 9}),
    ],
)  # fmt: skip
def test_invoke_with_response_stream_metrics(
    client: Any, emulator: ProviderEmulator, model_id: str, body: Any
) -> None:
    response = client.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
    chunks = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    recorded = emulator.last_call.usage
    assert metrics["inputTokenCount"] == recorded["input_token_count"]
    assert metrics["outputTokenCount"] == recorded["output_token_count"]
    assert all("amazon-bedrock-invocationMetrics" not in c for c in chunks[:-1])
    assert emulator.last_call.streamed


def test_throttling_raises_client_error(client: Any, emulator: ProviderEmulator) -> None:
    emulator.fail_next(status=429, provider="bedrock")
    with pytest.raises(client.exceptions.ThrottlingException) as info:
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    assert isinstance(info.value, botocore.exceptions.ClientError)
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_server_error_on_stream(client: Any, emulator: ProviderEmulator) -> None:
    emulator.fail_next(status=500)
    with pytest.raises(client.exceptions.InternalServerException):
        client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
    emulator.fail_next(status=400)
    with pytest.raises(client.exceptions.ValidationException):
        client.invoke_model(modelId=CLAUDE, body="{}")


def test_unknown_family_is_a_validation_error(client: Any, emulator: ProviderEmulator) -> None:
    with pytest.raises(client.exceptions.ValidationException):
        client.invoke_model(modelId="acme.unknown-v1", body=json.dumps({"prompt": "x"}))


def test_cut_stream_raises(client: Any, emulator: ProviderEmulator) -> None:
    emulator.cut_next_stream(after_events=2)
    response = client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
    # botocore's event-stream iterator lets urllib3's error through
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(response["stream"])
    response["stream"].close()
    assert emulator.last_call.completed is False


def test_anthropic_body_names_anthropics_model(client: Any, emulator: ProviderEmulator) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": MESSAGES_TEXT}
    response = client.invoke_model(modelId=f"eu.{CLAUDE}", body=json.dumps(body))
    assert json.loads(response["body"].read())["model"] == "claude-sonnet-4-5-20250929"
    stream = client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body))
    try:
        start = json.loads(next(iter(stream["body"]))["chunk"]["bytes"])
    finally:
        stream["body"].close()  # read in part: its connection is not back in the pool
    assert start["type"] == "message_start"
    assert start["message"]["model"] == "claude-sonnet-4-5-20250929"
    assert emulator.last_call.model == CLAUDE


def test_rewritten_headers_disagree_with_the_body(client: Any, emulator: ProviderEmulator) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": MESSAGES_TEXT}
    emulator.rewrite_next_headers(
        {HEADER.format("input"): "999", HEADER.format("cache-read-input"): None}, provider="bedrock"
    )
    response = client.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    headers = _headers(response)
    payload = json.loads(response["body"].read())
    assert headers[HEADER.format("input")] == "999"
    assert HEADER.format("cache-read-input") not in headers
    assert payload["usage"]["input_tokens"] == emulator.last_call.usage["input_token_count"] != 999
    again = client.invoke_model(modelId=CLAUDE, body=json.dumps(body))  # one answer only
    assert (
        int(_headers(again)[HEADER.format("input")])
        == emulator.last_call.usage["input_token_count"]
    )


def test_rewritten_counts_reach_the_stream_metrics(client: Any, emulator: ProviderEmulator) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": MESSAGES_TEXT}
    emulator.rewrite_next_headers({HEADER.format("output"): "77"}, provider="bedrock")
    response = client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body))
    chunks = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == 77
    assert metrics["inputTokenCount"] == emulator.last_call.usage["input_token_count"]
    assert emulator.last_call.usage["output_token_count"] != 77  # the record keeps the truth
