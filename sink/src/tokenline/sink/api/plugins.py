"""What the API serves with another part's code, found through an entry point.

Prices and budgets belong to the processor; the API reaches them through objects that
tokenline-processor registers (``tokenline.prices``, ``tokenline.budgets``), so the sink
never imports the processor. Where the part is not installed, or its object cannot be made
(its settings), or it cannot do the work now (``ConnectionError``), the route answers 503.
"""

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool

__all__ = ["call_plugin", "load_plugin"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def load_plugin(group: str, name: str, *args: Any) -> Any:
    """The object the entry point ``name`` of ``group`` makes from ``args``; None without one."""
    for entry_point in entry_points(group=group, name=name):
        return entry_point.load()(*args)
    return None


async def call_plugin(get: Callable[[], T | None], what: str, call: Callable[[T], Any]) -> Any:
    """``call(plugin)`` in a worker thread, ``get()`` giving the plugin; 503 when impossible."""
    try:
        found = get()
    except Exception as exc:  # the plugin's settings or import: the service's, not the client's
        log.warning("%s: the plugin cannot be made: %s", what, exc)
        raise HTTPException(503, f"{what} cannot be served here: {exc}") from exc
    if found is None:
        raise HTTPException(503, f"{what} are served where tokenline-processor is installed")
    try:
        return await run_in_threadpool(call, found)
    except ConnectionError as exc:
        log.warning("%s: %s", what, exc)
        raise HTTPException(503, str(exc)) from exc
