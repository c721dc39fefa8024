"""Webhook payloads, their signature and the retry schedule: pure, no network.

- ``json``: the alert's fields, money as decimal strings (never floats), times in ISO 8601.
- ``slack``: ``{"text": ...}``, what a Slack incoming webhook (and Mattermost, Teams'
  Slack-compatible hooks) takes.

The body is signed with HMAC-SHA256 under the configured secret:
``X-Tokenline-Signature: sha256=<hex>`` (GitHub's form). A receiver recomputes it over the raw
body and compares in constant time (:func:`verify`). Delivery is at least once: receivers
deduplicate by ``X-Tokenline-Alert-Id`` (also the payload's ``alert_id``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenline.schemas import BudgetAlert

__all__ = ["backoff_ms", "body", "headers", "retriable", "signature", "verify"]


def _plain(alert: BudgetAlert) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "tokenline.budget_alert"}
    for name, value in alert.items():
        if hasattr(value, "isoformat"):
            out[name] = value.isoformat()
        elif value is not None and not isinstance(value, (str, int)):
            out[name] = str(value)  # Decimal: exact, as a string
        else:
            out[name] = value
    return out


def _text(alert: BudgetAlert) -> str:
    if alert["kind"] == "spend_rate":
        return (
            f":chart_with_upwards_trend: Spend rate of *{alert['tenant_id']}*: "
            f"{alert['spend']:f} {alert['currency']} in the hour from "
            f"{alert['period_start'].isoformat()}, against a mean of "
            f"{alert['budget_amount']:f} {alert['currency']} an hour before it."
        )
    scope = alert["scope"] + (f" {alert['scope_value']}" if alert["scope_value"] else "")
    line = (
        f"hard limit {alert['threshold_amount']:f}"
        if alert["threshold_pct"] is None
        else f"{alert['threshold_pct']}% of {alert['budget_amount']:f}"
    )
    start = alert["period_start"].isoformat()
    return (
        f":rotating_light: Budget *{alert['budget_id']}* ({alert['tenant_id']}, {scope}): "
        f"{line} {alert['currency']} crossed; spend {alert['spend']:f} {alert['currency']} "
        f"this {alert['period']} (from {start}, {alert['timezone']})."
    )


def body(alert: BudgetAlert, fmt: str) -> bytes:
    """The request body of ``alert`` in ``fmt`` (``json`` or ``slack``)."""
    doc = {"text": _text(alert)} if fmt == "slack" else _plain(alert)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, data: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``data`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def verify(secret: str, data: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``data`` (constant-time comparison)."""
    return hmac.compare_digest(signature(secret, data), header)


def headers(alert: BudgetAlert, data: bytes, secret: str | None, attempt: int) -> dict[str, str]:
    """The request's headers: content type, alert id, attempt, and the signature if keyed."""
    out = {
        "Content-Type": "application/json",
        "User-Agent": "tokenline-alerts",
        "X-Tokenline-Alert-Id": alert["alert_id"],
        "X-Tokenline-Attempt": str(attempt),
    }
    if secret:
        out["X-Tokenline-Signature"] = signature(secret, data)
    return out


def retriable(status: int | None) -> bool:
    """Whether a try that ended so is worth another: no answer, 408, 429 or any 5xx."""
    return status is None or status in {408, 429} or status >= 500


def backoff_ms(first_ms: int, attempt: int) -> int:
    """The wait after failed try ``attempt`` (1-based): ``first_ms`` doubling each time."""
    return int(first_ms * 2 ** (attempt - 1))
