"""Anthropic (the ``anthropic`` package): messages, raw streams and the ``.stream()`` helper.

Usage semantics: ``input_tokens`` excludes cache reads (``cache_read_input_tokens``) and cache
writes (``cache_creation_input_tokens``), so the three map straight onto disjoint buckets; the
write split by TTL is ``cache_creation.ephemeral_5m/1h_input_tokens``. ``output_tokens``
includes thinking: when the API reports ``output_tokens_details.thinking_tokens`` those become
``reasoning_tokens`` and leave the output bucket; otherwise thinking stays in output.

Raw streams (``messages.create(stream=True)``): ``message_start`` carries the full usage with
the TTL split; ``message_delta`` carries *cumulative* counts (possibly repeating the input
numbers), so a delta replaces the counts it gives and never adds to them. The event is built
once, when the stream ends, is closed, fails or is collected. A stream that ends before its
``message_delta`` never reported its output (``message_start``'s output count is a
placeholder): the event keeps the input counts it saw, says so in ``mismatch``, and has
``usage_source = "none"``, so it is never priced as if its output were known.

``messages.stream()`` and ``messages.parse()`` build their request with ``self._post`` on the
same resource (not ``self.create``): they run with the wrapped resource as ``self`` and its
``_post`` is metered, so the request that the returned ``MessageStreamManager`` sends on
``__enter__`` is the call measured (the raw event stream inside the helper's ``MessageStream``
is proxied; closing the helper closes it). ``messages.count_tokens`` is free and not metered.

Clients: ``Anthropic``/``AsyncAnthropic`` → provider ``anthropic``; ``AnthropicBedrock`` →
``bedrock`` (billed by AWS; the request model is the Bedrock model id);
``AnthropicVertex`` → ``vertex_ai`` (billed by Google under Vertex AI's prices; the model is
Vertex's ``claude-...@date`` name, which the SDK moves from the body into the URL); Azure
Foundry → ``other`` (billed by Microsoft under its own prices, not Anthropic's).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from tokenline.sdk._wrapping import Method, StreamSpec
from tokenline.sdk.providers import Adapter, Patch
from tokenline.sdk.providers._usage import UNFINISHED, count, usage_vector

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.schemas import Provider
    from tokenline.sdk._call import Call
    from tokenline.sdk._wrapping import Args, Kwargs

__all__ = ["ADAPTER", "provider_of"]

_BEDROCK = {"AnthropicBedrock", "AsyncAnthropicBedrock"}
_VERTEX = {"AnthropicVertex", "AsyncAnthropicVertex"}
_OTHER = {"AnthropicFoundry", "AsyncAnthropicFoundry"}


def provider_of(client: Any) -> Provider:
    """The provider billing the client: bedrock, vertex_ai, other (Foundry) or anthropic."""
    names = {cls.__name__ for cls in type(client).__mro__}
    if names & _BEDROCK:
        return "bedrock"
    if names & _VERTEX:
        return "vertex_ai"
    if names & _OTHER:
        return "other"
    return "anthropic"


def _resource_provider(resource: Any) -> Provider:
    return provider_of(getattr(resource, "_client", None))


def _begin(call: Call, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    body = kwargs.get("body")  # the helpers' `_post("/v1/messages", body=...)`
    source = body if isinstance(body, dict) else kwargs
    model = source.get("model")
    call.request_model = model if isinstance(model, str) else None
    return args, kwargs


def _optional(obj: Any, name: str) -> int | None:
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Counts:
    """Anthropic's usage fields as last reported (a stream replaces them as they come)."""

    __slots__ = ("cache_read", "cache_write", "input", "output", "split", "thinking")

    def __init__(self) -> None:
        self.input = 0
        self.cache_read = 0
        self.cache_write = 0
        self.split: tuple[int, int] | None = None
        self.output = 0
        self.thinking = 0

    def update(self, usage: Any) -> None:
        """Replace every count ``usage`` gives; keep the ones it leaves out."""
        for field, name in (
            ("input", "input_tokens"),
            ("cache_read", "cache_read_input_tokens"),
            ("cache_write", "cache_creation_input_tokens"),
            ("output", "output_tokens"),
        ):
            value = _optional(usage, name)
            if value is not None:
                setattr(self, field, value)
        details = getattr(usage, "output_tokens_details", None)
        if details is not None:
            self.thinking = count(details, "thinking_tokens")
        creation = getattr(usage, "cache_creation", None)
        if creation is not None:
            self.split = (
                count(creation, "ephemeral_5m_input_tokens"),
                count(creation, "ephemeral_1h_input_tokens"),
            )

    def record(self, call: Call, *, final: bool = True) -> None:
        """Set the call's usage; ``final=False`` when the output count never came."""
        call.usage = usage_vector(
            input_tokens=self.input,
            cache_read=self.cache_read,
            cache_write=self.cache_write,
            cache_write_5m=self.split[0] if self.split is not None else None,
            cache_write_1h=self.split[1] if self.split is not None else None,
            output_tokens=self.output - self.thinking,
            reasoning_tokens=self.thinking,
        )
        call.usage_source = "reported"
        if not final:
            call.usage["mismatch"] = UNFINISHED
            call.usage_source = "none"


def _finish(call: Call, result: Any) -> None:
    call.response_model = getattr(result, "model", None)
    call.provider_request_id = getattr(result, "_request_id", None) or getattr(result, "id", None)
    usage = getattr(result, "usage", None)
    if usage is not None:
        counts = _Counts()
        counts.update(usage)
        counts.record(call)


def _stream(result: Any, call: Call, kwargs: Kwargs) -> StreamSpec | None:
    if kwargs.get("stream") is not True:
        return None
    response = getattr(result, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        call.provider_request_id = headers.get("request-id")
    counts = _Counts()
    seen: list[str] = []

    def on_chunk(call: Call, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = getattr(event, "message", None)
            call.response_model = getattr(message, "model", None) or call.response_model
            if call.provider_request_id is None:
                call.provider_request_id = getattr(message, "id", None)
            usage = getattr(message, "usage", None)
            if usage is not None:
                counts.update(usage)
                seen.append(kind)
        elif kind == "message_delta":
            usage = getattr(event, "usage", None)
            if usage is not None:
                counts.update(usage)  # cumulative: replaces, never adds
                seen.append(kind)
        return True

    def on_end(call: Call) -> None:
        if seen:
            counts.record(call, final="message_delta" in seen)

    return StreamSpec(on_chunk, on_end)


# Messages are the anthropic package's own models, only read: finish may run off the path.
_MESSAGES = Method(operation="chat", finish=_finish, begin=_begin, stream=_stream, read_later=True)

METHODS: Mapping[str, Method] = {
    "messages.create": _MESSAGES,
    "messages._post": _MESSAGES,  # reached only by the helpers below, run on the wrapped resource
    "beta.messages.create": _MESSAGES,
    "beta.messages._post": _MESSAGES,
}


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# The Vertex AI and Bedrock clients' ``beta.messages`` are classes of their own whose
# ``create`` is the first-party function copied at class creation: patching the first-party
# class does not reach them, so they are patched too (where the installed SDK has them).
_PLATFORM_BETA = tuple(
    module
    for module in ("anthropic.lib.vertex._beta_messages", "anthropic.lib.bedrock._beta_messages")
    if _present(module)
)

_PATCHES = tuple(
    Patch(module, f"{cls}.create", _MESSAGES, _resource_provider)
    for module in (
        "anthropic.resources.messages.messages",
        "anthropic.resources.beta.messages.messages",
        *_PLATFORM_BETA,
    )
    for cls in ("Messages", "AsyncMessages")
)

ADAPTER = Adapter(
    name="anthropic",
    provider_of=provider_of,
    methods_for=lambda _client: METHODS,
    patches=_PATCHES,
    helpers=frozenset(
        {"messages.stream", "messages.parse", "beta.messages.stream", "beta.messages.parse"}
    ),
)
