"""Keys on a real database: a key never sees another tenant; revoked and rotated keys are refused.

The cross-tenant test walks every route of the app, so a new route is checked the day it is
added: a route with ``{tenant_id}`` in its path is called for another tenant with a key of
the first; any other route must be listed in ``OTHER_ROUTES`` with how it refuses.
"""

from __future__ import annotations

import re
import typing
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from psycopg.rows import dict_row
from pydantic import BaseModel

from tests.integration.sink._api import TIMEZONES, Keys, api_settings, bearer, make_keys
from tests.integration.sink._data import insert_rows
from tokenline.processor.price_catalog import BookPrices
from tokenline.processor.pricebook import load_price_book
from tokenline.sink.api.app import PUBLIC_PATHS, api_routes, create_app
from tokenline.sink.api.cli import api as api_command
from tokenline.sink.api.keys import KeyStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fastapi.routing import APIRoute

pytestmark = pytest.mark.integration

VICTIM, ATTACKER = "t-new-york", "t-kolkata"
# Values for required query parameters of any route (a route with one not here fails the test).
QUERY_SAMPLES = {"month": "2026-10"}
# Routes without a tenant in their path, the request with the attacker's key, and its status.
OTHER_ROUTES: dict[tuple[str, str], tuple[dict[str, Any], int]] = {
    ("POST", "/v1/usage"): ({"json": None}, 403),  # a valid event of the victim's (set below)
    ("GET", "/v1/replay-runs"): ({}, 403),  # administration keys only
    ("GET", "/v1/budgets"): ({}, 403),  # administration keys only
    ("PUT", "/v1/budgets/{budget_id}"): (
        {"path": "/v1/budgets/ny-month", "json": {"tenant_id": VICTIM, "amount": "1"}},
        403,
    ),
    ("DELETE", "/v1/budgets/{budget_id}"): ({"path": "/v1/budgets/ny-month"}, 403),
    # List prices are no tenant's data (no tenant terms in them): any key reads them.
    ("GET", "/v1/providers/{provider}/models"): ({"path": "/v1/providers/openai/models"}, 200),
}


@pytest.fixture(scope="module")
def keys(plain_url: str) -> Keys:
    insert_rows(plain_url, [], tenants=TIMEZONES)
    return make_keys(plain_url)


@pytest.fixture(scope="module")
def client(plain_url: str, keys: Keys) -> Iterator[TestClient]:
    prices = BookPrices(lambda: (load_price_book(), "shipped snapshot"))
    app = create_app(api_settings(plain_url), make_prices=lambda: prices)
    with TestClient(app) as test_client:
        yield test_client


def _routes(client: TestClient) -> list[APIRoute]:
    routes = api_routes(client.app)  # type: ignore[arg-type]
    paths = {(m, r.path) for r in routes for m in r.methods}
    documented = {
        (m.upper(), p)
        for p, item in client.app.openapi()["paths"].items()
        for m in item  # type: ignore[attr-defined]
    }
    assert documented <= paths  # nothing served that the walk would miss
    return routes


def _params(dependant: Any, where: str) -> list[Any]:
    """The path or query parameters of an endpoint and of every dependency under it."""
    found = list(getattr(dependant, f"{where}_params"))
    for sub in dependant.dependencies:
        found += _params(sub, where)
    return found


def _path_value(route: APIRoute, name: str, tenant: str) -> str:
    if name == "tenant_id":
        return tenant
    param = next(p for p in _params(route.dependant, "path") if p.name == name)
    choices = typing.get_args(param.field_info.annotation)
    assert choices, f"{route.path}: give the test a value for {{{name}}}"
    return str(choices[0])


def _required_query(route: APIRoute) -> list[str]:
    """The names of the required query parameters, those of query models' fields included."""
    required = []
    for param in _params(route.dependant, "query"):
        model = param.field_info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):  # Annotated[M, Query()]
            fields = [(f.alias or n, f.is_required()) for n, f in model.model_fields.items()]
        else:
            fields = [(param.alias, param.field_info.is_required())]
        required += [alias for alias, needed in fields if needed]
    return required


def _request(route: APIRoute, tenant: str) -> tuple[str, str, dict[str, Any]]:
    method = next(iter(route.methods))
    path = route.path
    for name in re.findall(r"\{(\w+)\}", route.path):
        path = path.replace(f"{{{name}}}", _path_value(route, name, tenant))
    query = {}
    for alias in _required_query(route):
        assert alias in QUERY_SAMPLES, f"{route.path}: no sample for {alias}"
        query[alias] = QUERY_SAMPLES[alias]
    return method, path, {"params": query}


def test_every_route_refuses_another_tenants_key(client: TestClient, keys: Keys) -> None:
    checked = 0
    for route in _routes(client):
        if route.path in PUBLIC_PATHS:
            continue
        if "{tenant_id}" in route.path:
            method, path, extra = _request(route, VICTIM)
            denied = client.request(method, path, headers=bearer(keys.kolkata), **extra)
            assert denied.status_code == 403, (route.path, denied.text)
            own_method, own_path, own_extra = _request(route, ATTACKER)
            allowed = client.request(
                own_method, own_path, headers=bearer(keys.kolkata), **own_extra
            )
            assert allowed.status_code == 200, (route.path, allowed.text)  # the check is the tenant
        else:
            method = next(iter(route.methods))
            assert (method, route.path) in OTHER_ROUTES, f"{method} {route.path} is not checked"
            given, status = OTHER_ROUTES[(method, route.path)]
            body = dict(given)
            if "json" in body and body["json"] is None:
                body["json"] = _event(VICTIM)
            path = body.pop("path", route.path)
            answer = client.request(method, path, headers=bearer(keys.kolkata), **body)
            assert answer.status_code == status, (route.path, answer.text)
        checked += 1
    assert checked >= 9


def test_an_ingest_of_another_tenants_event_is_refused(client: TestClient, keys: Keys) -> None:
    event = _event(VICTIM)
    response = client.post(
        "/v1/usage", json=[_event(ATTACKER), event], headers=bearer(keys.kolkata)
    )
    assert response.status_code == 403
    assert "$[1].tenant_id" in response.json()["detail"]


def _event(tenant: str) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "occurred_at": "2026-10-05T10:00:00Z",
        "provider": "openai",
        "operation": "chat",
        "usage": {"input_tokens": 10, "output_tokens": 5},
        "usage_source": "reported",
        "latency_ms": 120,
        "success": True,
        "host": {},
    }


def test_scopes(client: TestClient, keys: Keys) -> None:
    summary = f"/v1/tenants/{ATTACKER}/summary"
    assert client.get(summary, headers=bearer(keys.kolkata_ingest_only)).status_code == 403
    assert client.get(summary, headers=bearer(keys.admin)).status_code == 200
    assert client.get("/v1/replay-runs", headers=bearer(keys.admin)).status_code == 200
    assert (
        client.post("/v1/usage", json=_event(ATTACKER), headers=bearer(keys.admin)).status_code
        == 403
    )
    assert client.get(summary).status_code == 401
    assert client.get(summary, headers=bearer("tlk_000000000000_" + "A" * 43)).status_code == 401
    forged = keys.kolkata[:-1] + ("B" if keys.kolkata[-1] != "B" else "C")  # right id, wrong secret
    assert client.get(summary, headers=bearer(forged)).status_code == 401


def _store_conn(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, row_factory=dict_row, autocommit=True)


def test_revoked_and_rotated_keys_are_refused(plain_url: str, client: TestClient) -> None:
    store = KeyStore()
    with _store_conn(plain_url) as conn:
        made = store.create(conn, tenant_id=ATTACKER, scopes=("read",))
    summary = f"/v1/tenants/{ATTACKER}/summary"
    assert client.get(summary, headers=bearer(made.text)).status_code == 200  # verified, remembered
    with _store_conn(plain_url) as conn:
        rotated = store.rotate(conn, made.key.key_id)
    assert client.get(summary, headers=bearer(made.text)).status_code == 401
    assert client.get(summary, headers=bearer(rotated.text)).status_code == 200
    with _store_conn(plain_url) as conn:
        store.revoke(conn, rotated.key.key_id)
    assert client.get(summary, headers=bearer(rotated.text)).status_code == 401


def test_only_a_hash_is_stored(plain_url: str, keys: Keys) -> None:
    with _store_conn(plain_url) as conn:
        stored = [row["secret_hash"] for row in conn.execute("SELECT secret_hash FROM api_keys")]
    secret = keys.kolkata.split("_", 2)[2]  # tlk_<key id>_<secret>: the secret may hold "_"
    assert len(secret) == 43
    assert stored
    assert all(h.startswith("$argon2id$") and secret not in h for h in stored)


def test_the_key_commands(plain_url: str) -> None:
    runner = CliRunner()
    db = ["--database-url", plain_url]
    made = runner.invoke(
        api_command,
        ["keys", "create", "--tenant", "t-cli", "--scope", "read", "--rate-limit", "5", *db],
    )
    assert made.exit_code == 0, made.output
    text = made.stdout.strip().splitlines()[-1]
    key_id = text.split("_")[1]
    listed = runner.invoke(api_command, ["keys", "list", "--tenant", "t-cli", *db])
    assert key_id in listed.output
    assert "active" in listed.output
    assert "5/min" in listed.output
    assert text.split("_", 2)[2] not in listed.output  # the secret (it may hold "_")
    rotated = runner.invoke(api_command, ["keys", "rotate", key_id, *db])
    assert rotated.exit_code == 0, rotated.output
    listed = runner.invoke(api_command, ["keys", "list", "--tenant", "t-cli", *db])
    assert listed.output.count("active") == 1
    assert "revoked" in listed.output
    missing = runner.invoke(api_command, ["keys", "revoke", "ffffffffffff", *db])
    assert missing.exit_code != 0


def test_the_per_key_rate_limit(plain_url: str) -> None:
    with _store_conn(plain_url) as conn:
        made = KeyStore().create(
            conn, tenant_id=ATTACKER, scopes=("read",), rate_limit_per_minute=3
        )
    with TestClient(create_app(api_settings(plain_url))) as fresh:
        codes = [
            fresh.get(f"/v1/tenants/{ATTACKER}/summary", headers=bearer(made.text)).status_code
            for _ in range(4)
        ]
        refused = fresh.get(f"/v1/tenants/{ATTACKER}/summary", headers=bearer(made.text))
    assert codes[:3] == [200, 200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
