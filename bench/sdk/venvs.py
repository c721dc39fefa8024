"""The anchors' own virtual environments, made once and cached, never the project's .venv.

Each anchor gets ``<cache>/bench-venvs/<name>-<digest>/`` (``<cache>`` is ``~/.cache/tokenline``
or ``$TOKENLINE_CACHE_DIR``), where ``<digest>`` hashes its pinned requirements (and the files
named as ``key_files``, e.g. the ``pyproject.toml`` of a project installed editable into it),
so a change of pins makes a new one. ``requirements.txt`` is written into it only once pip
succeeded, so a half-built one is never reused: it is built again. :func:`ensure` builds the
SDK anchors of ``bench/sdk_overhead.py``; :func:`ensure_with` any other requirement list.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

#: What each anchor installs, besides the provider SDKs the project itself pins.
ANCHORS: dict[str, tuple[str, ...]] = {
    "openllmetry": (
        "opentelemetry-instrumentation-openai==0.62.4",
        "opentelemetry-instrumentation-anthropic==0.62.4",
        "opentelemetry-sdk==1.45.2",
    ),
    "langfuse": ("langfuse==5.0.4",),
}


def provider_pins() -> tuple[str, ...]:
    """The openai and anthropic versions installed in the project's environment."""
    return tuple(f"{name}=={version(name)}" for name in ("openai", "anthropic"))


@dataclass(frozen=True)
class Venv:
    """An anchor's environment, or why it could not be made."""

    name: str
    python: Path | None
    problem: str | None = None


def ensure(name: str, cache: Path) -> Venv:
    """The anchor's venv, built on first use (a minute or two), then reused."""
    return ensure_with(name, (*ANCHORS[name], *provider_pins()), cache)


def ensure_with(
    name: str, requirements: Sequence[str], cache: Path, key_files: Sequence[Path] = ()
) -> Venv:
    """A venv with ``requirements`` (pip arguments), built on first use, then reused."""
    keyed = "\n".join((*requirements, *(f.read_text() for f in key_files)))
    digest = hashlib.sha256(keyed.encode()).hexdigest()[:10]
    home = cache / "bench-venvs" / f"{name}-{digest}"
    python = home / "bin" / "python"
    done_marker = home / "requirements.txt"
    if done_marker.exists():
        return Venv(name, python)
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the {name} venv in {home} (once): {' '.join(requirements)}", flush=True)
    steps = (
        [sys.executable, "-m", "venv", str(home)],
        [str(python), "-m", "pip", "install", "-q", *requirements],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()[-3:]
            shutil.rmtree(home, ignore_errors=True)
            return Venv(name, None, f"{' '.join(step[:4])} failed: {' / '.join(why)}")
    done_marker.write_text("\n".join(requirements) + "\n")
    return Venv(name, python)
