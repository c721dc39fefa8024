"""Report, export and billing output: exact decimals that parse back, totals, the table."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

from tokenline.sink.cli_report import report as report_command
from tokenline.sink.report.billing import billing_spec, write_billing_csv
from tokenline.sink.report.export import write_export
from tokenline.sink.report.model import Report, ReportRow, Totals
from tokenline.sink.report.queries import EXPORT_COLUMNS
from tokenline.sink.report.render import render
from tokenline.sink.report.selection import ReportSpec, Selection

pytestmark = pytest.mark.unit


def _totals(requests: int, cost: str, **more: Any) -> Totals:
    values: dict[str, Any] = {
        "requests": requests,
        "failures": 1,
        "unpriced_count": 1,
        "input_tokens": 1000 * requests,
        "cache_read_input_tokens": 7,
        "cache_write_input_tokens": 5,
        "output_tokens": 300,
        "reasoning_tokens": 11,
        "cost_output": Decimal(cost),
        "cost_total": Decimal(cost),
        "latency_ms_sum": 1001 * requests,
        "latency_ms_max": 2000 + requests,
    }
    return Totals(**(values | more))


ROWS = (
    ReportRow(("gpt-4o", date(2026, 10, 1)), "USD", _totals(3, "0.100000000001")),
    ReportRow(("claude", date(2026, 10, 2)), "USD", _totals(2, "0.000000000002")),
    ReportRow(("gpt-4o", date(2026, 10, 2)), "EUR", _totals(4, "1.500000000000")),
    ReportRow((None, date(2026, 10, 2)), "USD", _totals(1, "0E-12", unpriced_count=1)),
)


def _report(
    group_by: tuple[str, ...] = ("model", "day"), rows: tuple[ReportRow, ...] = ROWS
) -> Report:
    selection = Selection.build(("acme",), start="2026-10-01", end="2026-11-01")
    return Report(ReportSpec(selection, group_by), "usage_events", rows if group_by else rows[:1])


def test_totals_are_exact_sums_per_currency() -> None:
    totals = _report().totals
    assert set(totals) == {"USD", "EUR"}
    usd = totals["USD"]
    assert usd.cost_total == Decimal("0.100000000003")
    assert usd.requests == 6
    assert usd.succeeded == 3
    assert usd.total_tokens == 6000 + 3 * (7 + 5 + 300 + 11)
    assert usd.latency_ms_max == 2003
    assert totals["EUR"].cost_total == Decimal("1.5")


def test_averages_round_half_even_and_skip_unpriced() -> None:
    t = Totals(
        requests=4, unpriced_count=1, cost_total=Decimal("1.000000000000"), latency_ms_sum=10
    )
    assert t.avg_cost_per_request == Decimal("0.333333333333")  # over the 3 priced calls
    assert t.avg_latency_ms == 2  # 2.5 rounds to even
    assert Totals(requests=2, unpriced_count=2).avg_cost_per_request is None
    assert Totals().avg_latency_ms is None
    half = Totals(requests=2, cost_total=Decimal("0.000000000001"))
    assert half.avg_cost_per_request == Decimal("0.000000000000")  # half to even


def test_json_parses_back_exactly() -> None:
    out = io.StringIO()
    render(_report(), "json", out)
    document = json.loads(out.getvalue())
    assert document["group_by"] == ["model", "day"]
    assert document["tenants"] == ["acme"]
    assert document["from"] == "2026-10-01"
    assert document["range"] == "[2026-10-01, 2026-11-01) (tenant-local)"
    # every digit, and plain notation where Decimal would print 0E-12
    assert [r["cost_total"] for r in document["rows"]] == [
        "0.100000000001", "0.000000000002", "1.500000000000", "0.000000000000",
    ]  # fmt: skip
    assert document["rows"][3]["model"] is None
    assert document["rows"][0]["day"] == "2026-10-01"
    usd = next(t for t in document["totals"] if t["currency"] == "USD")
    assert Decimal(usd["cost_total"]) == Decimal("0.100000000003")
    assert usd["requests"] == 6
    assert usd["avg_cost_per_request"] == str(_report().totals["USD"].avg_cost_per_request)


def test_csv_and_jsonl_have_group_and_total_rows() -> None:
    out = io.StringIO()
    render(_report(), "csv", out)
    lines = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [line["row_type"] for line in lines] == ["group"] * 4 + ["total"] * 2
    assert lines[3]["model"] == ""
    totals = {line["currency"]: line for line in lines if line["row_type"] == "total"}
    assert Decimal(totals["USD"]["cost_total"]) == sum(
        (Decimal(line["cost_total"]) for line in lines[:4] if line["currency"] == "USD"),
        Decimal(0),
    )
    assert totals["EUR"]["failed"] == "1"
    out = io.StringIO()
    render(_report(), "jsonl", out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["row_type"] for r in records] == ["group"] * 4 + ["total"] * 2
    assert records[0]["cost_total"] == "0.100000000001"


def test_without_grouping_only_totals() -> None:
    out = io.StringIO()
    render(_report(()), "jsonl", out)
    assert [json.loads(line)["row_type"] for line in out.getvalue().splitlines()] == ["total"]


def test_table_shows_groups_and_totals_exactly() -> None:
    out = io.StringIO()
    render(_report(), "table", out)
    text = out.getvalue()
    assert "TOTAL" in text
    assert "0.100000000003" in text  # USD total, all digits kept
    assert "1.50" in text  # trailing zeros trimmed, value unchanged
    assert "(none)" in text
    assert "source: usage_events" in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_empty_report_table_has_a_zero_total() -> None:
    out = io.StringIO()
    render(_report(("model",), ()), "table", out)
    assert "TOTAL" in out.getvalue()


def _event(n: int, cost: Decimal | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(EXPORT_COLUMNS)
    row |= {
        "event_id": uuid.UUID(int=n),
        "occurred_at": datetime(2026, 10, 1, 12, n, tzinfo=UTC),
        "tenant_id": "acme",
        "tags": {"env": "prod", "a": "b"},
        "success": n % 2 == 0,
        "input_tokens": 10 * n,
        "cost_total": cost,
    }
    return row


EVENTS = [_event(1, Decimal("0.000000000001")), _event(2, None), _event(3, Decimal("12.5"))]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_export_round_trip(fmt: str) -> None:
    out = io.StringIO()
    assert write_export(iter(EVENTS), fmt, out) == 3  # type: ignore[arg-type]
    text = out.getvalue()
    if fmt == "json":
        parsed = json.loads(text)
    elif fmt == "jsonl":
        parsed = [json.loads(line) for line in text.splitlines()]
    else:
        parsed = list(csv.DictReader(io.StringIO(text)))
    assert [p["event_id"] for p in parsed] == [str(e["event_id"]) for e in EVENTS]
    assert [p["cost_total"] for p in parsed] == [
        "0.000000000001",
        None if fmt != "csv" else "",
        "12.5",
    ]
    assert datetime.fromisoformat(parsed[0]["occurred_at"]) == EVENTS[0]["occurred_at"]
    tags = parsed[0]["tags"] if fmt != "csv" else json.loads(parsed[0]["tags"])
    assert tags == {"env": "prod", "a": "b"}
    assert parsed[1]["success"] in (True, "true")


def test_export_of_nothing() -> None:
    for fmt, expected in (
        ("json", "[]\n"),
        ("jsonl", ""),
        ("csv", ",".join(EXPORT_COLUMNS) + "\n"),
    ):
        out = io.StringIO()
        assert write_export(iter([]), fmt, out) == 0  # type: ignore[arg-type]
        assert out.getvalue() == expected


def test_billing_csv_lines_and_total() -> None:
    spec = billing_spec(("acme", "beta"), "2026-10")
    assert spec.group_by == ("tenant", "provider", "model")
    rows = (
        ReportRow(("beta", "openai", "gpt-4o"), "USD", _totals(1, "0.5")),
        ReportRow(("acme", "openai", "gpt-4o"), "USD", _totals(2, "0.100000000001")),
        ReportRow(("acme", "anthropic", "claude"), "USD", _totals(3, "0.2")),
    )
    out = io.StringIO()
    count = write_billing_csv(
        Report(spec, "usage_15m", rows), "2026-10", {"acme": "Asia/Kolkata"}, out
    )
    lines = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(lines) == 5
    assert [(line["tenant_id"], line["line"], line["model"]) for line in lines] == [
        ("acme", "model", "claude"),
        ("acme", "model", "gpt-4o"),
        ("acme", "total", ""),
        ("beta", "model", "gpt-4o"),
        ("beta", "total", ""),
    ]
    assert lines[2]["cost_total"] == "0.300000000001"
    assert lines[2]["requests"] == "5"
    assert lines[0]["timezone"] == "Asia/Kolkata"
    assert lines[3]["timezone"] == "UTC"


def test_cli_report_group_and_usage_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(report_command, ["--help"])
    assert "billing" in result.output
    assert "totals" in result.output
    result = runner.invoke(report_command, ["--tenant", "a", "--by", "color"])
    assert result.exit_code == 2
    assert "unknown dimension color" in result.output
    result = runner.invoke(report_command, ["--tenant", "a", "--all-tenants"])
    assert result.exit_code == 2
    assert "not both" in result.output
    result = runner.invoke(report_command, ["billing", "--month", "2026-10"])
    assert result.exit_code == 2
    assert "--tenant ID" in result.output
