"""Shared types of the emulator: requests, replies, recorded calls and deterministic usage.

Token arithmetic (documented, deterministic, no tokenizer):

- A prompt counts ``ceil(characters / 4)`` tokens over every text string in the request that
  the provider would read (messages, system, tools), at least 1.
- Generated text is a run of words from a fixed vocabulary; every word is one token, so the
  output count is the number of words (``DEFAULT_OUTPUT_TOKENS``, capped by ``max_tokens``).
- Reasoning/thinking tokens come from a fixed budget per request (see each provider module).
- Prompt caching is remembered by a SHA-256 digest of the cacheable prefix, never its text:
  the first request with a prefix writes the cache, later identical prefixes read it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_OUTPUT_TOKENS = 12
VOCABULARY = (
    *("the", "emulator", "answers", "every", "request", "with", "a", "short"),
    *("deterministic", "reply", "so", "tests", "can", "compare", "usage", "exactly"),
)
THINKING_VOCABULARY = (
    *("let", "me", "reason", "about", "this", "step", "by", "step", "before", "answering"),
)

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One served request as the emulator answered it: the ground truth for tests."""

    provider: str
    route: str
    model: str
    usage: JSONObject
    status: int
    streamed: bool
    deployment: str | None = None
    completed: bool = True


@dataclass
class Request:
    """What a route handler sees of one HTTP request."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    state: EmulatorState
    header_changes: dict[str, str | None] = field(default_factory=dict)
    """Answer headers the next reply is to change (``rewrite_next_headers``): a handler that
    carries the same figures elsewhere (Bedrock's stream metrics) changes them there too."""


@dataclass
class Reply:
    """A complete answer: a body or a list of already framed stream events."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None
    model: str = ""
    usage: JSONObject = field(default_factory=dict)
    deployment: str | None = None
    usage_event: int | None = None
    """For a stream: the index in ``events`` of the event that reports the usage, which a
    proxy or a cut connection can drop while the stream still ends cleanly."""

    @property
    def streamed(self) -> bool:
        """Whether the body is sent as a stream of events."""
        return self.events is not None


class PromptCache:
    """Remembers which cacheable prefixes were seen, by digest only."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def touch(self, *parts: str) -> bool:
        """Record a prefix; return True when it was already cached (a read)."""
        digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
        with self._lock:
            if digest in self._seen:
                return True
            self._seen.add(digest)
            return False

    def clear(self) -> None:
        """Forget every cached prefix."""
        with self._lock:
            self._seen.clear()


@dataclass
class EmulatorState:
    """State shared by all handlers of one emulator."""

    azure_models: dict[str, str] = field(default_factory=dict)
    default_azure_model: str = "gpt-4o-2024-08-06"
    cache: PromptCache = field(default_factory=PromptCache)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self, prefix: str) -> str:
        """A deterministic, unique id with the provider's usual prefix."""
        return f"{prefix}{next(self._ids):016x}"


RouteSpec = tuple[str, str, str, Callable[[Request], "Reply"]]
"""A route: HTTP method, route name, path pattern (regular expression), handler."""


def texts(value: Any) -> list[str]:
    """Every string inside a JSON value (keys that are not content are skipped)."""
    skip = {"role", "type", "model", "id", "name", "mime_type", "mimeType", "cache_control"}
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in texts(item)]
    if isinstance(value, dict):
        return [t for k, v in value.items() if k not in skip for t in texts(v)]
    return []


def count_tokens(*values: Any) -> int:
    """Prompt tokens of the given JSON values: ceil(characters / 4), at least 1."""
    chars = sum(len(t) for v in values for t in texts(v))
    return max(1, math.ceil(chars / 4))


def words(n: int, vocabulary: tuple[str, ...] | list[str] = VOCABULARY) -> list[str]:
    """``n`` words of deterministic output, one token each, with their separating spaces."""
    return [(" " if i else "") + vocabulary[i % len(vocabulary)] for i in range(n)]


def output_budget(max_tokens: Any, default: int = DEFAULT_OUTPUT_TOKENS) -> int:
    """Visible output tokens for a request: the default, capped by ``max_tokens``."""
    if isinstance(max_tokens, int) and max_tokens > 0:
        return min(default, max_tokens)
    return default


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":")).encode()


def json_reply(body: Any, *, model: str, usage: JSONObject, status: int = 200) -> Reply:
    """A JSON reply with the usage the body carries."""
    return Reply(status=status, body=dumps(body), model=model, usage=usage)


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event frame."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def sse_reply(events: list[bytes], *, model: str, usage: JSONObject) -> Reply:
    """A text/event-stream reply."""
    return Reply(
        events=events, content_type="text/event-stream; charset=utf-8", model=model, usage=usage
    )


def schema_instance(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """A minimal value that satisfies a JSON schema (required fields filled)."""
    if not isinstance(schema, dict):
        return {}
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return schema_instance(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return schema_instance(schema[key][0], defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = str(kind).lower()
    simple: dict[str, Any] = {"string": "emulated", "integer": 0, "number": 0, "boolean": False}
    if kind in simple:
        return simple[kind]
    if kind == "array":
        return []
    if kind == "null":
        return None
    props = schema.get("properties", {})
    required = schema.get("required", list(props))
    return {name: schema_instance(props.get(name, {}), defs) for name in required}
