"""Google Gemini through google-genai (``google.genai.Client``, sync and ``aio``).

Usage semantics (``GenerateContentResponseUsageMetadata``): ``cached_content_token_count`` is
inside ``prompt_token_count``; ``thoughts_token_count`` is outside ``candidates_token_count``;
``tool_use_prompt_token_count`` is outside ``prompt_token_count`` and billed as input. So plain
input = prompt - cached + tool-use prompt, cache reads = cached, output = candidates,
reasoning = thoughts, and the buckets must add up to ``total_token_count``.

Streamed chunks carry cumulative usage: the last chunk's ``usage_metadata`` replaces what came
before, it is never added. Vertex AI streams send an empty ``usage_metadata`` first and the
counts only on the last chunk: a stream that ends before it has ``usage_source = "none"``.
``aio.models.generate_content_stream`` is an ``async def`` whose await gives an async
iterator; the core awaits it and wraps that iterator.

Chats: ``client.chats.create(...)`` builds a ``Chat`` holding ``Chats._modules``, and
``Chat.send_message`` calls ``self._modules.generate_content``. ``chats.create`` runs as a helper
with the proxied ``Chats`` as ``self``, so the Chat holds the proxied ``_modules`` and each
request it sends is metered through ``chats._modules.*`` (the same Method as ``models.*``).

Vertex AI clients (``vertexai=True``) speak the same types and are reported as ``vertex_ai``:
Google bills them under Vertex AI's prices, which differ from the Gemini API's (cache reads,
batch, long context). The flag is read from the client's API client (``Client``,
``client.aio`` and each ``Models``/``AsyncModels`` hold the same one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenline.sdk._wrapping import Method, StreamSpec
from tokenline.sdk.providers import Adapter, Patch
from tokenline.sdk.providers._usage import count, usage_vector

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.schemas import Provider
    from tokenline.sdk._call import Call
    from tokenline.sdk._wrapping import Args, Kwargs

__all__ = ["ADAPTER", "generate_usage"]


def provider_of(client: Any) -> Provider:
    """``vertex_ai`` for a client (or resource) made with ``vertexai=True``, else ``gemini``."""
    api_client = getattr(client, "_api_client", None)
    return "vertex_ai" if getattr(api_client, "vertexai", None) is True else "gemini"


def _begin(call: Call, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    model = kwargs.get("model")
    call.request_model = model if isinstance(model, str) else None
    return args, kwargs


_COUNTS = ("prompt_token_count", "candidates_token_count", "total_token_count")


def generate_usage(call: Call, usage: Any) -> None:
    """The canonical vector from a generateContent ``usage_metadata`` (or its proto twin).

    A ``usage_metadata`` without any count (Vertex AI's first streamed chunk) reports nothing:
    the call's usage is left as it was, never set to zeros.
    """
    if all(getattr(usage, name, None) is None for name in _COUNTS):
        return
    prompt = count(usage, "prompt_token_count")
    cached = count(usage, "cached_content_token_count")
    tool_use = count(usage, "tool_use_prompt_token_count")
    total = getattr(usage, "total_token_count", None)
    call.usage = usage_vector(
        input_tokens=prompt - cached + tool_use,
        cache_read=cached,
        output_tokens=count(usage, "candidates_token_count"),
        reasoning_tokens=count(usage, "thoughts_token_count"),
        provider_total=total if isinstance(total, int) else None,
    )
    call.usage_source = "reported"


def _metadata(call: Call, response: Any) -> None:
    model_version = getattr(response, "model_version", None)
    if isinstance(model_version, str) and model_version:
        call.response_model = model_version
    response_id = getattr(response, "response_id", None)
    if isinstance(response_id, str) and response_id:
        call.provider_request_id = response_id


def _finish_generate(call: Call, result: Any) -> None:
    _metadata(call, result)
    usage = getattr(result, "usage_metadata", None)
    if usage is not None:
        generate_usage(call, usage)


def _chunk(call: Call, chunk: Any) -> bool:
    _finish_generate(call, chunk)  # cumulative: the latest usage replaces the earlier one
    return True


def _stream(_result: Any, _call: Call, _kwargs: Kwargs) -> StreamSpec | None:
    return StreamSpec(_chunk)


def _finish_embed(call: Call, result: Any) -> None:
    usage = getattr(result, "usage_metadata", None)
    if usage is not None and getattr(usage, "prompt_token_count", None) is not None:
        total = getattr(usage, "total_token_count", None)
        call.usage = usage_vector(
            input_tokens=count(usage, "prompt_token_count"),
            provider_total=total if isinstance(total, int) else None,
        )
        call.usage_source = "reported"
        return
    # Vertex AI reports a token count per embedding (a float in the SDK's types)
    found = [
        getattr(getattr(e, "statistics", None), "token_count", None)
        for e in getattr(result, "embeddings", None) or ()
    ]
    counts = [int(c) for c in found if isinstance(c, int | float)]
    if counts and len(counts) == len(found):
        call.usage = usage_vector(input_tokens=sum(counts))
        call.usage_source = "reported"


GENERATE = Method(operation="chat", finish=_finish_generate, begin=_begin)
GENERATE_STREAM = Method(operation="chat", finish=_finish_generate, begin=_begin, stream=_stream)
EMBED = Method(operation="embedding", finish=_finish_embed, begin=_begin)

_MODELS: Mapping[str, Method] = {
    "generate_content": GENERATE,
    "generate_content_stream": GENERATE_STREAM,
    "embed_content": EMBED,
}

#: ``chats._modules`` is what a Chat made by the ``chats.create`` helper holds (see above).
METHODS: Mapping[str, Method] = {
    f"{prefix}.{name}": method
    for prefix in ("models", "aio.models", "chats._modules", "aio.chats._modules")
    for name, method in _MODELS.items()
    if not (prefix.endswith("chats._modules") and name == "embed_content")
}

_PATCHES = tuple(
    Patch("google.genai.models", f"{cls}.{name}", method, provider_of)
    for cls in ("Models", "AsyncModels")
    for name, method in _MODELS.items()
)

ADAPTER = Adapter(
    name="google-genai",
    provider_of=provider_of,
    methods_for=lambda _client: METHODS,
    patches=_PATCHES,
    helpers=frozenset({"chats.create", "aio.chats.create"}),
)
