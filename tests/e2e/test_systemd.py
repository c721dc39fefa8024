"""The VM install: deploy/systemd/install.sh lays out a working environment and units that
``systemd-analyze verify`` accepts without a warning.

The script runs for real with ``--root`` (a fresh virtualenv from the hash-checked lock, the
three parts, the units and the settings files), so no systemd or root is needed. The units are
then verified with their /opt/tokenline and /etc/tokenline paths pointed into that root.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
UNITS = sorted(p.name for p in SYSTEMD.glob("tokenline-*.*") if p.suffix in {".service", ".timer"})


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vm")
    done = subprocess.run(
        ["bash", str(SYSTEMD / "install.sh"), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def _env(file: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[key] = value
    return found


def test_install_lays_out_units_settings_and_the_environment(installed: Path) -> None:
    assert UNITS == [
        "tokenline-migrate.service",
        "tokenline-prices-refresh.service",
        "tokenline-prices-refresh.timer",
        "tokenline-processor.service",
        "tokenline-sink.service",
    ]
    for unit in UNITS:
        assert (installed / "etc/systemd/system" / unit).read_bytes() == (
            SYSTEMD / unit
        ).read_bytes()
    env = installed / "etc/tokenline/tokenline.env"
    assert oct(env.stat().st_mode & 0o777) == "0o640"  # it holds the database password
    assert (installed / "etc/tokenline/prices.yaml").is_file()
    tokenline = installed / "opt/tokenline/bin/tokenline"
    # The example settings are valid for the processor as they stand.
    check = subprocess.run(
        [str(tokenline), "processor", "--check"],
        env={"PATH": os.environ["PATH"], **_env(env)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_systemd_analyze_verifies_every_unit_without_a_warning(
    installed: Path, tmp_path: Path
) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: deploy/local/setup.sh installs Debian's systemd"
    for unit in UNITS:
        text = (installed / "etc/systemd/system" / unit).read_text(encoding="utf-8")
        text = text.replace("/opt/tokenline", str(installed / "opt/tokenline"))
        text = text.replace("/etc/tokenline", str(installed / "etc/tokenline"))
        (tmp_path / unit).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / unit) for unit in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""  # an unknown key or bad value is only a warning


def test_every_exec_start_is_a_real_command(installed: Path) -> None:
    tokenline = str(installed / "opt/tokenline/bin/tokenline")
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text(encoding="utf-8")
        for line in re.findall(r"^ExecStart=(.+)$", text, flags=re.MULTILINE):
            words = shlex.split(line)
            assert words[0] == "/opt/tokenline/bin/tokenline", (unit, line)
            done = subprocess.run(
                [tokenline, *words[1:], "--help"], capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, (unit, line, done.stderr)
