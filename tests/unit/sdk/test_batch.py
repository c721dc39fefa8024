"""Batch API usage: ``record``/``track`` with ``batch=True`` and ``record_batch_results``."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from tokenline import sdk

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tokenline.schemas import UsageEvent

pytestmark = pytest.mark.unit

COMPLETED_AT = datetime(2026, 11, 3, 14, 5, 9, 123000, tzinfo=UTC)

OPENAI_CHAT: dict[str, Any] = {
    "id": "batch_req_6a1f",
    "custom_id": "request-1",
    "response": {
        "status_code": 200,
        "request_id": "req_c187b3",
        "body": {
            "id": "chatcmpl-AbC123",
            "object": "chat.completion",
            "created": 1762178700,
            "model": "o4-mini-2025-04-16",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Paris.", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 2048,
                "completion_tokens": 700,
                "total_tokens": 2748,
                "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 512,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": None,
        },
    },
    "error": None,
}
OPENAI_EMBEDDING: dict[str, Any] = {
    "id": "batch_req_7b2e",
    "custom_id": "request-2",
    "response": {
        "status_code": 200,
        "request_id": "req_d29a41",
        "body": {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0091]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        },
    },
    "error": None,
}
OPENAI_REJECTED: dict[str, Any] = {
    "id": "batch_req_8c3d",
    "custom_id": "request-3",
    "response": {
        "status_code": 400,
        "request_id": "req_e3b0c4",
        "body": {
            "error": {
                "message": "Invalid value for 'model'.",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
        },
    },
    "error": None,
}
OPENAI_EXPIRED: dict[str, Any] = {
    "id": "batch_req_9d4c",
    "custom_id": "request-4",
    "response": None,
    "error": {"code": "batch_expired", "message": "This request could not be executed."},
}

ANTHROPIC_SUCCEEDED: dict[str, Any] = {
    "custom_id": "doc-1",
    "result": {
        "type": "succeeded",
        "message": {
            "id": "msg_01FqfsLoHwgeFbguDgpz48m7",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Summary."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 120,
                "cache_creation_input_tokens": 3000,
                "cache_read_input_tokens": 9000,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 1000,
                    "ephemeral_1h_input_tokens": 2000,
                },
                "output_tokens": 450,
                "server_tool_use": None,
                "service_tier": "batch",
            },
        },
    },
}
ANTHROPIC_ERRORED: dict[str, Any] = {
    "custom_id": "doc-2",
    "result": {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "max_tokens: field required"},
        },
    },
}
ANTHROPIC_EXPIRED: dict[str, Any] = {"custom_id": "doc-3", "result": {"type": "expired"}}


def _jsonl(*items: dict[str, Any]) -> list[str]:
    return [json.dumps(item) + "\n" for item in items]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[sdk.InMemoryEmitter]:
    for name in ("TOKENLINE_TENANT_ID", "TOKENLINE_BOOTSTRAP_SERVERS", "TOKENLINE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    emitter = sdk.InMemoryEmitter()
    sdk.configure(emitter=emitter, tenant_id="acme", detect_host=False, strict=True)
    yield emitter
    sdk.close(1)


def test_record_and_track_mark_batch_calls(sent: sdk.InMemoryEmitter) -> None:
    sdk.record(provider="openai", operation="chat", model="gpt-4o", input_tokens=5, batch=True)
    sdk.record(provider="openai", operation="chat", model="gpt-4o", input_tokens=5)
    with sdk.track(provider="anthropic", model="claude-sonnet-4-5", batch=True) as call:
        sdk.set_usage(call, input_tokens=7)
    assert [e["batch"] for e in sent.events] == [True, False, True]


def test_openai_results_use_the_adapter_buckets(sent: sdk.InMemoryEmitter, tmp_path: Path) -> None:
    path = tmp_path / "batch_output.jsonl"
    lines = _jsonl(OPENAI_CHAT, OPENAI_EMBEDDING, OPENAI_REJECTED, OPENAI_EXPIRED)
    path.write_text("".join([*lines, "\n"]))
    n = sdk.record_batch_results(
        path, provider="openai", batch_id="batch_abc", completed_at=COMPLETED_AT, project="kb"
    )
    assert n == 4
    chat, embedding, rejected, expired = sent.events
    for event in sent.events:
        assert event["batch"] is True
        assert event["provider"] == "openai"
        assert event["occurred_at"] == COMPLETED_AT
        assert event["latency_ms"] == 0
        assert event["project"] == "kb"
        assert event["tags"]["batch_id"] == "batch_abc"
    assert [e["tags"]["custom_id"] for e in sent.events] == [f"request-{i}" for i in (1, 2, 3, 4)]

    assert chat["operation"] == "chat"
    assert chat["request_model"] == chat["response_model"] == "o4-mini-2025-04-16"
    assert chat["provider_request_id"] == "req_c187b3"
    assert chat["success"] is True
    assert chat["usage_source"] == "reported"
    usage = chat["usage"]
    assert usage["input_tokens"] == 2048 - 1536
    assert usage["cache_read_input_tokens"] == 1536
    assert usage["output_tokens"] == 700 - 512
    assert usage["reasoning_tokens"] == 512
    assert usage["provider_total_tokens"] == 2748
    assert usage["mismatch"] is None

    assert embedding["operation"] == "embedding"
    assert embedding["response_model"] == "text-embedding-3-small"
    assert embedding["usage"]["input_tokens"] == 8
    assert embedding["usage"]["output_tokens"] == 0

    assert rejected["success"] is False
    assert rejected["http_status"] == 400
    assert rejected["error_type"] == "model_not_found"
    assert rejected["usage_source"] == "none"
    assert rejected["usage"]["input_tokens"] == 0

    assert expired["success"] is False
    assert expired["error_type"] == "batch_expired"
    assert expired["http_status"] is None
    assert expired["usage_source"] == "none"
    assert expired["provider_request_id"] == "batch_req_9d4c"


def test_anthropic_results_keep_the_cache_ttl_split(sent: sdk.InMemoryEmitter) -> None:
    lines = [s.encode() for s in _jsonl(ANTHROPIC_SUCCEEDED, ANTHROPIC_ERRORED, ANTHROPIC_EXPIRED)]
    n = sdk.record_batch_results(
        lines, provider="anthropic", batch_id="msgbatch_01", completed_at=COMPLETED_AT
    )
    assert n == 3
    ok, errored, expired = sent.events
    assert ok["batch"] is True
    assert ok["operation"] == "chat"
    assert ok["request_model"] == ok["response_model"] == "claude-sonnet-4-5-20250929"
    assert ok["provider_request_id"] == "msg_01FqfsLoHwgeFbguDgpz48m7"
    assert ok["tags"] == {"batch_id": "msgbatch_01", "custom_id": "doc-1"}
    assert ok["usage"] == {
        "input_tokens": 120,
        "cache_read_input_tokens": 9000,
        "cache_write_input_tokens": 3000,
        "cache_write_5m_input_tokens": 1000,
        "cache_write_1h_input_tokens": 2000,
        "output_tokens": 450,
        "reasoning_tokens": 0,
        "provider_total_tokens": None,
        "mismatch": None,
    }
    assert (errored["success"], errored["error_type"]) == (False, "invalid_request_error")
    assert errored["error_message"] == "max_tokens: field required"
    assert (expired["success"], expired["error_type"]) == (False, "expired")
    for failed in (errored, expired):
        assert failed["batch"] is True
        assert failed["usage_source"] == "none"
        assert failed["usage"]["output_tokens"] == 0


def _ids(events: list[UsageEvent]) -> list[UUID]:
    return [e["event_id"] for e in events]


def test_event_ids_are_deterministic_uuid7(sent: sdk.InMemoryEmitter) -> None:
    lines = _jsonl(OPENAI_CHAT, OPENAI_EMBEDDING)
    sdk.record_batch_results(lines, provider="openai", batch_id="b1", completed_at=COMPLETED_AT)
    first = _ids(sent.events)
    sdk.record_batch_results(lines, provider="openai", batch_id="b1", completed_at=COMPLETED_AT)
    again = _ids(sent.events[2:])
    sdk.record_batch_results(lines, provider="openai", batch_id="b2", completed_at=COMPLETED_AT)
    other = _ids(sent.events[4:])
    assert first == again
    assert len(set(first)) == 2
    assert not set(other) & set(first)
    for event_id in first + other:
        parsed = UUID(str(event_id))
        assert parsed.version == 7
        assert parsed.variant == "specified in RFC 4122"
        assert parsed.int >> 80 == int(COMPLETED_AT.timestamp() * 1000)


def test_a_malformed_line_is_logged_and_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("TOKENLINE_TENANT_ID", raising=False)
    emitter = sdk.InMemoryEmitter()
    runtime = sdk.configure(emitter=emitter, tenant_id="acme", detect_host=False)
    try:
        lines = ["{not json\n", json.dumps({"result": {}}), *_jsonl(ANTHROPIC_SUCCEEDED)]
        with caplog.at_level(logging.WARNING, logger="tokenline"):
            n = sdk.record_batch_results(
                lines, provider="anthropic", batch_id="b", completed_at=COMPLETED_AT
            )
        assert n == 1
        assert [e["tags"]["custom_id"] for e in emitter.events] == ["doc-1"]
        assert runtime.errors == 2
        assert len([r for r in caplog.records if "batch result line" in r.getMessage()]) == 2
    finally:
        sdk.close(1)


def test_strict_raises_on_a_malformed_line(sent: sdk.InMemoryEmitter) -> None:
    with pytest.raises(json.JSONDecodeError):
        sdk.record_batch_results(
            ["{not json"], provider="openai", batch_id="b", completed_at=COMPLETED_AT
        )


def test_a_naive_completed_at_is_refused(sent: sdk.InMemoryEmitter) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sdk.record_batch_results(
            [],
            provider="openai",
            batch_id="b",
            completed_at=datetime(2026, 11, 3),  # noqa: DTZ001
        )


def test_fixtures_have_the_provider_sdks_shapes(sent: sdk.InMemoryEmitter) -> None:
    from anthropic.types.messages import MessageBatchIndividualResponse
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion

    ChatCompletion.model_validate(OPENAI_CHAT["response"]["body"])
    CreateEmbeddingResponse.model_validate(OPENAI_EMBEDDING["response"]["body"])
    results = [
        MessageBatchIndividualResponse.model_validate(line).to_json(indent=None)
        for line in (ANTHROPIC_SUCCEEDED, ANTHROPIC_ERRORED, ANTHROPIC_EXPIRED)
    ]
    n = sdk.record_batch_results(
        results, provider="anthropic", batch_id="b", completed_at=COMPLETED_AT
    )
    assert n == 3
    assert sent.events[0]["usage"]["cache_write_1h_input_tokens"] == 2000
