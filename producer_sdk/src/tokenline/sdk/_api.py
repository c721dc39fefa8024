"""The SDK's public functions: wrap, instrument, context, record, track, flush, close."""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

import wrapt

from tokenline.sdk._binding import TENANT_REQUIRED, LazyBinding
from tokenline.sdk._call import Call, empty_usage
from tokenline.sdk._proxy import Binding, ClientProxy
from tokenline.sdk._runtime import (
    Runtime,
    current_runtime,
    installed_runtime,
    installed_stats,
    replace_runtime,
)
from tokenline.sdk._settings import load_settings
from tokenline.sdk._stats import Stats
from tokenline.sdk._track import set_usage, track
from tokenline.sdk._wrapping import Metered
from tokenline.sdk.errors import ConfigError
from tokenline.sdk.providers import adapter_for, installed_adapters

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenline.schemas import Operation, Provider, Usage
    from tokenline.sdk.emitters import Emitter

__all__ = [
    "close",
    "configure",
    "flush",
    "instrument",
    "record",
    "set_usage",
    "stats",
    "track",
    "uninstrument",
    "wrap",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


def configure(*, emitter: Emitter | None = None, **settings: Any) -> Runtime:
    """Set up the process's metering (settings as keywords over ``TOKENLINE_*``).

    Optional: the first ``wrap``, ``record`` or ``instrument`` configures from the environment.
    ``emitter`` replaces Kafka, e.g. ``InMemoryEmitter()`` in tests. Raises ``ConfigError``
    listing every problem. Calling it again replaces the runtime (the previous one is closed:
    what it could not send goes to the spool). However the process ends, events are sent or
    spooled at exit (``atexit``, and SIGTERM unless the application handles it itself).
    """
    runtime = Runtime(load_settings(**settings), emitter)
    replace_runtime(runtime)
    return runtime


def _runtime_for(tenant_id: str | None) -> Runtime:
    """The runtime to report to now, configured from ``TOKENLINE_*`` when none is yet."""
    runtime = installed_runtime()
    if runtime is not None and (tenant_id or runtime.settings.tenant_id):
        return runtime  # the per-call path: no lock
    problems: list[str] = []
    try:
        runtime = current_runtime()
    except ConfigError as exc:
        problems.extend(exc.problems)
        runtime = None
    if tenant_id is None and (runtime is None or runtime.settings.tenant_id is None):
        problems = [p for p in problems if not p.startswith("tenant_id")]
        problems.insert(0, TENANT_REQUIRED)
    if problems or runtime is None:
        raise ConfigError(problems)
    return runtime


def _check_settings(tenant_id: str | None) -> None:
    """Raise ``ConfigError`` for what is already wrong with the settings; bind nothing.

    With a runtime in place, a tenant must be known. With none yet, the ``TOKENLINE_*``
    settings are validated as they stand but nothing is started: a later ``configure()`` may
    still give the tenant, the Kafka address or an emitter.
    """
    runtime = installed_runtime()
    if runtime is None:
        load_settings()
    elif not (tenant_id or runtime.settings.tenant_id):
        raise ConfigError([TENANT_REQUIRED])


def wrap(
    client: T, *, tenant_id: str | None = None, project: str | None = None, **attribution: Any
) -> T:
    """Return ``client`` with the same surface, every supported call metered.

    ``openai.OpenAI()``, ``AzureOpenAI``, ``anthropic.Anthropic()``, a boto3
    ``bedrock-runtime`` client, ``google.genai.Client()`` or a google-generativeai
    ``GenerativeModel``, sync or async. ``attribution`` may hold user_id, session_id, team
    and tags. Raises ``ConfigError`` (every problem listed) when settings are wrong.

    Nothing is bound here: each call reports to the runtime in force when it runs, so a client
    may be wrapped at import time and ``configure()`` called later (or again). A call made
    while the SDK cannot be configured (e.g. no tenant anywhere) runs unmetered, logged once.
    """
    _check_settings(tenant_id)
    adapter = adapter_for(client)
    binding = Binding(
        runtime=LazyBinding({"tenant_id": tenant_id, "project": project, **attribution}),
        provider=adapter.provider_of(client),
        methods=adapter.methods_for(client),
        helpers=adapter.helpers,
    )
    return ClientProxy(client, binding)  # type: ignore[return-value]


#: What ``instrument()``ed calls report to: the process's runtime, attribution from settings.
_instrumented = LazyBinding({})


_instrument_lock = threading.Lock()
_patched: list[tuple[Any, str, Any]] = []


def instrument() -> list[str]:
    """Meter every installed provider SDK process-wide; return the adapters patched.

    Idempotent; ``uninstrument()`` undoes it exactly. Calls made through a ``wrap``ped client
    are still counted once.
    """
    with _instrument_lock:
        if _patched:
            return sorted({owner.__module__.split(".")[0] for owner, _, _ in _patched})
        names = []
        for adapter in installed_adapters():
            for patch in adapter.patches:
                _apply(patch)
            names.append(adapter.name)
        return names


def _apply(patch: Any) -> None:
    module = importlib.import_module(patch.module)
    *owner_path, attr = patch.qualname.split(".")
    owner: Any = module
    for part in owner_path:
        owner = getattr(owner, part)
    original = owner.__dict__[attr] if attr in owner.__dict__ else getattr(owner, attr)

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            provider = patch.provider_of(instance)
            method = patch.method if patch.method_for is None else patch.method_for(instance, args)
        except Exception:
            log.warning("tokenline: not metering %s", patch.qualname, exc_info=True)
            return wrapped(*args, **kwargs)
        if method is None:
            return wrapped(*args, **kwargs)
        metered = Metered(_instrumented, provider, method)  # bound to the runtime per call
        if inspect.iscoroutinefunction(wrapped):
            return metered.call_async(wrapped, tuple(args), dict(kwargs))
        return metered.call_sync(wrapped, tuple(args), dict(kwargs))

    wrapt.wrap_function_wrapper(owner, attr, wrapper)
    _patched.append((owner, attr, original))


def uninstrument() -> None:
    """Undo ``instrument()``: every patched method is restored to the original object."""
    with _instrument_lock:
        while _patched:
            owner, attr, original = _patched.pop()
            setattr(owner, attr, original)


def record(
    *,
    provider: Provider = "other",
    operation: Operation = "other",
    model: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    cache_write_input_tokens: int = 0,
    reasoning_tokens: int = 0,
    latency_ms: int = 0,
    success: bool = True,
    error_type: str | None = None,
    batch: bool = False,
    tenant_id: str | None = None,
    **attribution: Any,
) -> None:
    """Send a usage event by hand, for a call no wrapper knows. Never raises on send.

    ``batch=True`` marks a call made through a provider's Batch API (priced at batch rates).
    """
    runtime = _runtime_for(tenant_id)
    usage: Usage = empty_usage()
    usage["input_tokens"] = input_tokens
    usage["output_tokens"] = output_tokens
    usage["cache_read_input_tokens"] = cache_read_input_tokens
    usage["cache_write_input_tokens"] = cache_write_input_tokens
    usage["reasoning_tokens"] = reasoning_tokens
    now = time.perf_counter_ns()
    call = Call(
        provider=provider,
        operation=operation,
        request_model=model,
        response_model=model,
        batch=batch,
        usage=usage,
        usage_source="reported",
        started_ns=now - latency_ms * 1_000_000,
        ended_ns=now,
        success=success,
        error_type=error_type,
    )
    call.attribution = runtime.attribution({"tenant_id": tenant_id, **attribution})
    runtime.finish(call)


def flush(timeout: float = 5.0) -> int:
    """Wait up to ``timeout`` seconds for pending events; return how many remain."""
    return current_runtime().flush(timeout)


def close(timeout: float | None = None) -> None:
    """Shut metering down: what Kafka acknowledges within ``timeout`` is sent, the rest spooled.

    ``timeout`` defaults to the ``flush_timeout_s`` setting. Queued events are handed to
    Kafka; what it has not acknowledged in time is purged into the fsync'd disk spool, which
    the next process using the same spool directory re-sends. The exit path does this by
    itself; call it from a framework's worker-shutdown hook when workers end without it
    (``os._exit``, a signal the framework handles). A later call configures anew.
    """
    replace_runtime(None, timeout)


def stats() -> Stats:
    """What happened to this process's usage events since ``configure()`` (see ``Stats``)."""
    current = installed_stats()
    return current if current is not None else Stats.zero()
