"""The dev stack's PostgreSQL comes from $TOKENLINE_PG_BIN_DIR when it is set."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tokenline.dev._proc import ServiceError
from tokenline.dev.postgres import BIN_DIR_ENV, find_bin_dir

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


def test_the_setting_names_the_servers_bin_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "initdb").write_text("", encoding="utf-8")
    monkeypatch.setenv(BIN_DIR_ENV, str(tmp_path))
    assert find_bin_dir() == tmp_path


def test_a_directory_without_initdb_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BIN_DIR_ENV, str(tmp_path))
    with pytest.raises(ServiceError, match="has no initdb"):
        find_bin_dir()
