"""Writes usage_event.json: UsageEvent records and their single-object bytes (hex).

The bytes come from the Python codec (``AvroCodec("tokenline.UsageEvent")``); the Python and
the Node.js test suites both check them byte for byte, so the two SDKs write identical bytes
for the same event. Run ``.venv/bin/python schemas/vectors/generate.py`` after a schema change.

In the JSON, ``event_id`` and ``producer_id`` are UUID strings and ``occurred_at`` is
microseconds since the Unix epoch (the Avro ``timestamp-micros`` value itself).
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tokenline.schemas import AvroCodec

__all__ = ["PATH", "encode", "render", "vectors"]

PATH = Path(__file__).with_name("usage_event.json")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_HOST_NONE: dict[str, Any] = dict.fromkeys(
    (
        "hostname",
        "cloud",
        "region",
        "instance_id",
        "k8s_pod",
        "k8s_namespace",
        "k8s_node",
        "service_name",
        "sdk_version",
        "language",
    )
)
_USAGE_ZERO: dict[str, Any] = {
    "input_tokens": 0,
    "cache_read_input_tokens": 0,
    "cache_write_input_tokens": 0,
    "cache_write_5m_input_tokens": None,
    "cache_write_1h_input_tokens": None,
    "output_tokens": 0,
    "reasoning_tokens": 0,
    "provider_total_tokens": None,
    "mismatch": None,
}


def _event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "0190d6a2-7b3c-7e01-8a2b-3c4d5e6f7081",
        "producer_id": "0190d6a2-7b3c-7f00-9000-000000000001",
        "producer_seq": 0,
        "occurred_at": 1_733_356_800_123_456,
        "tenant_id": "acme",
        "project": None,
        "user_id": None,
        "session_id": None,
        "team": None,
        "tags": {},
        "provider": "openai",
        "operation": "chat",
        "request_model": None,
        "response_model": None,
        "deployment": None,
        "region": None,
        "batch": False,
        "usage": dict(_USAGE_ZERO),
        "usage_source": "none",
        "streamed": False,
        "latency_ms": 0,
        "time_to_first_token_ms": None,
        "success": True,
        "error_type": None,
        "error_message": None,
        "http_status": None,
        "provider_request_id": None,
        "host": dict(_HOST_NONE),
    }
    base.update(fields)
    return base


def vectors() -> list[tuple[str, dict[str, Any]]]:
    """(name, record) pairs covering every field, each union branch and the enums' ends."""
    return [
        ("minimal", _event()),
        (
            "openai_chat_full",
            _event(
                producer_seq=41,
                project="search",
                user_id="u-17",
                session_id="s-1",
                team="core",
                tags={"feature": "search", "env": "prod"},
                request_model="gpt-4o",
                response_model="gpt-4o-2024-08-06",
                usage={
                    **_USAGE_ZERO,
                    "input_tokens": 1200,
                    "cache_read_input_tokens": 1024,
                    "output_tokens": 300,
                    "reasoning_tokens": 64,
                    "provider_total_tokens": 2588,
                },
                usage_source="reported",
                streamed=True,
                latency_ms=1834,
                time_to_first_token_ms=212,
                provider_request_id="req_abc123",
                host={
                    **_HOST_NONE,
                    "hostname": "web-1",
                    "service_name": "api",
                    "sdk_version": "0.1.0",
                    "language": "node",
                },
            ),
        ),
        (
            "anthropic_cache_split_unicode",
            _event(
                producer_seq=2**40,
                tenant_id="tenant-é-東京",
                tags={"note": "naïve ✓", "": "empty key"},
                provider="anthropic",
                request_model="claude-sonnet-4-5",
                response_model="claude-sonnet-4-5-20250929",
                usage={
                    **_USAGE_ZERO,
                    "input_tokens": 3,
                    "cache_read_input_tokens": 0,
                    "cache_write_input_tokens": 5000,
                    "cache_write_5m_input_tokens": 1000,
                    "cache_write_1h_input_tokens": 4000,
                    "output_tokens": 120,
                    "reasoning_tokens": 80,
                    "mismatch": "output_tokens not reported: the stream ended before message_delta",
                },
                usage_source="none",
                latency_ms=2**33,
            ),
        ),
        (
            "bedrock_failed",
            _event(
                occurred_at=0,
                provider="vertex_ai",
                operation="other",
                deployment="arn:aws:bedrock:us-east-1:123:inference-profile/x",
                region="us-east-1",
                batch=True,
                success=False,
                error_type="RateLimitError",
                error_message="429 Too Many Requests",
                http_status=429,
                host={
                    **_HOST_NONE,
                    "cloud": "aws",
                    "region": "us-east-1",
                    "instance_id": "i-0123",
                    "k8s_pod": "pod-1",
                    "k8s_namespace": "ns",
                    "k8s_node": "node-1",
                },
            ),
        ),
        ("embedding_estimated", _event(operation="embedding", usage_source="estimated")),
        (
            "bedrock_converse_profile_cache_split",
            _event(
                producer_seq=7,
                tenant_id="acme",
                project="assist",
                provider="bedrock",
                request_model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                deployment="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                region="us-east-1",
                usage={
                    **_USAGE_ZERO,
                    "input_tokens": 12,
                    "cache_write_input_tokens": 3512,
                    "cache_write_5m_input_tokens": 3000,
                    "cache_write_1h_input_tokens": 512,
                    "output_tokens": 40,
                    "provider_total_tokens": 3564,
                },
                usage_source="reported",
                streamed=True,
                latency_ms=911,
                time_to_first_token_ms=305,
                provider_request_id="5f0c2a4e-1d3b-4c8a-9e7f-0a1b2c3d4e5f",
                host={**_HOST_NONE, "sdk_version": "0.1.0", "language": "node"},
            ),
        ),
        (
            "gemini_cached_thinking_tool_use",
            _event(
                producer_seq=3,
                provider="gemini",
                request_model="gemini-2.5-flash",
                response_model="gemini-2.5-flash-001",
                usage={
                    **_USAGE_ZERO,
                    "input_tokens": 84,
                    "cache_read_input_tokens": 2048,
                    "output_tokens": 30,
                    "reasoning_tokens": 64,
                    "provider_total_tokens": 2226,
                },
                usage_source="reported",
                latency_ms=640,
                provider_request_id="resp-7Qh2",
                host={**_HOST_NONE, "sdk_version": "0.1.0", "language": "python"},
            ),
        ),
    ]


def encode(codec: AvroCodec[Any], record: dict[str, Any]) -> bytes:
    """The record's bytes; the JSON's UUID strings and microseconds made Python values."""
    native = {
        **record,
        "event_id": uuid.UUID(record["event_id"]),
        "producer_id": uuid.UUID(record["producer_id"]),
        "occurred_at": _EPOCH + timedelta(microseconds=record["occurred_at"]),
    }
    return codec.encode(native)


def render() -> str:
    """The file's text, as generated now."""
    codec: AvroCodec[Any] = AvroCodec("tokenline.UsageEvent")
    cases = [
        {"name": name, "record": record, "hex": encode(codec, record).hex()}
        for name, record in vectors()
    ]
    doc = {
        "record": "tokenline.UsageEvent",
        "encoding": "Avro single-object: c301, CRC-64-AVRO fingerprint (LE), body",
        "fingerprint": codec.reader.fingerprint.hex(),
        "cases": cases,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {PATH}\n")
