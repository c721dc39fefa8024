"""``sdk.track`` on every kind of callable and as a block; bound to the runtime at first call."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

import pytest

from tokenline import sdk

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

pytestmark = pytest.mark.unit

_ENV = ("TOKENLINE_TENANT_ID", "TOKENLINE_BOOTSTRAP_SERVERS", "TOKENLINE_PROJECT")


def _configure(emitter: sdk.InMemoryEmitter, **settings: Any) -> None:
    sdk.configure(emitter=emitter, detect_host=False, strict=True, **settings)


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No runtime, and no TOKENLINE_* setting that could configure one."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    sdk.close(0)
    yield
    sdk.close(0)


@pytest.fixture
def sent(unconfigured: None) -> sdk.InMemoryEmitter:
    emitter = sdk.InMemoryEmitter()
    _configure(emitter, tenant_id="acme", project="search")
    return emitter


def _usage(event: Any) -> tuple[int, int]:
    return event["usage"]["input_tokens"], event["usage"]["output_tokens"]


# ---------------------------------------------------------------------------- coroutines


def test_a_coroutine_function_is_metered_over_its_await(sent: sdk.InMemoryEmitter) -> None:
    seen_inside: list[int] = []

    @sdk.track(model="local", extractor=lambda r: {"output_tokens": len(r)})
    async def generate(prompt: str) -> str:
        await asyncio.sleep(0)
        seen_inside.append(len(sent.events))  # the call is not over while its body runs
        return prompt * 2

    assert asyncio.iscoroutinefunction(generate)
    assert asyncio.run(generate("abc")) == "abcabc"
    assert seen_inside == [0]
    (event,) = sent.events
    assert event["usage"]["output_tokens"] == 6
    assert event["usage_source"] == "reported"
    assert event["success"] is True


def test_a_failing_coroutine_is_a_failed_call_and_reraises(sent: sdk.InMemoryEmitter) -> None:
    @sdk.track(model="local")
    async def generate() -> str:
        await asyncio.sleep(0)
        raise TimeoutError("model server timed out")

    with pytest.raises(TimeoutError, match="timed out"):
        asyncio.run(generate())
    (event,) = sent.events
    assert event["success"] is False
    assert event["error_type"] == "TimeoutError"


def test_async_callables_not_declared_async_are_awaited(sent: sdk.InMemoryEmitter) -> None:
    class Model:
        async def __call__(self, n: int) -> list[int]:
            await asyncio.sleep(0)
            return list(range(n))

    async def by_partial(n: int, extra: int) -> list[int]:
        await asyncio.sleep(0)
        return list(range(n + extra))

    tracked_object = sdk.track(extractor=lambda r: {"output_tokens": len(r)})(Model())
    tracked_partial = sdk.track(extractor=lambda r: {"output_tokens": len(r)})(
        functools.partial(by_partial, extra=1)
    )

    async def main() -> tuple[list[int], list[int]]:
        return await tracked_object(3), await tracked_partial(4)

    assert asyncio.run(main()) == ([0, 1, 2], [0, 1, 2, 3, 4])
    assert [e["usage"]["output_tokens"] for e in sent.events] == [3, 5]


def test_a_method_is_tracked_per_call(sent: sdk.InMemoryEmitter) -> None:
    class Model:
        def __init__(self) -> None:
            self.calls = 0

        @sdk.track(extractor=lambda r: {"input_tokens": r})
        def run(self, n: int) -> int:
            self.calls += 1
            return n

        @sdk.track(extractor=lambda r: {"input_tokens": r})
        async def arun(self, n: int) -> int:
            await asyncio.sleep(0)
            return n

    model = Model()
    assert model.run(4) == 4
    assert asyncio.run(model.arun(9)) == 9
    assert model.calls == 1
    assert [e["usage"]["input_tokens"] for e in sent.events] == [4, 9]


# ---------------------------------------------------------------------------- generators


def _chunks(n: int) -> list[dict[str, int]]:
    return [{"output_tokens": i + 1} for i in range(n)]


def test_a_generator_is_one_call_that_ends_when_exhausted(sent: sdk.InMemoryEmitter) -> None:
    @sdk.track(model="local", extractor=lambda last: {"output_tokens": last["output_tokens"]})
    def stream(n: int) -> Iterator[dict[str, int]]:
        yield from _chunks(n)

    seen = []
    for chunk in stream(3):
        seen.append(chunk)
        assert sent.events == []  # still streaming
    assert seen == _chunks(3)
    (event,) = sent.events
    assert event["usage"]["output_tokens"] == 3  # the extractor saw the last item
    assert event["streamed"] is True
    assert event["time_to_first_token_ms"] is not None


def test_a_generator_closed_early_ends_the_call_once(sent: sdk.InMemoryEmitter) -> None:
    cleaned: list[bool] = []

    @sdk.track(extractor=lambda last: {"output_tokens": last["output_tokens"]})
    def stream() -> Iterator[dict[str, int]]:
        try:
            yield from _chunks(10)
        finally:
            cleaned.append(True)

    gen = stream()
    assert next(gen) == {"output_tokens": 1}
    assert next(gen) == {"output_tokens": 2}
    gen.close()
    gen.close()
    assert cleaned == [True]
    (event,) = sent.events
    assert event["success"] is True
    assert event["usage"]["output_tokens"] == 2


def test_a_failing_generator_is_a_failed_call(sent: sdk.InMemoryEmitter) -> None:
    @sdk.track()
    def stream() -> Iterator[int]:
        yield 1
        raise ConnectionResetError("stream cut")

    with pytest.raises(ConnectionResetError):
        list(stream())
    (event,) = sent.events
    assert event["success"] is False
    assert event["error_type"] == "ConnectionResetError"


def test_send_throw_and_return_value_reach_the_generator(sent: sdk.InMemoryEmitter) -> None:
    @sdk.track(extractor=lambda last: {"input_tokens": last})
    def accumulate() -> Iterator[int]:
        total = 0
        while True:
            try:
                total += yield total
            except KeyError:
                total = 100

    gen = accumulate()
    assert next(gen) == 0
    assert gen.send(5) == 5
    assert gen.throw(KeyError("reset")) == 100
    assert gen.send(1) == 101
    gen.close()
    (event,) = sent.events
    assert event["usage"]["input_tokens"] == 101

    @sdk.track()
    def answer() -> Iterator[int]:
        yield 1
        return 42

    def outer() -> Iterator[int]:
        result = yield from answer()
        yield result

    assert list(outer()) == [1, 42]


def test_an_async_generator_is_one_call_until_exhausted_or_closed(
    sent: sdk.InMemoryEmitter,
) -> None:
    @sdk.track(extractor=lambda last: {"output_tokens": last["output_tokens"]})
    async def stream(n: int) -> AsyncIterator[dict[str, int]]:
        for chunk in _chunks(n):
            await asyncio.sleep(0)
            yield chunk

    async def main() -> list[int]:
        counts = []
        async for chunk in stream(4):
            counts.append(len(sent.events))
            assert chunk["output_tokens"] >= 1
        gen = stream(10)
        await anext(gen)  # type: ignore[arg-type]
        await gen.aclose()  # type: ignore[attr-defined]
        return counts

    assert asyncio.run(main()) == [0, 0, 0, 0]
    exhausted, closed = sent.events
    assert exhausted["usage"]["output_tokens"] == 4
    assert exhausted["streamed"] is True
    assert closed["usage"]["output_tokens"] == 1
    assert closed["success"] is True


def test_a_generator_that_yields_nothing_skips_the_extractor(sent: sdk.InMemoryEmitter) -> None:
    @sdk.track(extractor=lambda last: {"output_tokens": last["output_tokens"]})
    def stream() -> Iterator[dict[str, int]]:
        yield from ()

    assert list(stream()) == []  # strict: a failing extractor would raise here
    (event,) = sent.events
    assert event["usage_source"] == "none"


# ---------------------------------------------------------------------------- blocks


def test_async_with_block(sent: sdk.InMemoryEmitter) -> None:
    async def main() -> None:
        async with sdk.track(model="m") as call:
            await asyncio.sleep(0)
            sdk.set_usage(call, input_tokens=7, output_tokens=2)

    asyncio.run(main())
    (event,) = sent.events
    assert _usage(event) == (7, 2)


def test_one_tracker_shared_by_interleaved_tasks_keeps_their_calls_apart(
    sent: sdk.InMemoryEmitter,
) -> None:
    tracker = sdk.track(model="m")

    async def one(n: int, entered: asyncio.Event, go: asyncio.Event) -> None:
        async with tracker as call:
            entered.set()
            await go.wait()
            sdk.set_usage(call, input_tokens=n)

    async def main() -> None:
        a_in, b_in, a_go, b_go = (asyncio.Event() for _ in range(4))
        a = asyncio.create_task(one(1, a_in, a_go))
        b = asyncio.create_task(one(2, b_in, b_go))
        await a_in.wait()
        await b_in.wait()
        a_go.set()  # a leaves its block while b is still inside its own
        await a
        b_go.set()
        await b

    asyncio.run(main())
    assert [e["usage"]["input_tokens"] for e in sent.events] == [1, 2]


def test_a_with_block_that_raises_is_a_failed_call(sent: sdk.InMemoryEmitter) -> None:
    with pytest.raises(ValueError, match="bad"), sdk.track():
        raise ValueError("bad")
    assert sent.events[0]["success"] is False


# ---------------------------------------------------------------------------- binding


def test_decorating_at_import_time_without_configuration_raises_nothing(
    unconfigured: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "tracked_at_import.py"
    source.write_text(
        "from tokenline import sdk\n\n"
        "@sdk.track(model='local', extractor=lambda r: {'output_tokens': r})\n"
        "def generate(n):\n"
        "    return n\n\n"
        "@sdk.track(model='local')\n"
        "async def agenerate(n):\n"
        "    return n\n"
    )
    spec = importlib.util.spec_from_file_location("tracked_at_import", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no ConfigError here

    with caplog.at_level(logging.WARNING, logger="tokenline"):
        assert module.generate(3) == 3  # no tenant anywhere: runs unmetered
        assert module.generate(4) == 4
        assert asyncio.run(module.agenerate(5)) == 5
    warnings = [r for r in caplog.records if "unmetered" in r.getMessage()]
    assert len(warnings) == 1
    assert "bootstrap_servers: required" in warnings[0].getMessage()

    emitter = sdk.InMemoryEmitter()
    _configure(emitter, tenant_id="acme")
    assert module.generate(6) == 6
    (event,) = emitter.events
    assert event["usage"]["output_tokens"] == 6
    assert event["tenant_id"] == "acme"


def test_each_call_reports_to_the_runtime_in_force(unconfigured: None) -> None:
    first, second = sdk.InMemoryEmitter(), sdk.InMemoryEmitter()
    _configure(first, tenant_id="acme", project="one")

    @sdk.track(team="search")
    def generate() -> int:
        return 1

    generate()
    _configure(second, tenant_id="acme", project="two")
    generate()
    generate()
    assert [e["project"] for e in first.events] == ["one"]
    assert [e["project"] for e in second.events] == ["two", "two"]
    assert {e["team"] for e in second.events} == {"search"}


def test_a_block_while_unconfigured_runs_and_is_not_sent(unconfigured: None) -> None:
    with sdk.track() as call:
        sdk.set_usage(call, input_tokens=1)
    emitter = sdk.InMemoryEmitter()
    _configure(emitter, tenant_id="acme")
    assert emitter.events == []


def test_the_tracked_tenant_is_enough_without_a_settings_tenant(unconfigured: None) -> None:
    emitter = sdk.InMemoryEmitter()
    _configure(emitter)

    @sdk.track(tenant_id="globex")
    def generate() -> int:
        return 1

    generate()
    assert emitter.events[0]["tenant_id"] == "globex"
