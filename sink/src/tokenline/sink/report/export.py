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
    from collections.abc import Iterable
    from typing import TextIO

__all__ = ["EXPORT_FORMATS", "ExportFormat", "write_export"]

ExportFormat = Literal["json", "csv", "jsonl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "json", "csv")


def _json_row(row: dict[str, Any]) -> str:
    return json.dumps({name: json_value(row[name]) for name in EXPORT_COLUMNS})


def write_export(rows: Iterable[dict[str, Any]], fmt: ExportFormat, stream: TextIO) -> int:
    """Write ``rows`` to ``stream`` in ``fmt``; return how many rows were written."""
    count = 0
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            writer.writerow([csv_value(row[name]) for name in EXPORT_COLUMNS])
            count += 1
    elif fmt == "jsonl":
        for row in rows:
            stream.write(_json_row(row) + "\n")
            count += 1
    else:
        stream.write("[")
        for row in rows:
            stream.write(("\n" if count == 0 else ",\n") + _json_row(row))
            count += 1
        stream.write("\n]\n" if count else "]\n")
    return count
