"""The README's exit-code table is the one the commands use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokenline.common.ops.exits import ExitCode

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_lists_every_exit_code_once() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("| exit code | meaning |", 1)[1].split("\n\n", 1)[0]
    codes = [int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)]
    assert codes == sorted(int(code) for code in ExitCode)


def test_the_module_docstring_table_matches_too() -> None:
    from tokenline.common.ops import exits

    assert exits.__doc__ is not None
    codes = [int(m) for m in re.findall(r"^(\d)\s{4,}", exits.__doc__, flags=re.MULTILINE)]
    assert codes == sorted(int(code) for code in ExitCode)
