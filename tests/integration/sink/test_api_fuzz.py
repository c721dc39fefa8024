"""Property-based fuzz of every operation in the OpenAPI document, on the real database.

schemathesis generates requests from ``openapi.json`` (valid and invalid parameters and
bodies) and checks every response: no 5xx, a documented status code and content type, and a
body that matches the documented schema. Reads and budget changes go with an administration
key, so fuzzed tenant ids reach the queries (budgets publish to topics of their own); ingest
goes with a tenant key to a fresh topic of the real broker. Examples per operation are few
(``MAX_EXAMPLES``) to keep CI cheap, and derandomized so a run is reproducible.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests._kafka import new_topic
from tests.integration.sink._api import TIMEZONES, api_settings, bearer, landed_rows, make_keys
from tests.integration.sink._data import insert_rows
from tokenline.processor.budgets.admin import BudgetAdmin
from tokenline.processor.budgets.settings import BudgetSettings
from tokenline.processor.price_catalog import BookPrices
from tokenline.processor.pricebook import load_price_book
from tokenline.sink.api.app import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine, Iterator

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


PLACEHOLDER = "postgresql://placeholder/tokenline"
#: The event loop schemathesis runs the app in (one for every call, from the first on).
LOOPS: list[asyncio.AbstractEventLoop] = []


@asynccontextmanager
async def _lifespan_of_the_fixture(_app: Any) -> AsyncIterator[None]:
    LOOPS.append(asyncio.get_running_loop())
    yield


def _on_the_app_loop(work: Coroutine[Any, Any, None]) -> None:
    asyncio.run_coroutine_threadsafe(work, LOOPS[-1]).result(timeout=30)


# The app the schema is read from and the requests go to. Its database and broker are the
# test's: the fixture gives it the state of an app made with the real settings.
# schemathesis runs the app's lifespan once, when it reads the schema; the fixture owns the
# pools instead, and opens the asyncio one (key reads) on the loop the calls run in.
APP = create_app(api_settings(PLACEHOLDER))
APP.router.lifespan_context = _lifespan_of_the_fixture
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def fuzzed(plain_url: str, kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    insert_rows(plain_url, landed_rows()[:200], tenants=TIMEZONES)
    keys = make_keys(plain_url)
    topic = new_topic(kafka_bootstrap, "api-fuzz", partitions=1)
    prices = BookPrices(lambda: (load_price_book(), "shipped snapshot"))
    budgets = BudgetSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"{topic}.")
    real = create_app(
        api_settings(plain_url, bootstrap_servers=kafka_bootstrap, raw_topic=topic),
        make_prices=lambda: prices,
        make_budgets=lambda url: BudgetAdmin(url, budgets),
    )
    APP.state.api = real.state.api
    APP.state.api.pool.open()
    _on_the_app_loop(APP.state.api.key_pool.open(wait=True))
    try:
        yield {"read": keys.admin, "ingest": keys.kolkata}
    finally:
        APP.state.api.close()
        _on_the_app_loop(APP.state.api.key_pool.close())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_every_response_matches_the_schema(case: Any, fuzzed: dict[str, str]) -> None:
    keys = fuzzed
    key = keys["ingest"] if case.method.upper() == "POST" else keys["read"]
    case.call_and_validate(headers=bearer(key), checks=CHECKS)
