"""Prometheus metrics of the processor, on their own registry (so tests can build many).

The registry also has the process, platform and GC collectors and ``tokenline_build_info``
(:func:`tokenline.common.ops.metrics.new_registry`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, start_http_server

from tokenline.common.ops.metrics import new_registry

__all__ = ["Metrics"]


class Metrics:
    """Counters and gauges the agents update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or new_registry("processor", "tokenline-processor")
        r = self.registry
        p = "tokenline_processor"
        self.events_in = Counter(f"{p}_events_in", "Raw records consumed.", registry=r)
        self.events_out = Counter(
            f"{p}_events_out", "Records produced, by output.", ["output"], registry=r
        )
        self.dead_letters = Counter(
            f"{p}_dead_letters", "Records sent to the DLQ.", ["reason_code", "stage"], registry=r
        )
        self.unpriced = Counter(f"{p}_unpriced", "Events left unpriced.", ["reason"], registry=r)
        self.producer_gaps = Counter(
            f"{p}_producer_gaps", "Producer sequence numbers skipped (lost events).", registry=r
        )
        self.producer_gap_fills = Counter(
            f"{p}_producer_gap_fills", "Skipped sequence numbers that arrived late.", registry=r
        )
        self.producer_repeats = Counter(
            f"{p}_producer_repeats", "Producer sequence numbers seen again.", registry=r
        )
        self.window_redeliveries = Counter(
            f"{p}_window_redeliveries", "Events skipped by a window (already applied).", registry=r
        )
        self.consumer_lag = Gauge(
            f"{p}_consumer_lag",
            "Raw topic high watermark minus position, per assigned partition.",
            ["partition"],
            registry=r,
        )
        self.price_updates = Counter(
            f"{p}_price_updates",
            "Price documents read from the prices topic.",
            ["result"],
            registry=r,
        )
        self.pricing = Info(f"{p}_pricing", "The price table in use.", registry=r)
        self.errors = Counter(
            f"{p}_errors",
            "Errors by kind: kafka (client errors), transaction (a batch's transaction "
            "aborted or retried), price_document (an invalid document on the prices topic).",
            ["kind"],
            registry=r,
        )
        for kind in ("kafka", "transaction", "price_document"):
            self.errors.labels(kind)

    def serve(self, port: int) -> None:
        """Expose the metrics over HTTP on ``port`` (a background thread)."""
        start_http_server(port, registry=self.registry)
