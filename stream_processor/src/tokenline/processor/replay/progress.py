"""A rich progress bar for :func:`~tokenline.processor.replay.run_replay`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tokenline.processor.replay.job import Progress as ReplayProgress

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["BarProgress"]


class BarProgress(ReplayProgress):
    """Messages read against messages to read, with rate and time left; notes printed above."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar = Progress(
            TextColumn("[bold]replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("records"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.stop()

    def planned(self, total: int) -> None:
        """Show the bar with ``total`` records to read."""
        self._task = self._bar.add_task("read", total=total)

    def advance(self, records: int) -> None:
        """Move the bar."""
        if self._task is not None:
            self._bar.advance(self._task, records)

    def sent_all(self) -> None:
        """Stop the bar: what follows (waiting for the sink) is not reading."""
        self._bar.stop()

    def note(self, text: str) -> None:
        """Print a warning above the bar."""
        self._bar.console.print(f"[yellow]warning:[/] {text}")
