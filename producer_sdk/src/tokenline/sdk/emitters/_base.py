"""The ``Emitter`` interface and the emitters that need no broker."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pathlib import Path

    from tokenline.schemas import UsageEvent

__all__ = ["Emitter", "InMemoryEmitter", "JsonLinesEmitter"]


@runtime_checkable
class Emitter(Protocol):
    """Where usage events go. ``emit`` must never block on the network nor raise."""

    def emit(self, event: UsageEvent) -> None:
        """Hand one event over for sending."""

    def poll(self) -> None:
        """Serve callbacks and housekeeping; called regularly by the thread that owns it."""

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for pending events; return how many remain."""

    def close(self, timeout: float) -> None:
        """Flush within ``timeout`` and release resources."""


class InMemoryEmitter:
    """Keeps events in a list: for local use and for users' own tests."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: UsageEvent) -> None:
        """Append the event."""
        with self._lock:
            self.events.append(event)

    def poll(self) -> None:
        """Nothing to serve."""

    def flush(self, timeout: float) -> int:
        """Nothing is ever pending."""
        return 0

    def close(self, timeout: float) -> None:
        """Nothing to release."""

    def clear(self) -> None:
        """Forget the events kept so far."""
        with self._lock:
            self.events.clear()


def _json_default(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class JsonLinesEmitter:
    """Appends each event as one JSON line to a file (UUIDs, times and decimals as strings)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def emit(self, event: UsageEvent) -> None:
        """Write the event as a line."""
        line = json.dumps(event, default=_json_default, sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")

    def poll(self) -> None:
        """Nothing to serve."""

    def flush(self, timeout: float) -> int:
        """Flush the file buffer."""
        with self._lock:
            self._file.flush()
        return 0

    def close(self, timeout: float) -> None:
        """Flush and close the file."""
        with self._lock:
            self._file.close()
