"""``GET /v1/replay-runs``: the runs of ``tokenline replay`` (administration keys only).

A run may span every tenant and its costs are sums over all of them, so a tenant key sees
none.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from tokenline.sink.api.auth import admin_key, state_of
from tokenline.sink.api.keys import ApiKey
from tokenline.sink.api.models import ErrorOut, Invalid, ReplayRunOut, money_or_none

__all__ = ["router"]

router = APIRouter()

_RUNS = """
SELECT id, started_at, finished_at, range_from, range_to, tenants, new_pricing_version,
       cost_before, cost_after, events_count, dry_run, status
FROM repricing_runs ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s
"""


@router.get(
    "/v1/replay-runs",
    response_model=list[ReplayRunOut],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        422: {"model": Invalid},
        429: {"model": ErrorOut},
    },
)
def replay_runs(
    request: Request,
    _key: Annotated[ApiKey, Depends(admin_key)],
    limit: Annotated[int, Query(ge=1, le=1_000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ReplayRunOut]:
    """Replay runs, newest first: range, tenants, pricing version, cost before and after."""
    with state_of(request).pool.connection() as conn:
        rows = conn.execute(_RUNS, {"limit": limit, "offset": offset}).fetchall()
    return [
        ReplayRunOut(
            **{
                **row,
                "cost_before": money_or_none(row["cost_before"]),
                "cost_after": money_or_none(row["cost_after"]),
            }
        )
        for row in rows
    ]
