"""One row per event_id in usage_events, whatever its occurred_at: the first stored copy wins.

usage_events is keyed by (event_id, occurred_at) because a TimescaleDB hypertable's unique
indexes must hold its time column; so the same event_id with another occurred_at used to land
as a second row (and count twice in every total). ``usage_event_ids`` is the guard: one row per
event_id with the occurred_at of the copy that was stored, written by the sink in the
transaction that stores the event. It is a plain table on both storage paths (it is keyed by
event_id alone, which a hypertable cannot be), so the same statements run on both.

A later copy with another occurred_at is refused: the sink dead-letters it
(``duplicate_event_id``) and records it in ``usage_event_duplicates``, which the replay reads
so that it re-prices the stored copy only. Why the first stored copy: it is the one every
report, bill and rollup already counts; letting a later copy move it would change an issued
bill and move its cost to another window, or month, on the say of a re-send.

Upgrading a database that holds such duplicates keeps, per event_id, the copy stored first
(earliest ``ingested_at``, then earliest ``occurred_at``), records and deletes the others, and
then rebuilds ``usage_rollup_1m`` from the events (revision 0003's statements).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from tokenline.sink.migrations.versions.rev_0003_exact_rollups import REBUILD

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = """
CREATE TABLE usage_event_ids (
    event_id    uuid        NOT NULL,
    occurred_at timestamptz NOT NULL,
    CONSTRAINT pk_usage_event_ids PRIMARY KEY (event_id)
);
CREATE TABLE usage_event_duplicates (
    event_id         uuid        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    kept_occurred_at timestamptz NOT NULL,
    tenant_id        text        NOT NULL,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    refused_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_usage_event_duplicates PRIMARY KEY (event_id, occurred_at)
);
-- The replay looks up the refused copies of its time range.
CREATE INDEX ix_usage_event_duplicates_occurred_at ON usage_event_duplicates (occurred_at);
"""

BACKFILL = """
INSERT INTO usage_event_ids (event_id, occurred_at)
SELECT DISTINCT ON (event_id) event_id, occurred_at FROM usage_events
ORDER BY event_id, ingested_at, occurred_at;
INSERT INTO usage_event_duplicates (event_id, occurred_at, kept_occurred_at, tenant_id,
    source_topic, source_partition, source_offset)
SELECT e.event_id, e.occurred_at, g.occurred_at, e.tenant_id, e.source_topic,
    e.source_partition, e.source_offset
FROM usage_events AS e JOIN usage_event_ids AS g
    ON g.event_id = e.event_id AND g.occurred_at <> e.occurred_at;
"""

DELETE_DUPLICATES = """
DELETE FROM usage_events AS e USING usage_event_ids AS g
WHERE g.event_id = e.event_id AND g.occurred_at <> e.occurred_at
"""


def upgrade() -> None:
    """Create the guard and the refused copies' table; keep the first stored copy of each id."""
    op.execute(text(TABLES))
    op.execute(text(BACKFILL))
    deleted = op.get_bind().execute(text(DELETE_DUPLICATES)).rowcount
    if deleted:
        op.execute(text(REBUILD))


def downgrade() -> None:
    """Drop both tables (the refused copies are not put back)."""
    op.execute(text("DROP TABLE IF EXISTS usage_event_duplicates, usage_event_ids"))
