"""deploy/local/pins.txt: the workspace installs the versions the suite last passed with."""

from __future__ import annotations

import shlex

import pytest

from tests.unit.deploy._deploy import DEPLOY, load_script

pytestmark = pytest.mark.unit

pins = load_script("local/pins.py")


def test_every_installed_distribution_is_pinned_at_its_version() -> None:
    """A dependency that floats (a transitive one released upstream overnight) fails here."""
    assert pins.problems(pins.pinned(pins.PINS.read_text(encoding="utf-8")), pins.installed()) == []


def test_setup_installs_the_workspace_with_the_pins_as_constraints() -> None:
    text = (DEPLOY / "local" / "setup.sh").read_text(encoding="utf-8").replace("\\\n", " ")
    installs = [line for line in text.splitlines() if "pip install" in line and " -e " in line]
    assert len(installs) == 1
    words = shlex.split(installs[0])
    assert words[words.index("-c") + 1] == "deploy/local/pins.txt"


def test_a_difference_is_named_with_both_versions() -> None:
    text = "# header\nidna==3.20\nfoo==1.0  # comment\n"
    found = {"idna": "3.21", "bar": "2.0"}
    assert pins.problems(pins.pinned(text), found) == [
        "bar: installed 2.0, not pinned (run --write)",
        "foo: pinned 1.0, not installed",
        "idna: pinned 3.20, installed 3.21",
    ]
    assert pins.pinned(pins.render(found)) == found
