"""Metering a provider method: the provider-neutral core every adapter plugs into.

An adapter describes each method it meters with a ``Method``: how to read the request
(``begin``), the response (``finish``) and, when the result is a stream, its chunks. The core
times the call, records provider errors and re-raises them untouched, and keeps the SDK's
own failures away from the caller: if metering breaks, the call still happens, unchanged.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from tokenline.sdk._call import Call
from tokenline.sdk._stream import AsyncStream, StreamState, SyncStream

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tokenline.schemas import Operation, Provider
    from tokenline.sdk._binding import LazyBinding
    from tokenline.sdk._runtime import Runtime

__all__ = ["Metered", "Method", "StreamSpec"]

#: Set while a metered call runs, so a call metered twice (wrap() and instrument()) counts once.
_inside: ContextVar[bool] = ContextVar("tokenline_inside_metered_call", default=False)

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """How to read a stream: per chunk (return False to hide it) and once at its end."""

    on_chunk: Callable[[Call, Any], bool]
    on_end: Callable[[Call], None] | None = None
    attach: Callable[[Any, Callable[[Any], Any]], Any] | None = None
    """For a stream inside the result (Bedrock's ``response["stream"]``): given the result and
    a function that meters a stream, return the result with its stream metered."""


def _no_change(_call: Call, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    return args, kwargs


def _no_stream(_result: Any, _call: Call, _kwargs: Kwargs) -> StreamSpec | None:
    return None


@dataclass(frozen=True, slots=True)
class Method:
    """How one provider method is metered.

    ``begin(call, args, kwargs)`` fills in request fields and may return adjusted arguments
    (e.g. asking for stream usage); ``finish(call, result)`` reads a plain response;
    ``stream(result, call, kwargs)`` returns a StreamSpec when ``result`` is a stream;
    ``wrap_stream`` says whether the stream proxy replaces the result (False for helpers
    whose own object is returned and read at its end by ``finish``).
    ``read_later``: ``finish`` may run on the sender thread after the caller has the result
    (the SDK keeps a reference until then). Only for results ``finish`` merely reads and that
    callers do not alter: the provider SDKs' own response models, not plain dicts.
    """

    operation: Operation
    finish: Callable[[Call, Any], None]
    begin: Callable[[Call, Args, Kwargs], tuple[Args, Kwargs]] = _no_change
    stream: Callable[[Any, Call, Kwargs], StreamSpec | None] = _no_stream
    read_later: bool = False


@dataclass(frozen=True, slots=True)
class Metered:
    """One provider method of one client, reporting to the runtime in force at each call.

    Every call runs through ``call_sync``/``call_async``, so they keep the caller's cost low:
    the runtime is looked up without a lock and the client's fixed attribution is merged once
    per runtime (``LazyBinding``), and the SDK's own failures are caught with plain ``try``
    blocks (``Runtime.swallowed`` logs and counts them).
    """

    binding: LazyBinding
    provider: Provider
    method: Method

    def _start(self, args: Args, kwargs: Kwargs) -> tuple[Runtime, Call, Args, Kwargs] | None:
        bound = self.binding.get()
        if bound is None:  # not configurable now: the call goes on unmetered (logged once)
            return None
        runtime, static = bound
        try:
            call = Call(provider=self.provider, operation=self.method.operation)
            call.attribution = runtime.in_context(static)
            new_args, new_kwargs = self.method.begin(call, args, dict(kwargs))
            call.started_ns = time.perf_counter_ns()
        except Exception as exc:
            if not runtime.swallowed("reading a request", exc):
                raise
            return None
        limits = runtime.limits
        if limits is not None:  # hard budget limits: one dict lookup, or BudgetExceeded
            limits.check(call.attribution)
        return runtime, call, new_args, new_kwargs

    @staticmethod
    def _failed(runtime: Runtime, call: Call, exc: Exception) -> None:
        with runtime.guard("recording a failed call"):
            call.ended_ns = time.perf_counter_ns()
            call.failed(exc)
            runtime.finish(call)

    def _succeeded(self, runtime: Runtime, call: Call, result: Any, kwargs: Kwargs) -> Any:
        try:
            method = self.method
            spec = method.stream(result, call, kwargs)
            if spec is None:
                call.ended_ns = time.perf_counter_ns()
                if method.read_later:
                    runtime.finish(call, method.finish, result)
                else:
                    method.finish(call, result)
                    runtime.finish(call)
                return result
            state = StreamState(runtime, call, spec.on_chunk, spec.on_end)

            def metered_stream(stream: Any) -> Any:
                is_async = hasattr(stream, "__aiter__") and not hasattr(stream, "__iter__")
                return (AsyncStream if is_async else SyncStream)(stream, state)

            return (
                metered_stream(result)
                if spec.attach is None
                else spec.attach(result, metered_stream)
            )
        except Exception as exc:
            if not runtime.swallowed("reading a response", exc):
                raise
        return result

    def call_sync(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
        """Run ``fn`` metered; its result or exception reaches the caller unchanged."""
        if _inside.get():
            return fn(*args, **kwargs)
        started = self._start(args, kwargs)
        if started is None:
            return fn(*args, **kwargs)
        runtime, call, args, kwargs = started
        token = _inside.set(True)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self._failed(runtime, call, exc)
            raise
        finally:
            _inside.reset(token)
        if isinstance(result, CoroutineType):  # an async method behind a sync decorator
            return self._awaited(runtime, call, result, kwargs)
        return self._succeeded(runtime, call, result, kwargs)

    async def _awaited(
        self, runtime: Runtime, call: Call, pending: Awaitable[Any], kwargs: Kwargs
    ) -> Any:
        try:
            result = await pending
        except Exception as exc:
            self._failed(runtime, call, exc)
            raise
        return self._succeeded(runtime, call, result, kwargs)

    async def call_async(
        self, fn: Callable[..., Awaitable[Any]], args: Args, kwargs: Kwargs
    ) -> Any:
        """The async twin of ``call_sync``: only the await differs."""
        if _inside.get():
            return await fn(*args, **kwargs)
        started = self._start(args, kwargs)
        if started is None:
            return await fn(*args, **kwargs)
        runtime, call, args, kwargs = started
        token = _inside.set(True)
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self._failed(runtime, call, exc)
            raise
        finally:
            _inside.reset(token)
        return self._succeeded(runtime, call, result, kwargs)
