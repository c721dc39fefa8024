"""Errors of the producer SDK.

::

    TokenlineError
    └── ConfigError      bad or missing settings; the message lists every problem at once

Nothing else is ever raised into the caller's code: a failure while metering a call is
logged and counted, and the caller's LLM call goes on untouched.
"""

from __future__ import annotations

__all__ = ["ConfigError", "TokenlineError"]


class TokenlineError(Exception):
    """Root of the SDK's errors."""


class ConfigError(TokenlineError):
    """Settings are missing or invalid; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid Tokenline settings ({len(problems)} problem(s)):\n{listed}")
