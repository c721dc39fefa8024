"""The Kubernetes prices CronJob's shell line, run as written against the real Kafka.

Only the network fetch is swapped for the LiteLLM price file the dev environment installs
(``prices refresh --source``); the paths of the pod (/tmp, /etc/tokenline) become a test
directory, and the overrides are the ConfigMap's own ``prices.yaml``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from tokenline.dev.demo.services import tokenline_command
from tokenline.processor.pricebook import PriceBook, load_price_book

pytestmark = pytest.mark.integration

CRONJOB = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "prices-cronjob.yaml"
# Found without importing litellm (its import tries to fetch the list over the network).
_LITELLM = importlib.util.find_spec("litellm")
assert _LITELLM is not None
assert _LITELLM.origin is not None
LITELLM_JSON = Path(_LITELLM.origin).parent / "model_prices_and_context_window_backup.json"


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(CRONJOB.read_text(encoding="utf-8")) if d]


def _published(bootstrap: str, topic: str) -> bytes:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}", "log_level": 0}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        message = consumer.poll(30)
        assert message is not None, "nothing published"
        assert message.error() is None, message.error()
        value = message.value()
        assert value is not None
        return value
    finally:
        consumer.close()


def test_the_prices_cronjob_refreshes_and_publishes_with_the_overrides(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config_map = next(d for d in _docs() if d["kind"] == "ConfigMap")
    cronjob = next(d for d in _docs() if d["kind"] == "CronJob")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    (script,) = container["args"]
    assert "tokenline prices refresh --output /tmp/litellm.json" in script
    etc = tmp_path / "etc"
    etc.mkdir()
    # The example ConfigMap, plus a tenant term, to see the overrides merged in.
    overrides = config_map["data"]["prices.yaml"] + "tenants:\n  acme: {discount_percent: 20}\n"
    (etc / "prices.yaml").write_text(overrides, encoding="utf-8")
    script = (
        script.replace("/tmp/", f"{tmp_path}/")  # first: the paths put in below may be in /tmp
        .replace("/etc/tokenline/", f"{etc}/")
        .replace("tokenline ", f"{tokenline_command()} ")
        .replace("refresh --output", f"refresh --source {LITELLM_JSON} --output")
    )
    prefix = f"cron-{uuid.uuid4().hex[:6]}."
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLINE_")}
    env |= {"TOKENLINE_BOOTSTRAP_SERVERS": kafka_bootstrap, "TOKENLINE_TOPIC_PREFIX": prefix}
    done = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    book = PriceBook.from_json(_published(kafka_bootstrap, f"{prefix}llm-usage.prices"))
    expected = load_price_book(etc / "prices.yaml", base=tmp_path / "litellm.json")
    assert book.pricing_version == expected.pricing_version
    assert "acme" in book.adjustments
    assert len(book.table) == len(json.loads((tmp_path / "litellm.json").read_text())["entries"])
