"""Priced events framed by fastavro, and the sink's native reader, for the native-rows tests."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_writer

from tokenline.schemas import catalog
from tokenline.sink.native_rows import NativeRows

PRICED = "tokenline.PricedUsageEvent"


def native_reader() -> NativeRows:
    """The native reader: a test failure, never a skip, when the module is not built."""
    rows = NativeRows.load()
    if rows is None:  # pragma: no cover - only on a machine that did not build it
        pytest.fail("tokenline_native has no CopyRows: bash deploy/local/native.sh")
    return rows


def frame(record: Any) -> bytes:
    """``record`` single-object encoded by fastavro (not by the code under test)."""
    schema = catalog().latest(PRICED)
    buf = BytesIO()
    buf.write(b"\xc3\x01" + schema.fingerprint)
    schemaless_writer(buf, schema.parsed, record)
    return buf.getvalue()
