"""The replay groups stored events by model in SQL as the processor's windows do in Python."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tokenline.processor.replay.db import MODEL_OF_SQL
from tokenline.processor.windows import model_of

pytestmark = pytest.mark.integration

NAMES = ("canonical_model", "response_model", "request_model", "deployment")
CASES = [
    ("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o", "dep"),
    (None, "gpt-4o-2024-08-06", "gpt-4o", "dep"),
    (None, "", "gpt-4o", "dep"),
    ("", None, None, "my-deployment"),
    (None, None, "", ""),
    (None, None, None, None),
]


def _priced(canonical: Any, response: Any, request: Any, deployment: Any) -> Any:
    event = {"response_model": response, "request_model": request, "deployment": deployment}
    return {"canonical_model": canonical, "event": event}


def test_model_of_in_sql_is_model_of(database_url: str) -> None:
    values = ", ".join(["(%s::int, %s::text, %s::text, %s::text, %s::text)"] * len(CASES))
    query = f"SELECT {MODEL_OF_SQL} FROM (VALUES {values}) AS t(n, {', '.join(NAMES)}) ORDER BY n"
    params = [value for n, case in enumerate(CASES) for value in (n, *case)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = [row[0] for row in conn.execute(query, params).fetchall()]
    assert found == [model_of(_priced(*case)) for case in CASES]
    assert found[-2:] == ["unknown", "unknown"]
