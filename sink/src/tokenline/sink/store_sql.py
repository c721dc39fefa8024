"""The statements :class:`~tokenline.sink.store.PostgresUsageStore` runs, composed once.

Identifiers come from the models' column lists and module constants only; values are always
parameters or COPY data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from psycopg import sql

from tokenline.schemas.priced import PRICE_COLUMNS
from tokenline.schemas.rollup import ROLLUP_SUMS
from tokenline.sink import rollups, tenant_daily
from tokenline.sink.batch import EVENT_COLUMNS, EVENT_KEY, ROLLUP_COLUMNS, ROLLUP_KEY

__all__ = [
    "ADD_ROLLUPS",
    "ADD_TENANT_DAILY",
    "CLEAR_STAGING",
    "CREATE_DAILY_STAGING",
    "CREATE_PRICING",
    "DAILY_STAGING",
    "DAILY_STAGING_TYPES",
    "DELTA_SUMS",
    "DROP_EMPTY_DAILY",
    "DROP_EMPTY_ROLLUPS",
    "DUPLICATE_COLUMNS",
    "EVENTS",
    "GUARD_COLUMNS",
    "LOCK_DAILY",
    "MISSING",
    "NESTED_LOOPS_OFF",
    "NESTED_LOOPS_ON",
    "NESTED_LOOP_ONLY",
    "PRICED_VALUE_COLUMNS",
    "PRICING",
    "PRICING_COLUMNS",
    "PRICING_STAGING_COLUMNS",
    "PROBE",
    "RECORD_DUPLICATE",
    "REMAX_DAILY",
    "REMAX_ROLLUPS",
    "REPRICED_COLUMNS",
    "ROLLUP_STAGING",
    "SOURCE_COLUMNS",
    "TEMPORARY",
    "TIMESCALEDB",
    "Target",
    "claim",
    "daily_model",
    "lock",
    "refuse",
    "reprice",
    "reprice_seen",
    "rollup_model",
]

#: The columns of a stored event its rollup and daily contributions are computed from (what the
#: re-pricing and upsert paths return for the events they change).
SOURCE_COLUMNS = tuple(dict.fromkeys((*rollups.SOURCE_COLUMNS, *tenant_daily.SOURCE_COLUMNS)))

#: The pricing columns that say what an event costs (the contract's, shared with the replay); a
#: new pricing replaces a stored one only when one of them differs (a new ``pricing_version``
#: with the same result changes nothing).
PRICED_VALUE_COLUMNS = PRICE_COLUMNS
#: Columns a newer pricing of the same event replaces.
PRICING_COLUMNS = (*PRICED_VALUE_COLUMNS, "pricing_version", "priced_at")


@dataclass(frozen=True)
class Target:
    """A table, the temporary table staged for it, its columns and its upsert."""

    table: str
    staging: str
    columns: tuple[str, ...]
    upsert: sql.Composed


def _differs(stored: str, incoming: str) -> sql.Composed:
    """``(stored.<value columns>) IS DISTINCT FROM (incoming.<value columns>)``."""

    def row(alias: str) -> sql.Composed:
        return sql.SQL("({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}.{}").format(sql.SQL(alias), sql.Identifier(c))
                for c in PRICED_VALUE_COLUMNS
            )
        )

    return sql.SQL("{} IS DISTINCT FROM {}").format(row(stored), row(incoming))


EVENTS = Target(
    "usage_events",
    "tl_staging_usage_events",
    EVENT_COLUMNS,
    sql.SQL(
        "INSERT INTO usage_events ({cols}) SELECT {cols} FROM tl_staging_usage_events "
        "ON CONFLICT (event_id, occurred_at) DO NOTHING RETURNING {returned}"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS)),
        returned=sql.SQL(", ").join(map(sql.Identifier, SOURCE_COLUMNS)),
    ),
)
ROLLUP_STAGING = "tl_staging_usage_rollup_1m"
#: The staging tables a landing fills: its deltas and the re-pricing staging rows. Each is a
#: temporary table emptied at every commit and rollback (``ON COMMIT DELETE ROWS``), so a
#: transaction's first landing finds them empty: only a later landing in the same transaction
#: runs this. A TRUNCATE gives a table a new file, which invalidates every prepared plan that
#: reads it: each batch then planned its statements again (about 1 ms for the re-pricing one).
CLEAR_STAGING = (
    'TRUNCATE "tl_staging_usage_rollup_1m", "tl_staging_tenant_daily", "tl_staging_pricing"'
)
#: Emptied at commit and rollback (see :data:`CLEAR_STAGING`).
TEMPORARY = "ON COMMIT DELETE ROWS"

#: The narrow staging table of the re-pricing path: key, pricing columns.
PRICING = "tl_staging_pricing"
PRICING_STAGING_COLUMNS = (*EVENT_KEY, *PRICING_COLUMNS)
CREATE_PRICING = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS {staging} " + TEMPORARY + " AS SELECT {cols} "
    "FROM usage_events WITH NO DATA"
).format(
    staging=sql.Identifier(PRICING),
    cols=sql.SQL(", ").join(map(sql.Identifier, PRICING_STAGING_COLUMNS)),
)
# The same rule as the ON CONFLICT upsert, as an UPDATE. The planner has no statistics on the
# temporary table: joins are limited to nested loops (over the primary key), so a batch never
# scans usage_events whatever the estimate; JIT is off (it costs more than the statement).
NESTED_LOOP_ONLY = ("enable_hashjoin", "enable_mergejoin", "jit")
#: The settings above for this transaction, and back (one round trip each).
NESTED_LOOPS_ON = "; ".join(f"SET LOCAL {s} = off" for s in NESTED_LOOP_ONLY).encode()
NESTED_LOOPS_OFF = "; ".join(f"RESET {s}" for s in NESTED_LOOP_ONLY).encode()

# ---------------------------------------------------------------- one identity per event
#: ``usage_event_ids``: one row per stored event_id (see migration 0004).
GUARD_COLUMNS = EVENT_KEY
#: What a refused copy of a stored event records in ``usage_event_duplicates``.
DUPLICATE_COLUMNS = (
    "event_id",
    "occurred_at",
    "kept_occurred_at",
    "tenant_id",
    "source_topic",
    "source_partition",
    "source_offset",
)


def claim(staging: str) -> sql.Composed:
    """Give every staged event_id not stored yet its guard row (another worker's wins)."""
    return sql.SQL(
        "INSERT INTO usage_event_ids (event_id, occurred_at) "
        "SELECT event_id, occurred_at FROM {staging} ORDER BY event_id "
        "ON CONFLICT (event_id) DO NOTHING"
    ).format(staging=sql.Identifier(staging))


def refuse(staging: str) -> sql.Composed:
    """Take the staged copies of events stored with another occurred_at out of the batch."""
    return sql.SQL(
        "DELETE FROM {staging} AS s USING usage_event_ids AS g "
        "WHERE g.event_id = s.event_id AND g.occurred_at <> s.occurred_at "
        "RETURNING s.event_id, s.occurred_at, g.occurred_at"
    ).format(staging=sql.Identifier(staging))


RECORD_DUPLICATE = sql.SQL(
    "INSERT INTO usage_event_duplicates ({cols}) VALUES ({values}) ON CONFLICT DO NOTHING"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, DUPLICATE_COLUMNS)),
    values=sql.SQL(", ").join(sql.Placeholder() * len(DUPLICATE_COLUMNS)),
)


# ---------------------------------------------------------------- re-pricing
#: The returned columns a re-pricing can change (the rest of an event's old row is its new one).
REPRICED_COLUMNS = tuple(c for c in SOURCE_COLUMNS if c in PRICING_COLUMNS)


def _named(alias: str, columns: tuple[str, ...], prefix: str) -> sql.Composed:
    """``alias``'s ``columns``, each named ``prefix`` + column."""
    return sql.SQL(", ").join(
        sql.SQL("{}.{} AS {}").format(
            sql.SQL(alias), sql.Identifier(c), sql.Identifier(f"{prefix}{c}")
        )
        for c in columns
    )


def _sets(source: str, prefix: str = "") -> sql.Composed:
    return sql.SQL(", ").join(
        sql.SQL("{} = {}.{}").format(
            sql.Identifier(c), sql.SQL(source), sql.Identifier(f"{prefix}{c}")
        )
        for c in PRICING_COLUMNS
    )


def _stays(old: str, new: str) -> sql.SQL:
    """Whether a re-priced event keeps its rollup and daily keys: the same model and currency.

    (A canonical model changed between blank and NULL moves nowhere; taken as moved, it is
    taken away and added back under the same key, which sums the same.)
    """
    return sql.SQL(
        f"{old}.canonical_model IS NOT DISTINCT FROM {new}.canonical_model "
        f"AND {old}.currency = {new}.currency"
    )


def _returned(old: str, new: str) -> sql.Composed:
    """What a re-pricing returns of each event it changed.

    The old row's columns it can change (``o_`` + column), the new row's (``n_`` + column),
    and whether its keys stay (``stays``).
    """
    return sql.SQL("{}, {}, {} AS stays").format(
        _named(old, REPRICED_COLUMNS, "o_"), _named(new, SOURCE_COLUMNS, "n_"), _stays(old, new)
    )


def _seen(staging: str) -> sql.Composed:
    """Where a snapshot finds the stored events of ``staging``, in the order of their places.

    Each row's place (its table, which on TimescaleDB is a chunk, and ctid), its version
    (xmin), the new pricing (``p_`` + column), the old row's columns a re-pricing can change
    (their own names), and whether the new pricing replaces the old (``due``).

    The events are looked up in the batch's order (consecutive events were stored near each
    other) and come out in ctid order: the UPDATE reading ``x`` then visits the table's pages
    in order, and two such statements take their row locks in the same order. Looked up in
    event_id order (the primary key's), the statement was 2-7% slower. (:func:`lock` keeps
    event_id order: a compressed TimescaleDB chunk has no ctid. A deadlock between the two
    paths is a transient error: the batch is written again.)
    """
    return sql.SQL(
        "SELECT o.tableoid AS tbl, o.ctid AS tid, o.xmin AS ver, {pricing}, {old}, "
        "{differs} AND s.priced_at > o.priced_at AS due "
        "FROM {staging} AS s "
        "JOIN usage_events AS o ON o.event_id = s.event_id AND o.occurred_at = s.occurred_at "
        "ORDER BY o.tableoid, o.ctid"
    ).format(
        pricing=_named("s", PRICING_COLUMNS, "p_"),
        old=sql.SQL(", ").join(sql.SQL("o.{}").format(sql.Identifier(c)) for c in REPRICED_COLUMNS),
        differs=_differs("o", "s"),
        staging=sql.Identifier(staging),
    )


def reprice_seen(staging: str) -> tuple[sql.Composed, sql.Composed]:
    """The stored events of ``staging`` as one snapshot sees them, and the UPDATE of those due.

    Returns the two parts of one statement, ``x`` (:func:`_seen`) and the ``UPDATE`` that
    reads ``x``: one index lookup an event, then the row fetched by its ctid. No lock is taken
    beforehand. The UPDATE changes a row only if it is still the version ``x`` read (same
    table, ctid and xmin): a row another transaction re-priced since is left alone (under READ
    COMMITTED the UPDATE re-checks the newest version of a row it waited for, which has
    another ctid and xmin), so each returned (old, new) pair is exactly what the statement
    changed. Fewer rows changed than were due says some were
    skipped: the caller then runs :func:`lock` and :func:`reprice`, which cope.
    """
    # x's old columns keep their names: the returned old row is x's, the new one u's.
    update = sql.SQL(
        "UPDATE usage_events AS u SET {sets} FROM x WHERE x.due AND u.ctid = x.tid "
        "AND u.tableoid = x.tbl AND u.xmin = x.ver RETURNING {returned}"
    ).format(sets=_sets("x", "p_"), returned=_returned("x", "u"))
    return _seen(staging), update


# The stored rows of the batch are locked first: the UPDATE's own snapshot then sees their
# latest version both as the row it changes (``u``) and as the old value it returns (``o``),
# so the returned (old, new) pairs are exactly what the statement changed.
@cache
def lock(staging: str) -> bytes:
    """Lock the stored events of ``staging``, in key order; return how many there are."""
    return (
        sql.SQL(
            "SELECT count(*) FROM (SELECT 1 FROM usage_events AS u JOIN {staging} AS s "
            "ON u.event_id = s.event_id AND u.occurred_at = s.occurred_at "
            "ORDER BY u.event_id FOR UPDATE OF u) AS locked"
        )
        .format(staging=sql.Identifier(staging))
        .as_bytes(None)
    )


def reprice(staging: str) -> sql.Composed:
    """Replace the pricing of stored events when it differs and is newer; return old and new.

    Returned as :func:`_returned` says.
    """
    return sql.SQL(
        "UPDATE usage_events AS u SET {sets} FROM {staging} AS s, usage_events AS o "
        "WHERE u.event_id = s.event_id AND u.occurred_at = s.occurred_at "
        "AND o.event_id = u.event_id AND o.occurred_at = u.occurred_at "
        "AND {differs} AND s.priced_at > u.priced_at RETURNING {returned}"
    ).format(
        sets=_sets("s"),
        staging=sql.Identifier(staging),
        differs=_differs("u", "s"),
        returned=_returned("o", "u"),
    )


#: Whether the TimescaleDB extension is installed (the schema then took its path).
TIMESCALEDB = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"

PROBE = (
    "SELECT EXISTS (SELECT 1 FROM usage_events "
    "WHERE (event_id, occurred_at) IN ((%s, %s), (%s, %s)))"
)
MISSING = sql.SQL(
    "SELECT s.event_id, s.occurred_at FROM {staging} AS s WHERE NOT EXISTS "
    "(SELECT 1 FROM usage_events AS u "
    "WHERE u.event_id = s.event_id AND u.occurred_at = s.occurred_at)"
).format(staging=sql.Identifier(PRICING))

# ---------------------------------------------------------------- rollups
#: The additive measures of a rollup row (``latency_ms_max`` is kept with greatest()).
DELTA_SUMS = ROLLUP_SUMS

#: The staged deltas summed per key (the store's and the re-pricing statement's may share one).
_STAGED_SUMS = {
    "window_seconds": "min(window_seconds)",
    **{c: f"sum({c})" for c in ROLLUP_SUMS},
    "latency_ms_max": "max(latency_ms_max)",
    "currency": "coalesce(max(currency) FILTER (WHERE requests > 0), max(currency))",
    "source_partition": "min(source_partition)",
    "max_source_offset": "max(max_source_offset)",
    "updated_at": "max(updated_at)",
}
ADD_ROLLUPS = sql.SQL(
    "INSERT INTO usage_rollup_1m ({cols}) SELECT {summed} FROM {staging} GROUP BY {key} "
    "ORDER BY {key} ON CONFLICT ({key}) DO UPDATE SET {sums}, "
    "latency_ms_max = greatest(usage_rollup_1m.latency_ms_max, EXCLUDED.latency_ms_max), "
    "currency = CASE WHEN EXCLUDED.requests > 0 THEN EXCLUDED.currency "
    "ELSE usage_rollup_1m.currency END, updated_at = EXCLUDED.updated_at"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, ROLLUP_COLUMNS)),
    summed=sql.SQL(", ").join(
        sql.Identifier(c) if c in ROLLUP_KEY else sql.SQL(_STAGED_SUMS[c]) for c in ROLLUP_COLUMNS
    ),
    staging=sql.Identifier(ROLLUP_STAGING),
    key=sql.SQL(", ").join(map(sql.Identifier, ROLLUP_KEY)),
    sums=sql.SQL(", ").join(
        sql.SQL("{0} = usage_rollup_1m.{0} + EXCLUDED.{0}").format(sql.Identifier(c))
        for c in DELTA_SUMS
    ),
)
_SAME_ROLLUP = (
    "r.tenant_id = s.tenant_id AND r.window_start = s.window_start "
    "AND r.provider = s.provider AND r.model = s.model"
)


def rollup_model(alias: str) -> str:
    """``usage_rollup_1m``'s model of the event row ``alias`` (:func:`tokenline.sink.rollups`)."""
    return (
        f"coalesce(nullif({alias}.canonical_model, ''), nullif({alias}.response_model, ''), "
        f"nullif({alias}.request_model, ''), nullif({alias}.deployment, ''), 'unknown')"
    )


def daily_model(alias: str) -> str:
    """``usage_tenant_daily``'s model of the event row ``alias`` (SQL's coalesce, no blanks)."""
    return f"coalesce({alias}.canonical_model, {alias}.response_model, {alias}.request_model)"


# A window that lost events (a re-pricing moved them to another model): its maximum latency is
# recomputed from the events it still has, and a window left with none is removed.
REMAX_ROLLUPS = sql.SQL(
    "UPDATE usage_rollup_1m AS r SET latency_ms_max = coalesce((SELECT max(e.latency_ms) "
    "FROM usage_events AS e WHERE e.tenant_id = r.tenant_id AND e.provider = r.provider "
    "AND e.occurred_at >= r.window_start "
    "AND e.occurred_at < r.window_start + make_interval(secs => r.window_seconds) "
    "AND {model} = r.model), 0) "
    "FROM {staging} AS s WHERE {same} AND s.requests < 0"
).format(
    model=sql.SQL(rollup_model("e")),
    staging=sql.Identifier(ROLLUP_STAGING),
    same=sql.SQL(_SAME_ROLLUP),
)
DROP_EMPTY_ROLLUPS = sql.SQL(
    "DELETE FROM usage_rollup_1m AS r USING {staging} AS s "
    "WHERE {same} AND s.requests < 0 AND r.requests = 0"
).format(staging=sql.Identifier(ROLLUP_STAGING), same=sql.SQL(_SAME_ROLLUP))

# ---------------------------------------------------------------- usage_tenant_daily
#: Per-batch sums by UTC quarter-hour (see tokenline.sink.tenant_daily), turned into local days
#: by the statement that adds them.
DAILY_STAGING = "tl_staging_tenant_daily"
_DAILY_TYPES = {"quarter": "timestamptz"} | dict.fromkeys(
    ("tenant_id", "provider", "model", "project", "team", "currency"), "text"
)
DAILY_STAGING_TYPES = [
    _DAILY_TYPES.get(c, "numeric" if c.startswith("cost_") else "int8")
    for c in tenant_daily.COLUMNS
]
CREATE_DAILY_STAGING = sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) " + TEMPORARY).format(
    sql.Identifier(DAILY_STAGING),
    sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
        for c, t in zip(tenant_daily.COLUMNS, DAILY_STAGING_TYPES, strict=True)
    ),
)
#: Taken before the tenants' timezones are read: a rebuild (SHARE ROW EXCLUSIVE, migration
#: 0006) then either sees this transaction's events committed or runs before it reads a zone.
LOCK_DAILY = "LOCK TABLE usage_tenant_daily IN ROW EXCLUSIVE MODE"
_DAY_KEY = ("tenant_id", "day", "provider", "model", "project", "team", "currency")
_LOCAL_KEYS = sql.SQL(
    "s.tenant_id, (s.quarter AT TIME ZONE coalesce(t.timezone, 'UTC'))::date, s.provider, "
    "s.model, s.project, s.team, s.currency"
)
ADD_TENANT_DAILY = sql.SQL(
    "INSERT INTO usage_tenant_daily ({cols}) SELECT {keys}, {sums}, max(s.latency_ms_max) "
    "FROM {staging} AS s LEFT JOIN tenants AS t ON t.tenant_id = s.tenant_id "
    "GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7 "
    "ON CONFLICT ON CONSTRAINT uq_usage_tenant_daily DO UPDATE SET {adds}, "
    "latency_ms_max = greatest(usage_tenant_daily.latency_ms_max, EXCLUDED.latency_ms_max)"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, (*_DAY_KEY, *tenant_daily.SUMS, "latency_ms_max"))),
    keys=_LOCAL_KEYS,
    sums=sql.SQL(", ").join(
        sql.SQL("sum(s.{})").format(sql.Identifier(c)) for c in tenant_daily.SUMS
    ),
    staging=sql.Identifier(DAILY_STAGING),
    adds=sql.SQL(", ").join(
        sql.SQL("{0} = usage_tenant_daily.{0} + EXCLUDED.{0}").format(sql.Identifier(c))
        for c in tenant_daily.SUMS
    ),
)
# The keys that lost events (a re-pricing moved them to another model or currency), with the
# tenant's zone: their maximum latency is recomputed from the events of that local day, and a
# row left with none is removed.
_LOST = sql.SQL(
    "WITH k (tenant_id, day, provider, model, project, team, currency, tz) AS ("
    "SELECT DISTINCT {keys}, coalesce(t.timezone, 'UTC') FROM {staging} AS s "
    "LEFT JOIN tenants AS t ON t.tenant_id = s.tenant_id WHERE s.requests < 0) "
).format(keys=_LOCAL_KEYS, staging=sql.Identifier(DAILY_STAGING))
_SAME_DAY = sql.SQL(
    "d.tenant_id = k.tenant_id AND d.day = k.day AND d.provider = k.provider "
    "AND d.model IS NOT DISTINCT FROM k.model AND d.project IS NOT DISTINCT FROM k.project "
    "AND d.team IS NOT DISTINCT FROM k.team AND d.currency = k.currency"
)
REMAX_DAILY = sql.SQL(
    "{lost}UPDATE usage_tenant_daily AS d SET latency_ms_max = coalesce(("
    "SELECT max(e.latency_ms) FROM usage_events AS e WHERE e.tenant_id = d.tenant_id "
    "AND e.occurred_at >= (d.day::timestamp AT TIME ZONE k.tz) "
    "AND e.occurred_at < ((d.day + 1)::timestamp AT TIME ZONE k.tz) "
    "AND e.provider = d.provider "
    "AND {model} IS NOT DISTINCT FROM d.model "
    "AND e.project IS NOT DISTINCT FROM d.project "
    "AND coalesce(e.attributed_team, e.team) IS NOT DISTINCT FROM d.team "
    "AND e.currency = d.currency), 0) FROM k WHERE {same}"
).format(lost=_LOST, model=sql.SQL(daily_model("e")), same=_SAME_DAY)
DROP_EMPTY_DAILY = sql.SQL(
    "{lost}DELETE FROM usage_tenant_daily AS d USING k WHERE {same} AND d.requests = 0"
).format(lost=_LOST, same=_SAME_DAY)
