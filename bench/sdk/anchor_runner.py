"""Runs one anchor's calls inside that anchor's own virtual environment; prints JSON.

    <venv>/bin/python bench/sdk/anchor_runner.py --anchor openllmetry --url URL --calls N ...

Started by ``bench/sdk_overhead.py``; it imports neither ``tokenline`` nor the project's code.
Each anchor is set up the way its documentation tells users to, exporting to memory:

- openllmetry: ``OpenAIInstrumentor().instrument()`` and ``AnthropicInstrumentor().instrument()``
  with an OpenTelemetry SDK ``TracerProvider`` whose ``BatchSpanProcessor`` (the processor
  OpenTelemetry and Traceloop set up by default) feeds an ``InMemorySpanExporter``. No meter
  provider is set, so the instrumentation's metrics are no-ops (cheaper than their default).
- langfuse: ``Langfuse(..., span_exporter=InMemorySpanExporter())`` with tracing on, then
  ``from langfuse.openai import OpenAI``. Langfuse's own span processor (a BatchSpanProcessor)
  exports to memory; its API base URL is a loopback port where nothing listens, so nothing it
  might send elsewhere leaves the machine or blocks a call. Langfuse has no Anthropic wrapper.

Both patch the provider classes process-wide; ``measure.ClassPatches`` switches the patches off
for the plain blocks, so plain and instrumented calls go through the same client object.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version
from typing import Any

import measure  # beside this file: sys.path[0]


def _openllmetry(patches: measure.ClassPatches) -> tuple[Any, set[str]]:
    from opentelemetry import trace
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    patches.snapshot()
    OpenAIInstrumentor().instrument()
    AnthropicInstrumentor().instrument()

    def spans() -> int:
        provider.force_flush()
        found = len(exporter.get_finished_spans())
        exporter.clear()
        return found

    return spans, set(measure.SCENARIOS)


def _langfuse(patches: measure.ClassPatches) -> tuple[Any, set[str]]:
    from langfuse import Langfuse, get_client
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    Langfuse(
        public_key="pk-lf-bench",
        secret_key="sk-lf-bench",  # nothing is sent anywhere
        base_url="http://127.0.0.1:9",  # nothing listens there
        span_exporter=exporter,
    )
    patches.snapshot()
    from langfuse.openai import OpenAI  # noqa: F401 - the import patches openai

    def spans() -> int:
        get_client().flush()
        found = len(exporter.get_finished_spans())
        exporter.clear()
        return found

    return spans, {"openai chat", "openai chat stream"}


ANCHORS = {"openllmetry": _openllmetry, "langfuse": _langfuse}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--anchor", choices=sorted(ANCHORS), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--block", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--scenarios", default=",".join(measure.SCENARIOS))
    args = parser.parse_args()

    openai_client, anthropic_client = measure.clients(args.url)
    for scenario in measure.SCENARIOS:  # load every module the calls use before the snapshot
        client = anthropic_client if scenario.startswith("anthropic") else openai_client
        measure.call_of(scenario, client)()
    patches = measure.ClassPatches(("openai", "anthropic", "httpx", "httpx2", "httpcore"))
    spans, supported = ANCHORS[args.anchor](patches)
    patched = patches.collect()
    out: dict[str, Any] = {
        "anchor": args.anchor,
        "patched": patched,
        "versions": {
            name: version(name)
            for name in (
                "openai",
                "anthropic",
                "opentelemetry-sdk",
                "opentelemetry-instrumentation-openai",
                "opentelemetry-instrumentation-anthropic",
                "langfuse",
            )
            if _installed(name)
        },
        "scenarios": {},
    }
    spans()
    for scenario in args.scenarios.split(","):
        if scenario not in supported:
            out["scenarios"][scenario] = {"skipped": f"{args.anchor} does not wrap it"}
            continue
        client = anthropic_client if scenario.startswith("anthropic") else openai_client
        call = measure.call_of(scenario, client)
        times = measure.interleaved(
            call,
            call,
            calls=args.calls,
            block=args.block,
            warmup=args.warmup,
            switch=patches.switch,
        )
        out["scenarios"][scenario] = {**times, "recorded": spans()}
    json.dump(out, sys.stdout)


def _installed(name: str) -> bool:
    try:
        version(name)
    except Exception:  # noqa: BLE001 - not installed here
        return False
    return True


if __name__ == "__main__":
    main()
