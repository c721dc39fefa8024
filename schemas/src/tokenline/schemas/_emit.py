"""What the compiled reader and writer share: walking a parsed schema and emitting Python.

A subclass handles each Avro type in a ``kind_<type>(schema, logical, indent, name)`` method
and unions in ``union(branches, indent, name)``; :meth:`SchemaSource.visit` dispatches to them,
resolves named types, and raises :class:`Unsupported` for what no method covers, so that the
caller falls back to fastavro.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SchemaSource", "Unsupported"]


class Unsupported(Exception):
    """The schema uses something the generated code does not cover."""


class SchemaSource:
    """Collects the lines and constants of one generated function."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.count = 0
        self.open: set[str] = set()  # named types being emitted (recursion is not covered)

    def var(self) -> str:
        """A fresh local variable name."""
        self.count += 1
        return f"v{self.count}"

    def constant(self, value: Any) -> str:
        """The name under which ``value`` reaches the generated code."""
        name = f"c{len(self.constants)}"
        self.constants[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        """One line of the function's body, ``indent`` levels in."""
        self.lines.append("    " * (indent + 1) + line)

    def visit(self, schema: Any, indent: int, name: str) -> None:
        """Emit the code for ``schema``; ``name`` is the variable read into or written from."""
        if isinstance(schema, list):
            self.union(schema, indent, name)
            return
        if isinstance(schema, str):
            if schema in self.named:
                self.named_type(schema, indent, name)
                return
            schema = {"type": schema}
        kind = schema["type"]
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in self.named):
            if "logicalType" in schema:
                raise Unsupported(schema["logicalType"])
            self.visit(kind, indent, name)
            return
        handler = getattr(self, f"kind_{kind}", None)
        if handler is None:
            raise Unsupported(kind)
        handler(schema, schema.get("logicalType"), indent, name)

    def named_type(self, type_name: str, indent: int, name: str) -> None:
        if type_name in self.open:
            raise Unsupported(f"recursive type {type_name}")
        self.open.add(type_name)
        self.visit(self.named[type_name], indent, name)
        self.open.discard(type_name)

    def union(self, branches: list[Any], indent: int, name: str) -> None:
        raise Unsupported("union")

    @staticmethod
    def plain(logical: Any) -> None:
        """Refuse a logical type the caller's type does not handle."""
        if logical is not None:
            raise Unsupported(logical)
