"""How values are written in JSON, JSON Lines and CSV, exactly.

Money stays ``Decimal`` and is written as its plain decimal text (``"0.025350000000"``, never a
float and never ``0E-12``); timestamps as ISO 8601 in UTC; UUIDs and dates as text. In CSV a
NULL is an empty cell, a boolean ``true``/``false`` and a JSON value (tags) its JSON text.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["csv_value", "decimal_text", "json_value"]


def decimal_text(value: Decimal) -> str:
    """Return ``value`` in plain notation with all its digits."""
    return format(value, "f")


def json_value(value: Any) -> Any:
    """Return ``value`` as a JSON-ready value (decimals and times as strings)."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def csv_value(value: Any) -> str:
    """Return ``value`` as the text of a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(json_value(value))
