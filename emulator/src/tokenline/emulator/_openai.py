"""OpenAI and Azure OpenAI: chat completions, responses, completions and embeddings.

Usage rules (OpenAI semantics: cached tokens are inside ``prompt_tokens``, reasoning tokens are
inside ``completion_tokens``):

- Prompt caching: a prompt of at least 1024 tokens whose first 4096 characters were seen
  before (same model) reports ``cached_tokens = 1024 + 128 * floor((prompt - 1024) / 128)``.
- Reasoning models (names starting ``o1``, ``o3``, ``o4`` or ``gpt-5``) add reasoning tokens by
  effort: minimal 0, low 64, medium (default) 192, high 512.
- Azure answers with the deployment's underlying model in ``model`` and adds content-filter
  results; a streamed Azure chat starts with the prompt-filter chunk (``choices: []`` and an
  empty ``id``, ``model`` and ``object``), and its choices carry ``content_filter_results``.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
from typing import TYPE_CHECKING, Any

from tokenline.emulator._core import (
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
    texts,
    words,
)

if TYPE_CHECKING:
    from collections.abc import Callable

REASONING_MODEL = re.compile(r"^(o1|o3|o4|gpt-5)")
EFFORT_TOKENS = {"none": 0, "minimal": 0, "low": 64, "medium": 192, "high": 512, "xhigh": 1024}
CACHE_MINIMUM = 1024
CACHE_STEP = 128
FILTER_OK = {
    name: {"filtered": False, "severity": "safe"}
    for name in ("hate", "self_harm", "sexual", "violence")
}
#: Azure's first chunk of a streamed chat when content filtering is on (the default): the
#: prompt's filter results, with no choices and an empty id, model and object.
AZURE_PROMPT_FILTER_CHUNK: JSONObject = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTER_OK}],
}
ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_reply(status: int, message: str) -> Reply:
    """An error in OpenAI's format; 429 carries ``retry-after``."""
    kind, code = ERRORS.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"x-request-id": "req_emulated"}
    if status == 429:
        headers["retry-after"] = "1"
        headers["x-ratelimit-remaining-requests"] = "0"
    return Reply(status=status, body=dumps(body), headers=headers)


# ---------------------------------------------------------------------------- usage
def _model(request: Request) -> tuple[str, str | None]:
    """The answering model and, for Azure, the deployment."""
    deployment = request.params.get("deployment")
    if request.path.startswith("/openai/"):
        name = deployment or str(request.body.get("model", ""))
        return request.state.azure_models.get(name, request.state.default_azure_model), name
    return str(request.body.get("model", "gpt-4o-mini")), None


def _cached(request: Request, model: str, prompt_tokens: int, *parts: Any) -> int:
    if prompt_tokens < CACHE_MINIMUM:
        return 0
    prefix = "".join(t for p in parts for t in texts(p))[: CACHE_MINIMUM * 4]
    if not request.state.cache.touch("openai", model, prefix):
        return 0
    return CACHE_MINIMUM + CACHE_STEP * ((prompt_tokens - CACHE_MINIMUM) // CACHE_STEP)


def _reasoning(model: str, effort: Any) -> int:
    if not REASONING_MODEL.match(model):
        return 0
    return EFFORT_TOKENS.get(str(effort or "medium"), EFFORT_TOKENS["medium"])


def _content(fmt: Any, max_tokens: Any) -> tuple[list[str], int]:
    """Output pieces and their token count, honouring a structured-output format."""
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        spec = fmt.get("json_schema", fmt)
        value = schema_instance(spec.get("schema", {})) if fmt["type"] == "json_schema" else {}
        text = json.dumps(value)
        pieces = [text[i : i + 8] for i in range(0, len(text), 8)] or [""]
        return pieces, count_tokens(text)
    pieces = words(output_budget(max_tokens))
    return pieces, len(pieces)


# ---------------------------------------------------------------------------- chat
def chat_completions(request: Request) -> Reply:
    """POST /v1/chat/completions (JSON or SSE)."""
    body = request.body
    model, deployment = _model(request)
    azure = deployment is not None
    prompt = count_tokens(body["messages"], body.get("tools", []))
    cached = _cached(request, model, prompt, body["messages"])
    reasoning = _reasoning(model, body.get("reasoning_effort"))
    tool_call = _forced_tool(body)
    if tool_call is not None:
        pieces, visible = [tool_call["function"]["arguments"]], count_tokens(tool_call)
    else:
        fmt = body.get("response_format")
        pieces, visible = _content(fmt, body.get("max_completion_tokens", body.get("max_tokens")))
    completion = visible + reasoning
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    ident, created = request.state.next_id("chatcmpl-"), int(time.time())
    finish = "tool_calls" if tool_call else "stop"
    base = {"id": ident, "created": created, "model": model, "system_fingerprint": "fp_emulated"}
    if not body.get("stream"):
        message: JSONObject = {"role": "assistant", "content": "".join(pieces), "refusal": None}
        if tool_call is not None:
            message.update(content=None, tool_calls=[tool_call])
        choice: JSONObject = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish,
        }
        payload: JSONObject = {**base, "object": "chat.completion", "choices": [choice]}
        if azure:
            choice["content_filter_results"] = FILTER_OK
            payload["prompt_filter_results"] = [
                {"prompt_index": 0, "content_filter_results": FILTER_OK}
            ]
        payload["usage"] = usage
        reply = json_reply(payload, model=model, usage=usage)
        reply.deployment = deployment
        return reply
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    chunk = {**base, "object": "chat.completion.chunk"}
    shown = usage if include_usage else None
    events = _chat_events(chunk, pieces, tool_call, finish, azure=azure, usage=shown)
    reply = sse_reply(events, model=model, usage=usage if include_usage else {})
    reply.deployment = deployment
    reply.usage_event = len(events) - 2 if include_usage else None  # the chunk before [DONE]
    return reply


def _chat_events(
    chunk: JSONObject,
    pieces: list[str],
    tool_call: JSONObject | None,
    finish: str,
    *,
    azure: bool,
    usage: JSONObject | None,
) -> list[bytes]:
    """Chunks of a streamed chat completion.

    With ``usage`` (``stream_options.include_usage``), every chunk has ``usage: null`` and a
    last chunk with ``choices: []`` carries the usage, as OpenAI does; without it, neither.
    """
    extra = {"usage": None} if usage is not None else {}
    events = []
    if azure:
        events.append(sse(AZURE_PROMPT_FILTER_CHUNK))
    first_delta: JSONObject = {"role": "assistant", "content": "", "refusal": None}
    deltas: list[JSONObject] = [first_delta]
    if tool_call is not None:
        first_delta.update(content=None, tool_calls=[{"index": 0, **tool_call}])
    else:
        deltas += [{"content": piece} for piece in pieces]
    for position, delta in enumerate(deltas):
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        if azure:  # the role chunk is not filtered yet; content chunks carry their results
            choice["content_filter_results"] = FILTER_OK if position else {}
        events.append(sse({**chunk, "choices": [choice], **extra}))
    done: JSONObject = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
    if azure:
        done["content_filter_results"] = {}
    events.append(sse({**chunk, "choices": [done], **extra}))
    if usage is not None:
        events.append(sse({**chunk, "choices": [], "usage": usage}))
    events.append(sse("[DONE]"))
    return events


def _forced_tool(body: JSONObject) -> JSONObject | None:
    """A tool call when the request forces one (tool_choice required or a named function)."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice in (None, "auto", "none"):
        return None
    function = tools[0].get("function", {})
    if isinstance(choice, dict):
        wanted = choice.get("function", {}).get("name")
        function = next(
            (t["function"] for t in tools if t.get("function", {}).get("name") == wanted),
            function,
        )
    arguments = json.dumps(schema_instance(function.get("parameters", {})))
    return {
        "id": "call_emulated",
        "type": "function",
        "function": {"name": function.get("name", "tool"), "arguments": arguments},
    }


# ---------------------------------------------------------------------------- responses
def responses(request: Request) -> Reply:
    """POST /v1/responses (JSON or SSE with response.* events)."""
    body = request.body
    model, deployment = _model(request)
    instructions = body.get("instructions") or ""
    prompt = count_tokens(body.get("input", ""), instructions, body.get("tools", []))
    cached = _cached(request, model, prompt, body.get("instructions", ""), body.get("input", ""))
    reasoning = _reasoning(model, (body.get("reasoning") or {}).get("effort"))
    fmt = (body.get("text") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        fmt = {"type": "json_schema", "json_schema": fmt}
    pieces, visible = _content(fmt, body.get("max_output_tokens"))
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": visible + reasoning,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + visible + reasoning,
    }
    text = "".join(pieces)
    msg_id = request.state.next_id("msg_")
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    message = {
        "type": "message",
        "id": msg_id,
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    output: list[JSONObject] = [message]
    if reasoning:
        output.insert(0, {"type": "reasoning", "id": request.state.next_id("rs_"), "summary": []})
    response: JSONObject = {
        "id": request.state.next_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "text": body.get("text") or {"format": {"type": "text"}},
        "error": None,
        "incomplete_details": None,
        "usage": usage,
    }
    if not body.get("stream"):
        reply = json_reply(response, model=model, usage=usage)
        reply.deployment = deployment
        return reply
    index = len(output) - 1
    ids = {"item_id": msg_id, "output_index": index, "content_index": 0}
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    started = {**message, "status": "in_progress", "content": []}
    items: list[tuple[str, JSONObject]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
    ]
    if reasoning:
        items += [
            ("response.output_item.added", {"output_index": 0, "item": output[0]}),
            ("response.output_item.done", {"output_index": 0, "item": output[0]}),
        ]
    items += [
        ("response.output_item.added", {"output_index": index, "item": started}),
        ("response.content_part.added", {**ids, "part": {**part, "text": ""}}),
    ]
    items += [
        ("response.output_text.delta", {**ids, "delta": piece, "logprobs": []}) for piece in pieces
    ]
    items += [
        ("response.output_text.done", {**ids, "text": text, "logprobs": []}),
        ("response.content_part.done", {**ids, "part": part}),
        ("response.output_item.done", {"output_index": index, "item": message}),
        ("response.completed", {"response": response}),
    ]
    events = [
        sse({"type": kind, "sequence_number": seq, **data}, event=kind)
        for seq, (kind, data) in enumerate(items)
    ]
    reply = sse_reply(events, model=model, usage=usage)
    reply.deployment = deployment
    reply.usage_event = len(events) - 1  # response.completed
    return reply


# ---------------------------------------------------------------------------- legacy and embeddings
def completions(request: Request) -> Reply:
    """POST /v1/completions (JSON or SSE)."""
    body = request.body
    model, deployment = _model(request)
    prompt = count_tokens(body.get("prompt", ""))
    pieces = words(output_budget(body.get("max_tokens")))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": len(pieces),
        "total_tokens": prompt + len(pieces),
    }
    base = {
        "id": request.state.next_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    if not body.get("stream"):
        choice = {"text": "".join(pieces), "index": 0, "logprobs": None, "finish_reason": "stop"}
        reply = json_reply({**base, "choices": [choice], "usage": usage}, model=model, usage=usage)
        reply.deployment = deployment
        return reply
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    events = []
    for i, piece in enumerate(pieces):
        finish = "stop" if i == len(pieces) - 1 else None
        choice = {"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}
        events.append(sse({**base, "choices": [choice]}))
    if include_usage:
        events.append(sse({**base, "choices": [], "usage": usage}))
    events.append(sse("[DONE]"))
    reply = sse_reply(events, model=model, usage=usage if include_usage else {})
    reply.deployment = deployment
    reply.usage_event = len(events) - 2 if include_usage else None
    return reply


def embeddings(request: Request) -> Reply:
    """POST /v1/embeddings (float or base64 vectors)."""
    body = request.body
    model, deployment = _model(request)
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    if inputs and all(isinstance(i, int) for i in inputs):
        inputs = [inputs]
    dims = int(body.get("dimensions") or (3072 if "large" in model else 1536))
    tokens = sum(len(i) if isinstance(i, list) else count_tokens(i) for i in inputs)
    data = []
    for index in range(len(inputs)):
        vector = [((index + d) % 7) / 7.0 for d in range(dims)]
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    payload = {"object": "list", "data": data, "model": model, "usage": usage}
    reply = json_reply(payload, model=model, usage=usage)
    reply.deployment = deployment
    return reply


_OPS: dict[str, tuple[str, Callable[[Request], Reply]]] = {
    "chat.completions": ("chat/completions", chat_completions),
    "responses": ("responses", responses),
    "completions": ("completions", completions),
    "embeddings": ("embeddings", embeddings),
}
ROUTES: list[RouteSpec] = [
    ("POST", name, f"/v1/{path}", handler) for name, (path, handler) in _OPS.items()
]
AZURE_ROUTES: list[RouteSpec] = [
    ("POST", name, f"/openai/deployments/(?P<deployment>[^/]+)/{path}", handler)
    for name, (path, handler) in _OPS.items()
] + [("POST", name, f"/openai(?:/v1)?/{path}", handler) for name, (path, handler) in _OPS.items()]
