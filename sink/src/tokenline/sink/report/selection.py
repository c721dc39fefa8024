"""What a report or an export selects: tenants, a tenant-local range, filters, a grouping.

Pure values, no database. A range end is a :class:`Bound`:

- a date (``2026-10-01``) or a datetime without an offset (``2026-10-01T09:30``) is a wall-clock
  time in each tenant's own timezone (``tenants.timezone``; UTC for a tenant without a row);
- a datetime with an offset (``2026-10-01T04:00Z``) is an absolute instant;
- without ``--from`` and ``--to`` the range is the current month in each tenant's timezone.

Every range is half-open, ``[start, end)``. The database turns local bounds into instants with
``AT TIME ZONE`` (the same arithmetic as ``tenant_daily_totals``), so a report's day and month
boundaries are exactly those of the tenant-local totals functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from tokenline.sink.errors import ReportError

__all__ = [
    "AGGREGATE_DIMENSIONS",
    "DIMENSIONS",
    "FILTER_DIMENSIONS",
    "TIME_DIMENSIONS",
    "Bound",
    "ReportSpec",
    "Selection",
    "SourceChoice",
    "month_bounds",
    "parse_bound",
    "parse_tags",
]

# Every dimension a report can group by. ``day`` and ``month`` are tenant-local.
DIMENSIONS = (
    "tenant",
    "provider",
    "model",
    "project",
    "team",
    "user",
    "session",
    "host",
    "service",
    "cloud",
    "operation",
    "unpriced_reason",
    "day",
    "month",
)
TIME_DIMENSIONS = frozenset({"day", "month"})
# Tenants are selected by ``Selection.tenants``, times by the range.
FILTER_DIMENSIONS = tuple(name for name in DIMENSIONS[1:] if name not in TIME_DIMENSIONS)
# What the continuous aggregates (usage_15m and up) keep per bucket.
AGGREGATE_DIMENSIONS = frozenset({"tenant", "provider", "model", "project", "team", "day", "month"})

SourceChoice = Literal["auto", "aggregate", "events"]
BoundKind = Literal["date", "local", "instant", "month"]

_WIDEN = timedelta(days=1)  # more than any UTC offset (-12:00 to +14:00) plus a DST shift


@dataclass(frozen=True)
class Bound:
    """One end of a range.

    ``kind``: ``date`` (local midnight of ``value``), ``local`` (naive wall-clock ``value`` in
    the tenant's timezone), ``instant`` (aware ``value``, stored in UTC), ``month`` (the start of
    the tenant-local month containing ``value`` = now, plus ``months``).
    """

    kind: BoundKind
    value: datetime
    months: int = 0

    @classmethod
    def on_date(cls, day: date) -> Bound:
        """Return the tenant-local midnight starting ``day``."""
        return cls("date", datetime(day.year, day.month, day.day))  # noqa: DTZ001 - local

    @classmethod
    def current_month(cls, now: datetime, months: int = 0) -> Bound:
        """Return the start of the tenant-local month of ``now``, shifted by ``months``."""
        return cls("month", now.astimezone(UTC), months)

    @property
    def aligned_15m(self) -> bool:
        """Whether the bound falls on a 15-minute boundary in every real timezone.

        Every UTC offset in use is a multiple of 15 minutes, so local dates and months are
        aligned; a time is aligned when its minutes are a multiple of 15 and nothing finer.
        """
        if self.kind in ("date", "month"):
            return True
        v = self.value
        return v.minute % 15 == 0 and v.second == 0 and v.microsecond == 0

    @property
    def aligned_day(self) -> bool:
        """Whether the bound is a local midnight in every timezone (a date, a month start)."""
        if self.kind in ("date", "month"):
            return True
        v = self.value
        return self.kind == "local" and v.time() == datetime.min.time()

    def widened(self, side: Literal["lower", "upper"]) -> datetime:
        """Return an instant sure to lie at or outside the bound, whatever the tenant's zone.

        Used as an extra index-friendly predicate (and for chunk exclusion on TimescaleDB);
        the exact, per-tenant cut is made in SQL.
        """
        sign = -1 if side == "lower" else 1
        if self.kind == "instant":
            return self.value
        if self.kind == "month":
            shifted = _month_start(self.value + sign * _WIDEN)
            return _add_months(shifted, self.months) + sign * _WIDEN
        return self.value.replace(tzinfo=UTC) + sign * _WIDEN

    def describe(self) -> str:
        """Return the bound as a user reads it (local times without an offset)."""
        if self.kind == "date":
            return self.value.date().isoformat()
        if self.kind == "local":
            return self.value.isoformat()
        if self.kind == "instant":
            return self.value.isoformat().replace("+00:00", "Z")
        which = {0: "start of the current month", 1: "start of next month"}
        return which.get(self.months, f"start of the current month {self.months:+d} months")


def parse_bound(text: str) -> Bound:
    """Parse ``--from``/``--to``: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS]`` or with an offset."""
    text = text.strip()
    try:
        if len(text) == 10:
            return Bound.on_date(date.fromisoformat(text))
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = (
            f"not a date or datetime: {text!r} (use 2026-10-01, 2026-10-01T09:30 for the "
            "tenant's local time, or 2026-10-01T04:00Z for an instant)"
        )
        raise ReportError(msg) from exc
    if moment.tzinfo is None:
        return Bound("local", moment)
    return Bound("instant", moment.astimezone(UTC))


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


def month_bounds(month: str) -> tuple[Bound, Bound]:
    """Return the tenant-local bounds of ``YYYY-MM``."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError as exc:
        msg = f"not a month: {month!r} (use YYYY-MM, e.g. 2026-10)"
        raise ReportError(msg) from exc
    start = datetime(first.year, first.month, 1)  # noqa: DTZ001 - local
    return Bound("date", start), Bound("date", _add_months(start, 1))


def parse_tags(texts: tuple[str, ...] | list[str]) -> tuple[tuple[str, str], ...]:
    """``key=value`` texts as sorted ``(key, value)`` pairs; every malformed one is named."""
    bad = [text for text in texts if not text.partition("=")[0] or "=" not in text]
    if bad:
        msg = f"tags are key=value: {', '.join(repr(text) for text in bad)}"
        raise ReportError(msg)
    pairs = {key: value for key, _, value in (text.partition("=") for text in texts)}
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class Selection:
    """The events a report or export covers.

    ``tenants`` is ``None`` for every tenant. ``filters`` maps a dimension of
    :data:`FILTER_DIMENSIONS` to the values it may take (any of them). ``tags``: ``(key,
    value)`` pairs a call's tags must all hold. ``success`` keeps only successful (True) or
    failed (False) calls. ``end`` ``None`` is open-ended.
    """

    tenants: tuple[str, ...] | None
    start: Bound
    end: Bound | None
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    success: bool | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.tenants is not None and not self.tenants:
            msg = "name at least one tenant, or ask for all tenants"
            raise ReportError(msg)
        unknown = [name for name, _ in self.filters if name not in FILTER_DIMENSIONS]
        if unknown:
            msg = f"cannot filter by {', '.join(unknown)}; filters: {', '.join(FILTER_DIMENSIONS)}"
            raise ReportError(msg)
        end = self.end
        if (
            end is not None
            and end.kind == self.start.kind
            and end.kind != "month"
            and end.value <= self.start.value
        ):
            msg = f"empty range: --to {end.describe()} is not after --from {self.start.describe()}"
            raise ReportError(msg)

    @classmethod
    def build(
        cls,
        tenants: tuple[str, ...] | None,
        *,
        start: str | None,
        end: str | None,
        filters: dict[str, tuple[str, ...]] | None = None,
        success: bool | None = None,
        now: datetime | None = None,
        tags: tuple[str, ...] = (),
    ) -> Selection:
        """Build a selection from command-line text (the current local month by default).

        ``tags``: ``key=value`` texts, every one of which a call's tags must hold.
        """
        if start is None and end is not None:
            msg = "--to needs --from"
            raise ReportError(msg)
        last: Bound | None
        if start is None:
            moment = now or datetime.now(UTC)
            first, last = Bound.current_month(moment), Bound.current_month(moment, 1)
        else:
            first, last = parse_bound(start), parse_bound(end) if end is not None else None
        given = tuple(sorted((k, tuple(v)) for k, v in (filters or {}).items() if v))
        return cls(tenants, first, last, given, success, parse_tags(tags))

    @property
    def aligned_15m(self) -> bool:
        """Whether both ends fall on 15-minute boundaries (the aggregates can serve the range)."""
        return self.start.aligned_15m and (self.end is None or self.end.aligned_15m)

    @property
    def aligned_day(self) -> bool:
        """Whether both ends are tenant-local midnights (usage_tenant_daily can serve the range)."""
        return self.start.aligned_day and (self.end is None or self.end.aligned_day)

    def describe_range(self) -> str:
        """Return ``[from, to)`` as a user reads it."""
        end = self.end.describe() if self.end is not None else "open end"
        local = " (tenant-local)" if {self.start.kind} & {"date", "local", "month"} else ""
        return f"[{self.start.describe()}, {end}){local}"


@dataclass(frozen=True)
class ReportSpec:
    """A report: a selection, the dimensions to group by, and where to read from."""

    selection: Selection
    group_by: tuple[str, ...] = ()
    source: SourceChoice = "auto"

    def __post_init__(self) -> None:
        unknown = [name for name in self.group_by if name not in DIMENSIONS]
        if unknown:
            msg = f"cannot group by {', '.join(unknown)}; dimensions: {', '.join(DIMENSIONS)}"
            raise ReportError(msg)
        if len(set(self.group_by)) != len(self.group_by):
            msg = f"a dimension is repeated in --by {','.join(self.group_by)}"
            raise ReportError(msg)

    def aggregate_blockers(self) -> list[str]:
        """Return why usage_15m cannot serve this report (empty when it can)."""
        found = [f"--by {name}" for name in self.group_by if name not in AGGREGATE_DIMENSIONS]
        found += [
            f"--{name} filter"
            for name, _ in self.selection.filters
            if name not in AGGREGATE_DIMENSIONS
        ]
        if self.selection.success is not None:
            found.append("--success/--failed filter")
        if self.selection.tags:
            found.append("--tag filter")
        if not self.selection.aligned_15m:
            found.append("a range end off the 15-minute grid")
        return found
