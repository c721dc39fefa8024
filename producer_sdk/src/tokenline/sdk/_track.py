"""``track``: meter any call, as a decorator or a ``with`` / ``async with`` block.

The decorator fits the function it decorates: a plain function, a coroutine function (the
call is the await), a generator function or an async generator function (the call lasts until
the generator is exhausted, closed or fails; ``send``/``throw``/``close`` reach the inner
generator). Nothing is bound when ``track(...)`` runs, so decorating at import time has no side
effect: each call reports to the runtime in force when it starts (``LazyBinding``), and runs
unmetered, logged once, while the SDK cannot be configured.
"""

from __future__ import annotations

import functools
import inspect
import time
from contextvars import ContextVar
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from tokenline.sdk._binding import LazyBinding
from tokenline.sdk._call import Call, empty_usage

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping

    from tokenline.schemas import Operation, Provider
    from tokenline.sdk._runtime import Runtime

__all__ = ["Track", "set_usage", "track"]

F = TypeVar("F", bound="Callable[..., Any]")
Started: TypeAlias = tuple["Runtime", Call] | None
"""A tracked call under way and the runtime it reports to; None when it goes unmetered."""

#: The ``with track(...)`` blocks open in this thread or task, innermost last.
_open: ContextVar[tuple[tuple[Track, Call, Started], ...]] = ContextVar(
    "tokenline_open_tracks", default=()
)


def set_usage(call: Call, **counts: int) -> None:
    """Set a tracked call's token counts (keys of the usage vector), marked as reported."""
    usage = empty_usage()
    usage.update(counts)  # type: ignore[typeddict-item]
    call.usage = usage
    call.usage_source = "reported"


class Track:
    """Meter any call: as a decorator, or as ``with track(...) as call:`` / ``async with``.

    ``extractor(result) -> dict`` turns what the decorated function produced into token counts
    (keys of the usage vector): its return value, the awaited value of a coroutine function,
    or the last item a generator (sync or async) yielded (no item, no extraction). Inside a
    ``with`` block, set the counts yourself with ``set_usage(call, ...)``. An exception is
    recorded as a failed call and re-raised. ``batch=True`` marks calls made through a
    provider's Batch API (priced at batch rates).
    """

    def __init__(
        self,
        *,
        provider: Provider = "other",
        operation: Operation = "other",
        model: str | None = None,
        extractor: Callable[[Any], Mapping[str, int]] | None = None,
        batch: bool = False,
        tenant_id: str | None = None,
        **attribution: Any,
    ) -> None:
        self._provider: Provider = provider
        self._operation: Operation = operation
        self._model = model
        self._extractor = extractor
        self._batch = batch
        self._binding = LazyBinding({"tenant_id": tenant_id, **attribution})

    # ---------------------------------------------------------------- one call
    def _call(self) -> Call:
        return Call(
            provider=self._provider,
            operation=self._operation,
            request_model=self._model,
            batch=self._batch,
        )

    def _begin(self) -> Started:
        """Bind to the runtime in force and start a call (None: the call goes unmetered)."""
        bound = self._binding.get()
        if bound is None:
            return None
        runtime, static = bound
        call = self._call()
        call.attribution = runtime.in_context(static)
        return runtime, call

    def _end(
        self,
        started: Started,
        result: Any = None,
        exc: BaseException | None = None,
        *,
        extract: bool = True,
    ) -> None:
        """Finish and send the call: failed with ``exc``, or with ``result``'s usage."""
        if started is None:
            return
        runtime, call = started
        call.ended_ns = time.perf_counter_ns()
        if exc is not None:
            call.failed(exc)
        elif extract and self._extractor is not None:
            with runtime.guard("extracting usage"):
                set_usage(call, **self._extractor(result))
        with runtime.guard("recording a tracked call"):
            runtime.finish(call)

    # ---------------------------------------------------------------- with / async with
    def __enter__(self) -> Call:
        started = self._begin()
        call = started[1] if started is not None else self._call()  # unmetered: never sent
        _open.set((*_open.get(), (self, call, started)))
        return call

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        opened = _open.get()
        for i in range(len(opened) - 1, -1, -1):
            if opened[i][0] is self:
                _open.set(opened[:i] + opened[i + 1 :])
                self._end(opened[i][2], exc=exc if isinstance(exc, Exception) else None)
                return

    async def __aenter__(self) -> Call:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # ---------------------------------------------------------------- decorator
    def __call__(self, fn: F) -> F:
        """Decorate ``fn`` (any kind of callable); what it produces goes through ``extractor``."""
        makers = {
            "async_generator": self._async_generator,
            "generator": self._generator,
            "coroutine": self._coroutine,
            "function": self._function,
        }
        return cast("F", functools.wraps(fn)(makers[_kind(fn)](fn)))

    def _function(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def metered(*args: Any, **kwargs: Any) -> Any:
            started = self._begin()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                self._end(started, exc=exc)
                raise
            if started is not None and isinstance(result, CoroutineType):
                return self._awaited(started, result)  # an async callable not declared so
            self._end(started, result)
            return result

        return metered

    def _coroutine(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def metered(*args: Any, **kwargs: Any) -> Any:
            return await self._awaited(self._begin(), fn(*args, **kwargs))

        return metered

    async def _awaited(self, started: Started, pending: Awaitable[Any]) -> Any:
        try:
            result = await pending
        except Exception as exc:
            self._end(started, exc=exc)
            raise
        self._end(started, result)
        return result

    def _generator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def metered(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            stream = _Stream(self, self._begin())
            inner = fn(*args, **kwargs)
            send: Callable[[Any], Any] = inner.send
            value: Any = None
            while True:
                try:
                    item = send(value)
                except StopIteration as stop:
                    stream.end()
                    return stop.value
                except Exception as exc:
                    stream.end(exc)
                    raise
                stream.item(item)
                try:
                    value = yield item
                    send = inner.send
                except GeneratorExit:  # closed by the consumer (or collected): the call ends
                    try:
                        inner.close()
                    except Exception as exc:
                        stream.end(exc)
                        raise
                    stream.end()
                    raise
                except BaseException as thrown:  # noqa: BLE001 - passed on to the generator
                    send, value = inner.throw, thrown

        return metered

    def _async_generator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def metered(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            stream = _Stream(self, self._begin())
            inner = fn(*args, **kwargs)
            send: Callable[[Any], Awaitable[Any]] = inner.asend
            value: Any = None
            while True:
                try:
                    item = await send(value)
                except StopAsyncIteration:
                    stream.end()
                    return
                except Exception as exc:
                    stream.end(exc)
                    raise
                stream.item(item)
                try:
                    value = yield item
                    send = inner.asend
                except GeneratorExit:
                    try:
                        await inner.aclose()
                    except Exception as exc:
                        stream.end(exc)
                        raise
                    stream.end()
                    raise
                except BaseException as thrown:  # noqa: BLE001 - passed on to the generator
                    send, value = inner.athrow, thrown

        return metered


class _Stream:
    """One tracked generator run: its first and last item, and the call it ends."""

    __slots__ = ("_last", "_seen", "_started", "_track")

    def __init__(self, tracker: Track, started: Started) -> None:
        self._track = tracker
        self._started = started
        self._seen = False
        self._last: Any = None

    def item(self, item: Any) -> None:
        if not self._seen:
            self._seen = True
            if self._started is not None:
                self._started[1].streamed = True
                self._started[1].first_token_ns = time.perf_counter_ns()
        self._last = item

    def end(self, exc: BaseException | None = None) -> None:
        self._track._end(self._started, self._last, exc, extract=self._seen)


def _kind(fn: Callable[..., Any]) -> str:
    """``async_generator``, ``generator``, ``coroutine`` or ``function``, for any callable.

    Functions, methods and ``functools.partial`` are read directly; for other callable
    objects (a class instance with ``__call__``, a ``staticmethod``), what calling them runs.
    """
    targets = [fn, getattr(fn, "__func__", None), type(fn).__call__]
    for check, kind in (
        (inspect.isasyncgenfunction, "async_generator"),
        (inspect.isgeneratorfunction, "generator"),
        (inspect.iscoroutinefunction, "coroutine"),
    ):
        if any(t is not None and check(t) for t in targets):
            return kind
    return "function"


track = Track
"""The public name of :class:`Track` (``tokenline.sdk.track``), spelled as the function it is
used like: ``@track(...)``, ``with track(...) as call:``."""
