"""Log lines bounded in an outage: the first of a kind at once, then a count now and then.

A broker gone for a minute makes the Kafka clients report the same error many times a second.
:class:`RateLimitedLog` writes the first report of each kind, then at most one line per
``every_s`` saying how many more there were, so an outage costs a handful of lines.
:func:`quiet_kafka` routes a confluent-kafka client's errors and its librdkafka log lines
through one (each kind is an error code or a librdkafka facility).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["KafkaClientLog", "RateLimitFilter", "RateLimitedLog", "limit_handlers", "quiet_kafka"]


class RateLimitedLog:
    """At most one line per kind per ``every_s`` seconds, with the count of those held back."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every = every_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()  # librdkafka calls back on several threads

    def __call__(self, level: int, kind: str, message: str) -> None:
        """Log ``message`` (of ``kind``) unless one of that kind went out in the last period."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._every:
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            held = self._held.pop(kind, 0)
            self._last[kind] = now
        suffix = f" ({held} more like it in the last {self._every:.0f} s)" if held else ""
        self._log.log(level, "%s%s", message, suffix)


class KafkaClientLog:
    """What a confluent-kafka client takes as its ``logger`` and ``error_cb``, rate-limited.

    librdkafka reports a broker that does not answer several times a second (``FAIL`` lines,
    ``_TRANSPORT`` errors); through this each facility or error code is logged at most once
    per period, with the count of the lines held back.
    """

    def __init__(self, say: RateLimitedLog, client: str) -> None:
        self._say = say
        self._client = client

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """The ``logger`` protocol, with a :mod:`logging` level.

        confluent-kafka calls ``log(level, "%s [%s] %s", facility, client name, text)``.
        """
        facility = str(args[0]) if args else "log"
        text = fmt % args if args else fmt
        self._say(level, f"{self._client}:{facility}", f"Kafka {self._client}: {text}")

    def error(self, err: Any) -> None:
        """The ``error_cb`` protocol: one KafkaError."""
        fatal = bool(err.fatal())
        self._say(
            logging.ERROR if fatal else logging.WARNING,
            f"{self._client}:{err.code()}",
            f"Kafka {self._client}: {err.str()}",
        )


def quiet_kafka(
    config: Mapping[str, Any], logger: logging.Logger, client: str, every_s: float = 30.0
) -> dict[str, Any]:
    """``config`` with its errors and log lines going through a :class:`RateLimitedLog`."""
    sink = KafkaClientLog(RateLimitedLog(logger, every_s=every_s), client)
    return {**config, "logger": sink, "error_cb": sink.error}


class RateLimitFilter:
    """A ``logging`` filter doing the same for other libraries' records (aiokafka's, Faust's).

    Records of ``WARNING`` and above are keyed by logger and message template; the first goes
    through, then one per ``every_s``, after a line saying how many were held back. Records
    of ``tokenline`` loggers pass: they are bounded where they are made. A record is never
    changed (another handler may format it too).
    """

    def __init__(self, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` goes out."""
        if record.levelno < logging.WARNING or record.name.startswith("tokenline"):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._every:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            held = self._held.pop(key, 0)
            self._last[key] = now
        if held:
            _held_back.warning(
                "%d more like the next line from %s in the last %.0f s",
                held, record.name, self._every,
            )  # fmt: skip
        return True


_held_back = logging.getLogger("tokenline.logs")


def limit_handlers(logger: logging.Logger | None = None, every_s: float = 30.0) -> None:
    """Put one :class:`RateLimitFilter` on every handler of ``logger`` (the root by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RateLimitFilter) for f in handler.filters):
            handler.addFilter(RateLimitFilter(every_s))
