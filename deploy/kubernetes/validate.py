"""Check the Kubernetes manifests against the Kubernetes API schemas, offline.

Usage: ``.venv/bin/python deploy/kubernetes/validate.py [KUSTOMIZE_DIR]``

Renders the kustomization (``kubectl kustomize``; without kubectl, ``kustomize build``; without
either, kustomize built from the Go module proxy by ``go run``) and validates every resource
with ``kubernetes-validate`` (a dev dependency that ships the JSON schemas of each Kubernetes
release) in strict mode, so unknown fields fail too, against each of KUBERNETES_VERSIONS (the
oldest release the manifests target and the newest the schemas cover). A kind without a
schema is an error, not a warning. Exits 1 listing every problem, 0 when all are valid.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml

KUBERNETES_VERSIONS = ("1.30", "1.37")
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0"
GO_FALLBACKS = ("/usr/local/go/bin/go",)
DEFAULT_DIR = Path(__file__).resolve().parent


class RenderError(Exception):
    """The kustomization could not be rendered."""


def _kustomize_command(directory: Path) -> list[str]:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(directory)]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(directory)]
    go = shutil.which("go") or next((g for g in GO_FALLBACKS if Path(g).exists()), None)
    if go:
        return [go, "run", KUSTOMIZE_MODULE, "build", str(directory)]
    msg = "neither kubectl, kustomize nor go is installed: cannot render the kustomization"
    raise RenderError(msg)


def render(directory: Path) -> str:
    """Return the rendered YAML of the kustomization in ``directory``."""
    command = _kustomize_command(directory)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        msg = f"{' '.join(command)} failed:\n{result.stderr.strip()}"
        raise RenderError(msg)
    return result.stdout


def _name(resource: dict[str, Any]) -> str:
    metadata = resource.get("metadata") or {}
    return f"{resource.get('kind', '?')}/{metadata.get('name', '?')}"


def problems(resources: list[Any], versions: tuple[str, ...] = KUBERNETES_VERSIONS) -> list[str]:
    """Return one line per invalid resource and version; an empty list means all are valid."""
    found: list[str] = []
    for resource in resources:
        if not isinstance(resource, dict) or "apiVersion" not in resource or "kind" not in resource:
            found.append(f"not a Kubernetes resource: {str(resource)[:80]}")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path) or "(root)"
                found.append(f"{_name(resource)} (Kubernetes {version}): {where}: {exc.message}")
            except (
                kubernetes_validate.SchemaNotFoundError,
                kubernetes_validate.InvalidSchemaError,
            ) as exc:
                found.append(f"{_name(resource)} (Kubernetes {version}): {exc.message}")
    return found


def load(text: str) -> list[Any]:
    """Return the non-empty YAML documents of ``text``."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _say(line: str, *, error: bool = False) -> None:
    (sys.stderr if error else sys.stdout).write(f"{line}\n")


def main(argv: list[str]) -> int:
    """Render and validate; print the outcome; return the exit status."""
    directory = Path(argv[0]) if argv else DEFAULT_DIR
    versions = ", ".join(KUBERNETES_VERSIONS)
    _say(f"== kubernetes manifests ({directory}, Kubernetes {versions})")
    try:
        resources = load(render(directory))
    except (RenderError, yaml.YAMLError) as exc:
        _say(f"ERROR {exc}", error=True)
        return 1
    found = problems(resources)
    for line in found:
        _say(f"ERROR {line}", error=True)
    if found or not resources:
        _say(f"{len(found)} problems in {len(resources)} resources", error=True)
        return 1
    _say(f"{len(resources)} resources valid: " + ", ".join(_name(r) for r in resources))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
