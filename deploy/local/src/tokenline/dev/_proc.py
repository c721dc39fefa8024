"""Process helpers shared by the local services: free ports, liveness, stopping, log tails."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

# Children started by this interpreter, kept so they are reaped (no zombies, no ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def remember(proc: subprocess.Popen[bytes]) -> None:
    """Keep a detached child so that stopping it later can reap it."""
    _CHILDREN[proc.pid] = proc


def pid_alive(pid: int | None) -> bool:
    """Tell whether ``pid`` is a running process; zombies count as dead."""
    if not pid or pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The state letter follows the parenthesised command name, which may itself contain ')'.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in {"Z", "X"}


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; return whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _reap(pid)
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def terminate_group(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the process group led by ``pid``, wait up to ``timeout`` s, then SIGKILL it."""
    if not pid_alive(pid):
        _reap(pid)
        return
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        _reap(pid)
        return
    kill = os.killpg if pgid == pid else os.kill
    target = pgid if pgid == pid else pid
    with contextlib.suppress(ProcessLookupError):
        kill(target, signal.SIGTERM)
    if wait_gone(pid, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        kill(target, signal.SIGKILL)
    wait_gone(pid, 5.0)


def tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ServiceError(RuntimeError):
    """A local service could not be started or did not become ready."""
