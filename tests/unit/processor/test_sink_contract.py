"""The processor's SQL against the sink's tables, held to the sink's schema.

The processor never imports the sink (the layering check forbids it), so the replay
(``replay/db.py``, ``replay/landing.py``, ``replay/rollups.py``) and the budgets store name the
sink's tables and columns in SQL of their own. These tests are the contract the layering check
cannot see: every name is checked against the sink's models (``tokenline.sink.models``, what
its migrations create), and the replay's SQL may name no table or column it has not declared
in ``SINK_SCHEMA``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tokenline.processor.budgets import store as budgets_store
from tokenline.processor.replay import db as replay_db
from tokenline.processor.replay.rollups import COMPARED
from tokenline.schemas.priced import PRICE_COLUMNS
from tokenline.sink.models import Base

pytestmark = pytest.mark.unit

SINK = {name: {c.name for c in table.columns} for name, table in Base.metadata.tables.items()}
_RELATION = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN|USING)\s+([a-z_][a-z0-9_]*)")
_WORD = re.compile(r"\b[a-z_][a-z0-9_]*\b")
_OWN = {"tl_replay_keys"}  # the replay's own temporary table


def _sql(module: object) -> list[str]:
    """The SQL text of ``module``: its string constants that are not docstrings."""
    tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    texts = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if id(node) not in docstrings
    ]
    return [t for t in texts if re.search(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|SET)\b", t)]


def test_what_the_replay_declares_is_in_the_sinks_schema() -> None:
    for relation, columns in replay_db.SINK_SCHEMA.items():
        assert relation in SINK, relation
        assert set(columns) <= SINK[relation], (relation, set(columns) - SINK[relation])
    assert set(PRICE_COLUMNS) <= SINK["usage_events"]
    assert set(COMPARED) <= SINK["usage_rollup_1m"]


def test_the_replays_sql_names_only_what_it_declares() -> None:
    texts = _sql(replay_db)
    assert texts, "no SQL found in replay/db.py"
    named = {m for text in texts for m in _RELATION.findall(text)} - _OWN
    assert named <= set(replay_db.SINK_SCHEMA), named - set(replay_db.SINK_SCHEMA)
    # a column of a declared relation, named in the SQL, is declared for that module too
    declared = {c for columns in replay_db.SINK_SCHEMA.values() for c in columns}
    known = set().union(*(SINK[r] for r in replay_db.SINK_SCHEMA))
    words = {w for text in texts for w in _WORD.findall(text)}
    assert (words & known) <= declared, (words & known) - declared


def test_the_budgets_store_writes_the_sinks_budgets_table() -> None:
    texts = _sql(budgets_store)
    named = {m for text in texts for m in _RELATION.findall(text)}
    assert named, "no SQL found in budgets/store.py"
    assert named <= set(SINK), named - set(SINK)
    words = {w for text in texts for w in _WORD.findall(text)}
    columns = SINK["budgets"] | SINK["tenants"]
    # every column-like name the SQL uses on budgets (b.x, INSERT lists) is one of the table's
    qualified = {m for text in texts for m in re.findall(r"\bb\.([a-z_]+)", text)}
    assert qualified <= SINK["budgets"], qualified - SINK["budgets"]
    inserted = re.search(r"INSERT INTO budgets AS b \(([^)]*)\)", " ".join(texts))
    assert inserted is not None
    listed = {c.strip() for c in inserted.group(1).split(",")}
    assert listed <= SINK["budgets"], listed - SINK["budgets"]
    assert listed <= words & columns
