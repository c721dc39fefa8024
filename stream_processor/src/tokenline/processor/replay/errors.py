"""Errors of the replay job.

::

    ReplayError                  anything that stops a replay (the run row is marked failed)
    ├── RetentionError           the raw topic no longer holds the start of the range
    ├── DeliveryError            Kafka did not acknowledge re-emitted records
    └── LandingTimeout           ``--wait-landed``: the sink had not landed everything in time
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = ["DeliveryError", "LandingTimeout", "ReplayError", "RetentionError"]


class ReplayError(Exception):
    """A replay could not be completed."""


class RetentionError(ReplayError):
    """Records of the range were deleted by retention; ``earliest``: partition to first time."""

    def __init__(self, topic: str, earliest: dict[int, datetime | None], wanted: datetime) -> None:
        self.topic = topic
        self.earliest = dict(earliest)
        self.wanted = wanted
        parts = ", ".join(
            f"partition {p} starts at {t.isoformat()}" if t else f"partition {p} holds nothing"
            for p, t in sorted(earliest.items())
        )
        super().__init__(
            f"{topic} no longer holds the start of the range ({wanted.isoformat()}): {parts}. "
            "Replay a later range, or pass --allow-truncated to re-price what is left."
        )


class DeliveryError(ReplayError):
    """Some re-emitted records were not acknowledged by Kafka."""

    def __init__(self, failures: Sequence[str], undelivered: int = 0) -> None:
        self.failures = list(failures)
        self.undelivered = undelivered
        shown = "; ".join(self.failures[:5])
        super().__init__(
            f"{len(self.failures)} record(s) failed and {undelivered} were not acknowledged "
            f"in time: {shown or 'flush timed out'}"
        )


class LandingTimeout(ReplayError):
    """The sink had not landed every re-priced event (or window) within the wait.

    The replay itself succeeded: ``report`` is its report.
    """

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report
