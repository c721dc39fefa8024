"""Gemini Developer API (``generativelanguage``): content generation, streamed or not; embeddings.

Serves both google-genai (SSE with ``alt=sse``) and the legacy google-generativeai REST
transport (a streamed JSON array). Usage rules (Gemini semantics):

- ``cachedContentTokenCount`` is inside ``promptTokenCount``: a request naming
  ``cachedContent`` adds ``CACHED_CONTENT_TOKENS`` to the prompt, all of them cached.
- ``thoughtsTokenCount`` is outside ``candidatesTokenCount``: a ``thinkingConfig`` with a
  non-zero ``thinkingBudget`` (or a ``thinkingLevel``) thinks ``min(budget, 64)`` tokens
  (64 for a dynamic budget of -1).
- ``toolUsePromptTokenCount`` is outside ``promptTokenCount``: 32 tokens when a built-in tool
  (Google Search, code execution, URL context) is offered.
- Streamed chunks carry cumulative ``usageMetadata``; the last one is the total.
- Vertex AI (``…/publishers/google/models/{model}``, with or without ``projects/…/locations/…``,
  as google-genai's ``vertexai=True`` clients call it): the same answers, but a stream sends an
  empty ``usageMetadata`` on its first chunk, none on the chunks in between and the counts
  only on the last one, with ``finishReason``.
- Embeddings, in the documented wire formats google-genai calls: the Gemini API's
  ``:batchEmbedContents`` answers ``{"embeddings": [{"values": [...]}]}`` with no token count
  (``BatchEmbedContentsResponse`` has none); Vertex AI's ``:predict`` (``text-embedding-*``,
  ``gemini-embedding-001``) answers one prediction an instance, each with
  ``statistics.token_count``; Vertex AI's ``:embedContent`` (the other Gemini embedding models)
  answers one ``embedding`` with ``usageMetadata.promptTokenCount``. A text's token count is
  the emulator's usual ceil(characters / 4).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
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

CACHED_CONTENT_TOKENS = 2048
THINKING_CAP = 64
TOOL_USE_PROMPT_TOKENS = 32
VERTEX_PATH = "/publishers/google/models/"
BUILTIN_TOOLS = {
    "googleSearch",
    "google_search",
    "googleSearchRetrieval",
    "google_search_retrieval",
    "codeExecution",
    "code_execution",
    "urlContext",
    "url_context",
}
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_reply(status: int, message: str) -> Reply:
    """An error in Google's JSON error format."""
    body = {
        "error": {"code": status, "message": message, "status": STATUSES.get(status, "INTERNAL")}
    }
    headers = {"retry-after": "1"} if status == 429 else {}
    return Reply(status=status, body=dumps(body), headers=headers)


def _get(mapping: JSONObject, camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


def _thinking(config: JSONObject) -> int:
    thinking = _get(config, "thinkingConfig", "thinking_config") or {}
    budget = _get(thinking, "thinkingBudget", "thinking_budget")
    if budget is None:
        return THINKING_CAP if _get(thinking, "thinkingLevel", "thinking_level") else 0
    budget = int(budget)
    return THINKING_CAP if budget < 0 else min(budget, THINKING_CAP)


def _output(config: JSONObject) -> tuple[list[str], int]:
    schema = _get(config, "responseJsonSchema", "response_json_schema") or _get(
        config, "responseSchema", "response_schema"
    )
    mime = _get(config, "responseMimeType", "response_mime_type")
    if schema is not None or mime == "application/json":
        text = json.dumps(schema_instance(schema or {}))
        return [text[i : i + 8] for i in range(0, len(text), 8)], count_tokens(text)
    pieces = words(output_budget(_get(config, "maxOutputTokens", "max_output_tokens")))
    return pieces, len(pieces)


def _usage(prompt: int, cached: int, candidates: int, thoughts: int, tool_use: int) -> JSONObject:
    usage: JSONObject = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts + tool_use,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if tool_use:
        usage["toolUsePromptTokenCount"] = tool_use
    return usage


def _generate(request: Request) -> tuple[list[JSONObject], JSONObject, str]:
    """Every streamed chunk (cumulative usage), the final usage and the model."""
    body, model = request.body, request.params["model"]
    config = _get(body, "generationConfig", "generation_config") or {}
    cached = CACHED_CONTENT_TOKENS if _get(body, "cachedContent", "cached_content") else 0
    system = _get(body, "systemInstruction", "system_instruction") or {}
    tools = body.get("tools") or []
    prompt = count_tokens(body.get("contents") or [], system, tools) + cached
    builtin = any(isinstance(t, dict) and BUILTIN_TOOLS & t.keys() for t in tools)
    tool_use = TOOL_USE_PROMPT_TOKENS if builtin else 0
    thoughts = _thinking(config)
    pieces, visible = _output(config)
    thinking = _get(config, "thinkingConfig", "thinking_config") or {}
    parts: list[tuple[JSONObject, int]] = []
    if thoughts and _get(thinking, "includeThoughts", "include_thoughts"):
        parts.append(({"text": "".join(words(thoughts, THINKING_VOCABULARY)), "thought": True}, 0))
    per_piece = [visible // len(pieces)] * len(pieces)
    per_piece[-1] += visible - sum(per_piece)
    parts += [({"text": p}, n) for p, n in zip(pieces, per_piece, strict=True)]
    chunks: list[JSONObject] = []
    emitted = 0
    response_id = request.state.next_id("resp-")
    for index, (part, tokens) in enumerate(parts):
        emitted += tokens
        candidate: JSONObject = {"content": {"parts": [part], "role": "model"}, "index": 0}
        if index == len(parts) - 1:
            candidate["finishReason"] = "STOP"
        chunks.append(
            {
                "candidates": [candidate],
                "usageMetadata": _usage(prompt, cached, emitted, thoughts, tool_use),
                "modelVersion": model,
                "responseId": response_id,
            }
        )
    return chunks, _usage(prompt, cached, visible, thoughts, tool_use), model


def generate_content(request: Request) -> Reply:
    """POST /v1beta/models/{model}:generateContent."""
    chunks, usage, model = _generate(request)
    parts = [c["candidates"][0]["content"]["parts"][0] for c in chunks]
    thought = [p for p in parts if p.get("thought")]
    text = {"text": "".join(p["text"] for p in parts if not p.get("thought"))}
    candidate = {
        "content": {"parts": [*thought, text], "role": "model"},
        "finishReason": "STOP",
        "index": 0,
    }
    response = {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": chunks[0]["responseId"],
    }
    return json_reply(response, model=model, usage=usage)


def _vertex_chunks(chunks: list[JSONObject]) -> list[JSONObject]:
    """Vertex AI's stream: the counts only on the last chunk, beside ``finishReason``.

    The first chunk has an empty ``usageMetadata``, the ones in between none; the last one's
    counts carry ``trafficType``.
    """
    created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    shaped = [{**chunk, "createTime": created} for chunk in chunks]
    for index, chunk in enumerate(shaped[:-1]):
        if index:
            del chunk["usageMetadata"]
        else:
            chunk["usageMetadata"] = {}
    shaped[-1]["usageMetadata"] = {**shaped[-1]["usageMetadata"], "trafficType": "ON_DEMAND"}
    return shaped


def stream_generate_content(request: Request) -> Reply:
    """POST …:streamGenerateContent (SSE with alt=sse, else a JSON array).

    On Vertex AI's ``publishers/google/models`` paths, in Vertex AI's shape.
    """
    chunks, usage, model = _generate(request)
    if VERTEX_PATH in request.path:
        chunks = _vertex_chunks(chunks)
    if request.query.get("alt") == "sse":
        reply = sse_reply([sse(c) for c in chunks], model=model, usage=usage)
        reply.usage_event = len(chunks) - 1  # the last chunk: finishReason and the final counts
        return reply
    events = [(b"[" if i == 0 else b",\r\n") + dumps(c) for i, c in enumerate(chunks)]
    events.append(b"]")
    last = len(chunks) - 1 if len(chunks) > 1 else None  # the first one opens the array
    return Reply(events=events, model=model, usage=usage, usage_event=last)


def count_tokens_route(request: Request) -> Reply:
    """POST /v1beta/models/{model}:countTokens."""
    body = request.body
    inner = _get(body, "generateContentRequest", "generate_content_request") or body
    total = count_tokens(inner.get("contents") or [])
    return json_reply({"totalTokens": total}, model=request.params["model"], usage={})


EMBEDDING_DIMENSIONS = 768


def _vector(index: int, config: JSONObject) -> list[float]:
    dims = _get(config, "outputDimensionality", "output_dimensionality") or EMBEDDING_DIMENSIONS
    return [((index + d) % 7) / 7.0 for d in range(int(dims))]


def batch_embed_contents(request: Request) -> Reply:
    """POST /v1beta/models/{model}:batchEmbedContents: one embedding a request, no counts."""
    requests = request.body["requests"]
    tokens = sum(count_tokens(r.get("content") or {}) for r in requests)
    body = {"embeddings": [{"values": _vector(i, r)} for i, r in enumerate(requests)]}
    usage = {"promptTokenCount": tokens, "totalTokenCount": tokens}  # recorded, not sent
    return json_reply(body, model=request.params["model"], usage=usage)


def predict_embeddings(request: Request) -> Reply:
    """POST …/publishers/google/models/{model}:predict (Vertex AI text embeddings)."""
    instances = request.body["instances"]
    parameters = request.body.get("parameters") or {}
    counts = [count_tokens(i.get("content") or "") for i in instances]
    predictions = [
        {
            "embeddings": {
                "values": _vector(i, parameters),
                "statistics": {"truncated": False, "token_count": n},
            }
        }
        for i, n in enumerate(counts)
    ]
    chars = sum(len(i.get("content") or "") for i in instances)
    body = {"predictions": predictions, "metadata": {"billableCharacterCount": chars}}
    usage = {"promptTokenCount": sum(counts), "totalTokenCount": sum(counts)}
    return json_reply(body, model=request.params["model"], usage=usage)


def embed_content(request: Request) -> Reply:
    """POST …/publishers/google/models/{model}:embedContent (Vertex AI, Gemini embeddings)."""
    config = request.body.get("embedContentConfig") or {}
    tokens = count_tokens(request.body["content"])
    usage = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    body = {"embedding": {"values": _vector(0, config)}, "usageMetadata": usage, "truncated": False}
    return json_reply(body, model=request.params["model"], usage=usage)


_MODEL = "/(?:v1beta|v1|v1alpha)/(?:models|tunedModels)/(?P<model>[^/:]+)"
_VERTEX_MODEL = (
    "/(?:v1|v1beta1)/(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/(?P<model>[^/:]+)"
)
_GENERATE: list[RouteSpec] = [
    (method, name, f"{prefix}:{name}", handler)
    for prefix in (_MODEL, _VERTEX_MODEL)
    for method, name, handler in (
        ("POST", "generateContent", generate_content),
        ("POST", "streamGenerateContent", stream_generate_content),
        ("POST", "countTokens", count_tokens_route),
    )
]
_EMBED: list[RouteSpec] = [
    ("POST", "batchEmbedContents", f"{_MODEL}:batchEmbedContents", batch_embed_contents),
    ("POST", "predict", f"{_VERTEX_MODEL}:predict", predict_embeddings),
    ("POST", "embedContent", f"{_VERTEX_MODEL}:embedContent", embed_content),
]
ROUTES: list[RouteSpec] = _GENERATE + _EMBED
