"""Hard budget limits at the client: the budget-status topic followed in the background.

With ``budget_limits`` on, a daemon thread reads the compacted budget-status topic (written
by ``tokenline budgets run``) from its beginning and keeps, per tenant, the budgets whose
spend is at or over their hard limit in the current period. A wrapped call first looks its
tenant up in that dict (nothing else when the tenant is over no limit); only when the tenant
is, are its project, team and user compared, and the call raises :class:`BudgetExceeded`
before the provider is called.

It fails open: while no status has been read (``unknown``), or when no evaluator heartbeat
arrived for ``budget_stale_s`` (``stale``: the evaluator or Kafka is away), calls go through;
``sdk.stats().budget`` says which, and counts the calls let through that a live status would
have refused. A block ends by itself when its period ends (the next period starts at zero).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenline.sdk.errors import BudgetExceeded

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.schemas import BudgetStatus
    from tokenline.sdk._settings import Settings

__all__ = ["Block", "BudgetLimits"]

log = logging.getLogger(__name__)

_HEARTBEAT = "__heartbeat__/"
_ATTRIBUTE = {"project": "project", "team": "team", "user": "user_id"}


@dataclass(frozen=True, slots=True)
class Block:
    """One budget over its hard limit: whose calls it refuses, and until when."""

    status: BudgetStatus
    attribute: str | None
    """The call attribute the scope compares (None: the whole tenant)."""
    until: float
    """The period's end, epoch seconds."""

    def covers(self, attribution: Mapping[str, Any]) -> bool:
        """Whether a call with this attribution falls in the budget's scope."""
        return (
            self.attribute is None
            or attribution.get(self.attribute) == (self.status["scope_value"])
        )


class BudgetLimits:
    """The statuses of the budgets over their hard limits, kept current by a thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.blocked: dict[str, tuple[Block, ...]] = {}
        """Tenant -> its blocks; replaced whole by the follower (readers need no lock)."""
        self._statuses: dict[str, BudgetStatus] = {}
        self._beat_at: float | None = None
        self.refused = 0
        self.failed_open = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the call path -----------------------------------------------------------------

    def check(self, attribution: Mapping[str, Any]) -> None:
        """Raise :class:`BudgetExceeded` when the call is over a hard limit now."""
        blocks = self.blocked.get(attribution.get("tenant_id"))  # type: ignore[arg-type]
        if blocks is not None:
            self._judge(blocks, attribution)

    def _judge(self, blocks: tuple[Block, ...], attribution: Mapping[str, Any]) -> None:
        now = time.time()
        for block in blocks:
            if now < block.until and block.covers(attribution):
                if self.state() != "live":
                    self.failed_open += 1
                    return
                self.refused += 1
                raise BudgetExceeded(block.status)

    # -- state -------------------------------------------------------------------------

    def state(self) -> str:
        """``live``, ``stale`` (no heartbeat for budget_stale_s) or ``unknown`` (none yet)."""
        if self._beat_at is None:
            return "unknown"
        if time.monotonic() - self._beat_at > self._settings.budget_stale_s:
            return "stale"
        return "live"

    def stats(self) -> dict[str, Any]:
        """What ``sdk.stats().budget`` shows."""
        return {
            "status": self.state(),
            "exceeded": sum(len(b) for b in self.blocked.values()),
            "refused": self.refused,
            "failed_open": self.failed_open,
        }

    def apply(self, key: str, status: BudgetStatus | None) -> None:
        """One record of the status topic (None: the budget was deleted)."""
        if key.startswith(_HEARTBEAT):
            self._beat_at = time.monotonic()
            return
        if status is None:
            self._statuses.pop(key, None)
        else:
            self._statuses[key] = status
        self._rebuild()

    def _rebuild(self) -> None:
        blocked: dict[str, list[Block]] = {}
        for status in self._statuses.values():
            if status["exceeded"]:
                block = Block(
                    status, _ATTRIBUTE.get(status["scope"]), status["period_end"].timestamp()
                )
                blocked.setdefault(status["tenant_id"], []).append(block)
        self.blocked = {tenant: tuple(blocks) for tenant, blocks in blocked.items()}

    # -- the follower thread -----------------------------------------------------------

    def start(self) -> None:
        """Follow the status topic on a daemon thread."""
        self._thread = threading.Thread(
            target=self._follow, name="tokenline-budget-limits", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop following (the thread ends within a second)."""
        self._stop.set()

    def _follow(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from tokenline.schemas import AvroCodec, DecodeError
        from tokenline.sdk._settings import connection_config

        codec = AvroCodec[Any]("tokenline.BudgetStatus")
        topic = self._settings.budget_status_topic
        try:
            consumer = Consumer(
                {
                    **connection_config(self._settings),
                    "group.id": "tokenline-sdk-budget-limits",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                }
            )
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        except Exception:
            log.exception("tokenline: cannot follow %s; budget limits fail open", topic)
            return
        try:
            while not self._stop.is_set():
                for m in consumer.consume(1000, 0.5):
                    if m.error() is not None:
                        continue
                    key = (m.key() or b"").decode(errors="replace")
                    value = m.value()
                    try:
                        self.apply(key, codec.decode(value) if value is not None else None)
                    except DecodeError as exc:
                        log.warning("tokenline: budget status not decoded: %s", exc)
        finally:
            consumer.close()
