"""Print pip constraints from the root pyproject's exact pins (the image's install uses them).

Usage: ``python deploy/docker/constraints.py [pyproject.toml] > constraints.txt``

Every entry of ``[project] dependencies`` must be pinned with ``==``; the workspace's own
distributions (``tokenline-*``) are left out (the image installs them from the source tree)
and extras are dropped, since pip does not accept extras in a constraints file.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*(?P<version>\S+)$")


def constraints(pyproject: Path) -> list[str]:
    """Return ``name==version`` lines for every third-party pin of ``pyproject``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines: list[str] = []
    for requirement in project["dependencies"]:
        match = PIN.match(requirement.strip())
        if match is None:
            msg = f"not an exact pin: {requirement!r}"
            raise ValueError(msg)
        name = match["name"]
        if name.lower().startswith("tokenline-"):
            continue
        lines.append(f"{name}=={match['version']}")
    return lines


def main(argv: list[str]) -> int:
    """Print the constraints of the pyproject given (default: the repository's root one)."""
    default = Path(__file__).resolve().parents[2] / "pyproject.toml"
    pyproject = Path(argv[0]) if argv else default
    sys.stdout.write("".join(f"{line}\n" for line in constraints(pyproject)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
