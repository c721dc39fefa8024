"""Raw per-call rows written as JSON, JSON Lines or CSV while they stream from the database.

Each writer takes an iterator of rows (from :func:`tokenline.sink.report.run.iter_events`) and
writes row by row, so an export never holds more than the cursor's batch. JSON is one array
whose elements are the rows; JSON Lines one object per line; CSV a header and one line per
row. Columns are :data:`~tokenline.sink.report.queries.EXPORT_COLUMNS`, values as
:mod:`tokenline.sink.report.values` writes them.
"""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Any, Literal

from tokenline.sink.report.queries import EXPORT_COLUMNS
from tokenline.sink.report.values import csv_value, json_value

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import TextIO

__all__ = ["EXPORT_FORMATS", "ExportFormat", "export_chunks", "write_export"]

ExportFormat = Literal["json", "csv", "jsonl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "json", "csv")


def _json_row(row: dict[str, Any]) -> str:
    return json.dumps({name: json_value(row[name]) for name in EXPORT_COLUMNS})


def export_chunks(rows: Iterable[dict[str, Any]], fmt: ExportFormat) -> Iterator[str]:
    """Yield the text of ``rows`` in ``fmt``, a piece per row (a header or bracket first)."""
    if fmt == "csv":
        buffer = _Line()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        yield buffer.take()
        for row in rows:
            writer.writerow([csv_value(row[name]) for name in EXPORT_COLUMNS])
            yield buffer.take()
    elif fmt == "jsonl":
        for row in rows:
            yield _json_row(row) + "\n"
    else:
        count = 0
        yield "["
        for row in rows:
            yield ("\n" if count == 0 else ",\n") + _json_row(row)
            count += 1
        yield "\n]\n" if count else "]\n"


class _Line:
    """A write target for csv.writer that hands back what was written since the last take."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def take(self) -> str:
        text, self._parts = "".join(self._parts), []
        return text


def write_export(rows: Iterable[dict[str, Any]], fmt: ExportFormat, stream: TextIO) -> int:
    """Write ``rows`` to ``stream`` in ``fmt``; return how many rows were written."""
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in export_chunks(counted(), fmt):
        stream.write(chunk)
    return count
