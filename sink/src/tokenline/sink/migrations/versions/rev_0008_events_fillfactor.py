"""usage_events keeps half of each page free, so a re-priced event is updated in its own page.

Re-pricing (a replay with newer prices) updates the pricing columns of stored events. A page
packed full has no room for the new version of a row, so PostgreSQL moves it to another page:
it logs a lock on the old version (carrying the page's image, the first change since the last
checkpoint), the new version whole, and an entry in each of the table's indexes. With room on
the page, the update is a heap-only tuple (HOT) update: the new version stays on the page, no
index changes (no indexed column changes: the key, ``tenant_id`` and ``occurred_at`` stay, and
``pricing_status`` too unless an unpriced event gets priced) and its WAL record holds only the
bytes that changed.

``fillfactor = 50`` leaves each page room for a second version of every row on it, whatever the
rows' width, so a whole re-pricing pass updates in place; the dead versions are pruned when the
page is next changed, so the next pass does too. Measured (``bench/README.md``, 1,000,000 rows):
the bare UPDATE of the pricing columns 11.3-13.1 µs a row at 100 against 6.2-6.9 at 50, the
sink's re-pricing 18.2-18.8 against 13.8-14.2; the heap twice the size (600 against 1,302 MB;
the indexes unchanged); a binary COPY about a tenth slower, and a full scan of the raw rows
takes half again as long (the reports read the aggregates). An installation that never
re-prices and counts its disk can set ``fillfactor`` back to 100.

It applies to pages written from now on (a table's existing pages keep their rows). TimescaleDB
hands a hypertable's storage parameters to its chunks, existing and new.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

#: The share of each ``usage_events`` page that inserts fill (the rest is for re-pricing).
FILLFACTOR = 50


def upgrade() -> None:
    """Leave half of each new page of ``usage_events`` free for its rows' next versions."""
    op.execute(text(f"ALTER TABLE usage_events SET (fillfactor = {FILLFACTOR})"))


def downgrade() -> None:
    """Pack new pages full again."""
    op.execute(text("ALTER TABLE usage_events RESET (fillfactor)"))
