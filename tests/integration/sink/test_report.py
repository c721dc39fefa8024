"""Reports, exports and billing on a real database equal a brute-force computation, exactly."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from tests.integration.sink._data import EventFactory, insert_rows, utc
from tests.integration.sink._report_truth import brute_force, totals_of
from tokenline.sink.cli_report import export as export_command
from tokenline.sink.cli_report import report as report_command
from tokenline.sink.report import (
    ReportSpec,
    Selection,
    billing_spec,
    connect,
    iter_events,
    run_report,
    write_billing_csv,
    write_export,
)
from tokenline.sink.report.queries import EXPORT_COLUMNS
from tokenline.sink.report.selection import AGGREGATE_DIMENSIONS

if TYPE_CHECKING:
    from tokenline.sink.report.model import Report

pytestmark = pytest.mark.integration

TIMEZONES = {"t-kolkata": "Asia/Kolkata", "t-new-york": "America/New_York"}
OCT, NOV = datetime(2026, 10, 1), datetime(2026, 11, 1)  # noqa: DTZ001 - tenant-local
GROUPINGS: list[tuple[str, ...]] = [
    (),
    ("tenant",),
    ("provider",),
    ("model",),
    ("project",),
    ("team",),
    ("user",),
    ("session",),
    ("host",),
    ("service",),
    ("cloud",),
    ("operation",),
    ("day",),
    ("month",),
    ("tenant", "day"),
    ("provider", "model"),
]


def _edges(tz: str) -> list[datetime]:
    """Instants on both sides of the local month ends and of a few local midnights."""
    zone = ZoneInfo(tz)
    found = []
    for day in (date(2026, 10, 1), date(2026, 10, 15), date(2026, 11, 1), date(2026, 11, 2)):
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        found += [midnight, midnight - timedelta(microseconds=1), midnight + timedelta(minutes=7)]
    return [moment.astimezone(UTC) for moment in found]


def _landed() -> list[dict[str, Any]]:
    factory = EventFactory(seed=66)
    rng = random.Random(66)
    rows: list[dict[str, Any]] = []
    for tenant, tz in TIMEZONES.items():
        rows += factory.spread(tenant, utc(2026, 9, 29), utc(2026, 11, 3), 500)
        rows += [factory.row(tenant, moment) for moment in _edges(tz)]
    rows += factory.spread("t-no-row", utc(2026, 9, 30), utc(2026, 11, 2), 40)
    for row in rows:
        row["session_id"] = rng.choice(["s1", "s2", "s3", None])
        row["hostname"] = rng.choice(["web-1", "web-2", "batch-1"])
        row["host_service_name"] = rng.choice(["search-api", "chat-api", None])
        row["host_cloud"] = rng.choice(["aws", "gcp"])
        row["operation"] = rng.choice(["chat", "embedding", "responses"])
        row["attributed_team"] = rng.choice(["relevance", None])
        row["attributed_service"] = rng.choice(["search", None])
        row["attributed_cloud"] = rng.choice(["aws", None])
        row["currency"] = "EUR" if rng.random() < 0.05 else "USD"
    return rows


@pytest.fixture(scope="module")
def rows(plain_url: str) -> list[dict[str, Any]]:
    made = _landed()
    insert_rows(plain_url, made, tenants=TIMEZONES)
    return made


def _report(url: str, spec: ReportSpec) -> Report:
    with connect(url) as conn:
        return run_report(conn, spec)


def _as_dict(report: Report) -> dict[tuple[Any, ...], Any]:
    found = {(*row.keys, row.currency): row.totals for row in report.rows}
    assert len(found) == len(report.rows)  # one row per group and currency
    return found


def _october(_row: dict[str, Any], local: datetime) -> bool:
    return OCT <= local < NOV


TENANTS = ("t-kolkata", "t-new-york", "t-no-row")


@pytest.mark.parametrize("group_by", GROUPINGS, ids=lambda g: ",".join(g) or "none")
def test_every_grouping_equals_brute_force(
    plain_url: str, rows: list[dict[str, Any]], group_by: tuple[str, ...]
) -> None:
    spec = ReportSpec(Selection.build(TENANTS, start="2026-10-01", end="2026-11-01"), group_by)
    report = _report(plain_url, spec)
    # Local dates and aggregate dimensions: the tenant-local days; else the raw rows.
    daily = set(group_by) <= AGGREGATE_DIMENSIONS
    assert report.source == ("usage_tenant_daily" if daily else "usage_events")
    expected = brute_force(rows, TIMEZONES, group_by, _october)
    assert _as_dict(report) == expected
    assert sum(t.requests for t in expected.values()) > 800
    # the total of a currency is the sum of its groups, and the true total of the month
    usd = [r for r in rows if r["currency"] == "USD" and _in_october(r)]
    assert report.totals["USD"] == totals_of(usd)


def _in_october(row: dict[str, Any]) -> bool:
    tz = TIMEZONES.get(row["tenant_id"], "UTC")
    local: datetime = row["occurred_at"].astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    return OCT <= local < NOV


def test_filters_equal_brute_force(plain_url: str, rows: list[dict[str, Any]]) -> None:
    selection = Selection.build(
        ("t-kolkata",),
        start="2026-10-01",
        end="2026-11-01",
        filters={"provider": ("openai", "anthropic"), "user": ("ana",), "team": ("relevance",)},
        success=False,
    )
    report = _report(plain_url, ReportSpec(selection, ("model",)))

    def keep(row: dict[str, Any], local: datetime) -> bool:
        return (
            row["tenant_id"] == "t-kolkata"
            and OCT <= local < NOV
            and row["provider"] in ("openai", "anthropic")
            and row["user_id"] == "ana"
            and (row["attributed_team"] or row["team"]) == "relevance"
            and not row["success"]
        )

    expected = brute_force(rows, TIMEZONES, ("model",), keep)
    assert expected  # the filters leave something to compare
    assert _as_dict(report) == expected


def test_datetime_bounds_local_and_instant(plain_url: str, rows: list[dict[str, Any]]) -> None:
    local = Selection.build(("t-kolkata",), start="2026-10-14T23:50", end="2026-10-15T00:07:01")
    instant = Selection.build(
        ("t-kolkata",), start="2026-10-14T18:20Z", end="2026-10-14T18:37:01+00:00"
    )
    lo = datetime(2026, 10, 14, 23, 50)  # noqa: DTZ001
    hi = datetime(2026, 10, 15, 0, 7, 1)  # noqa: DTZ001
    expected = brute_force(
        rows, TIMEZONES, (), lambda r, t: r["tenant_id"] == "t-kolkata" and lo <= t < hi
    )
    assert expected  # the edge rows at local midnight are inside
    for selection in (local, instant):  # +05:30: the same instants
        assert _as_dict(_report(plain_url, ReportSpec(selection))) == expected


def test_default_range_is_the_current_local_month(
    plain_url: str, rows: list[dict[str, Any]]
) -> None:
    # 2026-10-31 20:00 UTC is already November in Kolkata, still October in New York.
    now = utc(2026, 10, 31, 20)
    both = Selection.build(("t-kolkata", "t-new-york"), start=None, end=None, now=now)
    report = _report(plain_url, ReportSpec(both, ("tenant",)))

    def keep(row: dict[str, Any], local: datetime) -> bool:
        if row["tenant_id"] == "t-kolkata":
            return NOV <= local < datetime(2026, 12, 1)  # noqa: DTZ001
        return row["tenant_id"] == "t-new-york" and OCT <= local < NOV

    expected = brute_force(rows, TIMEZONES, ("tenant",), keep)
    assert {k[0] for k in expected} == set(TIMEZONES)
    assert _as_dict(report) == expected
    kolkata = _report(
        plain_url, ReportSpec(Selection.build(("t-kolkata",), start=None, end=None, now=now))
    )
    assert kolkata.spec.selection.start.describe() == "2026-11-01"  # resolved to local dates


def test_all_tenants_includes_tenants_without_a_row(
    plain_url: str, rows: list[dict[str, Any]]
) -> None:
    selection = Selection.build(None, start="2026-10-01", end="2026-11-01")
    report = _report(plain_url, ReportSpec(selection, ("tenant",)))
    assert _as_dict(report) == brute_force(rows, TIMEZONES, ("tenant",), _october)


def test_billing_csv_lines_and_total(plain_url: str, rows: list[dict[str, Any]]) -> None:
    spec = billing_spec(("t-kolkata",), "2026-10")
    with connect(plain_url) as conn:
        report = run_report(conn, spec)
    out = io.StringIO()
    write_billing_csv(report, "2026-10", {"t-kolkata": "Asia/Kolkata"}, out)
    lines = list(csv.DictReader(io.StringIO(out.getvalue())))
    expected = brute_force(
        rows,
        TIMEZONES,
        ("provider", "model"),
        lambda r, t: r["tenant_id"] == "t-kolkata" and OCT <= t < NOV,
    )
    models = [line for line in lines if line["line"] == "model"]
    assert len(models) == len(expected)
    for line in models:
        truth = expected[(line["provider"], line["model"], line["currency"])]
        assert int(line["requests"]) == truth.requests
        assert int(line["unpriced_requests"]) == truth.unpriced_count
        assert int(line["cache_read_input_tokens"]) == truth.cache_read_input_tokens
        assert Decimal(line["cost_total"]) == truth.cost_total
        assert Decimal(line["cost_reasoning"]) == truth.cost_reasoning
        assert line["timezone"] == "Asia/Kolkata"
        assert line["month"] == "2026-10"
    for line in (line for line in lines if line["line"] == "total"):
        month = [
            r
            for r in rows
            if r["tenant_id"] == "t-kolkata"
            and _in_october(r)
            and r["currency"] == line["currency"]
        ]
        truth = totals_of(month)
        assert Decimal(line["cost_total"]) == truth.cost_total
        assert int(line["requests"]) == truth.requests
        assert int(line["output_tokens"]) == truth.output_tokens
    assert [line["line"] for line in lines].count("total") == len({k[2] for k in expected})


def _expected_export(rows: list[dict[str, Any]], tenant: str) -> dict[str, dict[str, Any]]:
    return {str(r["event_id"]): r for r in rows if r["tenant_id"] == tenant and _in_october(r)}


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_export_parses_back_exactly(plain_url: str, rows: list[dict[str, Any]], fmt: str) -> None:
    selection = Selection.build(("t-new-york",), start="2026-10-01", end="2026-11-01")
    out = io.StringIO()
    with connect(plain_url) as conn:
        count = write_export(iter_events(conn, selection, fetch_rows=37), fmt, out)  # type: ignore[arg-type]
    text = out.getvalue()
    if fmt == "json":
        parsed = json.loads(text)
    elif fmt == "jsonl":
        parsed = [json.loads(line) for line in text.splitlines()]
    else:
        parsed = list(csv.DictReader(io.StringIO(text)))
    expected = _expected_export(rows, "t-new-york")
    assert count == len(parsed) == len(expected)
    assert [p["occurred_at"] for p in parsed] == sorted(p["occurred_at"] for p in parsed)
    for record in parsed:
        assert list(record) == list(EXPORT_COLUMNS)
        truth = expected[record["event_id"]]
        assert datetime.fromisoformat(record["occurred_at"]) == truth["occurred_at"]
        for name in ("cost_total", "cost_input", "cost_reasoning"):
            if truth[name] is None:
                assert record[name] in (None, "")
            else:
                assert Decimal(record[name]) == truth[name]
                assert record[name] == format(truth[name].quantize(Decimal("1E-12")), "f")
        assert int(record["input_tokens"]) == truth["input_tokens"]
        assert str(record["success"]).lower() == str(truth["success"]).lower()
        tags = record["tags"] if fmt != "csv" else json.loads(record["tags"])
        assert tags == truth["tags"]


def test_export_of_nothing_is_valid_json(plain_url: str, rows: list[dict[str, Any]]) -> None:
    selection = Selection.build(("t-nobody",), start="2026-10-01", end="2026-11-01")
    out = io.StringIO()
    with connect(plain_url) as conn:
        assert write_export(iter_events(conn, selection), "json", out) == 0
    assert json.loads(out.getvalue()) == []


def test_cli_report_json_and_csv(plain_url: str, rows: list[dict[str, Any]]) -> None:
    runner = CliRunner()
    base = ["--tenant", "t-kolkata", "--from", "2026-10-01", "--to", "2026-11-01"]
    base += ["--database-url", plain_url]
    result = runner.invoke(report_command, [*base, "--by", "model,day", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    expected = brute_force(
        rows,
        TIMEZONES,
        ("model", "day"),
        lambda r, t: r["tenant_id"] == "t-kolkata" and OCT <= t < NOV,
    )
    got = {
        (r["model"], date.fromisoformat(r["day"]), r["currency"]): Decimal(r["cost_total"])
        for r in document["rows"]
    }
    assert got == {k: v.cost_total for k, v in expected.items()}
    assert document["source"] == "usage_tenant_daily"
    assert document["group_by"] == ["model", "day"]

    result = runner.invoke(report_command, [*base, "--by", "user", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(result.output)))
    totals = {line["currency"]: line for line in lines if line["row_type"] == "total"}
    kolkata = [r for r in rows if r["tenant_id"] == "t-kolkata" and _in_october(r)]
    for currency, line in totals.items():
        truth = totals_of([r for r in kolkata if r["currency"] == currency])
        assert Decimal(line["cost_total"]) == truth.cost_total
        assert int(line["failed"]) == truth.failures
        assert Decimal(line["avg_cost_per_request"]) == truth.avg_cost_per_request

    result = runner.invoke(report_command, [*base, "--by", "provider"])
    assert result.exit_code == 0, result.output
    assert "TOTAL" in result.output
    assert "source: usage_tenant_daily" in result.output


def test_cli_export_and_billing_to_files(
    plain_url: str, rows: list[dict[str, Any]], tmp_path: Any
) -> None:
    runner = CliRunner()
    target = tmp_path / "events.jsonl"
    result = runner.invoke(
        export_command,
        [
            "--tenant", "t-kolkata", "--from", "2026-10-01", "--to", "2026-11-01",
            "--failed", "--format", "jsonl", "--output", str(target),
            "--database-url", plain_url,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    expected = {k for k, r in _expected_export(rows, "t-kolkata").items() if not r["success"]}
    assert {r["event_id"] for r in exported} == expected
    assert all(r["success"] is False for r in exported)

    bill = tmp_path / "bill.csv"
    result = runner.invoke(
        report_command,
        ["billing", "--all-tenants", "--month", "2026-10", "--output", str(bill),
         "--database-url", plain_url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(bill.read_text())))
    assert {line["tenant_id"] for line in lines} == set(TENANTS)
    zones = {line["tenant_id"]: line["timezone"] for line in lines}
    assert zones == {**TIMEZONES, "t-no-row": "UTC"}


def test_cli_errors_are_clean(plain_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        report_command,
        ["--tenant", "t-kolkata", "--by", "user", "--source", "aggregate",
         "--database-url", plain_url],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the aggregates cannot serve this report: --by user" in result.output
    result = runner.invoke(
        report_command, ["--tenant", "x", "--from", "2026-11-01", "--to", "2026-10-01"]
    )
    assert result.exit_code == 1
    assert "empty range" in result.output


def test_an_unknown_tenant_is_refused_not_reported_empty(
    plain_url: str, rows: list[dict[str, Any]]
) -> None:
    runner = CliRunner()
    month = ["--from", "2026-10-01", "--to", "2026-11-01", "--database-url", plain_url]
    result = runner.invoke(report_command, ["--tenant", "t-typo", "--tenant", "t-kolkata", *month])
    assert result.exit_code == 6, result.output
    assert "unknown tenant t-typo" in result.output
    result = runner.invoke(export_command, ["--tenant", "t-typo", *month])
    assert result.exit_code == 6, result.output
    # Known: usage without a tenants row, or a row in a month without usage.
    result = runner.invoke(report_command, ["--tenant", "t-no-row", *month])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        report_command,
        ["--tenant", "t-kolkata", "--from", "2020-01-01", "--to", "2020-02-01",
         "--database-url", plain_url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


#: Tenant-local quarter hours that are not midnights: on TimescaleDB, usage_15m serves the range.
QUARTER_START, QUARTER_END = datetime(2026, 10, 1, 9, 30), datetime(2026, 10, 31, 17, 45)  # noqa: DTZ001


def _quarter_hours(_row: dict[str, Any], local: datetime) -> bool:
    return QUARTER_START <= local < QUARTER_END


@pytest.mark.timescale
def test_timescale_aggregate_and_raw_paths_agree(timescale_url: str, new_database: Any) -> None:
    import psycopg

    made = _landed()
    insert_rows(timescale_url, made, tenants=TIMEZONES)
    days = Selection.build(TENANTS, start="2026-10-01", end="2026-11-01")
    quarters = Selection.build(
        TENANTS, start=f"{QUARTER_START:%Y-%m-%dT%H:%M}", end=f"{QUARTER_END:%Y-%m-%dT%H:%M}"
    )
    ranges = ((days, _october, "usage_tenant_daily"), (quarters, _quarter_hours, "usage_15m"))
    for group_by in [("tenant", "day"), ("provider", "model"), ("month",), ("team", "project")]:
        for selection, keep, source in ranges:
            expected = brute_force(made, TIMEZONES, group_by, keep)
            auto = _report(timescale_url, ReportSpec(selection, group_by))
            assert auto.source == source
            assert _as_dict(auto) == expected
            raw = _report(timescale_url, ReportSpec(selection, group_by, source="events"))
            assert _as_dict(raw) == expected
    # Materialized buckets give the same numbers as real-time aggregation.
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        conn.execute("CALL refresh_continuous_aggregate('usage_15m', NULL, NULL)")
    buckets = _report(timescale_url, ReportSpec(quarters, ("tenant", "day")))
    assert buckets.source == "usage_15m"
    assert _as_dict(buckets) == brute_force(made, TIMEZONES, ("tenant", "day"), _quarter_hours)
    auto = _report(timescale_url, ReportSpec(days, ("tenant", "day")))
    assert _as_dict(auto) == brute_force(made, TIMEZONES, ("tenant", "day"), _october)
    # The same report on the plain path of another database gives the same rows.
    plain = new_database()
    from tests.integration.sink.conftest import settings_for
    from tokenline.sink.migrate import upgrade

    upgrade(settings_for(plain, "postgresql"))
    insert_rows(plain, made, tenants=TIMEZONES)
    on_plain = _report(plain, ReportSpec(days, ("tenant", "day")))
    assert on_plain.rows == auto.rows
    assert _report(plain, ReportSpec(quarters, ("tenant", "day"))).rows == buckets.rows
