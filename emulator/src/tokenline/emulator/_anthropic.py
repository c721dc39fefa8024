"""Anthropic Messages API: JSON and SSE, prompt caching and extended thinking.

Usage rules (Anthropic semantics: ``input_tokens`` excludes cache reads and writes;
``output_tokens`` includes thinking):

- Caching: blocks are read in the API's order (tools, system, messages). The prefix up to the
  last ``cache_control`` block is cacheable. The first time a prefix is seen it is written (each
  segment between breakpoints under its own ``ttl``, "5m" by default, giving the
  ``cache_creation`` split); afterwards it is read. ``input_tokens`` counts the rest only.
- Thinking (``thinking.type`` "enabled" or "adaptive"): ``min(budget_tokens, 48)`` thinking
  tokens (48 for adaptive), reported in ``output_tokens_details.thinking_tokens``.
- Streaming: ``message_start`` carries the full usage with the ``cache_creation`` split;
  ``message_delta`` carries cumulative counts that repeat the input numbers.
- Claude on Vertex AI (``AnthropicVertex``): ``POST /v1/projects/{project}/locations/{location}
  /publishers/anthropic/models/{model}:rawPredict`` (``:streamRawPredict`` for a stream); the
  body carries ``anthropic_version`` (Vertex documents "vertex-2023-10-16"; newer SDKs send
  their own API version) and no ``model``, the model is
  Vertex's name in the path (``claude-sonnet-4-5@20250929``); the answer is the Messages
  API's, naming the model as Anthropic does (``claude-sonnet-4-5-20250929``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from tokenline.emulator._core import (
    THINKING_VOCABULARY,
    JSONObject,
    Reply,
    Request,
    RouteSpec,
    count_tokens,
    dumps,
    json_reply,
    output_budget,
    schema_instance,
    sse,
    sse_reply,
    words,
)

THINKING_CAP = 48
ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_reply(status: int, message: str) -> Reply:
    """An error in Anthropic's format; 429 and 529 carry ``retry-after``."""
    body = {
        "type": "error",
        "error": {"type": ERRORS.get(status, "api_error"), "message": message},
        "request_id": "req_emulated",
    }
    headers = {"request-id": "req_emulated"}
    if status in (429, 529):
        headers["retry-after"] = "1"
    return Reply(status=status, body=dumps(body), headers=headers)


def _blocks(body: JSONObject) -> list[tuple[Any, JSONObject | None]]:
    """Every prompt block in cache order, with its cache_control if any."""
    out: list[tuple[Any, JSONObject | None]] = [
        (tool, tool.get("cache_control")) for tool in body.get("tools") or []
    ]
    system = body.get("system")
    if isinstance(system, str):
        out.append((system, None))
    elif isinstance(system, list):
        out += [(block, block.get("cache_control")) for block in system]
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            out.append((content, None))
        else:
            out += [(block, block.get("cache_control")) for block in content or []]
    return out


def cache_split(
    blocks: list[tuple[Any, JSONObject | None]], request: Request, key: str
) -> tuple[int, int, int, int]:
    """Plain input, cache read, 5-minute write and 1-hour write tokens of prompt blocks."""
    last = max((i for i, (_, cc) in enumerate(blocks) if cc), default=-1)
    rest = [value for value, _ in blocks[last + 1 :]]
    plain = count_tokens(rest) if rest else 1
    if last < 0:
        return plain, 0, 0, 0
    segments: list[tuple[int, str]] = []
    start = 0
    for i, (_, cc) in enumerate(blocks[: last + 1]):
        if cc:
            segment = [value for value, _ in blocks[start : i + 1]]
            segments.append((count_tokens(segment), str(cc.get("ttl", "5m"))))
            start = i + 1
    prefix = json.dumps([value for value, _ in blocks[: last + 1]], sort_keys=True)
    if request.state.cache.touch(key, prefix):
        return plain, sum(n for n, _ in segments), 0, 0
    write_1h = sum(n for n, ttl in segments if ttl == "1h")
    write_5m = sum(n for n, ttl in segments if ttl != "1h")
    return plain, 0, write_5m, write_1h


def _thinking_tokens(body: JSONObject) -> int:
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        return min(int(thinking.get("budget_tokens", THINKING_CAP)), THINKING_CAP)
    return THINKING_CAP if thinking.get("type") == "adaptive" else 0


def _forced_tool(body: JSONObject) -> JSONObject | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {}
    if not tools or choice.get("type") not in ("any", "tool"):
        return None
    tool = next((t for t in tools if t.get("name") == choice.get("name")), tools[0])
    return {
        "type": "tool_use",
        "id": "toolu_emulated",
        "name": tool.get("name", "tool"),
        "input": schema_instance(tool.get("input_schema", {})),
    }


def build(
    body: JSONObject, model: str, request: Request, namespace: str = "anthropic"
) -> tuple[JSONObject, list[JSONObject], JSONObject]:
    """The message, its stream events and its usage, for Anthropic and Bedrock invoke."""
    key = f"{namespace}:{body.get('model', model)}"
    plain, read, write_5m, write_1h = cache_split(_blocks(body), request, key)
    thinking = _thinking_tokens(body)
    tool = _forced_tool(body)
    pieces = words(output_budget(body.get("max_tokens")))
    visible = count_tokens(tool) if tool else len(pieces)
    usage: JSONObject = {
        "input_tokens": plain,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": write_5m,
            "ephemeral_1h_input_tokens": write_1h,
        },
        "output_tokens": visible + thinking,
        "service_tier": "standard",
    }
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    content: list[JSONObject] = []
    stream: list[JSONObject] = []

    def block(start: JSONObject, deltas: list[JSONObject], final: JSONObject) -> None:
        index = len(content)
        content.append(final)
        stream.append({"type": "content_block_start", "index": index, "content_block": start})
        stream.extend({"type": "content_block_delta", "index": index, "delta": d} for d in deltas)
        stream.append({"type": "content_block_stop", "index": index})

    if thinking:
        thought = words(thinking, THINKING_VOCABULARY)
        block(
            {"type": "thinking", "thinking": "", "signature": ""},
            [{"type": "thinking_delta", "thinking": t} for t in thought]
            + [{"type": "signature_delta", "signature": "c2lnbmF0dXJl"}],
            {"type": "thinking", "thinking": "".join(thought), "signature": "c2lnbmF0dXJl"},
        )
    if tool:
        block(
            {**tool, "input": {}},
            [{"type": "input_json_delta", "partial_json": json.dumps(tool["input"])}],
            tool,
        )
    else:
        block(
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": p} for p in pieces],
            {"type": "text", "text": "".join(pieces)},
        )
    stop_reason = "tool_use" if tool else "end_turn"
    message: JSONObject = {
        "id": request.state.next_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    delta_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
    events: list[JSONObject] = [
        {
            "type": "message_start",
            "message": {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": start_usage,
            },
        },
        *stream,
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": delta_usage,
        },
        {"type": "message_stop"},
    ]
    return message, events, usage


def messages(request: Request, answer_model: str | None = None) -> Reply:
    """POST /v1/messages (JSON or SSE)."""
    model = answer_model or str(request.body["model"])
    message, events, usage = build(request.body, model, request)
    if not request.body.get("stream"):
        return json_reply(message, model=model, usage=usage)
    frames = [sse(events[0], event="message_start"), sse({"type": "ping"}, event="ping")]
    frames += [sse(event, event=str(event["type"])) for event in events[1:]]
    reply = sse_reply(frames, model=model, usage=usage)
    reply.usage_event = len(frames) - 2  # message_delta, with the final counts
    return reply


def vertex_messages(request: Request) -> Reply:
    """POST …/publishers/anthropic/models/{model}:rawPredict or :streamRawPredict."""
    if not isinstance(request.body.get("anthropic_version"), str):
        return error_reply(400, "anthropic_version: Field required")
    if "model" in request.body:
        return error_reply(400, "model: Extra inputs are not permitted")
    vertex_model = request.params["model"]
    body = {**request.body, "model": vertex_model}
    if request.path.endswith(":streamRawPredict"):
        body["stream"] = True
    return messages(replace(request, body=body), vertex_model.replace("@", "-"))


def count_message_tokens(request: Request) -> Reply:
    """POST /v1/messages/count_tokens."""
    total = count_tokens([value for value, _ in _blocks(request.body)])
    return json_reply({"input_tokens": total}, model=str(request.body.get("model", "")), usage={})


_VERTEX_MODEL = (
    "/(?:v1|v1beta1)/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/(?P<model>[^/:]+)"
)
ROUTES: list[RouteSpec] = [
    ("POST", "messages", "/v1/messages", messages),
    ("POST", "rawPredict", f"{_VERTEX_MODEL}:rawPredict", vertex_messages),
    ("POST", "streamRawPredict", f"{_VERTEX_MODEL}:streamRawPredict", vertex_messages),
    ("POST", "messages.count_tokens", "/v1/messages/count_tokens", count_message_tokens),
]
