"""The development workspace's pins: every third-party distribution setup installs, exact.

Usage::

    .venv/bin/python deploy/local/pins.py --check    # the workspace matches pins.txt
    .venv/bin/python deploy/local/pins.py --write    # record the workspace's versions

``deploy/local/setup.sh`` installs with ``-c pins.txt``, so a fresh clone gets the versions
the suite last passed with instead of whatever an upstream project released since (a
transitive dependency that floats can fail a test nobody changed). The workspace's own
distributions (``tokenline*``) are left out: setup installs them from the source tree.
"""

from __future__ import annotations

import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.utils import canonicalize_name

PINS = Path(__file__).resolve().parent / "pins.txt"
HEADER = (
    "# Every third-party distribution of the development workspace, exact: deploy/local/pins.py\n"
    "# (setup.sh installs with -c this file; regenerate with --write after a dependency change).\n"
)


def installed() -> dict[str, str]:
    """Canonical name -> version of every installed third-party distribution."""
    found: dict[str, str] = {}
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if not name.startswith("tokenline"):
            found[name] = dist.version
    return dict(sorted(found.items()))


def pinned(text: str) -> dict[str, str]:
    """Canonical name -> version of each ``name==version`` line of a pins file."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            name, _, version = entry.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def problems(pins: dict[str, str], found: dict[str, str]) -> list[str]:
    """Each difference between the pins and the installed workspace, as a sentence."""
    out: list[str] = []
    for name in sorted(pins.keys() | found.keys()):
        want, have = pins.get(name), found.get(name)
        if want is None:
            out.append(f"{name}: installed {have}, not pinned (run --write)")
        elif have is None:
            out.append(f"{name}: pinned {want}, not installed")
        elif want != have:
            out.append(f"{name}: pinned {want}, installed {have}")
    return out


def render(found: dict[str, str]) -> str:
    """The pins file's text for ``found``."""
    return HEADER + "".join(f"{name}=={version}\n" for name, version in found.items())


def main(argv: list[str]) -> int:
    """``--check`` exits 1 listing every difference; ``--write`` records the workspace."""
    if argv == ["--write"]:
        PINS.write_text(render(installed()), encoding="utf-8")
        return 0
    if argv == ["--check"]:
        found = problems(pinned(PINS.read_text(encoding="utf-8")), installed())
        sys.stdout.write("".join(f"{line}\n" for line in found))
        return 1 if found else 0
    sys.stderr.write("usage: pins.py --check | --write\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
