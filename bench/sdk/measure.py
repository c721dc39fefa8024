"""Interleaved timing of plain and instrumented LLM calls; shared by every runner.

This module needs only the standard library and the ``openai``/``anthropic`` packages, so the
anchors' runner can import it from their own virtual environments (it never imports
``tokenline``). Timings are ``time.perf_counter_ns`` around one whole call as the caller sees
it (for a stream: creating it and iterating it to the end).

Calls alternate in blocks: ``block`` calls one way, then ``block`` calls the other, the order
of each pair of blocks drawn at random, so slow drift of a shared machine (other processes,
the broker's garbage collection, CPU frequency) falls on both sides alike. The i-th call of a
plain block and the i-th call of the instrumented block next to it form a pair.
"""

from __future__ import annotations

import random
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

SCENARIOS = ("openai chat", "openai chat stream", "anthropic messages")
#: The plain stream that also asks for its usage (``stream_options.include_usage``): what a
#: metered stream must parse anyway, so the baseline its added latency is judged against.
USAGE_STREAM = "openai chat stream + include_usage"
_MESSAGES = [{"role": "user", "content": "Name three prime numbers."}]


def clients(url: str) -> tuple[Any, Any]:
    """Plain OpenAI and Anthropic clients pointed at the emulator (no retries)."""
    import anthropic
    import openai

    return (
        openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0),
        anthropic.Anthropic(base_url=url, api_key="bench", max_retries=0),
    )


def call_of(scenario: str, client: Any) -> Callable[[], None]:
    """One call of ``scenario`` through ``client`` (plain or instrumented)."""
    if scenario == "openai chat":

        def chat() -> None:
            client.chat.completions.create(model="gpt-4o-mini", messages=_MESSAGES, max_tokens=16)

        return chat
    if scenario == "openai chat stream":

        def stream() -> None:
            for _chunk in client.chat.completions.create(
                model="gpt-4o-mini", messages=_MESSAGES, max_tokens=16, stream=True
            ):
                pass

        return stream
    if scenario == USAGE_STREAM:

        def usage_stream() -> None:
            for _chunk in client.chat.completions.create(
                model="gpt-4o-mini",
                messages=_MESSAGES,
                max_tokens=16,
                stream=True,
                stream_options={"include_usage": True},
            ):
                pass

        return usage_stream
    if scenario == "anthropic messages":

        def messages() -> None:
            client.messages.create(model="claude-haiku-4-5", messages=_MESSAGES, max_tokens=16)

        return messages
    msg = f"unknown scenario {scenario!r}"
    raise ValueError(msg)


def interleaved(
    plain: Callable[[], None],
    instrumented: Callable[[], None],
    *,
    calls: int,
    block: int,
    warmup: int,
    switch: Callable[[bool], None] | None = None,
    seed: int = 7,
) -> dict[str, list[int]]:
    """``calls`` timed calls each way, in alternating blocks; durations in ns, pair-aligned.

    ``plain``/``instrumented``: wall-clock time of each call. ``*_cpu``: CPU time the calling
    thread spent in it (``time.thread_time_ns``), which scheduling noise does not inflate.

    ``switch(True/False)`` turns process-wide instrumentation on or off before a block (for
    the anchors, which patch the provider classes); it runs outside the timed region.
    """
    rng = random.Random(seed)
    flip = switch or (lambda _on: None)
    for on in (True, False):
        flip(on)
        fn = instrumented if on else plain
        for _ in range(warmup):
            fn()
    sides = ("plain", "instrumented", "plain_cpu", "instrumented_cpu")
    out: dict[str, list[int]] = {side: [] for side in sides}
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    done = 0
    while done < calls:
        size = min(block, calls - done)
        order = (True, False) if rng.random() < 0.5 else (False, True)
        for on in order:
            flip(on)
            fn = instrumented if on else plain
            side = "instrumented" if on else "plain"
            times, cpu_times = out[side], out[side + "_cpu"]
            for _ in range(size):
                cpu_start = cpu()
                start = clock()
                fn()
                end = clock()
                cpu_times.append(cpu() - cpu_start)
                times.append(end - start)
        done += size
    flip(False)
    return out


class ClassPatches:
    """Turns an anchor's process-wide patches off and on again without re-instrumenting.

    ``snapshot()`` before instrumenting records every attribute of the classes and functions of
    the given packages' loaded modules; ``collect()`` afterwards finds the ones the anchor
    replaced. ``switch(False)`` puts the originals back, ``switch(True)`` the anchor's.
    """

    def __init__(self, packages: tuple[str, ...]) -> None:
        self._packages = packages
        self._before: dict[tuple[int, str], tuple[Any, Any]] = {}
        self.changed: list[tuple[Any, str, Any, Any]] = []

    def _owners(self) -> list[Any]:
        owners = []
        for name, module in list(sys.modules.items()):
            if module is None or name.split(".")[0] not in self._packages:
                continue
            owners.append(module)
            owners.extend(
                value
                for value in vars(module).values()
                if isinstance(value, type) and value.__module__ == name
            )
        return owners

    def _attributes(self) -> dict[tuple[int, str], tuple[Any, Any]]:
        found = {}
        for owner in self._owners():
            for attr, value in list(vars(owner).items()):
                # a module's own state (caches, defaults) is not a patch: only its functions
                if isinstance(owner, type) or callable(value):
                    found[(id(owner), attr)] = (owner, value)
        return found

    def snapshot(self) -> None:
        """Record the attributes as they are before instrumenting."""
        self._before = self._attributes()

    def collect(self) -> list[str]:
        """Find what instrumenting replaced; return their names."""
        self.changed = [
            (owner, attr, self._before[key][1], value)
            for key, (owner, value) in self._attributes().items()
            for attr in (key[1],)
            if key in self._before and self._before[key][1] is not value
        ]
        return [f"{getattr(o, '__qualname__', o.__name__)}.{a}" for o, a, _, _ in self.changed]

    def switch(self, on: bool) -> None:
        """Install the anchor's attributes (``on``) or the originals."""
        for owner, attr, original, patched in self.changed:
            setattr(owner, attr, patched if on else original)
