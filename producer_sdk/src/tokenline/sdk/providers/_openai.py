"""OpenAI and Azure OpenAI (the ``openai`` package).

Usage semantics (chat, completions, responses): cached reads and cache writes are inside the
prompt/input count; reasoning is inside the completion/output count. So plain input =
prompt - cached - cache writes, and visible output = completion - reasoning.

Streams report usage only when asked (``stream_options.include_usage``): the adapter asks, and
hides the extra usage-only chunk from a caller who did not, so the caller's stream is
unchanged. A stream that ends without that chunk (a proxy dropped it, the stream was cut)
leaves the usage unset: the event says ``usage_source = "none"``, never zero usage. The model
and id come from the first chunk that has them: Azure with content filtering (the default)
starts with a prompt-filter chunk whose ``model`` and ``id`` are empty.

The ``.stream()`` helpers call ``create`` on their own resource; they run with the wrapped
resource as ``self`` so that inner call is the one metered.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tokenline.sdk._wrapping import Method, StreamSpec
from tokenline.sdk.providers import Adapter, Patch
from tokenline.sdk.providers._usage import count, usage_vector

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.schemas import Operation, Provider
    from tokenline.sdk._call import Call
    from tokenline.sdk._wrapping import Args, Kwargs

__all__ = ["ADAPTER"]

_DEPLOYMENT_IN_URL = re.compile(r"/openai/deployments/([^/]+)")


def _is_azure(client: Any) -> bool:
    return any(cls.__name__ in {"AzureOpenAI", "AsyncAzureOpenAI"} for cls in type(client).__mro__)


def provider_of(client: Any) -> Provider:
    """``azure_openai`` for the Azure clients, else ``openai``."""
    return "azure_openai" if _is_azure(client) else "openai"


def _resource_provider(resource: Any) -> Provider:
    return provider_of(getattr(resource, "_client", None))


def _begin(call: Call, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    model = kwargs.get("model")
    call.request_model = model if isinstance(model, str) else None
    if call.provider == "azure_openai":
        call.deployment = call.request_model  # on Azure, `model` names the deployment
    if kwargs.get("stream") is True:
        options = kwargs.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        call.attribution = {**call.attribution, "_caller_asked_usage": asked}
        if not asked:
            kwargs["stream_options"] = {**(options or {}), "include_usage": True}
    return args, kwargs


def _read_usage(call: Call, usage: Any, inputs: str, outputs: str) -> None:
    """Chat/completions name the counts prompt/completion, Responses input/output.

    ``inputs`` and ``outputs`` are the field names: ``prompt_tokens``/``completion_tokens``
    or ``input_tokens``/``output_tokens``; the details are ``<name>_details``.
    """
    prompt = count(usage, inputs)
    cached = count(usage, inputs + "_details", "cached_tokens")
    writes = count(usage, inputs + "_details", "cache_write_tokens")
    produced = count(usage, outputs)
    reasoning = count(usage, outputs + "_details", "reasoning_tokens")
    call.usage = usage_vector(
        input_tokens=prompt - cached - writes,
        cache_read=cached,
        cache_write=writes,
        output_tokens=produced - reasoning,
        reasoning_tokens=reasoning,
        provider_total=count(usage, "total_tokens") if hasattr(usage, "total_tokens") else None,
    )
    call.usage_source = "reported"


def _chat_usage(call: Call, usage: Any) -> None:
    _read_usage(call, usage, "prompt_tokens", "completion_tokens")


def _responses_usage(call: Call, usage: Any) -> None:
    _read_usage(call, usage, "input_tokens", "output_tokens")


def _finish_chat(call: Call, result: Any) -> None:
    call.response_model = getattr(result, "model", None)
    call.provider_request_id = getattr(result, "_request_id", None) or getattr(result, "id", None)
    usage = getattr(result, "usage", None)
    if usage is not None:
        _chat_usage(call, usage)


def _finish_responses(call: Call, result: Any) -> None:
    call.response_model = getattr(result, "model", None)
    call.provider_request_id = getattr(result, "_request_id", None) or getattr(result, "id", None)
    usage = getattr(result, "usage", None)
    if usage is not None:
        _responses_usage(call, usage)


def _chat_stream(asked_usage: bool) -> StreamSpec:
    """Per chunk only what must be known then; the usage chunk is read at the stream's end.

    Azure's prompt-filter chunk comes first, with "" for both the model and the id. The
    usage-only chunk (no choices) is hidden from a caller who did not ask for it.
    """
    found: list[Any] = []

    def on_chunk(call: Call, chunk: Any) -> bool:
        if not call.response_model:
            call.response_model = getattr(chunk, "model", None) or None
            call.provider_request_id = getattr(chunk, "id", None) or call.provider_request_id
        usage = getattr(chunk, "usage", None)
        if usage is None:
            return True
        found.append(usage)
        return asked_usage or bool(getattr(chunk, "choices", None))

    def on_end(call: Call) -> None:
        if found:
            _chat_usage(call, found[-1])

    return StreamSpec(on_chunk, on_end)


def _responses_event(call: Call, event: Any) -> bool:
    response = getattr(event, "response", None)
    if response is not None:
        call.response_model = getattr(response, "model", None) or call.response_model
        call.provider_request_id = getattr(response, "id", None) or call.provider_request_id
        usage = getattr(response, "usage", None)
        if usage is not None:
            _responses_usage(call, usage)
    return True


def _chat_stream_of(_result: Any, call: Call, kwargs: Kwargs) -> StreamSpec | None:
    if kwargs.get("stream") is not True:
        return None
    return _chat_stream(bool(call.attribution.get("_caller_asked_usage")))


def _responses_stream_of(_result: Any, _call: Call, kwargs: Kwargs) -> StreamSpec | None:
    return StreamSpec(_responses_event) if kwargs.get("stream") is True else None


def _method(operation: Operation, finish: Any, stream: Any = None) -> Method:
    # Responses are the openai package's own models, only read: finish may run off the path.
    if stream is None:
        return Method(operation=operation, finish=finish, begin=_begin, read_later=True)
    return Method(operation=operation, finish=finish, begin=_begin, stream=stream, read_later=True)


_CHAT = _method("chat", _finish_chat, _chat_stream_of)
_PARSE = _method("chat", _finish_chat)
_RESPONSES = _method("responses", _finish_responses, _responses_stream_of)
_RESPONSES_PARSE = _method("responses", _finish_responses)
_COMPLETION = _method("completion", _finish_chat, _chat_stream_of)
_EMBEDDING = _method("embedding", _finish_chat)

METHODS: Mapping[str, Method] = {
    "chat.completions.create": _CHAT,
    "chat.completions.parse": _PARSE,
    "beta.chat.completions.parse": _PARSE,
    "responses.create": _RESPONSES,
    "responses.parse": _RESPONSES_PARSE,
    "completions.create": _COMPLETION,
    "embeddings.create": _EMBEDDING,
}

_PATCHES = tuple(
    Patch(module, f"{cls}.{name}", method, _resource_provider)
    for module, classes, name, method in (
        (
            "openai.resources.chat.completions.completions",
            ("Completions", "AsyncCompletions"),
            "create",
            _CHAT,
        ),
        (
            "openai.resources.chat.completions.completions",
            ("Completions", "AsyncCompletions"),
            "parse",
            _PARSE,
        ),
        (
            "openai.resources.responses.responses",
            ("Responses", "AsyncResponses"),
            "create",
            _RESPONSES,
        ),
        (
            "openai.resources.responses.responses",
            ("Responses", "AsyncResponses"),
            "parse",
            _RESPONSES_PARSE,
        ),
        (
            "openai.resources.completions",
            ("Completions", "AsyncCompletions"),
            "create",
            _COMPLETION,
        ),
        ("openai.resources.embeddings", ("Embeddings", "AsyncEmbeddings"), "create", _EMBEDDING),
    )
    for cls in classes
)

ADAPTER = Adapter(
    name="openai",
    provider_of=provider_of,
    methods_for=lambda _client: METHODS,
    patches=_PATCHES,
    helpers=frozenset(
        {"chat.completions.stream", "responses.stream", "beta.chat.completions.stream"}
    ),
)
