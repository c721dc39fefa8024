"""What the request handlers share: the database pool, keys, limits, converter and sender."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from tokenline.sink.api.cache import ReportCache
from tokenline.sink.api.events import EventConverter
from tokenline.sink.api.keys import KeyStore
from tokenline.sink.api.ratelimit import RateLimiter

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenline.sink.api.budgets import BudgetAdmin
    from tokenline.sink.api.ingest import EventSender
    from tokenline.sink.api.prices import PriceCatalog
    from tokenline.sink.api.settings import ApiSettings

__all__ = ["ApiState", "open_key_pool", "open_pool"]


def _configure(conn: psycopg.Connection[DictRow]) -> None:
    # One round trip a statement (no BEGIN and COMMIT around each); read-only all the same:
    # the session refuses writes (default_transaction_read_only).
    conn.autocommit = True


def _connection_kwargs(settings: ApiSettings) -> dict[str, Any]:
    return {
        "prepare_threshold": None,
        "row_factory": dict_row,
        "connect_timeout": settings.db_connect_timeout_s,
        "options": "-c TimeZone=UTC -c default_transaction_read_only=on",
    }


def open_pool(settings: ApiSettings) -> ConnectionPool[psycopg.Connection[DictRow]]:
    """A pool of read connections made like :func:`tokenline.sink.report.run.connect`.

    No server-side prepared statements (``prepare_threshold=None``), a UTC, read-only session,
    dict rows, autocommit (a server-side cursor opens its own transaction).
    """
    return ConnectionPool(
        settings.database_url.get_secret_value(),
        connection_class=psycopg.Connection[DictRow],
        kwargs=_connection_kwargs(settings),
        configure=_configure,
        min_size=1,
        max_size=settings.api_db_pool_size,
        open=False,
        name="tokenline-api",
    )


async def _configure_async(conn: psycopg.AsyncConnection[DictRow]) -> None:
    await conn.set_autocommit(True)


def open_key_pool(settings: ApiSettings) -> AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]:
    """The asyncio pool the key reads use (made like :func:`open_pool`, opened on start).

    A key is read on every request; on the event loop it costs no hop to a worker thread,
    and its one statement is prepared on each connection's first use (no parsing and planning
    per request: a primary-key read has no generic-plan trap, unlike the reports).
    """
    return AsyncConnectionPool(
        settings.database_url.get_secret_value(),
        connection_class=psycopg.AsyncConnection[DictRow],
        kwargs={**_connection_kwargs(settings), "prepare_threshold": 0},
        configure=_configure_async,
        min_size=1,
        max_size=settings.api_db_pool_size,
        open=False,
        name="tokenline-api-keys",
    )


@dataclass
class ApiState:
    """Shared by every request of one API process."""

    settings: ApiSettings
    pool: ConnectionPool[psycopg.Connection[DictRow]]
    key_pool: AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]
    make_sender: Callable[[], EventSender]
    make_prices: Callable[[], PriceCatalog | None]
    make_budgets: Callable[[str], BudgetAdmin | None]
    keys: KeyStore = field(default_factory=KeyStore)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    converter: EventConverter = field(default_factory=EventConverter)
    reports: ReportCache = field(init=False)
    _sender: EventSender | None = None
    _prices: tuple[PriceCatalog | None] | None = None
    _budgets: tuple[BudgetAdmin | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.reports = ReportCache(self.settings.api_report_cache_s)

    def sender(self) -> EventSender:
        """The Kafka sender, made on the first ingest (a read-only API never connects)."""
        with self._lock:
            if self._sender is None:
                self._sender = self.make_sender()
            return self._sender

    def prices(self) -> PriceCatalog | None:
        """The price catalog, found on first use (None where none is installed)."""
        with self._lock:
            if self._prices is None:
                self._prices = (self.make_prices(),)
            return self._prices[0]

    def budgets(self) -> BudgetAdmin | None:
        """The budget admin over the database, found on first use (None where none is)."""
        with self._lock:
            if self._budgets is None:
                url = self.settings.database_url.get_secret_value()
                self._budgets = (self.make_budgets(url),)
            return self._budgets[0]

    def close(self) -> None:
        """Flush the sender and close the pool."""
        with self._lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None
        self.pool.close()
