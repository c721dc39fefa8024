"""The HTTP transport's settings, and its requests checked against the documented endpoint.

The truth for the wire format is ``sink/openapi.json`` (the committed OpenAPI document of
``POST /v1/usage``) and the Avro schema it names for the event (``tokenline.UsageEvent``),
never the sink's Python models.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tokenline.schemas import catalog
from tokenline.sdk import ConfigError, InMemoryEmitter, configure, record
from tokenline.sdk._runtime import replace_runtime
from tokenline.sdk._settings import ingest_config, load_settings
from tokenline.sdk.emitters import HttpEmitter
from tokenline.sdk.emitters._http import event_json

pytestmark = pytest.mark.unit

OPENAPI = json.loads(
    (Path(__file__).resolve().parents[3] / "sink" / "openapi.json").read_text(encoding="utf-8")
)
HTTP = {"transport": "http", "tenant_id": "acme", "detect_host": False}


def test_http_without_url_or_key_lists_both_with_the_settings_to_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**HTTP)
    problems = caught.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("ingest_url: required when transport is http")
    assert "TOKENLINE_INGEST_URL" in problems[0]
    assert problems[1].startswith("ingest_key: required when transport is http")
    assert "TOKENLINE_INGEST_KEY" in problems[1]


def test_a_bad_url_an_empty_key_and_budget_limits_without_kafka_are_all_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**HTTP, ingest_url="localhost:8000", ingest_key=" ", budget_limits=True)
    fields = [p.split(":")[0] for p in caught.value.problems]
    assert fields == ["ingest_url", "ingest_key", "budget_limits"]
    assert "must be an http:// or https:// URL, not 'localhost:8000'" in caught.value.problems[0]


def test_an_unknown_transport_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(transport="grpc")
    assert caught.value.problems[0].startswith("transport: Input should be 'kafka' or 'http'")
    assert "TOKENLINE_TRANSPORT" in caught.value.problems[0]


def test_the_endpoint_is_the_documented_path_with_a_bearer_key() -> None:
    settings = load_settings(**HTTP, ingest_url="https://api.example.com/", ingest_key="tlk_a_b")
    config = ingest_config(settings)
    assert config.url == "https://api.example.com/v1/usage"
    assert "/v1/usage" in OPENAPI["paths"]
    operation = OPENAPI["paths"]["/v1/usage"]["post"]
    (scheme_name,) = operation["security"][0]
    scheme = OPENAPI["components"]["securitySchemes"][scheme_name]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert config.headers["Authorization"] == "Bearer tlk_a_b"
    assert "application/json" in operation["requestBody"]["content"]
    assert config.headers["Content-Type"] == "application/json"
    assert "tlk_a_b" not in repr(config)


def _events() -> list[Any]:
    memory = InMemoryEmitter()
    configure(emitter=memory, tenant_id="acme", project="p", detect_host=True)
    try:
        record(
            provider="anthropic", operation="chat", model="claude-sonnet-4", input_tokens=120,
            output_tokens=7, cache_read_input_tokens=3, latency_ms=250, user_id="u1",
            session_id="s1", team="relevance", tags={"route": "/chat"},
        )  # fmt: skip
        record(provider="openai", model="gpt-4o", success=False, error_type="RateLimitError")
    finally:
        replace_runtime(None)
    return memory.events


def _record_fields() -> dict[str, set[str]]:
    """Field names of UsageEvent and of its nested records (``usage``, ``host``), by field."""
    schema = json.loads(catalog().latest("tokenline.UsageEvent").json)
    found = {"": {field["name"] for field in schema["fields"]}}
    for field in schema["fields"]:
        if isinstance(field["type"], dict) and field["type"].get("type") == "record":
            found[field["name"]] = {f["name"] for f in field["type"]["fields"]}
    return found


def test_the_request_body_matches_the_openapi_document_and_the_avro_contract() -> None:
    events = _events()
    body = json.loads(b"[" + b",".join(event_json(e) for e in events) + b"]")
    operation = OPENAPI["paths"]["/v1/usage"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": OPENAPI["components"]})
    assert "tokenline.UsageEvent.avsc" in schema["description"]
    fields = _record_fields()
    assert {"usage", "host"} <= set(fields)
    for item in body:
        assert set(item) == fields[""]
        assert set(item["usage"]) == fields["usage"]
        assert set(item["host"]) == fields["host"]
        for name in ("event_id", "producer_id"):
            assert isinstance(item[name], str)
            uuid.UUID(item[name])
        moment = datetime.fromisoformat(item["occurred_at"])
        assert moment.utcoffset() is not None
    first, second = body
    assert first["tags"] == {"route": "/chat"}
    assert (first["user_id"], first["team"], first["provider"]) == ("u1", "relevance", "anthropic")
    assert first["usage"]["input_tokens"] == 120
    assert (second["success"], second["error_type"]) == (False, "RateLimitError")
    assert first["event_id"] == str(events[0]["event_id"])
    assert datetime.fromisoformat(first["occurred_at"]) == events[0]["occurred_at"].astimezone(UTC)


def test_the_answers_the_emitter_reads_are_the_documented_ones() -> None:
    """202 Accepted; 422 Invalid with ``problems``; ``detail`` on the others; 429 and 503."""
    responses = OPENAPI["paths"]["/v1/usage"]["post"]["responses"]
    schemas = OPENAPI["components"]["schemas"]

    def schema_of(status: str) -> dict[str, Any]:
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        return dict(schemas[ref.rsplit("/", 1)[-1]])

    assert set(schema_of("202")["properties"]) >= {"accepted", "event_ids"}
    invalid = schema_of("422")
    assert invalid["properties"]["problems"]["items"]["type"] == "string"
    for status in ("401", "403", "429", "503"):
        assert "detail" in schema_of(status)["properties"], status


def test_the_emitter_is_made_from_settings_without_a_connection() -> None:
    settings = load_settings(**HTTP, ingest_url="http://127.0.0.1:9", ingest_key="tlk_x")
    emitter = HttpEmitter(settings)
    assert emitter.pending() == 0
    assert emitter.probe(0.5) is False  # nothing listens on the discard port
    emitter.close(0)
