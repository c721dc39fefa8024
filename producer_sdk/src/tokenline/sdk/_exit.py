"""The SDK's exit path runs however the process ends, once.

- Normal return, ``sys.exit``, an unhandled exception, SIGINT (``KeyboardInterrupt``): Python
  runs ``atexit`` handlers; ours closes the runtime.
- SIGTERM: Python's default action ends the process without running ``atexit``. When the
  application left SIGTERM at its default, the SDK installs a handler (from the main thread,
  where Python allows it) that runs the exit path, restores the default action and sends
  SIGTERM again to the process: it then ends exactly as it would have (killed by SIGTERM,
  exit status 143 in a shell), with the events safe. The application's own ``atexit``
  handlers do not run, as with the default action. A handler the application installs later
  replaces the SDK's; it should then call ``sdk.close()`` itself.
- SIGKILL, ``os._exit`` (a multiprocessing or Celery prefork child) and a crash run nothing:
  frameworks that end workers that way have hooks that should call ``sdk.close()`` (README).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

__all__ = ["install", "installed"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_exit_path: Callable[[], None] | None = None
_atexit_registered = False
_sigterm_installed = False
_running = False


def install(exit_path: Callable[[], None], *, handle_sigterm: bool) -> None:
    """Register ``exit_path`` with ``atexit`` (once per process), and on SIGTERM if allowed.

    Called at every ``configure()``: registering happens once; the SIGTERM handler is
    installed the first time it is called from the main thread with SIGTERM at its default.
    """
    global _exit_path, _atexit_registered, _sigterm_installed  # noqa: PLW0603
    with _lock:
        _exit_path = exit_path
        if not _atexit_registered:
            atexit.register(_run)
            _atexit_registered = True
        if (
            handle_sigterm
            and not _sigterm_installed
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        ):
            signal.signal(signal.SIGTERM, _on_sigterm)
            _sigterm_installed = True


def installed() -> tuple[bool, bool]:
    """Whether the ``atexit`` hook and the SIGTERM handler are in place."""
    return _atexit_registered, _sigterm_installed


def _run() -> None:
    global _running  # noqa: PLW0603
    if _running or _exit_path is None:
        return
    _running = True
    try:
        _exit_path()
    except Exception:
        log.exception("tokenline: the exit path failed")
    finally:
        _running = False


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    if _running:
        return  # the exit path is under way (bounded): let it finish, then the process ends
    _run()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
