"""API keys of ``tokenline api``: stored only as Argon2id hashes, each scoped to one tenant.

A key reads ``tlk_<key_id>_<secret>``. ``key_id`` is public (it names the key in lists and
logs and finds the row); only the Argon2id hash of the secret is stored, so a leaked table
yields no usable key. A tenant key has ``tenant_id`` and the scopes ``read``, ``ingest`` or
both; an administration key has no tenant and the scope ``admin``. A revoked key keeps its row
(``revoked_at``) so lists show what was revoked and when; ``rotated_from`` names the key a
rotation replaced.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

TABLE = """
CREATE TABLE api_keys (
    key_id                text        NOT NULL,
    secret_hash           text        NOT NULL,
    tenant_id             text,
    scopes                text[]      NOT NULL,
    name                  text,
    rate_limit_per_minute integer,
    created_at            timestamptz NOT NULL DEFAULT now(),
    revoked_at            timestamptz,
    rotated_from          text,
    CONSTRAINT pk_api_keys PRIMARY KEY (key_id),
    CONSTRAINT ck_api_keys_scopes_known
        CHECK (scopes <@ ARRAY['read', 'ingest', 'admin']::text[] AND cardinality(scopes) > 0),
    CONSTRAINT ck_api_keys_admin_has_no_tenant
        CHECK ((tenant_id IS NULL) = ('admin' = ANY(scopes))),
    CONSTRAINT ck_api_keys_rate_positive
        CHECK (rate_limit_per_minute IS NULL OR rate_limit_per_minute > 0)
);
CREATE INDEX ix_api_keys_tenant_id ON api_keys (tenant_id);
"""


def upgrade() -> None:
    """Create ``api_keys``."""
    op.execute(text(TABLE))


def downgrade() -> None:
    """Drop ``api_keys`` (every key stops working)."""
    op.execute(text("DROP TABLE IF EXISTS api_keys"))
