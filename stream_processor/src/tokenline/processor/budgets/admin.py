"""Budgets managed from outside the command line (the HTTP API), as ``tokenline budgets`` does.

The same validation (:mod:`~tokenline.processor.budgets.validate`), the same table
(:mod:`~tokenline.processor.budgets.store`) and the same compacted topic: a change is stored,
then published. The sink's API finds :func:`budget_admin` through the ``tokenline.budgets``
entry point, so the sink never imports the processor. Errors cross that boundary as built-in
types: problems as a list, a store that took a change Kafka did not as ``ConnectionError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenline.processor.budgets import store
from tokenline.processor.budgets.publish import PublishError, publish
from tokenline.processor.budgets.validate import budget_row

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.processor.budgets.settings import BudgetSettings

__all__ = ["BudgetAdmin", "budget_admin"]


class BudgetAdmin:
    """Set, remove and list budgets in ``database_url``, publishing with ``settings``."""

    def __init__(self, database_url: str, settings: BudgetSettings) -> None:
        self._url = database_url
        self._settings = settings

    def put(
        self, budget_id: str, fields: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """Create or change a budget: (its stored record, []) or (None, every problem).

        ``fields``: tenant_id, scope, scope_value, period, amount, currency, thresholds_pct,
        hard_limit. Raises ``ConnectionError`` when it was stored but not published.
        """
        row, problems = budget_row(budget_id=budget_id, **fields)
        if row is None:
            return None, problems
        with store.connect(self._url) as conn:
            try:
                record = store.upsert(conn, row)
            except store.StoreError as exc:
                return None, [f"tenant_id: {exc}"]
        self._publish([record], [])
        return dict(record), []

    def remove(self, budget_id: str) -> bool:
        """Delete a budget and publish its deletion; False when there was none."""
        with store.connect(self._url) as conn:
            if not store.delete(conn, budget_id):
                return False
        self._publish([], [budget_id])
        return True

    def records(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """The stored budgets (a tenant's, or all), by id."""
        with store.connect(self._url) as conn:
            return [dict(r) for r in store.records(conn, tenant_id=tenant_id)]

    def _publish(self, records: list[Any], deleted: list[str]) -> None:
        try:
            publish(self._settings, records, deleted)
        except PublishError as exc:
            msg = f"{exc} (stored; send it again, or run `tokenline budgets publish`)"
            raise ConnectionError(msg) from exc


def budget_admin(database_url: str) -> BudgetAdmin:
    """The admin over ``database_url`` with the ``TOKENLINE_*`` Kafka settings (entry point)."""
    from tokenline.processor.budgets.settings import load_budget_settings

    return BudgetAdmin(database_url, load_budget_settings())
