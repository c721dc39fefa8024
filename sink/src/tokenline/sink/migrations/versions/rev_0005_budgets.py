"""Budgets: per tenant, project, team or user, per day or month in the tenant's timezone.

``tokenline budgets`` manages the rows and publishes them on the compacted budgets topic; the
budget evaluator (``tokenline budgets run``) reads that topic, never this table. ``version``
grows with every change so that a consumer can tell a newer definition from an older one.
A tenant budget has no ``scope_value``; the other scopes must have one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = """
CREATE TABLE budgets (
    budget_id      text           NOT NULL,
    tenant_id      text           NOT NULL,
    scope          text           NOT NULL,
    scope_value    text,
    period         text           NOT NULL,
    amount         numeric(38,12) NOT NULL,
    currency       text           NOT NULL DEFAULT 'USD',
    thresholds_pct integer[]      NOT NULL DEFAULT '{50,80,100}',
    hard_limit     numeric(38,12),
    version        bigint         NOT NULL DEFAULT 1,
    created_at     timestamptz    NOT NULL DEFAULT now(),
    updated_at     timestamptz    NOT NULL DEFAULT now(),
    CONSTRAINT pk_budgets PRIMARY KEY (budget_id),
    CONSTRAINT fk_budgets_tenant_id_tenants FOREIGN KEY (tenant_id)
        REFERENCES tenants (tenant_id),
    CONSTRAINT ck_budgets_scope_known CHECK (scope IN ('tenant', 'project', 'team', 'user')),
    CONSTRAINT ck_budgets_scope_value_given CHECK ((scope = 'tenant') = (scope_value IS NULL)),
    CONSTRAINT ck_budgets_period_known CHECK (period IN ('day', 'month')),
    CONSTRAINT ck_budgets_amount_positive CHECK (amount > 0),
    CONSTRAINT ck_budgets_hard_limit_positive CHECK (hard_limit IS NULL OR hard_limit > 0)
);
CREATE INDEX ix_budgets_tenant_id ON budgets (tenant_id);
"""


def upgrade() -> None:
    """Create ``budgets``."""
    op.execute(text(TABLES))


def downgrade() -> None:
    """Drop ``budgets``."""
    op.execute(text("DROP TABLE IF EXISTS budgets"))
