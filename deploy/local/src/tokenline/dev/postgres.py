"""A private PostgreSQL cluster from Debian's packages, on loopback and a free port.

When running as root the cluster runs as the ``postgres`` OS user (PostgreSQL refuses root).
If that user cannot reach the state directory (``/root`` is usually mode 700), the cluster
lives in a private directory under the system temp dir and the state directory links to it.
TimescaleDB is preloaded and created when its extension files are installed.
``$TOKENLINE_PG_BIN_DIR`` picks the server's ``bin`` directory (for instance a relocated copy of
Debian's PostgreSQL with TimescaleDB built into it); by default the newest under
``/usr/lib/postgresql``.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from tokenline.dev._proc import ServiceError, free_port, pid_alive, tail, terminate_group

log = logging.getLogger(__name__)

DATABASE = "tokenline"
PG_ROOT = Path("/usr/lib/postgresql")
BIN_DIR_ENV = "TOKENLINE_PG_BIN_DIR"
_OS_USER = "postgres"


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster: its postmaster, address, files and whether TimescaleDB is active."""

    pid: int
    port: int
    bin_dir: str
    cluster_dir: str
    data_dir: str
    log_file: str
    timescale: bool

    @property
    def database_url(self) -> str:
        """Return the libpq URL of the ``tokenline`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def to_json(self) -> dict[str, Any]:
        """Return the cluster as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PostgresCluster:
        """Build a cluster from :meth:`to_json` output."""
        return cls(
            pid=int(data["pid"]),
            port=int(data["port"]),
            bin_dir=str(data["bin_dir"]),
            cluster_dir=str(data["cluster_dir"]),
            data_dir=str(data["data_dir"]),
            log_file=str(data["log_file"]),
            timescale=bool(data["timescale"]),
        )


def find_bin_dir() -> Path:
    """Return ``$TOKENLINE_PG_BIN_DIR``, else the newest ``/usr/lib/postgresql/<major>/bin``.

    Either must hold ``initdb``: a setting that names no server is refused, not passed over.
    """
    chosen = os.environ.get(BIN_DIR_ENV)
    if chosen:
        if not (Path(chosen) / "initdb").is_file():
            msg = f"{BIN_DIR_ENV}={chosen} has no initdb: name a PostgreSQL server's bin directory"
            raise ServiceError(msg)
        return Path(chosen)
    children = list(PG_ROOT.iterdir()) if PG_ROOT.is_dir() else []
    found = [
        (int(child.name), child / "bin")
        for child in children
        if re.fullmatch(r"\d+", child.name) and (child / "bin" / "initdb").is_file()
    ]
    if not found:
        msg = "no PostgreSQL server found under /usr/lib/postgresql: apt-get install postgresql"
        raise ServiceError(msg)
    return max(found)[1]


def _as_root() -> bool:
    return os.geteuid() == 0


def _run(cmd: list[str], *, as_postgres: bool) -> subprocess.CompletedProcess[str]:
    if as_postgres:
        cmd = ["runuser", "-u", _OS_USER, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/")


def _locale() -> str:
    done = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False)
    names = {name.lower().replace("-", "") for name in done.stdout.split()}
    return "C.UTF-8" if "c.utf8" in names else "C"


def _cluster_dir(home: Path, as_postgres: bool) -> Path:
    """Create the cluster directory: ``home`` itself, or a temp dir that ``home`` links to."""
    home.parent.mkdir(parents=True, exist_ok=True)
    remove(home)
    if not as_postgres:
        home.mkdir()
        return home
    pw = pwd.getpwnam(_OS_USER)
    home.mkdir()
    os.chown(home, pw.pw_uid, pw.pw_gid)
    if _run(["test", "-w", str(home)], as_postgres=True).returncode == 0:
        return home
    home.rmdir()
    target = Path(tempfile.mkdtemp(prefix="tokenline-pg-"))
    os.chown(target, pw.pw_uid, pw.pw_gid)
    home.symlink_to(target, target_is_directory=True)
    return target


def remove(home: Path) -> None:
    """Delete the cluster directory at ``home`` (and its temp-dir target when it is a link)."""
    if home.is_symlink():
        shutil.rmtree(home.resolve(), ignore_errors=True)
        home.unlink()
    elif home.exists():
        shutil.rmtree(home, ignore_errors=True)


#: Databases with TimescaleDB the dev stack expects at once (the tests make one per module).
TIMESCALE_DATABASES = 16
#: Jobs (refresh, compression, retention policies) allowed to run at the same moment.
CONCURRENT_JOBS = 16


def worker_settings(
    databases: int = TIMESCALE_DATABASES,
    concurrent_jobs: int = CONCURRENT_JOBS,
    parallel_workers: int = 8,
) -> dict[str, int]:
    """Size PostgreSQL's background workers for TimescaleDB's scheduler and jobs.

    Every database with the extension runs a scheduler, and every job that runs takes a worker:
    both count against ``timescaledb.max_background_workers``. All background workers, those
    and the parallel query workers and TimescaleDB's launcher, count against
    ``max_worker_processes`` (8 by default: policies falling due together failed with "failed
    to start a background worker").
    """
    timescale = databases + concurrent_jobs
    return {
        "timescaledb.max_background_workers": timescale,
        "max_parallel_workers": parallel_workers,
        "max_worker_processes": timescale + 1 + parallel_workers,
    }


def start(home: Path) -> PostgresCluster:
    """Create a fresh cluster for ``home``, start it and create the ``tokenline`` database."""
    bin_dir = find_bin_dir()
    as_postgres = _as_root()
    cluster = _cluster_dir(home, as_postgres)
    data, sockets, log_file = cluster / "data", cluster / "run", cluster / "postgres.log"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"]
    initdb += ["--encoding=UTF8", f"--locale={_locale()}", "--no-sync", "--no-instructions"]
    done = _run(initdb, as_postgres=as_postgres)
    if done.returncode != 0:
        msg = f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        raise ServiceError(msg)
    port = free_port()
    sharedir = _run([str(bin_dir / "pg_config"), "--sharedir"], as_postgres=False).stdout.strip()
    has_timescale = (Path(sharedir or "/nonexistent") / "extension/timescaledb.control").is_file()
    settings = [
        "listen_addresses = '127.0.0.1'",
        f"port = {port}",
        f"unix_socket_directories = '{sockets}'",
    ]
    if has_timescale:
        settings += [
            "shared_preload_libraries = 'timescaledb'",
            "timescaledb.telemetry_level = off",
            *(f"{name} = {value}" for name, value in worker_settings().items()),
        ]
    conf = data / "postgresql.conf"
    with conf.open("a", encoding="utf-8") as out:
        out.write("\n# tokenline dev stack\n" + "\n".join(settings) + "\n")
    _run(["mkdir", "-p", str(sockets)], as_postgres=as_postgres)
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log_file), "-w", "-t", "60"]
    done = _run([*pg_ctl, "start"], as_postgres=as_postgres)
    if done.returncode != 0:
        msg = f"pg_ctl start failed ({done.returncode}):\n{done.stderr}\n{tail(log_file)}"
        raise ServiceError(msg)
    pid = int((data / "postmaster.pid").read_text(encoding="ascii").split()[0])
    node = PostgresCluster(
        pid=pid,
        port=port,
        bin_dir=str(bin_dir),
        cluster_dir=str(cluster),
        data_dir=str(data),
        log_file=str(log_file),
        timescale=False,
    )
    try:
        node = _create_database(node, has_timescale)
    except BaseException:
        stop(node)
        raise
    log.info("PostgreSQL ready at port %d (pid %d, timescale=%s)", port, pid, node.timescale)
    return node


def _admin_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _create_database(node: PostgresCluster, has_timescale: bool) -> PostgresCluster:
    with psycopg.connect(_admin_url(node.port), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    timescale = False
    if has_timescale:
        try:
            with psycopg.connect(node.database_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            timescale = True
        except psycopg.Error as exc:
            log.warning("TimescaleDB is installed but CREATE EXTENSION failed: %s", exc)
    if not answers(node.database_url, timeout=10):
        msg = f"PostgreSQL does not answer SELECT 1; log tail:\n{tail(Path(node.log_file))}"
        raise ServiceError(msg)
    return PostgresCluster(**{**asdict(node), "timescale": timescale})


def answers(url: str, timeout: float = 2.0) -> bool:
    """Tell whether ``SELECT 1`` succeeds on ``url``."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
            row = conn.execute("SELECT 1").fetchone()
    except psycopg.Error:
        return False
    return row == (1,)


def is_running(node: PostgresCluster) -> bool:
    """Tell whether the recorded postmaster lives and answers."""
    return pid_alive(node.pid) and answers(node.database_url)


def stop(node: PostgresCluster, timeout: float = 20.0) -> None:
    """Stop the cluster with ``pg_ctl stop -m fast -w``; signal the postmaster if that fails."""
    if pid_alive(node.pid) and Path(node.data_dir).is_dir():
        pg_ctl = [str(Path(node.bin_dir) / "pg_ctl"), "-D", node.data_dir, "-m", "fast", "-w"]
        done = _run([*pg_ctl, "-t", str(round(timeout)), "stop"], as_postgres=_as_root())
        if done.returncode != 0:
            log.warning("pg_ctl stop failed: %s", done.stderr.strip())
    deadline = time.monotonic() + 2
    while pid_alive(node.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(node.pid):
        terminate_group(node.pid, timeout=timeout)
