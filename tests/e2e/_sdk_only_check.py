"""Run inside a fresh virtualenv holding ``tokenline-sdk[...]`` and the emulator from wheels.

Standard library, the SDK and what it installs only (no dev tools, nothing of this repository):
``python -I _sdk_only_check.py call`` wraps a real OpenAI client, makes one call against the
provider emulator (tokenline-emulator), and reads the event back from Kafka with tokenline.schemas'
AvroCodec; ``python -I _sdk_only_check.py config-error`` expects ``wrap`` to refuse the settings.
Settings come from ``TOKENLINE_*`` as a user would give them; one JSON line is printed.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import struct
import sys
import time
import uuid
from typing import Any

import openai
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tokenline import sdk
from tokenline.emulator import ProviderEmulator
from tokenline.schemas import AvroCodec

READ_TIMEOUT_S = 120.0


def _codec() -> tuple[AvroCodec[Any], int | None]:
    """The reader's codec, with the registry the SDK was told about (and the schema's id)."""
    url = os.environ.get("TOKENLINE_SCHEMA_REGISTRY_URL")
    if not url:
        return AvroCodec("tokenline.UsageEvent"), None
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    registry = SchemaRegistryClient.new_client({"url": url})
    codec: AvroCodec[Any] = AvroCodec("tokenline.UsageEvent", registry=registry)
    # A mock:// registry lives inside one client: the reader registers the same schema in its
    # own, and the id it gets must be the one the SDK's bytes carry.
    schema_id = registry.register_schema(codec.record_name, Schema(codec.reader.json, "AVRO"))
    return codec, int(schema_id)


def _read_back(codec: AvroCodec[Any], session_id: str) -> tuple[Any, bytes]:
    bootstrap = os.environ["TOKENLINE_BOOTSTRAP_SERVERS"]
    topic = os.environ["TOKENLINE_TOPIC"]
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=0.5):
                if message.error() is not None:
                    continue
                value = message.value() or b""
                event = codec.decode(value)
                if event["session_id"] == session_id:
                    return event, value
    finally:
        consumer.close()
    msg = f"no event with session_id {session_id} on {topic} within {READ_TIMEOUT_S:.0f} s"
    raise SystemExit(msg)


def _installed() -> list[str]:
    return sorted({d.metadata["Name"].lower() for d in importlib.metadata.distributions()})


def call() -> dict[str, Any]:
    """One wrapped chat call through the emulator, its event read back from Kafka."""
    session_id = uuid.uuid4().hex
    with ProviderEmulator() as emulator:
        bare = openai.OpenAI(base_url=f"{emulator.url}/v1", api_key="k", max_retries=0)
        client = sdk.wrap(bare, session_id=session_id)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
        )
        bare.close()
    left = sdk.flush(60)
    codec, reader_schema_id = _codec()
    event, value = _read_back(codec, session_id)
    sdk.close()
    usage = reply.usage
    assert usage is not None
    framing = "confluent" if value[:1] == b"\x00" else "single-object"
    schema_id = struct.unpack(">bI", value[:5])[1] if framing == "confluent" else None
    return {
        "left_after_flush": left,
        "event_id": str(event["event_id"]),
        "tenant_id": event["tenant_id"],
        "provider": event["provider"],
        "operation": event["operation"],
        "request_model": event["request_model"],
        "success": event["success"],
        "input_tokens": event["usage"]["input_tokens"],
        "output_tokens": event["usage"]["output_tokens"],
        "reply_prompt_tokens": usage.prompt_tokens,
        "reply_completion_tokens": usage.completion_tokens,
        "framing": framing,
        "schema_id": schema_id,
        "reader_schema_id": reader_schema_id,
        "sdk_file": sdk.__file__,
        "prefix": sys.prefix,
        "installed": _installed(),
    }


def config_error() -> dict[str, Any]:
    """``wrap`` with settings this install cannot serve: the ConfigError it raises."""
    try:
        sdk.wrap(openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k"))
    except sdk.ConfigError as exc:
        return {"config_error": str(exc), "installed": _installed()}
    return {"config_error": None, "installed": _installed()}


if __name__ == "__main__":
    print(json.dumps({"call": call, "config-error": config_error}[sys.argv[1]]()))
