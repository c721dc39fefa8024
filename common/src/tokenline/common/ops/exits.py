"""One table of exit codes for every ``tokenline`` command, and the error that carries one.

=====  ==========================================================================
code   meaning
=====  ==========================================================================
0      done
1      the command ran and failed (a replay that stopped, a worker's fatal error)
2      bad usage or configuration: a wrong option, setting or file (all listed)
3      Kafka cannot be reached, or refused the connection (address, credentials)
4      the database cannot be reached, or refused the connection
5      the database has no current Tokenline schema: run ``tokenline sink migrate``
6      nothing matched: an unknown tenant, no price for that model
=====  ==========================================================================

A command raises :class:`CommandFailed` with the code; click prints its one line (``Error:
...``) on stderr and exits with the code. Unexpected exceptions still end with 1 and their
traceback.
"""

from __future__ import annotations

from enum import IntEnum

import click

__all__ = ["CommandFailed", "ExitCode"]


class ExitCode(IntEnum):
    """The exit codes of every ``tokenline`` command (README: "Exit codes")."""

    OK = 0
    FAILED = 1
    CONFIG = 2
    KAFKA = 3
    DATABASE = 4
    SCHEMA = 5
    NOT_FOUND = 6


class CommandFailed(click.ClickException):
    """A command's failure: one line on stderr, and an exit code from :class:`ExitCode`."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.exit_code = int(code)
        self.code = code
