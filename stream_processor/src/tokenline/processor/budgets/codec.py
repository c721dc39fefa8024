"""The budget topics' records: Avro ``Budget``, ``BudgetAlert`` and ``BudgetStatus``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import cache

from tokenline.schemas import AvroCodec, Budget, BudgetAlert, BudgetStatus

__all__ = ["HEARTBEAT_PREFIX", "alert_codec", "budget_codec", "heartbeat", "status_codec"]

HEARTBEAT_PREFIX = "__heartbeat__/"
"""Key prefix of an evaluator's heartbeat on the status topic (its budget_id is empty)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NONE = Decimal("0E-12")


@cache
def budget_codec() -> AvroCodec[Budget]:
    """Codec of the budgets topic."""
    return AvroCodec[Budget]("tokenline.Budget")


@cache
def alert_codec() -> AvroCodec[BudgetAlert]:
    """Codec of the alerts topic."""
    return AvroCodec[BudgetAlert]("tokenline.BudgetAlert")


@cache
def status_codec() -> AvroCodec[BudgetStatus]:
    """Codec of the budget-status topic."""
    return AvroCodec[BudgetStatus]("tokenline.BudgetStatus")


def heartbeat(now: datetime) -> BudgetStatus:
    """An evaluator's sign of life: a status with an empty budget_id, ``updated_at`` = now."""
    return {
        "budget_id": "",
        "tenant_id": "",
        "scope": "",
        "scope_value": None,
        "period_start": _EPOCH,
        "period_end": _EPOCH,
        "spend": _NONE,
        "amount": _NONE,
        "hard_limit": None,
        "exceeded": False,
        "currency": "USD",
        "updated_at": now,
    }
