"""Bedrock runtime: Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream.

Streams use the binary AWS event-stream framing (prelude with total and headers length and a
CRC32, string headers, payload, message CRC32). Usage rules:

- Converse: ``inputTokens`` excludes cache reads and writes, ``totalTokens`` includes them.
  ``cachePoint`` blocks mark cache breakpoints (segments take the ``ttl`` of their cache point,
  "5m" by default) and writes are split by TTL in ``cacheDetails``. Claude thinking requested
  through ``additionalModelRequestFields.thinking`` adds a reasoning block whose tokens stay
  inside ``outputTokens``.
- InvokeModel: the body follows the model family (Anthropic, Meta Llama, Amazon Nova, Amazon
  Titan text and embeddings, Mistral) with its own counts where the family reports them;
  counts are also sent in ``x-amzn-bedrock-*`` headers and, when streaming, in the last
  chunk's ``amazon-bedrock-invocationMetrics``. An Anthropic body (and its stream's
  ``message_start``) names the model by Anthropic's id, without the Bedrock prefix and
  version. ``ProviderEmulator.rewrite_next_headers`` makes the headers disagree with the body.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from typing import Any

from tokenline.emulator import _anthropic
from tokenline.emulator._core import (
    THINKING_VOCABULARY,
    JSONObject,
    Reply,
    Request,
    RouteSpec,
    count_tokens,
    dumps,
    output_budget,
    words,
)

VERSION_SUFFIX = re.compile(r"(?<=\d)-v\d+(?::\d+)?$")
REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")
LATENCY_MS = 42
ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}
HEADERS = {
    "input_token_count": "x-amzn-bedrock-input-token-count",
    "output_token_count": "x-amzn-bedrock-output-token-count",
    "cache_read_input_token_count": "x-amzn-bedrock-cache-read-input-token-count",
    "cache_write_input_token_count": "x-amzn-bedrock-cache-write-input-token-count",
}

METRICS = {
    "input_token_count": "inputTokenCount",
    "output_token_count": "outputTokenCount",
    "cache_read_input_token_count": "cacheReadInputTokenCount",
    "cache_write_input_token_count": "cacheWriteInputTokenCount",
}


def error_reply(status: int, message: str) -> Reply:
    """An error in Bedrock's rest-json format (``x-amzn-ErrorType``)."""
    code = ERRORS.get(status, "InternalServerException")
    headers = {
        "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
    }
    if status == 429:
        headers["retry-after"] = "1"
    return Reply(status=status, body=dumps({"message": message}), headers=headers)


def frame(event_type: str, payload: Any) -> bytes:
    """One AWS event-stream message carrying a JSON event."""
    body = dumps(payload)
    headers = {":event-type": event_type, ":content-type": "application/json"}
    headers[":message-type"] = "event"
    encoded = b"".join(
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(encoded) + len(body), len(encoded))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + encoded + body
    return message + struct.pack(">I", binascii.crc32(message))


def base_model(model_id: str) -> str:
    """The foundation model id behind an ARN or a cross-region inference profile id."""
    name = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    for prefix in REGION_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def anthropic_name(model: str) -> str:
    """The model an Anthropic body on Bedrock names: Anthropic's own id.

    Without the vendor prefix and the Bedrock version of a dated id
    (``anthropic.claude-sonnet-4-5-20250929-v1:0`` answers as ``claude-sonnet-4-5-20250929``).
    """
    return VERSION_SUFFIX.sub("", base_model(model).removeprefix("anthropic."))


# ---------------------------------------------------------------------------- converse
def _converse_blocks(body: JSONObject) -> list[tuple[Any, JSONObject | None]]:
    """Prompt blocks with cachePoint markers moved onto the block before them."""
    blocks: list[tuple[Any, JSONObject | None]] = []
    sources = [*((body.get("toolConfig") or {}).get("tools") or []), *(body.get("system") or [])]
    sources += [b for m in body.get("messages") or [] for b in m.get("content") or []]
    for block in sources:
        if "cachePoint" in block:
            if blocks:
                blocks[-1] = (blocks[-1][0], {"ttl": block["cachePoint"].get("ttl", "5m")})
            continue
        blocks.append((block, None))
    return blocks


def _converse(request: Request) -> tuple[JSONObject, list[tuple[str, JSONObject]], JSONObject]:
    body, model = request.body, request.params["model"]
    plain, read, write_5m, write_1h = _anthropic.cache_split(
        _converse_blocks(body), request, f"bedrock:{base_model(model)}"
    )
    extra = body.get("additionalModelRequestFields") or {}
    thinking = extra.get("thinking") or extra.get("reasoning_config") or {}
    reasoning = 0
    if thinking.get("type") == "enabled":
        budget = int(thinking.get("budget_tokens", _anthropic.THINKING_CAP))
        reasoning = min(budget, _anthropic.THINKING_CAP)
    pieces = words(output_budget((body.get("inferenceConfig") or {}).get("maxTokens")))
    output = len(pieces) + reasoning
    usage: JSONObject = {
        "inputTokens": plain,
        "outputTokens": output,
        "totalTokens": plain + read + write_5m + write_1h + output,
        "cacheReadInputTokens": read,
        "cacheWriteInputTokens": write_5m + write_1h,
    }
    details = [{"ttl": ttl, "inputTokens": n} for ttl, n in (("5m", write_5m), ("1h", write_1h))]
    if write_5m or write_1h:
        usage["cacheDetails"] = [d for d in details if d["inputTokens"]]
    content: list[JSONObject] = []
    events: list[tuple[str, JSONObject]] = [("messageStart", {"role": "assistant"})]
    if reasoning:
        thought = words(reasoning, THINKING_VOCABULARY)
        text = {"text": "".join(thought), "signature": "c2lnbmF0dXJl"}
        content.append({"reasoningContent": {"reasoningText": text}})
        events += [
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": d}})
            for d in [*({"text": t} for t in thought), {"signature": "c2lnbmF0dXJl"}]
        ]
        events.append(("contentBlockStop", {"contentBlockIndex": 0}))
    index = len(content)
    content.append({"text": "".join(pieces)})
    events += [
        ("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": p}}) for p in pieces
    ]
    events += [
        ("contentBlockStop", {"contentBlockIndex": index}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": usage, "metrics": {"latencyMs": LATENCY_MS}}),
    ]
    response = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "end_turn",
        "usage": usage,
        "metrics": {"latencyMs": LATENCY_MS},
    }
    return response, events, usage


def converse(request: Request) -> Reply:
    """POST /model/{modelId}/converse."""
    response, _, usage = _converse(request)
    model = request.params["model"]
    return Reply(body=dumps(response), model=model, usage=usage, headers=_request_id())


def converse_stream(request: Request) -> Reply:
    """POST /model/{modelId}/converse-stream (event stream)."""
    _, events, usage = _converse(request)
    return Reply(
        events=[frame(kind, payload) for kind, payload in events],
        content_type="application/vnd.amazon.eventstream",
        headers=_request_id(),
        model=request.params["model"],
        usage=usage,
        usage_event=len(events) - 1,  # the metadata event
    )


def _request_id() -> dict[str, str]:
    return {"x-amzn-RequestId": "00000000-0000-0000-0000-000000000000"}


# ---------------------------------------------------------------------------- invoke
def _invoke(request: Request) -> tuple[JSONObject, list[JSONObject], JSONObject]:
    """Body, stream chunks (without metrics) and header counts for the model's family."""
    body, model = request.body, base_model(request.params["model"])
    family = model.split(".", 1)[0]
    counts = dict.fromkeys(HEADERS, 0)
    if family == "anthropic":
        message, events, usage = _anthropic.build(body, anthropic_name(model), request, "bedrock")
        counts["input_token_count"] = usage["input_tokens"]
        counts["output_token_count"] = usage["output_tokens"]
        counts["cache_read_input_token_count"] = usage["cache_read_input_tokens"]
        counts["cache_write_input_token_count"] = usage["cache_creation_input_tokens"]
        return message, events, counts
    if model.startswith("amazon.titan-embed"):
        tokens = count_tokens(body["inputText"])
        counts["input_token_count"] = tokens
        vector = [(i % 7) / 7.0 for i in range(int(body.get("dimensions", 1024)))]
        return {"embedding": vector, "inputTextTokenCount": tokens}, [], counts
    if model.startswith("amazon.nova"):
        config = body.get("inferenceConfig") or {}
        prompt = count_tokens(body.get("system") or [], body["messages"])
        pieces = words(output_budget(config.get("maxTokens", config.get("max_new_tokens"))))
    elif model.startswith("amazon.titan"):
        prompt = count_tokens(body["inputText"])
        limit = (body.get("textGenerationConfig") or {}).get("maxTokenCount")
        pieces = words(output_budget(limit))
    elif family in ("meta", "mistral"):
        prompt = count_tokens(body["prompt"])
        pieces = words(output_budget(body.get("max_gen_len", body.get("max_tokens"))))
    else:
        msg = f"unsupported model family: {model}"
        raise ValueError(msg)
    counts["input_token_count"], counts["output_token_count"] = prompt, len(pieces)
    full, chunks = _family_body(model, family, prompt, pieces)
    return full, chunks, counts


def _family_body(
    model: str, family: str, prompt: int, pieces: list[str]
) -> tuple[JSONObject, list[JSONObject]]:
    text, n = "".join(pieces), len(pieces)
    if model.startswith("amazon.nova"):
        usage = {
            "inputTokens": prompt,
            "outputTokens": n,
            "totalTokens": prompt + n,
            "cacheReadInputTokenCount": 0,
            "cacheWriteInputTokenCount": 0,
        }
        full: JSONObject = {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": usage,
        }
        chunks: list[JSONObject] = [{"messageStart": {"role": "assistant"}}]
        chunks += [
            {"contentBlockDelta": {"delta": {"text": p}, "contentBlockIndex": 0}} for p in pieces
        ]
        chunks += [
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            {"metadata": {"usage": {"inputTokens": prompt, "outputTokens": n}}},
        ]
        return full, chunks
    if model.startswith("amazon.titan"):
        result = {"tokenCount": n, "outputText": text, "completionReason": "FINISH"}
        chunks = [
            {
                "outputText": p,
                "index": 0,
                "totalOutputTextTokenCount": i + 1,
                "completionReason": "FINISH" if i == n - 1 else None,
                "inputTextTokenCount": prompt if i == 0 else None,
            }
            for i, p in enumerate(pieces)
        ]
        return {"inputTextTokenCount": prompt, "results": [result]}, chunks
    if family == "meta":
        full = {
            "generation": text,
            "prompt_token_count": prompt,
            "generation_token_count": n,
            "stop_reason": "stop",
        }
        chunks = [
            {
                "generation": p,
                "prompt_token_count": prompt if i == 0 else None,
                "generation_token_count": i + 1,
                "stop_reason": "stop" if i == n - 1 else None,
            }
            for i, p in enumerate(pieces)
        ]
        return full, chunks
    chunks = [
        {"outputs": [{"text": p, "stop_reason": "stop" if i == n - 1 else None}]}
        for i, p in enumerate(pieces)
    ]
    return {"outputs": [{"text": text, "stop_reason": "stop"}]}, chunks


def invoke(request: Request) -> Reply:
    """POST /model/{modelId}/invoke."""
    full, _, counts = _invoke(request)
    headers = {HEADERS[k]: str(v) for k, v in counts.items()}
    headers["x-amzn-bedrock-invocation-latency"] = str(LATENCY_MS)
    return Reply(
        body=dumps(full),
        headers={**headers, **_request_id()},
        model=request.params["model"],
        usage=counts,
    )


def invoke_stream(request: Request) -> Reply:
    """POST /model/{modelId}/invoke-with-response-stream (chunk events, base64 bytes)."""
    _, chunks, counts = _invoke(request)
    if not chunks:
        msg = "model does not support streaming"
        raise ValueError(msg)
    metrics: JSONObject = {
        "inputTokenCount": counts["input_token_count"],
        "outputTokenCount": counts["output_token_count"],
        "invocationLatency": LATENCY_MS,
        "firstByteLatency": LATENCY_MS // 2,
    }
    if counts["cache_read_input_token_count"] or counts["cache_write_input_token_count"]:
        metrics["cacheReadInputTokenCount"] = counts["cache_read_input_token_count"]
        metrics["cacheWriteInputTokenCount"] = counts["cache_write_input_token_count"]
    for key, header in HEADERS.items():  # rewrite_next_headers: the stream's copy of them
        if header in request.header_changes:
            metric = METRICS[key]
            value = request.header_changes[header]
            if value is None:
                metrics.pop(metric, None)
            else:
                metrics[metric] = int(value)
    chunks = [*chunks[:-1], {**chunks[-1], "amazon-bedrock-invocationMetrics": metrics}]
    events = [
        frame("chunk", {"bytes": base64.b64encode(json.dumps(c).encode()).decode()}) for c in chunks
    ]
    return Reply(
        events=events,
        content_type="application/vnd.amazon.eventstream",
        headers=_request_id(),
        model=request.params["model"],
        usage=counts,
    )


_MODEL = "/model/(?P<model>[^/]+)"
ROUTES: list[RouteSpec] = [
    ("POST", "converse", f"{_MODEL}/converse", converse),
    ("POST", "converse_stream", f"{_MODEL}/converse-stream", converse_stream),
    ("POST", "invoke_model", f"{_MODEL}/invoke", invoke),
    (
        "POST",
        "invoke_model_with_response_stream",
        f"{_MODEL}/invoke-with-response-stream",
        invoke_stream,
    ),
]
