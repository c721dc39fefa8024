"""Cluster ids for the local broker."""

from __future__ import annotations

import base64
import string
import uuid
from typing import TYPE_CHECKING

import pytest

from tokenline.dev import kafka

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.unit


def _ids(*first_bytes: int) -> Iterator[uuid.UUID]:
    for first in first_bytes:
        yield uuid.UUID(bytes=bytes([first]) + bytes(15))


def test_an_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = _ids(0xF8, 0x10)  # 0b111110.. is '-' in the URL-safe alphabet
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))

    made = kafka.cluster_id()

    assert made == base64.urlsafe_b64encode(bytes([0x10]) + bytes(15)).rstrip(b"=").decode()
    assert next(drawn, None) is None


def test_ids_are_22_url_safe_characters() -> None:
    made = {kafka.cluster_id() for _ in range(2000)}

    assert len(made) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in made)
    alphabet = set(string.ascii_letters + string.digits + "-_")
    assert all(set(i) <= alphabet for i in made)
