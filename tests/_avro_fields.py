"""The leaf fields of a shipped Avro record, read from the schema itself (not from our code).

A leaf is a field path (``("usage", "input_tokens")``) and its kind: ``long``, ``int``,
``string``, ``uuid``, ``timestamp``, ``enum`` (with its symbols), ``boolean`` or ``map``
(of strings). Nested records are walked; a ``["null", X]`` union is X, nullable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenline.schemas._catalog import catalog

__all__ = ["Leaf", "leaves"]


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    kind: str
    nullable: bool
    symbols: tuple[str, ...] = ()


def _kind(node: Any) -> tuple[str, tuple[str, ...]]:
    if isinstance(node, str):
        return node, ()
    logical = node.get("logicalType")
    if logical == "uuid":
        return "uuid", ()
    if logical == "timestamp-micros":
        return "timestamp", ()
    if node["type"] == "enum":
        return "enum", tuple(node["symbols"])
    if node["type"] == "map":
        assert node["values"] == "string", node
        return "map", ()
    return str(node["type"]), ()


def _walk(node: Any, path: tuple[str, ...], nullable: bool, named: dict[str, Any]) -> list[Leaf]:
    if isinstance(node, str) and node in named:
        node = named[node]
    if isinstance(node, list):
        branches = [b for b in node if b != "null"]
        assert len(branches) == 1, node
        return _walk(branches[0], path, True, named)
    if isinstance(node, dict) and node.get("type") == "record":
        out: list[Leaf] = []
        for field in node["fields"]:
            out += _walk(field["type"], (*path, field["name"]), False, named)
        return out
    kind, symbols = _kind(node)
    return [Leaf(path, kind, nullable, symbols)]


def leaves(record_name: str = "tokenline.UsageEvent") -> list[Leaf]:
    """The leaves of the newest shipped version of ``record_name``, in schema order."""
    parsed = catalog().latest(record_name).parsed
    return _walk(parsed, (), False, dict(parsed.get("__named_schemas", {})))
