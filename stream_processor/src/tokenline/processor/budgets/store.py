"""The ``budgets`` table (sink revision 0005), read and written with plain SQL.

Each change bumps ``version``; :func:`records` gives the rows as ``tokenline.Budget``
records with the tenant's timezone, ready to publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

if TYPE_CHECKING:
    from decimal import Decimal

    from tokenline.schemas import Budget as BudgetRecord

__all__ = ["BudgetRow", "StoreError", "connect", "delete", "records", "upsert"]

_SELECT = """
SELECT b.budget_id, b.tenant_id, b.scope, b.scope_value, b.period, t.timezone, b.amount,
       b.currency, b.thresholds_pct, b.hard_limit, b.version, b.updated_at
FROM budgets AS b JOIN tenants AS t USING (tenant_id)
"""

_UPSERT = """
INSERT INTO budgets AS b (budget_id, tenant_id, scope, scope_value, period, amount, currency,
                          thresholds_pct, hard_limit)
VALUES (%(budget_id)s, %(tenant_id)s, %(scope)s, %(scope_value)s, %(period)s, %(amount)s,
        %(currency)s, %(thresholds_pct)s, %(hard_limit)s)
ON CONFLICT (budget_id) DO UPDATE SET
    tenant_id = EXCLUDED.tenant_id, scope = EXCLUDED.scope, scope_value = EXCLUDED.scope_value,
    period = EXCLUDED.period, amount = EXCLUDED.amount, currency = EXCLUDED.currency,
    thresholds_pct = EXCLUDED.thresholds_pct, hard_limit = EXCLUDED.hard_limit,
    version = b.version + 1, updated_at = now()
"""


class StoreError(Exception):
    """The database refused a budget; the message says why."""


@dataclass(frozen=True)
class BudgetRow:
    """A budget as ``tokenline budgets set`` gives it."""

    budget_id: str
    tenant_id: str
    scope: str
    scope_value: str | None
    period: str
    amount: Decimal
    currency: str
    thresholds_pct: tuple[int, ...]
    hard_limit: Decimal | None


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection that never prepares statements on the server."""
    return psycopg.connect(url, prepare_threshold=None, application_name="tokenline-budgets")


def upsert(conn: psycopg.Connection[Any], row: BudgetRow) -> BudgetRecord:
    """Create or change a budget (its version grows); return it as a record to publish."""
    params = {**row.__dict__, "thresholds_pct": list(row.thresholds_pct)}
    try:
        with conn.transaction():
            conn.execute(_UPSERT, params)
    except psycopg.errors.ForeignKeyViolation as exc:
        msg = f"no tenant {row.tenant_id!r}: add it to the tenants table first"
        raise StoreError(msg) from exc
    except psycopg.errors.CheckViolation as exc:
        raise StoreError(f"budget refused: {exc.diag.message_primary}") from exc
    found = records(conn, budget_id=row.budget_id)
    return found[0]


def delete(conn: psycopg.Connection[Any], budget_id: str) -> bool:
    """Delete a budget; False when there was none."""
    with conn.transaction():
        return conn.execute("DELETE FROM budgets WHERE budget_id = %s", [budget_id]).rowcount > 0


def records(
    conn: psycopg.Connection[Any], *, budget_id: str | None = None, tenant_id: str | None = None
) -> list[BudgetRecord]:
    """The stored budgets (one, a tenant's, or all) as ``tokenline.Budget`` records."""
    where, params = "", []
    if budget_id is not None:
        where, params = " WHERE b.budget_id = %s", [budget_id]
    elif tenant_id is not None:
        where, params = " WHERE b.tenant_id = %s", [tenant_id]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_SELECT + where + " ORDER BY b.budget_id", params).fetchall()
    conn.commit()
    return [_record(r) for r in rows]


def _record(row: dict[str, Any]) -> BudgetRecord:
    return {
        "budget_id": row["budget_id"],
        "tenant_id": row["tenant_id"],
        "scope": row["scope"],
        "scope_value": row["scope_value"],
        "period": row["period"],
        "timezone": row["timezone"],
        "amount": row["amount"],
        "currency": row["currency"],
        "thresholds_pct": list(row["thresholds_pct"]),
        "hard_limit": row["hard_limit"],
        "version": row["version"],
        "updated_at": row["updated_at"],
    }
