"""aiokafka's private attribute the prices task reads, checked on the installed library.

``AIOKafkaConsumer._client.fetch_all_metadata()``: the consumer's own metadata is not refreshed
by ``topics()``, so the prices task asks its client for a fresh copy (``agents.py``). An
aiokafka release that moves it fails here by name.
"""

from __future__ import annotations

import inspect

import aiokafka
import pytest
from aiokafka import AIOKafkaConsumer

pytestmark = pytest.mark.unit


@pytest.mark.asyncio
async def test_the_consumer_client_fetches_fresh_metadata() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")  # never started: no network
    try:
        fetch = getattr(consumer._client, "fetch_all_metadata", None)
        assert fetch is not None, f"aiokafka {aiokafka.__version__} moved it"
        assert inspect.iscoroutinefunction(fetch)
    finally:
        await consumer.stop()
