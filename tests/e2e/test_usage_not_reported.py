"""Usage the provider never reported lands unpriced, never as a priced $0.

A wrapped OpenAI stream whose usage chunk the emulator drops (as a proxy would) goes through
the real pipeline (SDK → Kafka → processor → sink → PostgreSQL) next to the same stream with
its usage: the first row is ``unpriced`` / ``usage_not_reported`` with a NULL cost and
``usage_source`` 'none'; the second is priced exactly from the reported buckets.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import openai
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.e2e._pipeline import running_pipeline, wait_rows
from tokenline import sdk
from tokenline.emulator import ProviderEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenline.dev.demo.services import DemoPipeline

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

MODEL = "gpt-unreported-e2e"
INPUT_PER_MILLION = Decimal("2.50")
OUTPUT_PER_MILLION = Decimal("10.00")
PRICES = f"""\
prices:
  - provider: openai
    model: "{MODEL}"
    valid_from: 2020-01-01
    unit: per_million
    input: "{INPUT_PER_MILLION}"
    output: "{OUTPUT_PER_MILLION}"
    cache_read: "1.25"
"""


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoPipeline]:
    work = tmp_path_factory.mktemp("unreported")
    with running_pipeline(kafka_bootstrap, database_url, work, PRICES, "unreported") as handle:
        yield handle


def _stream(client: Any) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hello"}], stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"  # a complete answer either way


def _rows(pipeline: DemoPipeline) -> dict[str, dict[str, Any]]:
    with psycopg.connect(pipeline.database_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT session_id, success, usage_source, pricing_status, unpriced_reason, "
            "cost_total, input_tokens, output_tokens FROM usage_events"
        ).fetchall()
    return {row["session_id"]: row for row in rows}


def test_unreported_usage_is_unpriced_next_to_a_priced_call(
    pipeline: DemoPipeline, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sdk.configure(
        tenant_id="unreported",
        bootstrap_servers=pipeline.bootstrap,
        topic=pipeline.topic("raw"),
        spool_dir=tmp_path_factory.mktemp("spool"),
        detect_host=False,
        strict=True,
    )
    reported, dropped = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        with (
            ProviderEmulator() as emulator,
            openai.OpenAI(base_url=f"{emulator.url}/v1", api_key="k", max_retries=0) as raw,
        ):
            client = sdk.wrap(raw)
            with sdk.context(session_id=reported):
                _stream(client)
            usage = emulator.last_call.usage
            emulator.drop_next_usage(provider="openai")
            with sdk.context(session_id=dropped):
                _stream(client)
            assert emulator.last_call.usage == {}
        assert sdk.flush(60) == 0
    finally:
        sdk.close(30)
    wait_rows(pipeline, 2, timeout_s=120)
    rows = _rows(pipeline)

    unreported = rows[dropped]
    assert unreported["success"] is True
    assert unreported["usage_source"] == "none"
    assert unreported["pricing_status"] == "unpriced"
    assert unreported["unpriced_reason"] == "usage_not_reported"
    assert unreported["cost_total"] is None  # unknown, not $0

    priced = rows[reported]
    assert priced["usage_source"] == "reported"
    assert priced["pricing_status"] == "priced"
    assert priced["unpriced_reason"] is None
    assert (priced["input_tokens"], priced["output_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    expected = (
        INPUT_PER_MILLION * usage["prompt_tokens"] + OUTPUT_PER_MILLION * usage["completion_tokens"]
    ) / 1_000_000
    assert priced["cost_total"] == expected.quantize(Decimal("1e-12"))
    assert priced["cost_total"] > 0
