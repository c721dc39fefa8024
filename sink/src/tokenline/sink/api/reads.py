"""Read endpoints. Every number comes from :mod:`tokenline.sink.report`, as ``tokenline report``.

Each handler builds a :class:`~tokenline.sink.report.selection.ReportSpec` (or a selection)
and runs it with the report layer on a pooled connection; no SQL of its own. Ranges are the
report's: ``from``/``to`` as dates or wall-clock times in the tenant's timezone, or instants
with an offset; the current tenant-local month by default. JSON reports carry
``Cache-Control`` and an ``ETag`` (``If-None-Match`` answers 304).
"""

import contextlib
import hashlib
import io
import re
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from tokenline.sink.api.auth import state_of, tenant_reader
from tokenline.sink.api.models import ErrorOut, Invalid, ReportOut, report_out
from tokenline.sink.api.state import ApiState
from tokenline.sink.errors import ReportError
from tokenline.sink.report.billing import billing_spec, write_billing_csv
from tokenline.sink.report.export import export_chunks
from tokenline.sink.report.model import ReportRow
from tokenline.sink.report.run import iter_events, run_latency, run_report, tenant_timezones
from tokenline.sink.report.selection import ReportSpec, Selection

__all__ = ["StatsOut", "router"]

T = TypeVar("T")
SummaryDimension = Literal["provider", "model", "project", "team", "user", "cloud", "host"]
_ERRORS: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the If-None-Match ETag is current."},
    400: {"model": ErrorOut, "description": "A range or filter the report cannot take."},
    422: {"model": Invalid, "description": "Parameters that do not match the document."},
    401: {"model": ErrorOut, "description": "No key, or an unknown or revoked one."},
    403: {"model": ErrorOut, "description": "The key may not read this tenant."},
    429: {"model": ErrorOut, "description": "The key's rate limit; see Retry-After."},
}

router = APIRouter(prefix="/v1/tenants/{tenant_id}", responses=_ERRORS)
Tenant = Annotated[str, Depends(tenant_reader)]
Start = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=40,
        description="Start, inclusive: 2026-10-01, 2026-10-01T09:30 (tenant-local) or with an "
        "offset. Default: the start of the current tenant-local month.",
    ),
]
End = Annotated[str | None, Query(alias="to", max_length=40, description="End, exclusive.")]
Limit = Annotated[int, Query(ge=1, le=1_000, description="Rows per page.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip.")]
Values = Annotated[list[str] | None, Query(max_length=50)]


class StatsOut(BaseModel):
    """Totals, averages and latency percentiles of the selected calls, per currency."""

    report: ReportOut
    latency_ms_p50: int | None
    latency_ms_p95: int | None
    avg_time_to_first_token_ms: int | None
    time_to_first_token_ms_p50: int | None
    time_to_first_token_ms_p95: int | None


class Range(BaseModel):
    """The query parameters every report takes: its range (``from``, ``to``).

    A route takes one of these models as its query (FastAPI lists their parameters in field
    order; parsed with the path and headers, no call of its own).
    """

    model_config = ConfigDict(frozen=True)

    start: Start = None
    end: End = None


class Page(Range):
    """A range and the page of its rows (``limit``, ``offset``)."""

    limit: Limit = 100
    offset: Offset = 0


class Top(Range):
    """A range and how many of the largest to list."""

    limit: Annotated[int, Query(ge=1, le=100)] = 10


class Filters(Range):
    """A range and the calls to count in it: any of a dimension's values, every tag."""

    project: Values = None
    provider: Values = None
    model: Values = None
    user: Values = None
    session: Values = None
    tag: Annotated[
        list[str] | None,
        Query(max_length=50, description="key=value that a call's tags hold (repeat: all)."),
    ] = None
    success: Annotated[bool | None, Query(description="Only successes, or failures.")] = None

    def dimensions(self) -> dict[str, list[str] | None]:
        """The values asked of each dimension."""
        return {
            "project": self.project,
            "provider": self.provider,
            "model": self.model,
            "user": self.user,
            "session": self.session,
        }


Ranged = Annotated[Range, Query()]
Paged = Annotated[Page, Query()]


@contextlib.contextmanager
def _bad_request() -> Iterator[None]:
    """A range or value the report cannot take is the client's error (400), with the reason.

    ``ValueError``/``OverflowError``: a date at the end of the calendar (year 1 widened by a
    day); ``DataError``: a time PostgreSQL cannot hold.
    """
    try:
        yield
    except ReportError as exc:
        raise HTTPException(400, str(exc)) from exc
    except (ValueError, OverflowError, psycopg.DataError) as exc:
        raise HTTPException(400, f"a range or value out of bounds: {exc}") from exc


def _selection(
    tenant: str,
    span: Range,
    filters: dict[str, list[str] | None] | None = None,
    success: bool | None = None,
    *,
    tags: list[str] | None = None,
) -> Selection:
    # "now" to the minute: the default range (the current local month) is then the same
    # question, and the same cache entry, for a minute at a time.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with _bad_request():
        given = {k: tuple(v) for k, v in (filters or {}).items() if v}
        return Selection.build(
            (tenant,),
            start=span.start,
            end=span.end,
            filters=given,
            success=success,
            now=now,
            tags=tuple(tags or ()),
        )


async def _report(
    request: Request,
    tenant: str,
    spec: ReportSpec,
    limit: int,
    offset: int,
    *,
    keep: Callable[[ReportRow], bool] | None = None,
) -> Response:
    """One page of ``spec``'s report; the rendered page is what the cache keeps."""
    state = state_of(request)

    def compute() -> Rendered:
        with state.pool.connection() as conn:
            report = run_report(conn, spec)
        if keep is not None:  # some groups only; the totals are the report's sums of those
            report = replace(report, rows=tuple(row for row in report.rows if keep(row)))
        return Rendered.of(report_out(tenant, report, limit, offset))

    # ``keep`` is fixed per endpoint, and an endpoint's specs are its own (unpriced alone
    # groups by unpriced_reason), so the spec and the page name the answer.
    with _bad_request():
        rendered = await _cached_result(state, ("page", spec, limit, offset), compute)
    return rendered.response(request)


async def _cached_result(state: ApiState, key: Hashable, compute: Callable[[], T]) -> T:
    """A fresh cached result without leaving the event loop, else computed in a worker thread."""
    found: T | None = state.reports.peek(key)
    if found is not None:
        return found
    return await run_in_threadpool(state.reports.get, key, compute)


@dataclass(frozen=True)
class Rendered:
    """A JSON answer made once: its body and ETag (what the report cache keeps)."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, model: BaseModel) -> "Rendered":
        """``model`` as JSON, with the ETag of that text."""
        body = model.model_dump_json().encode()
        return cls(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    def response(self, request: Request) -> Response:
        """The body with Cache-Control and the ETag (304 when the client has it)."""
        max_age = state_of(request).settings.api_cache_max_age_s
        headers = {
            "Cache-Control": f"private, max-age={max_age}",
            "ETag": self.etag,
            "Vary": "Authorization",
        }
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type="application/json", headers=headers)


@router.get("/summary", response_model=ReportOut)
async def summary(
    request: Request,
    *,
    tenant: Tenant,
    by: Annotated[list[SummaryDimension], Query(max_length=7)] = ["provider"],  # noqa: B006
    page: Paged,
) -> Response:
    """The tenant's totals grouped by the given dimensions (in order), largest cost first."""
    group = tuple(dict.fromkeys(by))
    spec = ReportSpec(_selection(tenant, page), group_by=group)
    return await _report(request, tenant, spec, page.limit, page.offset)


@router.get("/daily", response_model=ReportOut)
async def daily(
    request: Request,
    *,
    tenant: Tenant,
    page: Paged,
) -> Response:
    """Totals per tenant-local day (the tenant's billing timezone), oldest first."""
    spec = ReportSpec(_selection(tenant, page), group_by=("day",))
    return await _report(request, tenant, spec, page.limit, page.offset)


@router.get("/monthly", response_model=ReportOut)
async def monthly(
    request: Request,
    *,
    tenant: Tenant,
    page: Paged,
) -> Response:
    """Totals per tenant-local month, oldest first."""
    spec = ReportSpec(_selection(tenant, page), group_by=("month",))
    return await _report(request, tenant, spec, page.limit, page.offset)


@router.get("/stats", response_model=StatsOut)
async def stats(
    request: Request,
    *,
    tenant: Tenant,
    asked: Annotated[Filters, Query()],
) -> Response:
    """Requests, successes, failures, tokens, cost, latency (mean, p50, p95) and TTFT.

    Filters: any of the values given for a dimension, every ``tag`` given, and the range.
    """
    selection = _selection(tenant, asked, asked.dimensions(), asked.success, tags=asked.tag)
    state = state_of(request)

    def compute() -> Rendered:
        with state.pool.connection() as conn:
            report, latency = run_report(conn, ReportSpec(selection)), run_latency(conn, selection)
        return Rendered.of(
            StatsOut(
                report=report_out(tenant, report, 1_000, 0),
                latency_ms_p50=latency.latency_ms_p50,
                latency_ms_p95=latency.latency_ms_p95,
                avg_time_to_first_token_ms=latency.avg_ttft_ms,
                time_to_first_token_ms_p50=latency.ttft_ms_p50,
                time_to_first_token_ms_p95=latency.ttft_ms_p95,
            )
        )

    with _bad_request():
        rendered = await _cached_result(state, ("stats", selection), compute)
    return rendered.response(request)


@router.get("/top/{dimension}", response_model=ReportOut)
async def top(
    request: Request,
    *,
    tenant: Tenant,
    dimension: Literal["users", "models", "projects", "teams"],
    asked: Annotated[Top, Query()],
) -> Response:
    """The tenant's largest users, models, projects or teams by cost, then requests."""
    name = {"users": "user", "models": "model", "projects": "project", "teams": "team"}
    spec = ReportSpec(_selection(tenant, asked), group_by=(name[dimension],))
    return await _report(request, tenant, spec, asked.limit, 0)


@router.get("/unpriced", response_model=ReportOut)
async def unpriced(
    request: Request,
    *,
    tenant: Tenant,
    span: Ranged,
) -> Response:
    """Calls without a cost, by reason (unknown_model, no_price_at_date, ...), most first.

    The rows of the report grouped by ``unpriced_reason``, less the group of priced calls
    (no reason); a later replay prices them.
    """
    spec = ReportSpec(_selection(tenant, span), group_by=("unpriced_reason",))
    return await _report(request, tenant, spec, 1_000, 0, keep=lambda row: row.keys[0] is not None)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
def export(
    request: Request,
    *,
    tenant: Tenant,
    fmt: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "jsonl",
    span: Ranged,
) -> StreamingResponse:
    """Every call of the range, raw, streamed row by row (no prompt text is ever stored)."""
    selection = _selection(tenant, span)
    pool = state_of(request).pool

    def chunks() -> Iterator[bytes]:
        with pool.connection() as conn, conn.transaction():  # the cursor lives in it
            for chunk in export_chunks(iter_events(conn, selection), fmt):
                yield chunk.encode()

    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"tokenline-{tenant}.{fmt}")
    return StreamingResponse(
        chunks(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/billing.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def billing(
    request: Request,
    tenant: Tenant,
    month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")],
) -> Response:
    """The monthly billing CSV of ``tokenline report billing``: a line per provider and model."""
    state = state_of(request)
    with _bad_request(), state.pool.connection() as conn:
        report = run_report(conn, billing_spec((tenant,), month))
        timezones = tenant_timezones(conn, (tenant,))
    stream = io.StringIO()
    write_billing_csv(report, month, timezones, stream)
    return Response(
        stream.getvalue(),
        media_type="text/csv",
        headers={"Cache-Control": f"private, max-age={state.settings.api_cache_max_age_s}"},
    )
