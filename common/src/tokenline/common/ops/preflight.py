"""Startup checks: does Kafka answer, does the database answer and hold the schema.

Each check is bounded (``timeout_s``, 10 s by default) and raises
:class:`~tokenline.common.ops.exits.CommandFailed` with one line that names the address, the
setting to change and the exit code of the table in :mod:`~tokenline.common.ops.exits`. The
clients' own retry noise is kept out of the log.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokenline.common.ops.exits import CommandFailed, ExitCode

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["CHECK_TIMEOUT_S", "check_database", "check_kafka", "kafka_problem", "safe_url"]

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 10.0

_AUTH_CODES = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL")
_SECURITY_VARS = (
    "TOKENLINE_SECURITY_PROTOCOL, TOKENLINE_SASL_USERNAME, TOKENLINE_SASL_PASSWORD, "
    "TOKENLINE_SSL_CA_LOCATION"
)


class _Errors:
    """Collects what librdkafka reports while a check waits (instead of printing it)."""

    def __init__(self) -> None:
        self.seen: deque[tuple[str, str]] = deque(maxlen=50)
        self._lock = threading.Lock()

    def error(self, err: Any) -> None:
        with self._lock:
            self.seen.append((str(err.name()), str(err.str())))

    def log(self, _level: int, fmt: str, *args: Any) -> None:
        # FAIL lines repeat the errors above; keep the latest as a detail.
        if args and str(args[0]) == "FAIL":
            with self._lock:
                self.seen.append(("FAIL", str(fmt % args)))

    def detail(self) -> tuple[str, str]:
        with self._lock:
            for name, text in reversed(self.seen):
                if name.startswith(_AUTH_CODES) or "SASL" in text or "SSL" in text:
                    return name, text
            for name, text in reversed(self.seen):
                if name != "FAIL":
                    return name, text
            return self.seen[-1] if self.seen else ("", "")


def kafka_problem(
    config: Mapping[str, Any], *, timeout_s: float = CHECK_TIMEOUT_S
) -> tuple[ExitCode, str] | None:
    """Why Kafka at ``config["bootstrap.servers"]`` does not answer, or None when it does."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors = _Errors()
    client_config = {
        **config,
        "error_cb": errors.error,
        "logger": errors,
        "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
    }
    address = config.get("bootstrap.servers", "")
    try:
        admin = AdminClient(client_config)
    except (ValueError, TypeError, KafkaException) as exc:  # librdkafka refused a property
        return ExitCode.CONFIG, f"Kafka client configuration (TOKENLINE_KAFKA_CONFIG): {exc}"
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        admin.poll(0)  # serves the error and log callbacks held for us
        name, text = errors.detail()
        if name.startswith(_AUTH_CODES) or "SASL" in text or "uthentication" in text:
            return (
                ExitCode.KAFKA,
                f"Kafka at {address} refused the connection: {text or exc} "
                f"(check {_SECURITY_VARS})",
            )
        reason = text or str(exc.args[0].str() if exc.args else exc)
        return (
            ExitCode.KAFKA,
            f"Kafka at {address} did not answer within {timeout_s:.0f} s: {reason}",
        )
    if not metadata.brokers:
        return ExitCode.KAFKA, f"Kafka at {address} answered without any broker"
    return None


def check_kafka(
    config: Mapping[str, Any],
    *,
    setting: str = "TOKENLINE_BOOTSTRAP_SERVERS",
    timeout_s: float = CHECK_TIMEOUT_S,
) -> None:
    """Raise :class:`CommandFailed` (exit 3) unless Kafka answers within ``timeout_s``."""
    found = kafka_problem(config, timeout_s=timeout_s)
    if found is None:
        return
    code, message = found
    if code == ExitCode.KAFKA and "refused the connection" not in message:
        message += f" (set {setting})"
    raise CommandFailed(message, code)


def safe_url(url: str) -> str:
    """``url`` without its password: ``postgresql://user@host:port/db``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def database_problem(
    url: str,
    *,
    relations: Sequence[str] = (),
    timeout_s: float = CHECK_TIMEOUT_S,
) -> tuple[ExitCode, str] | None:
    """Why the database at ``url`` cannot be used, or None (``relations`` must exist)."""
    import psycopg

    where = safe_url(url)
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
            missing = [
                name
                for name in relations
                if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,)
            ]
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return ExitCode.DATABASE, f"database at {where} did not answer: {reason}"
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        return ExitCode.DATABASE, f"database at {where} refused: {reason}"
    if missing:
        return (
            ExitCode.SCHEMA,
            f"database at {where} has no Tokenline schema (missing {', '.join(missing)}): "
            "run `tokenline sink migrate` first",
        )
    return None


def check_database(
    url: str,
    *,
    setting: str = "TOKENLINE_DATABASE_URL",
    relations: Sequence[str] = (),
    timeout_s: float = CHECK_TIMEOUT_S,
) -> None:
    """Raise :class:`CommandFailed` unless the database answers and holds ``relations``.

    Exit 4 when it does not answer within ``timeout_s``, 5 without the schema.
    """
    found = database_problem(url, relations=relations, timeout_s=timeout_s)
    if found is None:
        return
    code, message = found
    if code == ExitCode.DATABASE:
        message += f" (set {setting})"
    raise CommandFailed(message, code)
