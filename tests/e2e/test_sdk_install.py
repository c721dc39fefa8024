"""The SDK installed alone, as a user gets it: built wheels, a fresh virtualenv, PyPI.

The tokenline-common, tokenline-schemas and tokenline-sdk wheels (``deploy/local/sdk_wheels.sh``;
CI builds them in a step of its own and names the directory in ``TOKENLINE_TEST_SDK_WHEELS``)
go into fresh virtualenvs, their dependencies from PyPI: ``tokenline-sdk[openai]``, then
``tokenline-sdk[openai,registry]``, each with the tokenline-emulator wheel beside (a testing
tool in a distribution of its own, which the SDK's wheel does not contain). Nothing of this
repository's development install is visible there. In each, ``_sdk_only_check.py`` wraps a
real OpenAI client, makes one call through the emulator and reads the event back from the
real Kafka.

Installing from PyPI takes a while: each step has a generous deadline of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests._kafka import new_topic, read_events

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
CHECK = Path(__file__).with_name("_sdk_only_check.py")
BUILD_TIMEOUT_S = 600
INSTALL_TIMEOUT_S = 1200
RUN_TIMEOUT_S = 300
#: Of the development install, none may reach the SDK-only one.
NOT_EXPECTED = {"pytest", "faust-streaming", "psycopg", "sqlalchemy", "tokenline-processor"}


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False, cwd=CHECK.parent
    )
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The common, schemas, SDK and emulator wheels: CI's, or built here."""
    given = os.environ.get("TOKENLINE_TEST_SDK_WHEELS")
    out = Path(given) if given else tmp_path_factory.mktemp("wheels")
    if not given:
        _run(["bash", str(ROOT / "deploy/local/sdk_wheels.sh"), str(out)], BUILD_TIMEOUT_S)
    names = ("tokenline_common", "tokenline_schemas", "tokenline_sdk", "tokenline_emulator")
    found = [sorted(out.glob(f"{name}-*.whl")) for name in names]
    assert all(len(f) == 1 for f in found), f"expected one wheel of each in {out}: {found}"
    return [f[0] for f in found]


def test_the_sdk_wheel_holds_no_testing_tool(wheels: list[Path]) -> None:
    """The emulator ships in a distribution of its own; the SDK's wheel is the SDK alone."""
    _common, _schemas, sdk_wheel, emulator = wheels
    sdk_files = zipfile.ZipFile(sdk_wheel).namelist()
    assert not [name for name in sdk_files if "emulator" in name]
    assert any(name.startswith("tokenline/sdk/") for name in sdk_files)
    assert "tokenline/emulator/_server.py" in zipfile.ZipFile(emulator).namelist()


@pytest.fixture
def where() -> Iterator[Path]:
    """A temporary directory for one virtualenv (a few hundred MB), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tokenline-sdk-only-") as tmp:
        yield Path(tmp)


def _constraints(where: Path) -> Path:
    """The development install's versions as pip constraints.

    Constraints pin a version only of what the wheels' own metadata asks for; they add no
    package, so a dependency the SDK forgot to declare is still missing in the fresh
    virtualenv. Pinning keeps the check about our metadata, not about a new upstream release.
    """
    frozen = _run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], RUN_TIMEOUT_S)
    path = where / "constraints.txt"
    path.write_text(
        "\n".join(line for line in frozen.splitlines() if not line.startswith("tokenline"))
    )
    return path


def _venv(where: Path, extras: str, wheels: list[Path]) -> Path:
    """A fresh virtualenv with ``tokenline-sdk[extras]`` from the wheels, the rest from PyPI."""
    _run([sys.executable, "-m", "venv", str(where)], RUN_TIMEOUT_S)
    python = where / "bin" / "python"
    # the emulator: the check's provider, a testing tool
    common, schemas, sdk_wheel, emulator = wheels
    _run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
         "--quiet", "--constraint", str(_constraints(where)), f"{sdk_wheel}[{extras}]",
         str(common), str(schemas), str(emulator)],
        INSTALL_TIMEOUT_S,
    )  # fmt: skip
    return python


def _env(where: Path, **settings: str) -> dict[str, str]:
    """The process environment without the development install's, plus ``TOKENLINE_*``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TOKENLINE_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update({f"TOKENLINE_{k.upper()}": v for k, v in settings.items()})
    env["TOKENLINE_SPOOL_DIR"] = str(where / "spool")
    return env


def _check(python: Path, mode: str, env: dict[str, str]) -> dict[str, Any]:
    out = _run([str(python), "-I", str(CHECK), mode], RUN_TIMEOUT_S, env)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _assert_one_metered_call(result: dict[str, Any], venv: Path, tenant: str) -> None:
    assert result["left_after_flush"] == 0
    assert result["tenant_id"] == tenant
    assert (result["provider"], result["operation"]) == ("openai", "chat")
    assert result["request_model"] == "gpt-4o-mini"
    assert result["success"] is True
    assert result["input_tokens"] == result["reply_prompt_tokens"] > 0
    assert result["output_tokens"] == result["reply_completion_tokens"] > 0
    # the SDK came from the wheel inside the fresh virtualenv, without the dev install
    assert Path(result["sdk_file"]).is_relative_to(venv)
    assert not NOT_EXPECTED & set(result["installed"])
    ours = {"tokenline-sdk", "tokenline-schemas", "tokenline-common"}
    assert ours | {"openai"} <= set(result["installed"])


def test_sdk_with_openai_only(wheels: list[Path], kafka_bootstrap: str, where: Path) -> None:
    python = _venv(where / "venv", "openai", wheels)
    topic = new_topic(kafka_bootstrap, "sdk-install", partitions=1)
    tenant = f"sdk-only-{uuid.uuid4().hex[:6]}"
    env = _env(where, bootstrap_servers=kafka_bootstrap, topic=topic, tenant_id=tenant)

    result = _check(python, "call", env)
    _assert_one_metered_call(result, where / "venv", tenant)
    assert result["framing"] == "single-object"
    # the event is on the broker for any reader, not just for the one in that virtualenv
    (event,) = read_events(kafka_bootstrap, topic, 1)
    assert str(event["event_id"]) == result["event_id"]

    # without the registry extra, the registry setting is a ConfigError naming the extra
    refused = _check(python, "config-error", {**env, "TOKENLINE_SCHEMA_REGISTRY_URL": "mock://x"})
    assert refused["config_error"] is not None, "wrap() accepted a registry it cannot reach"
    assert "tokenline-sdk[registry]" in refused["config_error"]

    # the emulator's command comes with the SDK too
    assert "--port" in _run([str(where / "venv/bin/tokenline"), "emulator", "--help"], 60, env)


def test_sdk_with_the_registry_extra(wheels: list[Path], kafka_bootstrap: str, where: Path) -> None:
    python = _venv(where / "venv", "openai,registry", wheels)
    topic = new_topic(kafka_bootstrap, "sdk-install", partitions=1)
    tenant = f"sdk-only-{uuid.uuid4().hex[:6]}"
    env = _env(
        where,
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        tenant_id=tenant,
        schema_registry_url=f"mock://tokenline-{tenant}",
    )

    result = _check(python, "call", env)
    _assert_one_metered_call(result, where / "venv", tenant)
    assert result["framing"] == "confluent"
    assert result["schema_id"] == result["reader_schema_id"]
