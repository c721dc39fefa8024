"""The FastAPI application of ``tokenline api``: wiring only; the work is in the modules."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from psycopg_pool import PoolTimeout

from tokenline.sink.api import budgets, prices, reads, runs, usage
from tokenline.sink.api.ingest import EventSender, KafkaEventSender
from tokenline.sink.api.models import ErrorOut
from tokenline.sink.api.settings import ApiSettings
from tokenline.sink.api.state import ApiState, open_key_pool, open_pool

__all__ = ["PUBLIC_PATHS", "ROUTERS", "api_routes", "create_app", "openapi_document"]

#: Routes that need no key.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
VERSION = "1.0.0"
#: Every router the app serves (a test walks their routes for the tenant check).
ROUTERS = (
    reads.router,
    usage.router,
    runs.router,
    prices.router,
    budgets.router,
    budgets.tenant_router,
)


def create_app(
    settings: ApiSettings,
    make_sender: Callable[[], EventSender] | None = None,
    make_prices: Callable[[], prices.PriceCatalog | None] = prices.find_catalog,
    make_budgets: Callable[[str], budgets.BudgetAdmin | None] = budgets.find_budget_admin,
) -> FastAPI:
    """Build the app; the database pool opens when it starts (uvicorn or a test client).

    ``make_prices``: where the price list comes from (by default the processor's current
    book, through the ``tokenline.prices`` entry point); ``make_budgets``: who keeps budgets
    (by default the processor's budget admin, through ``tokenline.budgets``).
    """
    state = ApiState(
        settings=settings,
        pool=open_pool(settings),
        key_pool=open_key_pool(settings),
        make_sender=make_sender or (lambda: KafkaEventSender(settings)),
        make_prices=make_prices,
        make_budgets=make_budgets,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.pool.open(wait=False)
        await state.key_pool.open(wait=False)
        try:
            yield
        finally:
            state.close()
            await state.key_pool.close()

    app = FastAPI(
        title="Tokenline API",
        version=VERSION,
        summary="LLM usage, cost and ingest, per tenant.",
        description="Every number is the one `tokenline report` gives on the same data. Money "
        "is decimal text, never a float. Keys: `tokenline api keys create`.",
        lifespan=lifespan,
    )
    app.state.api = state
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", include_in_schema=True, tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"model": ErrorOut, "description": "The database does not answer."}},
    )
    def readyz(request: Request) -> dict[str, str]:
        """Readiness: the database answers (within its connect timeout)."""
        current = request.app.state.api
        try:
            with current.pool.connection(timeout=current.settings.db_connect_timeout_s) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            raise HTTPException(503, "the database does not answer") from exc
        return {"status": "ready"}

    return app


async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """Parameters or a body that do not match the document: every problem, one line each."""
    problems = []
    for error in exc.errors():
        where = "$." + ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse({"detail": f"{len(problems)} problems", "problems": problems}, 422)


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every endpoint of ``app``: those of :data:`ROUTERS` and those declared on the app."""
    found = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    return found + [r for r in app.routes if isinstance(r, APIRoute)]


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` (what ``sink/openapi.json`` holds)."""
    return app.openapi()
