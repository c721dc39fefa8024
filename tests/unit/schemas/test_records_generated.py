"""records.py is generated from the .avsc files and must not drift from them."""

import json

import pytest

from tokenline.schemas import Attribution, PricedUsageEvent, _codegen, catalog

pytestmark = pytest.mark.unit


def test_records_py_is_current() -> None:
    assert _codegen.TARGET.read_text() == _codegen.render(), (
        "records.py is stale: run python -m tokenline.schemas._codegen"
    )


def test_a_record_with_a_part_still_has_every_field_of_its_schema() -> None:
    schema = json.loads(catalog().latest("tokenline.PricedUsageEvent").json)
    assert set(PricedUsageEvent.__annotations__) == {f["name"] for f in schema["fields"]}
    assert set(Attribution.__annotations__) < set(PricedUsageEvent.__annotations__)


def test_a_part_naming_a_field_its_record_lacks_fails_the_generation() -> None:
    with pytest.raises(ValueError, match="part Odd: no field colour"):
        _codegen.render(parts=(("Odd", "PricedUsageEvent", ("team", "colour"), "."),))
