"""Streams: a proxy that emits exactly one usage event per stream.

The event goes out when the stream is exhausted, closed early, fails, leaves its ``with``
block, or is garbage-collected unfinished, whichever comes first. Sync and async proxies
share one ``StreamState``; only the iteration edge is twinned.

Every chunk passes through the caller's thread, so that path is kept short: ``for chunk in
stream`` runs a generator (resuming one costs less than a Python ``__next__`` call, and the
per-chunk work is inlined into it), and the end of an unfinished stream is caught by the
proxy's ``__del__`` rather than a ``weakref.finalize`` made per stream.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import wrapt

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenline.sdk._call import Call
    from tokenline.sdk._runtime import Runtime

__all__ = ["AsyncStream", "StreamState", "SyncStream"]


_READING = "reading a stream chunk"


class StreamState:
    """Accumulates a stream's chunks into its Call and finishes it once.

    ``on_chunk(call, chunk)`` reads usage and metadata from one chunk and returns whether the
    caller should see it (False hides a chunk the SDK asked for on the caller's behalf, such
    as OpenAI's usage-only chunk). ``on_end(call)`` runs once before the
    event is emitted, on the sender's thread behind the background sender: it may only read
    what the chunks left behind.
    """

    __slots__ = ("_done", "_lock", "call", "on_chunk", "on_end", "runtime")

    def __init__(
        self,
        runtime: Runtime,
        call: Call,
        on_chunk: Callable[[Call, Any], bool],
        on_end: Callable[[Call], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.call = call
        self.on_chunk = on_chunk
        self.on_end = on_end
        self._done = False
        self._lock = threading.Lock()
        call.streamed = True

    def chunk(self, chunk: Any) -> bool:
        """Account for one chunk; return whether to pass it to the caller."""
        call = self.call
        if call.first_token_ns is None:
            call.first_token_ns = time.perf_counter_ns()
        try:  # a plain try: this runs once per chunk on the caller's thread
            return self.on_chunk(call, chunk)
        except Exception as exc:
            if not self.runtime.swallowed(_READING, exc):
                raise
        return True

    @property
    def done(self) -> bool:
        """Whether the call has been finished."""
        return self._done

    def end(self, exc: BaseException | None = None) -> None:
        """Finish the call (once): on exhaustion, close, error or collection."""
        with self._lock:
            if self._done:
                return
            self._done = True
        with self.runtime.guard("finishing a stream"):
            self.call.ended_ns = time.perf_counter_ns()
            if exc is not None:
                self.call.failed(exc)
            if self.on_end is None:
                self.runtime.finish(self.call)
            else:  # reads only what the chunks left: may run on the sender thread
                self.runtime.finish(self.call, _run_on_end, self.on_end)


def _run_on_end(call: Call, on_end: Callable[[Call], None]) -> None:
    on_end(call)


class SyncStream(wrapt.ObjectProxy[Any]):
    """Wraps a provider's sync stream; behaves exactly like it."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        self._self_iter: Any = None

    def __del__(self) -> None:
        self._self_state.end()  # a no-op when the stream was finished

    def _self_chunks(self) -> Any:
        chunks = self._self_iter
        if chunks is None:
            chunks = self._self_iter = iter(self.__wrapped__)
        return chunks

    def __iter__(self) -> Any:
        if self._self_state.done and self._self_iter is not None:
            return iter(self.__wrapped__)  # a finished stream the provider lets you replay
        return self._self_each()

    def _self_each(self) -> Any:
        """The chunks, each accounted for (several of these may share the one iterator)."""
        state = self._self_state
        call = state.call
        on_chunk = state.on_chunk
        try:
            for chunk in self._self_chunks():
                if call.first_token_ns is None:
                    call.first_token_ns = time.perf_counter_ns()
                try:
                    visible = on_chunk(call, chunk)
                except Exception as exc:  # logged and counted; the chunk is shown
                    if not state.runtime.swallowed(_READING, exc):
                        raise
                    visible = True
                if visible:
                    yield chunk  # left unfinished (a break), this generator ends nothing
        except Exception as exc:
            state.end(exc)
            raise
        state.end()

    def __next__(self) -> Any:
        chunks = self._self_chunks()
        state = self._self_state
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                state.end()
                raise
            except Exception as exc:
                state.end(exc)
                raise
            if state.chunk(chunk):
                return chunk

    def __enter__(self) -> SyncStream:
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            return exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            self._self_state.end(exc if isinstance(exc, Exception) else None)

    def close(self) -> None:
        """Close the provider stream and finish the call."""
        try:
            close = getattr(self.__wrapped__, "close", None)
            if close is not None:
                close()
        finally:
            self._self_state.end()


class AsyncStream(wrapt.ObjectProxy[Any]):
    """Wraps a provider's async stream; behaves exactly like it."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        self._self_iter: Any = None

    def __del__(self) -> None:
        self._self_state.end()  # a no-op when the stream was finished

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._self_iter is None:
            self._self_iter = self.__wrapped__.__aiter__()
        while True:
            try:
                chunk = await self._self_iter.__anext__()
            except StopAsyncIteration:
                self._self_state.end()
                raise
            except Exception as exc:
                self._self_state.end(exc)
                raise
            if self._self_state.chunk(chunk):
                return chunk

    async def __aenter__(self) -> AsyncStream:
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            return await exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            self._self_state.end(exc if isinstance(exc, Exception) else None)

    async def close(self) -> None:
        """Close the provider stream and finish the call."""
        try:
            close = getattr(self.__wrapped__, "close", None)
            if close is not None:
                result = close()
                if hasattr(result, "__await__"):
                    await result
        finally:
            self._self_state.end()
