"""``sdk.stats()``: what happened to the usage events of this process, as one snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tokenline.sdk.emitters import (
    DROP_REASONS,
    BackgroundEmitter,
    HttpEmitter,
    KafkaEmitter,
    SpoolingEmitter,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.sdk.emitters import Counters, Emitter

__all__ = ["Stats", "snapshot"]


@dataclass(frozen=True)
class Stats:
    """Totals since ``configure()`` (a forked child counts from zero), and what waits now.

    An event the sender could not queue is dropped (``queue_full``); every event queued ends up
    sent, spooled or dropped (with its reason); a spooled one is later re-sent, by this process
    or the next one using the spool directory.
    """

    queued: int
    """Events handed to the background sender."""
    sent: int
    """Events Kafka acknowledged (re-sent ones included)."""
    spooled: int
    """Records written to the disk spool because Kafka did not acknowledge them."""
    resent: int
    """Spooled records re-sent and acknowledged."""
    dropped: Mapping[str, int]
    """Events lost, by reason: ``queue_full`` (the send queue), ``spool_full``,
    ``build_failed`` (the event could not be made from the call), ``no_spool`` (Kafka did not
    take it and the spool is off), ``refused`` (the HTTP API refused it as invalid; the reason
    is logged)."""
    send_errors: int
    """Records Kafka refused or did not acknowledge (each then went to the spool)."""
    in_queue: int
    """Events waiting for the sender now."""
    in_kafka: int
    """Records in the Kafka client's queue or in flight now (with the HTTP transport: batched
    or in flight to the API)."""
    spool_bytes: int
    """Bytes on disk in the spool directory, as this process knows it."""
    budget: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({"status": "off"}))
    """Hard budget limits: ``status`` (``off``; ``unknown`` before the first evaluator
    heartbeat, ``stale`` without one for ``budget_stale_s``, ``live``: only then are calls
    refused), ``exceeded`` (budgets over their hard limit now), ``refused`` (calls refused),
    ``failed_open`` (calls let through over a limit because the status was not live)."""

    transport_error: str | None = None
    """With the HTTP transport, the last problem the API or the network reported (e.g. ``401
    unknown or revoked API key``), until a batch is delivered again; None otherwise."""

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain values (``dropped`` as a dict), e.g. for JSON."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["dropped"] = dict(self.dropped)
        out["budget"] = dict(self.budget)
        return out

    @classmethod
    def zero(cls) -> Stats:
        """Nothing yet: no runtime is configured."""
        return cls(0, 0, 0, 0, MappingProxyType(dict.fromkeys(DROP_REASONS, 0)), 0, 0, 0, 0)


def snapshot(
    counters: Counters, emitter: Emitter, budget: Mapping[str, Any] | None = None
) -> Stats:
    """The counters and the emitter chain's current backlog, as a ``Stats``."""
    in_queue = 0
    inner: object = emitter
    if isinstance(emitter, BackgroundEmitter):
        in_queue = emitter.queue_depth()
        inner = emitter.inner
    spool_bytes = 0
    if isinstance(inner, SpoolingEmitter):
        spool_bytes = inner.spool.size
        inner = inner.inner
    in_kafka = inner.pending() if isinstance(inner, (KafkaEmitter, HttpEmitter)) else 0
    transport_error = inner.error if isinstance(inner, HttpEmitter) else None
    return Stats(
        queued=counters.taken + in_queue,
        sent=counters.sent,
        spooled=counters.spooled,
        resent=counters.resent,
        dropped=MappingProxyType({reason: getattr(counters, reason) for reason in DROP_REASONS}),
        send_errors=counters.send_errors,
        in_queue=in_queue,
        in_kafka=in_kafka,
        spool_bytes=spool_bytes,
        budget=MappingProxyType(dict(budget or {"status": "off"})),
        transport_error=transport_error,
    )
