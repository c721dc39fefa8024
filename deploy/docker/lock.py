"""The image's lock file: every third-party distribution it installs, exact, with hashes.

Usage::

    .venv/bin/python deploy/docker/lock.py --check     # the lock matches the workspace
    .venv/bin/python deploy/docker/lock.py --write     # regenerate (needs `uv` on PATH)

The set is the runtime dependency closure of tokenline-common, tokenline-schemas,
tokenline-processor and tokenline-sink (extras included where a part asks for them) at the
versions the development workspace has installed, i.e. the versions the tests ran with.
``--write`` hands those pins to ``uv pip compile --generate-hashes`` (hashes of every file of
each version on PyPI, so the image builds on any platform pip supports) and writes
``requirements.lock``; the Dockerfile installs it with ``pip install --require-hashes``, then
our four distributions with ``--no-deps``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOTS = ("tokenline-common", "tokenline-schemas", "tokenline-processor", "tokenline-sink")
LOCK = Path(__file__).resolve().parent / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def closure() -> dict[str, str]:
    """Installed name -> version of every third-party runtime dependency of the parts."""
    found: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset()) for root in ROOTS]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # a marker-excluded or optional dependency not installed here
        key = canonicalize_name(dist.metadata["Name"])
        if not key.startswith("tokenline-"):
            found[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return dict(sorted(found.items()))


def locked(path: Path = LOCK) -> dict[str, str]:
    """Name -> version of the lock file's pins for this platform (markers evaluated)."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.strip())
        if match is None:
            continue
        _, _, marker = line.rstrip(" \\").partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue  # e.g. Windows only
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def problems(path: Path = LOCK) -> list[str]:
    """How the lock differs from the workspace's closure, and pins without hashes."""
    want, have = closure(), locked(path)
    found = [f"missing from the lock: {n}=={v}" for n, v in want.items() if n not in have]
    found += [f"not needed: {n}=={v}" for n, v in have.items() if n not in want]
    found += [
        f"{n}: locked {have[n]}, installed {v}"
        for n, v in want.items()
        if n in have and have[n] != v
    ]
    text = path.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    found += [
        f"no hash: {block.split()[0]}"
        for block in blocks
        if _PIN.match(block) and "--hash=sha256:" not in block
    ]
    return found


def write() -> None:
    """Regenerate the lock with hashes (``uv pip compile``)."""
    uv = shutil.which("uv")
    if uv is None:
        msg = "uv is needed: pip install uv (or pipx run uv)"
        raise SystemExit(msg)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "requirements.in"
        source.write_text("".join(f"{n}=={v}\n" for n, v in closure().items()))
        subprocess.run(
            [
                uv, "pip", "compile", str(source), "--generate-hashes", "--universal",
                "--python-version", "3.11", "--no-header", "--no-annotate",
                "--output-file", str(LOCK),
            ],
            check=True,
        )  # fmt: skip
    header = (
        "# The image's third-party distributions, exact, with hashes: deploy/docker/lock.py\n"
        "# (generated from the versions the workspace tests with; do not edit by hand).\n"
    )
    LOCK.write_text(header + LOCK.read_text(encoding="utf-8"), encoding="utf-8")


def main(argv: list[str]) -> int:
    """``--check`` (default) or ``--write``."""
    if argv[:1] == ["--write"]:
        write()
    found = problems()
    for problem in found:
        sys.stderr.write(f"{problem}\n")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
