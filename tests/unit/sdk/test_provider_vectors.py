"""The shared provider-usage vectors (schemas/vectors/provider_usage.json), read by the Python SDK.

Each case is a provider response in its wire format and the usage it must give; the Node.js
SDK's tests read the same file, so both SDKs apply the same provider rules.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from google.genai import types

from tokenline.sdk._call import Call
from tokenline.sdk.providers import _bedrock, _genai

pytestmark = pytest.mark.unit

_PATH = Path(__file__).parents[3] / "schemas" / "vectors" / "provider_usage.json"
_CASES = json.loads(_PATH.read_text(encoding="utf-8"))["cases"]


def _bedrock_converse(call: Call, case: dict[str, Any]) -> None:
    result = {**case["response"], "ResponseMetadata": {"RequestId": case["request_id"]}}
    _bedrock._finish_converse(call, result)


def _bedrock_invoke(call: Call, case: dict[str, Any]) -> None:
    data = json.dumps(case["response"]).encode()
    result = {
        "body": StreamingBody(io.BytesIO(data), len(data)),
        "contentType": "application/json",
        "ResponseMetadata": {"RequestId": case["request_id"], "HTTPHeaders": case["headers"]},
    }
    _bedrock._finish_invoke(call, result)


def _gemini_generate(call: Call, case: dict[str, Any]) -> None:
    response = types.GenerateContentResponse.model_validate(case["response"])
    _genai._finish_generate(call, response)


_READERS = {
    "bedrock_converse": _bedrock_converse,
    "bedrock_invoke": _bedrock_invoke,
    "gemini_generate": _gemini_generate,
}


def test_the_vectors_cover_each_kind() -> None:
    assert {case["kind"] for case in _CASES} == set(_READERS)


@pytest.mark.parametrize("case", _CASES, ids=[case["name"] for case in _CASES])
def test_the_python_sdk_reads_the_expected_usage(case: dict[str, Any]) -> None:
    provider = "bedrock" if case["kind"].startswith("bedrock") else "gemini"
    call = Call(provider=provider, operation="chat")
    _READERS[case["kind"]](call, case)
    expected = case["expected"]
    assert call.usage == expected["usage"]
    assert call.usage_source == expected["usage_source"]
    assert call.response_model == expected["response_model"]
    assert call.provider_request_id == expected["provider_request_id"]
