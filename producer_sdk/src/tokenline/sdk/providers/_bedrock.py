"""AWS Bedrock through boto3/botocore ``bedrock-runtime`` clients.

Only ``bedrock-runtime`` clients are metered (boto3 clients are generated classes of module
``botocore.client``; ``methods_for`` gives nothing for any other service). Methods: converse,
converse_stream, invoke_model, invoke_model_with_response_stream.

Usage semantics:

- Converse (and the ``metadata`` event that ends ConverseStream): ``inputTokens`` excludes
  cache reads (``cacheReadInputTokens``) and writes (``cacheWriteInputTokens``);
  ``totalTokens`` includes both and is the provider total the buckets are checked against;
  ``cacheDetails`` (a list of ``{ttl, inputTokens}``) splits writes into 5m/1h. Reasoning is
  not reported apart from ``outputTokens``, so it stays in output.
- InvokeModel: the body (a StreamingBody, read once) is read on the caller's thread and
  handed back unread, with the same bytes, before the caller gets the response. The body's own
  counts, per model family, are the usage, checked against the ``x-amzn-bedrock-{input,output,
  cache-read-input,cache-write-input}-token-count`` response headers; a body without counts
  (Mistral, Cohere) leaves the headers as the usage. ``_bedrock_body`` says which source wins
  and why.
- InvokeModelWithResponseStream: Anthropic's ``message_start`` / ``message_delta`` chunks give
  the model and the model's own counts, checked against the last chunk's
  ``amazon-bedrock-invocationMetrics`` (input/output/cacheRead/cacheWrite token counts), which
  are the usage of other families. Only chunks whose bytes can carry one of them are parsed.

``request_model`` is ``modelId`` exactly as given; when it names an inference profile (a
``us.``/``eu.``/``apac.``/``global.``… prefix) or an ARN, it is also the ``deployment``.
``response_model`` is the model an InvokeModel body names (Anthropic's ``model``, also in a
stream's ``message_start``); Converse responses name none, so it stays empty there.
``region`` is the client's region. Operation ``embedding`` for embedding models
(``…embed…``), else ``chat``.

Streams: the response is the caller's dict, returned as is, with its ``stream`` (converse) or
``body`` (invoke) event stream replaced by the metering proxy (``StreamSpec.attach``).
``instrument()`` patches ``BaseClient._make_api_call`` and meters bedrock-runtime's four
operations only (``Patch.method_for``).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError
from botocore.response import StreamingBody

from tokenline.sdk._wrapping import Method, StreamSpec
from tokenline.sdk.providers import Adapter, Patch
from tokenline.sdk.providers._bedrock_body import (
    Counts,
    anthropic_update,
    body_counts,
    check_against,
)
from tokenline.sdk.providers._usage import UNFINISHED, count, usage_vector

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tokenline.schemas import Operation, Provider
    from tokenline.sdk._call import Call
    from tokenline.sdk._wrapping import Args, Kwargs

__all__ = ["ADAPTER", "methods_for", "provider_of"]

SERVICE = "bedrock-runtime"
PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")
_METRICS = "amazon-bedrock-invocationMetrics"
_HEADER = "x-amzn-bedrock-{}-token-count"
_HEADER_BUCKETS = {
    "input": "input",
    "output": "output",
    "cache_read": "cache-read-input",
    "cache_write": "cache-write-input",
}
_METRIC_BUCKETS = {
    "input": "inputTokenCount",
    "output": "outputTokenCount",
    "cache_read": "cacheReadInputTokenCount",
    "cache_write": "cacheWriteInputTokenCount",
}
#: Bytes only a chunk that can carry usage or the model contains; other chunks are not parsed.
_USAGE_MARKS = (b'"message_start"', b'"message_delta"', _METRICS.encode())


def provider_of(_client: Any) -> Provider:
    """Always ``bedrock``."""
    return "bedrock"


def is_bedrock_runtime(client: Any) -> bool:
    """Whether ``client`` is a botocore client of the bedrock-runtime service."""
    meta = getattr(client, "meta", None)
    service_model = getattr(meta, "service_model", None)
    return getattr(service_model, "service_name", None) == SERVICE


def _base_model(model_id: str) -> str:
    name = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    for prefix in PROFILE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _is_embedding(model_id: str) -> bool:
    return "embed" in _base_model(model_id).lower()


def _is_profile(model_id: str) -> bool:
    return model_id.startswith("arn:") or model_id.startswith(PROFILE_PREFIXES)


def _params(args: Args, kwargs: Kwargs) -> Mapping[str, Any]:
    """The API parameters: keywords (``client.converse(...)``) or ``_make_api_call``'s dict."""
    if len(args) >= 2 and isinstance(args[1], dict):
        return args[1]
    return kwargs


def _begin_for(region: str | None) -> Callable[[Call, Args, Kwargs], tuple[Args, Kwargs]]:
    def begin(call: Call, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
        model_id = _params(args, kwargs).get("modelId")
        call.region = region
        if isinstance(model_id, str):
            call.request_model = model_id
            call.deployment = model_id if _is_profile(model_id) else None
            call.operation = "embedding" if _is_embedding(model_id) else "chat"
        return args, kwargs

    return begin


def _request_id(call: Call, result: Any) -> None:
    meta = result.get("ResponseMetadata") if isinstance(result, dict) else None
    if isinstance(meta, dict):
        request_id = meta.get("RequestId")
        call.provider_request_id = request_id if isinstance(request_id, str) else None


def _converse_usage(call: Call, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    writes = count(usage, "cacheWriteInputTokens")
    split_5m: int | None = None
    split_1h: int | None = None
    details = usage.get("cacheDetails")
    if isinstance(details, list) and details:
        split_5m = sum(count(d, "inputTokens") for d in details if d.get("ttl") == "5m")
        split_1h = sum(count(d, "inputTokens") for d in details if d.get("ttl") == "1h")
    total = usage.get("totalTokens")
    call.usage = usage_vector(
        input_tokens=count(usage, "inputTokens"),
        cache_read=count(usage, "cacheReadInputTokens"),
        cache_write=writes,
        cache_write_5m=split_5m,
        cache_write_1h=split_1h,
        output_tokens=count(usage, "outputTokens"),
        provider_total=total if isinstance(total, int) else None,
    )
    call.usage_source = "reported"


def _finish_converse(call: Call, result: Any) -> None:
    _request_id(call, result)
    if isinstance(result, dict):
        _converse_usage(call, result.get("usage"))


def _header(headers: Mapping[str, Any], name: str) -> int | None:
    value = headers.get(_HEADER.format(name))
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _read_body(result: dict[str, Any]) -> Any:
    """The parsed JSON body, read once; the caller gets an unread body with the same bytes.

    A body that cannot be read is handed back as a body that raises the same error when the
    caller reads it; one that is not JSON is not parsed.
    """
    body = result.get("body")
    if not isinstance(body, StreamingBody):
        return None
    try:
        data = body.read()
    except (BotoCoreError, OSError) as exc:  # the caller meets the same error when it reads
        result["body"] = StreamingBody(_Failing(exc), None)
        return None
    result["body"] = StreamingBody(io.BytesIO(data), len(data))
    if "json" not in str(result.get("contentType") or "json"):
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


class _Failing(io.RawIOBase):
    """A raw stream whose every read raises the error the real body raised."""

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self._exc = exc

    def read(self, size: int | None = -1) -> bytes:
        raise self._exc


def _finish_invoke(call: Call, result: Any) -> None:
    """The model and usage from the body, the usage checked against the headers.

    Without counts in the body, the ``x-amzn-bedrock-*`` headers are the usage (see
    ``_bedrock_body`` for which source wins and why).
    """
    _request_id(call, result)
    if not isinstance(result, dict):
        return
    headers = (result.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    body = _read_body(result)
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str) and model:
        call.response_model = model
    figures = {
        bucket: (_HEADER.format(name), _header(headers, name))
        for bucket, name in _HEADER_BUCKETS.items()
    }
    counts = body_counts(body)
    if counts is not None:
        call.usage = counts.vector(check_against(counts, figures))
    elif figures["input"][1] is not None:
        call.usage = usage_vector(
            input_tokens=figures["input"][1] or 0,
            cache_read=figures["cache_read"][1] or 0,
            cache_write=figures["cache_write"][1] or 0,
            output_tokens=figures["output"][1] or 0,
        )
    else:
        return
    call.usage_source = "reported"


def _attach(key: str) -> Callable[[Any, Callable[[Any], Any]], Any]:
    """Put the metering proxy in place of ``result[key]``; the caller gets its own dict."""

    def attach(result: Any, proxy: Callable[[Any], Any]) -> Any:
        result[key] = proxy(result[key])
        return result

    return attach


def _stream_spec(
    key: str, on_chunk: Callable[[Call, Any], bool]
) -> Callable[[Any, Call, Kwargs], StreamSpec | None]:
    def stream(result: Any, call: Call, _kwargs: Kwargs) -> StreamSpec | None:
        if not isinstance(result, dict) or key not in result:
            return None
        _request_id(call, result)
        extra: tuple[Any, ...] = (_attach(key),)
        return StreamSpec(on_chunk, None, *extra)

    return stream


def _converse_event(call: Call, event: Any) -> bool:
    metadata = event.get("metadata") if isinstance(event, dict) else None
    if isinstance(metadata, dict):
        _converse_usage(call, metadata.get("usage"))
    return True


def _invoke_stream(result: Any, call: Call, _kwargs: Kwargs) -> StreamSpec | None:
    """An InvokeModelWithResponseStream body: only chunks that can carry usage are parsed.

    Anthropic's ``message_start`` (the model and the usage) and ``message_delta`` (cumulative
    counts); the last chunk's ``amazon-bedrock-invocationMetrics``. Anthropic's own counts win
    and are checked against the metrics; other families' usage is the metrics.
    """
    if not isinstance(result, dict) or "body" not in result:
        return None
    _request_id(call, result)
    own = Counts()
    seen: list[str] = []
    metrics: dict[str, Any] = {}

    def on_chunk(call: Call, event: Any) -> bool:
        chunk = event.get("chunk") if isinstance(event, dict) else None
        data = chunk.get("bytes") if isinstance(chunk, dict) else None
        if not isinstance(data, bytes) or not any(mark in data for mark in _USAGE_MARKS):
            return True
        payload = json.loads(data)
        if not isinstance(payload, dict):
            return True
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message") or {}
            model = message.get("model")
            if isinstance(model, str) and model:
                call.response_model = model
            if isinstance(message.get("usage"), dict):
                anthropic_update(own, message["usage"])
                seen.append(kind)
        elif kind == "message_delta" and isinstance(payload.get("usage"), dict):
            anthropic_update(own, payload["usage"])  # cumulative: replaces, never adds
            seen.append(kind)
        found = payload.get(_METRICS)
        if isinstance(found, dict):
            metrics.update(found)
        return True

    def on_end(call: Call) -> None:
        figures = {
            bucket: (f"{_METRICS}.{name}", _optional(metrics, name))
            for bucket, name in _METRIC_BUCKETS.items()
        }
        if "message_delta" in seen:
            call.usage = own.vector(check_against(own, figures))
        elif metrics:
            call.usage = usage_vector(
                input_tokens=count(metrics, "inputTokenCount"),
                cache_read=count(metrics, "cacheReadInputTokenCount"),
                cache_write=count(metrics, "cacheWriteInputTokenCount"),
                output_tokens=count(metrics, "outputTokenCount"),
            )
        elif seen:  # message_start only: its output count is a placeholder
            call.usage = own.vector()
            call.usage["mismatch"] = UNFINISHED
            return  # usage_source stays "none"
        else:
            return
        call.usage_source = "reported"

    return StreamSpec(on_chunk, on_end, _attach("body"))


def _optional(values: Mapping[str, Any], name: str) -> int | None:
    value = values.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _methods(region: str | None) -> dict[str, Method]:
    begin = _begin_for(region)
    chat: Operation = "chat"
    return {
        "converse": Method(operation=chat, finish=_finish_converse, begin=begin),
        "invoke_model": Method(operation=chat, finish=_finish_invoke, begin=begin),
        "converse_stream": Method(
            operation=chat,
            finish=_finish_converse,
            begin=begin,
            stream=_stream_spec("stream", _converse_event),
        ),
        "invoke_model_with_response_stream": Method(
            operation=chat,
            finish=_finish_invoke,
            begin=begin,
            stream=_invoke_stream,
        ),
    }


def methods_for(client: Any) -> Mapping[str, Method]:
    """The metered methods of a bedrock-runtime client; none for any other AWS service."""
    if not is_bedrock_runtime(client):
        return {}
    return _methods(getattr(client.meta, "region_name", None))


_OPERATIONS = {
    "Converse": "converse",
    "ConverseStream": "converse_stream",
    "InvokeModel": "invoke_model",
    "InvokeModelWithResponseStream": "invoke_model_with_response_stream",
}


def method_for(client: Any, args: Args) -> Method | None:
    """For ``instrument()``: the Method of ``client._make_api_call(operation, params)``.

    None (not metered) for other services and other bedrock-runtime operations.
    """
    name = _OPERATIONS.get(args[0]) if args and isinstance(args[0], str) else None
    if name is None:
        return None
    return methods_for(client).get(name)


def _patches() -> tuple[Patch, ...]:
    placeholder = Method(operation="chat", finish=_finish_converse)
    return (
        Patch(
            "botocore.client",
            "BaseClient._make_api_call",
            placeholder,
            provider_of,
            method_for=method_for,
        ),
    )


ADAPTER = Adapter(
    name="bedrock",
    provider_of=provider_of,
    methods_for=methods_for,
    patches=_patches(),
)
