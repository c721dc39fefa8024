"""The SDK's exit path runs however the process ends, once.

- Normal return, ``sys.exit``, an unhandled exception, SIGINT (``KeyboardInterrupt``): Python
  runs ``atexit`` handlers; ours closes the runtime.
- SIGTERM: Python's default action ends the process without running ``atexit``. When the
  application left SIGTERM at its default, the SDK installs a handler (from the main thread,
  where Python allows it) that runs the exit path, restores the default action and sends
  SIGTERM again to the process: it then ends exactly as it would have (killed by SIGTERM,
  exit status 143 in a shell), with the events safe. The application's own ``atexit``
  handlers do not run, as with the default action. A handler the application installs later
  replaces the SDK's; it should then call ``sdk.close()`` itself. A SIGTERM that arrives while
  a runtime is being closed (the exit path, or ``sdk.close()``) waits for that close to
  finish, then ends the process.
- SIGKILL, ``os._exit`` (a multiprocessing or Celery prefork child) and a crash run nothing:
  frameworks that end workers that way have hooks that should call ``sdk.close()`` (README).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

__all__ = ["after_fork", "closing", "closing_now", "install", "installed"]

log = logging.getLogger(__name__)

_lock = threading.RLock()  # re-entered when SIGTERM interrupts its holder on the main thread
_exit_path: Callable[[], None] | None = None
_atexit_registered = False
_sigterm_installed = False
_running = False
_closing = 0
_deferred: int | None = None  # a signal that arrived while a close was under way


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


def closing_now() -> bool:
    """Whether a runtime is being closed."""
    return _closing > 0


def installed() -> tuple[bool, bool]:
    """Whether the ``atexit`` hook and the SIGTERM handler are in place."""
    return _atexit_registered, _sigterm_installed


@contextlib.contextmanager
def closing() -> Iterator[None]:
    """Mark a runtime's close as under way: SIGTERM then waits for it to finish."""
    global _closing  # noqa: PLW0603
    with _lock:
        _closing += 1
    try:
        yield
    finally:
        with _lock:
            _closing -= 1
            idle = _closing == 0
        if idle and _deferred is not None:
            _run()  # the process's runtime now (a no-op if that was the one just closed)
            _die(_deferred)


def _run() -> None:
    global _running  # noqa: PLW0603
    if _running or _exit_path is None:
        return
    _running = True
    try:
        with closing():
            _exit_path()
    except Exception:
        log.exception("tokenline: the exit path failed")
    finally:
        _running = False


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    global _deferred  # noqa: PLW0603
    if _closing:  # a close is under way, maybe beneath this very frame: end when it is done
        _deferred = signum
        return
    _run()
    _die(signum)


def after_fork() -> None:
    """In a forked child: no close is under way here (the parent's threads do not exist)."""
    global _lock, _running, _closing, _deferred  # noqa: PLW0603
    _lock = threading.RLock()
    _running, _closing, _deferred = False, 0, None


def _die(signum: int) -> None:
    """End the process by ``signum``'s default action, as if the SDK had not been there.

    Only the main thread may change a signal's action: from another thread (a close that
    finished there), the signal goes to the main thread again, whose handler ends it.
    """
    main = threading.main_thread()
    if threading.current_thread() is not main and main.ident is not None:
        signal.pthread_kill(main.ident, signum)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
