"""deploy/docker: the image's Dockerfile, its pins and the build context, checked statically."""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import TYPE_CHECKING

import pytest

from tests.unit.deploy._deploy import DEPLOY, ROOT, load_script

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
constraints = load_script("docker/constraints.py")
lock = load_script("docker/lock.py")


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


INSTRUCTIONS = _instructions()


def _all(keyword: str) -> list[str]:
    return [rest for key, rest in INSTRUCTIONS if key == keyword]


def test_base_images_are_python_311_slim() -> None:
    bases = [rest.split()[0] for rest in _all("FROM")]
    assert len(bases) == 2
    for base in bases:
        image, _, tag = base.partition(":")
        assert image == "python"
        assert re.fullmatch(r"3\.11-slim(-[a-z]+)?", tag), base


def test_runs_as_non_root() -> None:
    (user,) = _all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) >= 1000
    # USER comes after the last FROM: the final stage runs unprivileged.
    keys = [key for key, _ in INSTRUCTIONS]
    assert keys.index("USER") > len(keys) - 1 - keys[::-1].index("FROM")
    assert f"--uid {uid}" in " ".join(_all("RUN"))


def test_entrypoint_is_the_tokenline_command() -> None:
    assert _all("ENTRYPOINT") == ['["tokenline"]']
    exposed = {int(port) for rest in _all("EXPOSE") for port in rest.split()}
    assert exposed == {9108, 9109}


def test_installs_the_locked_distributions_by_hash_then_the_three_parts() -> None:
    installs = [rest for rest in _all("RUN") if "pip install" in rest and "./" in rest]
    assert len(installs) == 1
    words = shlex.split(installs[0])
    assert {"./common", "./schemas", "./stream_processor", "./sink"} <= set(words)
    assert "./producer_sdk" not in words
    assert "--no-deps" in words
    assert "pip check" in installs[0]
    (locked,) = [rest for rest in _all("RUN") if "requirements.lock" in rest]
    assert {"--require-hashes", "--no-deps", "-r"} <= set(shlex.split(locked))
    assert INSTRUCTIONS.index(("RUN", locked)) < INSTRUCTIONS.index(("RUN", installs[0]))


def test_the_lock_is_the_tested_closure_with_hashes() -> None:
    """Every runtime dependency of the three parts, at the version the tests run with."""
    assert lock.problems() == []
    pins = lock.locked()
    assert {"faust-streaming", "confluent-kafka", "psycopg", "sqlalchemy", "alembic"} <= set(pins)
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for line in constraints.constraints(ROOT / "pyproject.toml"):
        name, _, version = line.partition("==")
        key = name.lower().replace("_", "-")
        if key in pins:
            assert pins[key] == version, (name, root["project"]["name"])


def test_copied_sources_exist() -> None:
    for rest in _all("COPY"):
        if rest.startswith("--from"):
            continue
        *sources, _target = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"**/.venv", "**/.git", "**/__pycache__", "tests"} <= patterns
    sources = ("common", "schemas", "stream_processor", "sink", "pyproject.toml", "deploy/docker")
    for needed in sources:
        assert needed not in patterns, needed
        assert not any(needed.startswith(p.rstrip("/") + "/") for p in patterns), needed


def test_constraints_are_the_root_pins() -> None:
    lines = constraints.constraints(ROOT / "pyproject.toml")
    pinned = {line.split("==")[0].lower(): line.split("==")[1] for line in lines}
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for requirement in root["project"]["dependencies"]:
        name = re.split(r"[\[=]", requirement)[0].lower()
        version = requirement.split("==")[1]
        if name.startswith("tokenline-"):
            assert name not in pinned
        else:
            assert pinned[name] == version, name
    assert all("[" not in line for line in lines)
    assert pinned["faust-streaming"]
    assert pinned["psycopg"]


def test_constraints_refuse_a_range(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["click==8.3.3", "httpx>=0.27"]\n')
    with pytest.raises(ValueError, match="httpx"):
        constraints.constraints(pyproject)
