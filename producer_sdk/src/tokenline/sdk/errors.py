"""Errors of the producer SDK.

::

    TokenlineError
    ├── ConfigError      bad or missing settings; the message lists every problem at once
    └── BudgetExceeded   the call is over a hard budget limit (only with budget_limits on)

Nothing else is ever raised into the caller's code: a failure while metering a call is
logged and counted, and the caller's LLM call goes on untouched. ``BudgetExceeded`` is
raised before the provider is called, and only when the application asked for hard limits.

``TokenlineError`` and ``ConfigError`` are every Tokenline part's
(:mod:`tokenline.common.errors`): a bad setting is the same error in the SDK, the processor and
the sink.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenline.common.errors import ConfigError, TokenlineError

if TYPE_CHECKING:
    from tokenline.schemas import BudgetStatus

__all__ = ["BudgetExceeded", "ConfigError", "TokenlineError"]


class BudgetExceeded(TokenlineError):
    """The call's attribution is over a budget's hard limit in the current period.

    ``status`` is the budget's last status (budget_id, tenant_id, scope, scope_value, spend,
    hard_limit, period_end, currency): the call was refused before reaching the provider.
    """

    def __init__(self, status: BudgetStatus) -> None:
        self.status = status
        self.budget_id = status["budget_id"]
        scope = status["scope"] + (f" {status['scope_value']}" if status["scope_value"] else "")
        limit = status["hard_limit"]
        super().__init__(
            f"budget {status['budget_id']!r} ({status['tenant_id']}, {scope}) is over its hard "
            f"limit: spend {status['spend']:f} of {limit:f} {status['currency']} until "
            f"{status['period_end'].isoformat()}"
        )
