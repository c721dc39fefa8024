"""Report selections and SQL: bounds, source choice, allow-listed identifiers, parameters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tokenline.sink.errors import ReportError
from tokenline.sink.models import UsageEvent
from tokenline.sink.report.queries import (
    EXPORT_COLUMNS,
    choose_source,
    export_query,
    report_query,
)
from tokenline.sink.report.selection import (
    FILTER_DIMENSIONS,
    Bound,
    ReportSpec,
    Selection,
    month_bounds,
    parse_bound,
)

pytestmark = pytest.mark.unit


def _selection(**kwargs: object) -> Selection:
    defaults: dict[str, object] = {"start": "2026-10-01", "end": "2026-11-01"}
    return Selection.build(("acme",), **(defaults | kwargs))  # type: ignore[arg-type]


def test_parse_bound_forms() -> None:
    assert parse_bound("2026-10-01") == Bound("date", datetime(2026, 10, 1))  # noqa: DTZ001
    assert parse_bound("2026-10-01T09:30") == Bound("local", datetime(2026, 10, 1, 9, 30))  # noqa: DTZ001
    assert parse_bound("2026-10-01T09:30+05:30") == Bound(
        "instant", datetime(2026, 10, 1, 4, 0, tzinfo=UTC)
    )
    assert parse_bound("2026-10-01T04:00Z").value == datetime(2026, 10, 1, 4, tzinfo=UTC)
    with pytest.raises(ReportError, match="not a date"):
        parse_bound("yesterday")
    with pytest.raises(ReportError, match="not a month"):
        month_bounds("2026-13")


def test_selection_rejects_bad_input() -> None:
    with pytest.raises(ReportError, match="empty range"):
        _selection(start="2026-11-01", end="2026-10-01")
    with pytest.raises(ReportError, match="--to needs --from"):
        Selection.build(("acme",), start=None, end="2026-10-01")
    with pytest.raises(ReportError, match="at least one tenant"):
        Selection.build((), start=None, end=None)
    with pytest.raises(ReportError, match="cannot filter by day"):
        Selection(("acme",), Bound.on_date(date(2026, 1, 1)), None, (("day", ("x",)),))
    with pytest.raises(ReportError, match="cannot group by color"):
        ReportSpec(_selection(), ("color",))


def test_default_is_the_current_month() -> None:
    now = datetime(2026, 10, 31, 20, tzinfo=UTC)
    selection = Selection.build(None, start=None, end=None, now=now)
    assert selection.start == Bound("month", now, 0)
    assert selection.end == Bound("month", now, 1)


@pytest.mark.parametrize(
    "zone",
    ["Asia/Kolkata", "Pacific/Kiritimati", "Etc/GMT+12", "America/St_Johns", "Asia/Kathmandu"],
)
def test_widened_month_bounds_contain_every_local_month(zone: str) -> None:
    tz = ZoneInfo(zone)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2 * 365 * 4):  # every 6 hours for two years
        now += timedelta(hours=6)
        local = now.astimezone(tz)
        start = datetime(local.year, local.month, 1, tzinfo=tz).astimezone(UTC)
        nxt = local.month % 12 + 1, local.year + (local.month == 12)
        end = datetime(nxt[1], nxt[0], 1, tzinfo=tz).astimezone(UTC)
        lower, upper = Bound.current_month(now), Bound.current_month(now, 1)
        assert lower.widened("lower") <= start
        assert upper.widened("upper") >= end
        assert end - lower.widened("lower") < timedelta(days=64)  # two months at most


def test_alignment_to_the_15_minute_grid() -> None:
    assert _selection().aligned_15m
    assert _selection(start="2026-10-01T09:45", end="2026-10-02T04:00Z").aligned_15m
    assert not _selection(start="2026-10-01T09:40").aligned_15m
    assert not _selection(end="2026-10-02T04:00:01Z").aligned_15m


def test_source_choice() -> None:
    on = "timescaledb"
    daily = "usage_tenant_daily"
    # Local dates and months, aggregate dimensions: the tenant-local days, on both paths.
    assert choose_source(ReportSpec(_selection(), ("model", "day")), on) == daily
    assert choose_source(ReportSpec(_selection(), ("model",)), "postgresql") == daily
    assert choose_source(ReportSpec(_selection(start=None, end=None)), "postgresql") == daily
    assert choose_source(ReportSpec(_selection(start="2026-10-01T00:00")), on) == daily
    # On the 15-minute grid but not at local midnights: usage_15m on TimescaleDB only.
    quarter = _selection(start="2026-10-01T09:45")
    assert choose_source(ReportSpec(quarter, ("model",)), on) == "usage_15m"
    assert choose_source(ReportSpec(quarter, ("model",)), "postgresql") == "usage_events"
    instant = _selection(start="2026-10-01T00:00Z")
    assert choose_source(ReportSpec(instant, ("model",)), on) == "usage_15m"
    assert choose_source(ReportSpec(_selection(), ("user",)), on) == "usage_events"
    assert choose_source(ReportSpec(_selection(success=True)), on) == "usage_events"
    assert choose_source(ReportSpec(_selection(filters={"host": ("a",)})), on) == "usage_events"
    assert choose_source(ReportSpec(_selection(start="2026-10-01T00:01")), on) == "usage_events"
    assert choose_source(ReportSpec(_selection(), source="events"), on) == "usage_events"
    assert (
        choose_source(ReportSpec(_selection(), ("team",), source="aggregate"), "postgresql")
        == daily
    )
    assert choose_source(ReportSpec(quarter, ("team",), source="aggregate"), on) == "usage_15m"
    with pytest.raises(ReportError, match="--by session; --success/--failed filter"):
        choose_source(ReportSpec(_selection(success=False), ("session",), "aggregate"), on)


def test_daily_source_cuts_by_local_date() -> None:
    query = report_query(ReportSpec(_selection(), ("day", "month")), "usage_tenant_daily")
    text = query.text()
    assert "FROM usage_tenant_daily u" in text
    assert "u.day >= %(lo)s::timestamp::date" in text
    assert 'u.day AS "day"' in text
    assert "date_trunc('month', u.day)::date AS \"month\"" in text
    assert query.params["lo_wide"] == date(2026, 9, 30)
    with pytest.raises(ReportError, match="usage_tenant_daily has no user column"):
        report_query(ReportSpec(_selection(), ("user",)), "usage_tenant_daily")


def test_values_are_parameters_never_sql() -> None:
    evil = "x'); DROP TABLE usage_events; --"
    spec = ReportSpec(_selection(filters={"user": (evil,), "model": ("gpt-4o",)}), ("user",))
    query = report_query(spec, "usage_events")
    text = query.text()
    assert evil not in text
    assert query.params["f_user"] == [evil]
    assert query.params["tenants"] == ["acme"]
    assert "u.user_id = ANY(%(f_user)s)" in text
    assert 'u.user_id AS "user"' in text  # a reserved word, quoted
    assert "coalesce(u.canonical_model, u.response_model, u.request_model) = ANY" in text


def test_local_bounds_are_cut_in_the_tenant_timezone() -> None:
    query = report_query(ReportSpec(_selection(), ("day",)), "usage_15m")
    text = query.text()
    assert "FROM usage_15m u" in text
    assert "u.bucket >= (%(lo)s::timestamp AT TIME ZONE coalesce(tn.timezone, 'UTC'))" in text
    assert "(u.bucket AT TIME ZONE coalesce(tn.timezone, 'UTC'))::date AS \"day\"" in text
    assert query.params["lo_wide"] == datetime(2026, 9, 30, tzinfo=UTC)
    assert query.params["hi_wide"] == datetime(2026, 11, 2, tzinfo=UTC)
    instant = report_query(
        ReportSpec(_selection(start="2026-10-01T00:00Z", end=None)), "usage_events"
    )
    assert "u.occurred_at >= %(lo)s::timestamptz" in instant.text()
    assert "hi" not in instant.params


def test_every_tenant_has_no_tenant_predicate() -> None:
    spec = ReportSpec(Selection.build(None, start="2026-10-01", end=None))
    query = report_query(spec, "usage_events")
    assert "tenants" not in query.params
    assert "ANY(%(tenants)s)" not in query.text()


def test_aggregate_source_refuses_per_call_columns() -> None:
    with pytest.raises(ReportError, match="usage_15m has no user column"):
        report_query(ReportSpec(_selection(), ("user",)), "usage_15m")


def test_export_columns_are_the_stored_columns() -> None:
    stored = [column.name for column in UsageEvent.__table__.columns]
    assert set(EXPORT_COLUMNS) <= set(stored)
    # Only the sink's Kafka bookkeeping is left out.
    assert set(stored) - set(EXPORT_COLUMNS) == {
        "source_topic",
        "source_partition",
        "source_offset",
    }
    text = export_query(_selection(success=False)).text()
    assert text.endswith("ORDER BY u.occurred_at, u.event_id")
    assert "u.success = %(success)s" in text


def test_filter_options_cover_every_filter_dimension() -> None:
    from tokenline.sink.cli_report import _FILTER_OPTIONS

    assert tuple(_FILTER_OPTIONS) == FILTER_DIMENSIONS
