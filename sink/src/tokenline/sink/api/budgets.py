"""Budgets over HTTP: administration keys set, list and remove them; a tenant reads its own.

Budgets are managed by the processor's budget admin (the ``tokenline.budgets`` entry point
that tokenline-processor installs): the validation, table and compacted topic of
``tokenline budgets set|list|remove``, so the sink never imports the processor. A tenant's
status is its budgets with their spend in the current period (tenant-local day or month):
the cost ``tokenline report`` gives for that period and scope, in the budget's currency.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Protocol, get_type_hints

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from tokenline.schemas.records import Budget
from tokenline.sink.api.auth import admin_key, state_of, tenant_reader
from tokenline.sink.api.keys import ApiKey
from tokenline.sink.api.models import ErrorOut, Invalid, money_or_none
from tokenline.sink.api.plugins import call_plugin, load_plugin
from tokenline.sink.report.budget_spend import BudgetSpend, budget_spend

__all__ = ["ENTRY_POINT_GROUP", "BudgetAdmin", "find_budget_admin", "router", "tenant_router"]

ENTRY_POINT_GROUP = "tokenline.budgets"
_MONEY_TEXT = r"^\d+(\.\d+)?$"
BUDGET_ID = Path(
    min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$", description="The budget's id."
)


class BudgetAdmin(Protocol):
    """Where budgets are kept (``ConnectionError``: stored but not published)."""

    def put(
        self, budget_id: str, fields: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """Create or change: (the record, []) or (None, every problem)."""
        ...

    def remove(self, budget_id: str) -> bool:
        """Delete; False when there was none."""
        ...

    def records(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """The stored budgets (a tenant's, or all)."""
        ...


class BudgetIn(BaseModel):
    """A budget as ``tokenline budgets set`` takes it; amounts are decimal text."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(max_length=128, description="The tenant (its timezone sets periods).")
    scope: str = Field(default="tenant", max_length=16, description="tenant, project, team, user")
    scope_value: str | None = Field(
        default=None, max_length=256, description="The project, team or user; none for tenant."
    )
    period: str = Field(default="month", max_length=16, description="day or month")
    amount: str = Field(max_length=64, description='Decimal text above 0, e.g. "1000".')
    currency: str = Field(default="USD", max_length=16)
    thresholds_pct: list[int] = Field(
        default=[50, 80, 100], max_length=50, description="Alert at these percents of amount."
    )
    hard_limit: str | None = Field(
        default=None, max_length=64, description="Spend at which SDKs that enforce it refuse."
    )


def _out_field(annotation: Any) -> Any:
    """A record field as the answer has it: money as decimal text, the rest unchanged."""
    if annotation is Decimal:
        return Annotated[str, Field(pattern=_MONEY_TEXT)]
    if annotation == Decimal | None:
        return Annotated[str | None, Field(pattern=_MONEY_TEXT)]
    return annotation


_RECORD_FIELDS: dict[str, Any] = {
    name: (_out_field(kind), ...) for name, kind in get_type_hints(Budget).items()
}
if TYPE_CHECKING:  # a model made at run time: a BaseModel to the type checker
    BudgetOut = BaseModel
else:
    #: A stored budget: the fields of the Budget record (``tokenline.Budget.avsc``), one for one.
    BudgetOut = create_model(
        "BudgetOut", __doc__="A stored budget.", __module__=__name__, **_RECORD_FIELDS
    )


class BudgetStatusOut(BudgetOut):
    """A budget and its spend in the current period ``[period_start, period_end)``."""

    period_start: datetime
    period_end: datetime
    spend: str = Field(pattern=_MONEY_TEXT, description="Priced cost in the budget's currency.")
    thresholds_crossed: list[int] = Field(description="Percents of amount the spend reached.")
    hard_limit_exceeded: bool


_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut, "description": "Not an administration key."},
    422: {"model": Invalid, "description": "Every problem of the budget."},
    429: {"model": ErrorOut},
    503: {"model": ErrorOut, "description": "Budgets cannot be managed here or now."},
}
router = APIRouter(prefix="/v1/budgets", tags=["budgets"], responses=_ADMIN_ERRORS)
tenant_router = APIRouter(
    prefix="/v1/tenants/{tenant_id}",
    tags=["budgets"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut, "description": "The key may not read this tenant."},
        422: {"model": Invalid},
        429: {"model": ErrorOut},
        503: {"model": ErrorOut, "description": "Budgets cannot be read here or now."},
    },
)


def find_budget_admin(database_url: str) -> BudgetAdmin | None:
    """The admin tokenline-processor installs, or None where it is not installed."""
    found: BudgetAdmin | None = load_plugin(ENTRY_POINT_GROUP, "admin", database_url)
    return found


async def _call(request: Request, method: str, *args: Any) -> Any:
    return await call_plugin(
        state_of(request).budgets, "budgets", lambda admin: getattr(admin, method)(*args)
    )


def budget_out(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record with its amounts as decimal text."""
    return {
        **record,
        "amount": money_or_none(record["amount"]),
        "hard_limit": money_or_none(record["hard_limit"]),
    }


@router.put("/{budget_id}", response_model=BudgetOut)
async def put_budget(
    request: Request,
    budget_id: Annotated[str, BUDGET_ID],
    _key: Annotated[ApiKey, Depends(admin_key)],
    budget: Annotated[BudgetIn, Body()],
) -> Any:
    """Create or change a budget (its version grows), store it and publish it to the stream."""
    record, problems = await _call(request, "put", budget_id, budget.model_dump())
    if record is None:
        detail = f"{len(problems)} problems; nothing was stored"
        return JSONResponse({"detail": detail, "problems": problems}, 422)
    return budget_out(record)


@router.get("", response_model=list[BudgetOut])
async def list_budgets(
    request: Request,
    _key: Annotated[ApiKey, Depends(admin_key)],
    tenant: Annotated[
        str | None,
        Query(max_length=128, pattern=r"^[^\x00]*$", description="Only this tenant's."),
    ] = None,
) -> Any:
    """Every stored budget (or one tenant's), by id."""
    records = await _call(request, "records", tenant)
    return [budget_out(r) for r in records]


@router.delete(
    "/{budget_id}",
    status_code=204,
    response_class=Response,
    responses={404: {"model": ErrorOut, "description": "No such budget."}},
)
async def remove_budget(
    request: Request,
    budget_id: Annotated[str, BUDGET_ID],
    _key: Annotated[ApiKey, Depends(admin_key)],
) -> Response:
    """Delete a budget and publish its deletion."""
    if not await _call(request, "remove", budget_id):
        raise HTTPException(404, f"no budget {budget_id!r}")
    return Response(status_code=204)


@tenant_router.get("/budgets", response_model=list[BudgetStatusOut])
async def tenant_budgets(request: Request, tenant: Annotated[str, Depends(tenant_reader)]) -> Any:
    """The tenant's budgets and their spend in the current period, thresholds crossed."""
    records = await _call(request, "records", tenant)
    now = datetime.now(UTC)
    pool = state_of(request).pool

    def statuses() -> list[dict[str, Any]]:
        with pool.connection() as conn:
            return [{**budget_out(r), **_spend_out(budget_spend(conn, r, now))} for r in records]

    return await run_in_threadpool(statuses)


def _spend_out(found: BudgetSpend) -> dict[str, Any]:
    return {
        "period_start": found.period_start,
        "period_end": found.period_end,
        "spend": money_or_none(found.spend),
        "thresholds_crossed": list(found.thresholds_crossed),
        "hard_limit_exceeded": found.hard_limit_exceeded,
    }
