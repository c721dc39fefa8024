"""Google Gemini through the legacy google-generativeai package (``GenerativeModel``).

The usage semantics are Gemini's (see ``_genai``): cached content is inside the prompt count.
This package's protos (google-ai-generativelanguage) carry no thoughts or tool-use prompt
counts; when the API bills them, the buckets fall short of ``total_token_count`` and the
event reports the mismatch rather than hiding it.

``generate_content(stream=True)`` returns a ``GenerateContentResponse`` that is iterable and
joins its chunks as they arrive (usage is cumulative, so the joined usage is the last one).
The stream is finished by the core's stream proxy; its usage is read from the joined response
at the end, so a caller who calls ``resolve()`` instead of iterating is still counted right.

``start_chat`` runs as a helper with the wrapped model as ``self``, so the ``ChatSession`` holds
the wrapped model and each ``send_message`` is metered through its ``generate_content`` (once:
a nested metered call, e.g. with ``instrument()`` as well, is not counted again).
``count_tokens`` is not metered (it is free).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenline.sdk._wrapping import Method, StreamSpec
from tokenline.sdk.providers import Adapter, Patch
from tokenline.sdk.providers._genai import generate_usage
from tokenline.sdk.providers._usage import count

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tokenline.schemas import Provider
    from tokenline.sdk._call import Call
    from tokenline.sdk._wrapping import Args, Kwargs

__all__ = ["ADAPTER"]


def provider_of(_model: Any) -> Provider:
    """Always ``gemini``."""
    return "gemini"


def _model_name(model: Any) -> str | None:
    name = getattr(model, "model_name", None)
    if not isinstance(name, str) or not name:
        return None
    return name.removeprefix("models/")


def _finish(call: Call, result: Any) -> None:
    model_version = getattr(result, "model_version", None)
    if isinstance(model_version, str) and model_version:
        call.response_model = model_version
    usage = getattr(result, "usage_metadata", None)
    # a proto message is never None: an unset one has every count at 0
    if usage is not None and (
        count(usage, "total_token_count") or count(usage, "prompt_token_count")
    ):
        generate_usage(call, usage)


def _chunk(_call: Call, _chunk: Any) -> bool:
    return True


def _stream(result: Any, _call: Call, kwargs: Kwargs) -> StreamSpec | None:
    if kwargs.get("stream") is not True:
        return None

    def on_end(call: Call) -> None:
        _finish(call, result)  # the response joins its chunks: its usage is the latest

    return StreamSpec(_chunk, on_end)


def _begin_for(model: Any) -> Callable[[Call, Args, Kwargs], tuple[Args, Kwargs]]:
    name = _model_name(model)

    def begin(call: Call, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
        call.request_model = name
        return _begin_patched(call, args, kwargs)

    return begin


def _begin_patched(call: Call, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    # a stream's first chunk is fetched inside generate_content: a failure there is a
    # failed streamed call, though the core's stream proxy never started
    call.streamed = kwargs.get("stream") is True
    return args, kwargs


def _generate(begin: Callable[[Call, Args, Kwargs], tuple[Args, Kwargs]]) -> Method:
    return Method(operation="chat", finish=_finish, begin=begin, stream=_stream)


def methods_for(model: Any) -> Mapping[str, Method]:
    """The metered methods of one ``GenerativeModel`` (its name is the request model)."""
    method = _generate(_begin_for(model))
    return {"generate_content": method, "generate_content_async": method}


# instrument() builds one Method per patched function, without the instance: the request
# model is unknown there (the response's model_version still names the model).
_PATCHED = _generate(_begin_patched)

ADAPTER = Adapter(
    name="google-generativeai",
    provider_of=provider_of,
    methods_for=methods_for,
    patches=tuple(
        Patch(
            "google.generativeai.generative_models",
            f"GenerativeModel.{name}",
            _PATCHED,
            provider_of,
        )
        for name in ("generate_content", "generate_content_async")
    ),
    helpers=frozenset({"start_chat"}),
)
