"""usage_rollup_1m rebuilt from usage_events: from now on the sink adds to it, never replaces.

The rows used to be the processor's window values, replaced whole; the sink now adds what each
landed event changes (see ``tokenline.sink.rollups``), so every row must start equal to the
sums of its stored events. The same statements run on both storage paths (a hypertable takes
DELETE and INSERT ... SELECT like a plain table). The model is the processor's: canonical,
else response model, else request model, else deployment, else ``unknown``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

# The SQL here is assembled from module constants only:
# ruff: noqa: S608

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_MODEL = (
    "coalesce(nullif(canonical_model, ''), nullif(response_model, ''), "
    "nullif(request_model, ''), nullif(deployment, ''), 'unknown')"
)
_MINUTE = "date_trunc('minute', occurred_at, 'UTC')"

REBUILD = f"""
DELETE FROM usage_rollup_1m;
INSERT INTO usage_rollup_1m (
    tenant_id, window_start, provider, model, window_seconds, requests, failures,
    input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens,
    reasoning_tokens, cost_total, currency, unpriced_count, latency_ms_sum, latency_ms_max,
    source_partition, max_source_offset, updated_at)
SELECT tenant_id, {_MINUTE}, provider, {_MODEL}, 60, count(*),
    count(*) FILTER (WHERE NOT success),
    sum(input_tokens), sum(cache_read_input_tokens), sum(cache_write_input_tokens),
    sum(output_tokens), sum(reasoning_tokens), coalesce(sum(cost_total), 0),
    max(currency), count(*) FILTER (WHERE pricing_status = 'unpriced'),
    sum(latency_ms), max(latency_ms), -1, -1, now()
FROM usage_events
GROUP BY tenant_id, {_MINUTE}, provider, {_MODEL};
"""


def upgrade() -> None:
    """Replace every rollup row by the sums of its stored events."""
    op.execute(text(REBUILD))


def downgrade() -> None:
    """Nothing to undo: the rows stay exact sums, which the replacing sink also accepts."""
