"""The shared UsageEvent test vectors (schemas/vectors): current, and what the codec writes.

The Node.js SDK's tests check the same file byte for byte, so both SDKs write the same bytes.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tokenline.schemas import AvroCodec

pytestmark = pytest.mark.unit

_GENERATOR = Path(__file__).parents[3] / "schemas" / "vectors" / "generate.py"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("tokenline_vectors", _GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_vectors_are_what_the_generator_writes_now() -> None:
    generator = _generator()
    assert generator.PATH.read_text(encoding="utf-8") == generator.render()


def test_each_vector_decodes_to_its_record_and_carries_the_shipped_fingerprint() -> None:
    doc = json.loads(_generator().PATH.read_text(encoding="utf-8"))
    codec: AvroCodec[Any] = AvroCodec("tokenline.UsageEvent")
    assert len(doc["cases"]) >= 5
    for case in doc["cases"]:
        data = bytes.fromhex(case["hex"])
        # The documented frame: C3 01, then the 8-byte fingerprint of the writer schema.
        assert data[:2] == b"\xc3\x01"
        assert data[2:10].hex() == doc["fingerprint"] == codec.reader.fingerprint.hex()
        decoded = codec.decode(data)
        record = case["record"]
        assert str(decoded["event_id"]) == str(uuid.UUID(record["event_id"]))
        since_epoch = decoded["occurred_at"] - datetime(1970, 1, 1, tzinfo=UTC)
        assert since_epoch // timedelta(microseconds=1) == record["occurred_at"]
        special = {"event_id", "producer_id", "occurred_at"}
        rest = {k: v for k, v in decoded.items() if k not in special}
        assert rest == {k: record[k] for k in rest}
