"""The configuration error every Tokenline part raises.

::

    TokenlineError
    └── ConfigError   settings are missing or invalid; ``problems`` lists each one

A part's own errors may derive from :class:`TokenlineError` (the SDK's do); a bad setting is
always a :class:`ConfigError`, whichever part reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ConfigError", "TokenlineError"]


class TokenlineError(Exception):
    """Root of the errors Tokenline raises on purpose."""


class ConfigError(TokenlineError):
    """Settings are missing or invalid; ``problems`` lists every one, not only the first.

    ``part`` names whose settings they are in the message (``invalid sink settings ...``).
    """

    def __init__(self, problems: Iterable[str], *, part: str = "Tokenline") -> None:
        self.problems = list(problems)
        self.part = part
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid {part} settings ({count}):\n{lines}")
