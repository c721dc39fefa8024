"""records.py is generated from the .avsc files and must not drift from them."""

import pytest

from tokenline.schemas import _codegen

pytestmark = pytest.mark.unit


def test_records_py_is_current() -> None:
    assert _codegen.TARGET.read_text() == _codegen.render(), (
        "records.py is stale: run python -m tokenline.schemas._codegen"
    )
