"""JSON to UsageEvent, following the shipped Avro schema; every problem is listed.

The request body of ``POST /v1/usage`` is the UsageEvent contract in JSON: the field names of
``tokenline.UsageEvent.avsc``, UUIDs as text, ``occurred_at`` as ISO 8601 with an offset,
enums as their symbols, optional fields left out or null. The walk below is driven by the
newest shipped schema (never a hand-copied model), so a new field with a default is accepted
the day the schema has it. ``event_id``, ``producer_id`` and ``producer_seq`` may be left
out: the API makes a UUIDv7 event id and sends as its own producer. A client that retries
sends the same ``event_id``, and the pipeline keeps one copy.

Bounds finer than the schema's (token counts, text lengths, time window) are the processor's
validation contract, applied when the event is priced; an event outside them is dead-lettered
there with the reason.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import uuid6

from tokenline.schemas import catalog

__all__ = ["EventConverter", "Problem"]

Problem = str
_MADE_BY_API = ("event_id", "producer_id", "producer_seq")
_LONG = (-(2**63), 2**63 - 1)
_INT = (-(2**31), 2**31 - 1)


class EventConverter:
    """Turns JSON objects into UsageEvent records for the codec, or lists what is wrong."""

    def __init__(self) -> None:
        self._schema = json.loads(catalog().latest("tokenline.UsageEvent").json)
        self._names: dict[str, Any] = {}
        self.producer_id = uuid6.uuid7()
        self._seq = itertools.count()

    def convert(self, value: Any, path: str = "") -> tuple[dict[str, Any] | None, list[Problem]]:
        """Return ``(record, [])``, or ``(None, problems)`` naming each bad field by its path."""
        problems: list[Problem] = []
        if isinstance(value, dict):
            value = dict(value)
            value.setdefault("event_id", str(uuid6.uuid7()))
            if "producer_id" not in value:
                value["producer_id"] = str(self.producer_id)
                value["producer_seq"] = next(self._seq)
        record = self._convert(self._schema, value, path or "$", problems)
        return (record, []) if not problems else (None, problems)

    def _convert(self, schema: Any, value: Any, path: str, problems: list[Problem]) -> Any:
        if isinstance(schema, str):
            return self._primitive(self._names.get(schema, schema), value, path, problems)
        if isinstance(schema, list):
            return self._union(schema, value, path, problems)
        kind = schema["type"]
        if "name" in schema:
            self._names[schema["name"]] = schema
        if kind == "record":
            return self._record(schema, value, path, problems)
        if kind == "enum":
            if value not in schema["symbols"]:
                problems.append(f"{path}: must be one of {', '.join(schema['symbols'])}")
            return value
        if kind == "map":
            if not isinstance(value, dict):
                problems.append(f"{path}: must be an object")
                return None
            return {
                str(k): self._convert(schema["values"], v, f"{path}.{k}", problems)
                for k, v in value.items()
            }
        if kind == "array":
            if not isinstance(value, list):
                problems.append(f"{path}: must be an array")
                return None
            return [
                self._convert(schema["items"], v, f"{path}[{i}]", problems)
                for i, v in enumerate(value)
            ]
        logical = schema.get("logicalType")
        if logical == "uuid":
            return _uuid(value, path, problems)
        if logical == "timestamp-micros":
            return _instant(value, path, problems)
        return self._primitive(kind, value, path, problems)

    def _record(self, schema: Any, value: Any, path: str, problems: list[Problem]) -> Any:
        if not isinstance(value, dict):
            problems.append(f"{path}: must be an object")
            return None
        names = {f["name"] for f in schema["fields"]}
        problems.extend(f"{path}.{k}: unknown field" for k in sorted(set(value) - names))
        record = {}
        for field in schema["fields"]:
            name = field["name"]
            if name in value:
                record[name] = self._convert(field["type"], value[name], f"{path}.{name}", problems)
            elif "default" in field:
                record[name] = _default(field)
            else:
                problems.append(f"{path}.{name}: required")
        return record

    def _union(self, schema: list[Any], value: Any, path: str, problems: list[Problem]) -> Any:
        if value is None:
            if "null" not in schema:
                problems.append(f"{path}: must not be null")
            return None
        branches = [b for b in schema if b != "null"]
        for branch in branches:
            found: list[Problem] = []
            result = self._convert(branch, value, path, found)
            if not found:
                return result
        problems.append(f"{path}: must be null or {_describe(branches[0])}")
        return None

    def _primitive(self, kind: Any, value: Any, path: str, problems: list[Problem]) -> Any:
        if isinstance(kind, dict):
            return self._convert(kind, value, path, problems)
        if kind == "string":
            if not isinstance(value, str):
                problems.append(f"{path}: must be a string")
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                problems.append(f"{path}: must be true or false")
            return value
        if kind in ("long", "int"):
            low, high = _LONG if kind == "long" else _INT
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                problems.append(f"{path}: must be an integer in [{low}, {high}]")
            return value
        if kind == "null":
            if value is not None:
                problems.append(f"{path}: must be null")
            return None
        problems.append(f"{path}: type {kind} is not accepted over JSON")
        return None


def _default(field: dict[str, Any]) -> Any:
    default = field["default"]
    return dict(default) if isinstance(default, dict) else default


def _describe(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema["type"])
    return str(schema)


def _uuid(value: Any, path: str, problems: list[Problem]) -> uuid.UUID | None:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    problems.append(f"{path}: must be a UUID string")
    return None


def _instant(value: Any, path: str, problems: list[Problem]) -> datetime | None:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC)
    problems.append(f"{path}: must be an ISO 8601 time with an offset, e.g. 2026-10-01T09:30:00Z")
    return None
