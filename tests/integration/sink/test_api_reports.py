"""Every read endpoint's numbers equal ``tokenline report``'s (and export's) on the same data.

The API and the CLI are run on one real PostgreSQL database; the summary is also held against
the brute-force totals of the inserted rows, and the latency percentiles against their
definition computed in Python.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from tests.integration.sink._api import (
    TIMEZONES,
    Keys,
    api_settings,
    bearer,
    landed_rows,
    make_keys,
)
from tests.integration.sink._data import EventFactory, insert_rows
from tests.integration.sink._report_truth import brute_force
from tokenline.sink.api.app import create_app
from tokenline.sink.api.models import totals_out
from tokenline.sink.cli_report import export as export_command
from tokenline.sink.cli_report import report as report_command

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TENANT = "t-kolkata"
RANGE = ("2026-10-01", "2026-11-01")
OCT, NOV = datetime(2026, 10, 1), datetime(2026, 11, 1)  # noqa: DTZ001 - tenant-local


@pytest.fixture(scope="module")
def rows(plain_url: str) -> list[dict[str, Any]]:
    made = landed_rows()
    insert_rows(plain_url, made, tenants=TIMEZONES)
    return made


@pytest.fixture(scope="module")
def keys(plain_url: str, rows: list[dict[str, Any]]) -> Keys:
    return make_keys(plain_url)


@pytest.fixture(scope="module")
def client(plain_url: str, keys: Keys) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings(plain_url))) as test_client:
        test_client.headers.update(bearer(keys.kolkata))
        yield test_client


def _cli(plain_url: str, command: Any, args: list[str]) -> str:
    result = CliRunner().invoke(command, [*args, "--database-url", plain_url])
    assert result.exit_code == 0, result.output
    return result.output


def _cli_report(plain_url: str, args: list[str]) -> dict[str, Any]:
    return json.loads(_cli(plain_url, report_command, [*args, "--format", "json"]))


def _by_key(rows: list[dict[str, Any]], group_by: list[str]) -> dict[tuple[Any, ...], Any]:
    """API rows and CLI rows alike, as {(group values..., currency): measures}."""
    found = {}
    for row in rows:
        if "group" in row:  # the API's shape
            key = (*(row["group"][name] for name in group_by), row["currency"])
            found[key] = row["totals"]
        else:
            key = (*(row[name] for name in group_by), row["currency"])
            found[key] = {k: v for k, v in row.items() if k not in {*group_by, "currency"}}
    assert len(found) == len(rows)
    return found


def _api_report(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/tenants/{TENANT}/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _cli_totals(document: dict[str, Any]) -> dict[str, Any]:
    skip = {"currency", *document["group_by"]}
    return {
        t["currency"]: {k: v for k, v in t.items() if k not in skip} for t in document["totals"]
    }


@pytest.mark.parametrize("by", ["provider", "model", "project", "team", "user", "cloud", "host"])
def test_summary_equals_the_report(client: TestClient, plain_url: str, by: str) -> None:
    api = _api_report(client, "summary", by=by, **{"from": RANGE[0], "to": RANGE[1]}, limit=1000)
    cli = _cli_report(
        plain_url, ["--tenant", TENANT, "--by", by, "--from", RANGE[0], "--to", RANGE[1]]
    )
    assert api["page"]["next_offset"] is None
    assert _by_key(api["rows"], [by]) == _by_key(cli["rows"], [by])
    assert api["totals"] == _cli_totals(cli)
    assert api["totals"]["USD"]["requests"] > 300  # the comparison is over real data


def test_summary_equals_the_rows_themselves(client: TestClient, rows: list[dict[str, Any]]) -> None:
    api = _api_report(client, "summary", by="provider", **{"from": RANGE[0], "to": RANGE[1]})
    zone = ZoneInfo(TIMEZONES[TENANT])

    def october(row: dict[str, Any], _local: datetime) -> bool:
        local = row["occurred_at"].astimezone(zone).replace(tzinfo=None)
        return row["tenant_id"] == TENANT and OCT <= local < NOV

    truth = brute_force(rows, TIMEZONES, ("provider",), october)
    expected = {key: totals_out(t).model_dump() for key, t in truth.items()}
    assert _by_key(api["rows"], ["provider"]) == expected


def test_money_is_decimal_text(client: TestClient) -> None:
    body = client.get(
        f"/v1/tenants/{TENANT}/summary", params={"from": RANGE[0], "to": RANGE[1]}
    ).text
    document = json.loads(body, parse_float=lambda text: pytest.fail(f"a JSON float: {text}"))
    cost = document["totals"]["USD"]["cost_total"]
    assert isinstance(cost, str)
    assert len(cost.split(".")[1]) == 12  # NUMERIC(38,12), every digit


def test_pages_cover_every_row_once(client: TestClient) -> None:
    whole = _api_report(client, "summary", by="user", **{"from": RANGE[0], "to": RANGE[1]})
    seen: list[Any] = []
    offset: int | None = 0
    while offset is not None:
        page = _api_report(
            client,
            "summary",
            by="user",
            limit=3,
            offset=offset,
            **{"from": RANGE[0], "to": RANGE[1]},
        )
        seen += page["rows"]
        assert page["totals"] == whole["totals"]
        offset = page["page"]["next_offset"]
    assert seen == whole["rows"]
    assert len(seen) > 3


@pytest.mark.parametrize("series", ["daily", "monthly"])
def test_series_equal_the_report_in_the_tenants_timezone(
    client: TestClient, plain_url: str, series: str
) -> None:
    dimension = {"daily": "day", "monthly": "month"}[series]
    params = {"from": "2026-09-29", "to": "2026-11-03", "limit": 1000}
    api = _api_report(client, series, **params)
    cli = _cli_report(
        plain_url,
        ["--tenant", TENANT, "--by", dimension, "--from", "2026-09-29", "--to", "2026-11-03"],
    )
    assert _by_key(api["rows"], [dimension]) == _by_key(cli["rows"], [dimension])
    if series == "monthly":  # Kolkata's October starts 5h30 before UTC's
        assert [r["group"]["month"] for r in api["rows"] if r["currency"] == "USD"] == [
            "2026-09-01",
            "2026-10-01",
            "2026-11-01",
        ]


@pytest.mark.parametrize(("dimension", "by"), [("users", "user"), ("models", "model")])
def test_top_is_the_head_of_the_report(
    client: TestClient, plain_url: str, dimension: str, by: str
) -> None:
    api = _api_report(client, f"top/{dimension}", limit=2, **{"from": RANGE[0], "to": RANGE[1]})
    cli = _cli_report(
        plain_url, ["--tenant", TENANT, "--by", by, "--from", RANGE[0], "--to", RANGE[1]]
    )
    assert len(api["rows"]) == 2
    head = cli["rows"][:2]
    assert _by_key(api["rows"], [by]) == _by_key(head, [by])
    costs = [float(r["cost_total"]) for r in cli["rows"]]  # ordering only, never money math
    assert costs[:2] == sorted(costs, reverse=True)[:2]


def _percentile_disc(values: list[int], p: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def test_stats_with_filters(client: TestClient, plain_url: str, rows: list[dict[str, Any]]) -> None:
    params = {
        "from": RANGE[0],
        "to": RANGE[1],
        "provider": ["openai", "anthropic"],
        "user": "ana",
        "success": "true",
    }
    api = _api_report(client, "stats", **params)
    cli = _cli_report(
        plain_url,
        [
            "--tenant",
            TENANT,
            "--from",
            RANGE[0],
            "--to",
            RANGE[1],
            "--provider",
            "openai",
            "--provider",
            "anthropic",
            "--user",
            "ana",
            "--success",
        ],
    )
    assert api["report"]["totals"] == _cli_totals(cli)
    zone = ZoneInfo(TIMEZONES[TENANT])
    kept = [
        r
        for r in rows
        if r["tenant_id"] == TENANT
        and r["provider"] in ("openai", "anthropic")
        and r["user_id"] == "ana"
        and r["success"]
        and OCT <= r["occurred_at"].astimezone(zone).replace(tzinfo=None) < NOV
    ]
    assert api["report"]["totals"]["USD"]["requests"] + api["report"]["totals"].get(
        "EUR", {"requests": 0}
    )["requests"] == len(kept)
    latencies = [r["latency_ms"] for r in kept]
    ttft = [r["time_to_first_token_ms"] for r in kept if r["time_to_first_token_ms"] is not None]
    assert api["latency_ms_p50"] == _percentile_disc(latencies, 0.5)
    assert api["latency_ms_p95"] == _percentile_disc(latencies, 0.95)
    assert api["time_to_first_token_ms_p50"] == _percentile_disc(ttft, 0.5)
    assert api["time_to_first_token_ms_p95"] == _percentile_disc(ttft, 0.95)
    assert api["avg_time_to_first_token_ms"] == round(sum(ttft) / len(ttft))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_is_the_cli_export(client: TestClient, plain_url: str, fmt: str) -> None:
    response = client.get(
        f"/v1/tenants/{TENANT}/export", params={"format": fmt, "from": RANGE[0], "to": RANGE[1]}
    )
    assert response.status_code == 200
    cli = _cli(
        plain_url,
        export_command,
        ["--tenant", TENANT, "--format", fmt, "--from", RANGE[0], "--to", RANGE[1]],
    )
    assert response.text == cli
    assert response.text.count("\n") > 300


def test_billing_csv_is_the_cli_billing(client: TestClient, plain_url: str) -> None:
    response = client.get(f"/v1/tenants/{TENANT}/billing.csv", params={"month": "2026-10"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    cli = _cli(plain_url, report_command, ["billing", "--tenant", TENANT, "--month", "2026-10"])
    assert response.text == cli
    assert ",total," in response.text


def test_reports_carry_caching_headers(client: TestClient) -> None:
    path = f"/v1/tenants/{TENANT}/summary"
    first = client.get(path, params={"from": RANGE[0], "to": RANGE[1]})
    assert first.headers["cache-control"].startswith("private, max-age=")
    again = client.get(
        path,
        params={"from": RANGE[0], "to": RANGE[1]},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304
    assert again.content == b""


def test_a_bad_range_is_a_400_with_the_reason(client: TestClient) -> None:
    response = client.get(f"/v1/tenants/{TENANT}/summary", params={"from": "October"})
    assert response.status_code == 400
    assert "not a date" in response.json()["detail"]


def test_unpriced_by_reason(client: TestClient, plain_url: str, rows: list[dict[str, Any]]) -> None:
    api = _api_report(client, "unpriced", **{"from": RANGE[0], "to": RANGE[1]})
    cli = _cli_report(
        plain_url,
        ["--tenant", TENANT, "--by", "unpriced_reason", "--from", RANGE[0], "--to", RANGE[1]],
    )
    reasons = [r for r in cli["rows"] if r["unpriced_reason"] is not None]
    assert _by_key(api["rows"], ["unpriced_reason"]) == _by_key(reasons, ["unpriced_reason"])
    zone = ZoneInfo(TIMEZONES[TENANT])
    unpriced = Counter(
        r["unpriced_reason"]
        for r in rows
        if r["tenant_id"] == TENANT
        and r["pricing_status"] == "unpriced"
        and OCT <= r["occurred_at"].astimezone(zone).replace(tzinfo=None) < NOV
    )
    by_reason = Counter()
    for row in api["rows"]:
        assert row["totals"]["cost_total"] == "0.000000000000"  # no cost, counted as unpriced
        assert row["totals"]["unpriced_requests"] == row["totals"]["requests"]
        by_reason[row["group"]["unpriced_reason"]] += row["totals"]["requests"]
    assert by_reason == unpriced
    assert sum(unpriced.values()) > 20


def test_the_report_cache_serves_the_same_question_until_it_expires(
    plain_url: str, keys: Keys
) -> None:
    """The default range (this local month) is one question: a new call is seen only after
    the cache entry expires; with the cache off, at once."""
    path = f"/v1/tenants/{TENANT}/summary"
    kept = api_settings(plain_url, api_report_cache_s=3600)
    fresh = api_settings(plain_url, api_report_cache_s=0)
    with TestClient(create_app(kept)) as cached, TestClient(create_app(fresh)) as uncached:
        for test_client in (cached, uncached):
            test_client.headers.update(bearer(keys.kolkata))
        before = cached.get(path).json()["totals"]
        now = datetime.now(UTC)
        insert_rows(plain_url, [EventFactory(seed=99).row(TENANT, now, currency="USD")])
        assert cached.get(path).json()["totals"] == before
        after = uncached.get(path).json()["totals"]
    usd = before.get("USD", {"requests": 0})["requests"]
    assert after["USD"]["requests"] == usd + 1


_RAW_SUMS = """
SELECT currency, count(*) AS requests, count(*) FILTER (WHERE success) AS succeeded,
       count(*) FILTER (WHERE NOT success) AS failed, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(cost_total) AS cost_total
FROM usage_events
WHERE tenant_id = %(tenant)s AND tags ->> 'env' = 'prod' AND tags ->> 'feature' = 'search'
  AND provider = ANY(%(providers)s)
  AND occurred_at >= '2026-10-01 00:00'::timestamp AT TIME ZONE %(zone)s
  AND occurred_at < '2026-11-01 00:00'::timestamp AT TIME ZONE %(zone)s
GROUP BY currency
"""


@pytest.mark.parametrize("success", [None, True, False])
def test_stats_by_tags_equal_sums_over_the_raw_rows(
    client: TestClient, plain_url: str, success: bool | None
) -> None:
    params: dict[str, Any] = {
        "from": RANGE[0],
        "to": RANGE[1],
        "tag": ["env=prod", "feature=search"],
        "provider": ["openai", "anthropic"],
    }
    if success is not None:
        params["success"] = str(success).lower()
    api = _api_report(client, "stats", **params)["report"]["totals"]
    with psycopg.connect(plain_url, row_factory=dict_row) as conn:
        raw = conn.execute(
            _RAW_SUMS,
            {"tenant": TENANT, "providers": ["openai", "anthropic"], "zone": TIMEZONES[TENANT]},
        ).fetchall()
    assert raw, "the data has calls with both tags"
    expected = {}
    for r in raw:
        succeeded = r["succeeded"] if success is not False else 0
        failed = r["failed"] if success is not True else 0
        if succeeded + failed:
            expected[r["currency"]] = (succeeded + failed, succeeded, failed)
    got = {c: (t["requests"], t["succeeded"], t["failed"]) for c, t in api.items()}
    assert got == expected
    if success is None:
        for r in raw:
            totals = api[r["currency"]]
            assert totals["input_tokens"] == r["input_tokens"]
            assert totals["output_tokens"] == r["output_tokens"]
            assert Decimal(totals["cost_total"]) == (r["cost_total"] or Decimal(0))


def test_a_tag_filter_is_the_cli_report_tag_filter(client: TestClient, plain_url: str) -> None:
    api = _api_report(client, "stats", **{"from": RANGE[0], "to": RANGE[1], "tag": "env=prod"})
    cli = _cli_report(
        plain_url, ["--tenant", TENANT, "--from", RANGE[0], "--to", RANGE[1], "--tag", "env=prod"]
    )
    assert api["report"]["totals"] == _cli_totals(cli)
    assert cli["source"] == "usage_events"


def test_a_malformed_tag_is_a_400(client: TestClient) -> None:
    response = client.get(f"/v1/tenants/{TENANT}/stats", params={"tag": "no-equals-sign"})
    assert response.status_code == 400
    assert "no-equals-sign" in response.json()["detail"]
