"""The API server's CPU per request, from /proc: a cached tenant summary against ``/healthz``.

    source /tmp/devenv.sh   # or: eval "$(.venv/bin/tokenline dev up --env)"
    .venv/bin/python bench/api_cpu.py --loaded-database URL [--requests 2000] [--rounds 3]
                                      [--server-src DIR ...]

``URL``: a database ``bench/api.py --keep-database`` loaded. Each server (one ``tokenline api
serve`` process, report cache as shipped) gets a read key and a warm-up, then N sequential
requests over one keep-alive connection for each path; the server process's utime + stime
(``/proc/PID/stat``) before and after gives its CPU per request, whatever else runs on the
machine (the client is another process). So do the database's backends (every session of the
bench database, when PostgreSQL runs on this machine): the key read's share. Rounds alternate
the paths and the servers, so every figure sees the same neighbours; the load average is
printed beside each.

``--server-src DIR``: also measure a server that runs another checkout's code (``DIR/sink/src``
first on its PYTHONPATH), e.g. main's, to compare a change with what it changes in one sitting.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psycopg
from api import PARAMS, ROOT, TENANT, _free_port, _key  # bench/api.py

_TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def _cpu_us(pid: int) -> float:
    """utime + stime of ``pid`` in microseconds (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_US


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _serve(url: str, src: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {
        **os.environ,
        "TOKENLINE_DATABASE_URL": url,
        "TOKENLINE_API_PORT": str(port),
        "TOKENLINE_API_RATE_LIMIT_PER_MINUTE": "10000000",
        "TOKENLINE_LOG_LEVEL": "warning",
    }
    if src:
        env["PYTHONPATH"] = str(Path(src) / "sink/src")
    process = subprocess.Popen([str(ROOT / ".venv/bin/tokenline"), "api", "serve"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("tokenline api serve did not answer in 30 s")


def _get(sock: socket.socket, request: bytes) -> int:
    """Send ``request`` and read its answer (Content-Length framed); return the status."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65_536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(65_536)
    return int(head[9:12])


def _backends(url: str) -> dict[int, float]:
    """CPU µs of each session of the database at ``url`` (none when it runs elsewhere)."""
    with psycopg.connect(url, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = _cpu_us(pid)
    return found


def _measure(pid: int, port: int, request: bytes, n: int, url: str) -> tuple[float, float]:
    """Server and database CPU µs per request over ``n`` sequential ``request``s."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(50):  # warm: the connection, the report cache
            assert _get(sock, request) == 200
        before, database = _cpu_us(pid), _backends(url)
        for _ in range(n):
            assert _get(sock, request) == 200
        server = (_cpu_us(pid) - before) / n
    after = _backends(url)
    spent = sum(us - database.get(backend, 0.0) for backend, us in after.items())
    return server, spent / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loaded-database", metavar="URL", required=True)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-src", action="append", default=[], metavar="DIR")
    args = parser.parse_args()
    key = _key(args.loaded_database, ("read",))
    query = str(httpx.QueryParams(PARAMS))
    paths = {"summary": f"/v1/tenants/{TENANT}/summary?{query}", "healthz": "/healthz"}
    servers = {"this checkout": None, **{src: src for src in args.server_src}}
    running = {name: _serve(args.loaded_database, src) for name, src in servers.items()}
    figures: dict[tuple[str, str], list[float]] = {}
    try:
        for round_ in range(args.rounds):
            for name, (process, port) in running.items():
                for what, path in paths.items():
                    request = (
                        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Authorization: Bearer {key}\r\n\r\n"
                    ).encode()
                    us, db_us = _measure(
                        process.pid, port, request, args.requests, args.loaded_database
                    )
                    figures.setdefault((name, what), []).append(us)
                    figures.setdefault((name, f"{what} db"), []).append(db_us)
                    print(
                        f"round {round_ + 1}  {name:>24}  {what:<8} {us:5.0f} µs/request, "
                        f"database {db_us:4.0f} µs (load average {_load()})",
                        flush=True,
                    )
    finally:
        for process, _port in running.values():
            process.terminate()
            process.wait(timeout=30)
    print(f"\nmedian of {args.rounds} rounds of {args.requests:,} requests, CPU µs a request:")
    for (name, what), values in figures.items():
        print(f"  {name:>24}  {what:<11} {statistics.median(values):7.0f}")


if __name__ == "__main__":
    main()
