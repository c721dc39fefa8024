"""Cloud metadata services: AWS IMDSv2, Azure IMDS, GCP metadata server (short timeouts).

Each request has ``TIMEOUT_S`` to answer and never goes through an HTTP proxy (the services
live at a link-local address that only the machine itself can reach). ``base_url`` points a
probe elsewhere, e.g. at a local fake of the service in tests; the defaults are the real ones.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

__all__ = ["probe"]

TIMEOUT_S = 0.3
"""Seconds each metadata request may take before the probe gives up."""
_LINK_LOCAL = "http://169.254.169.254"
_GCP = "http://metadata.google.internal"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy, ever


def _get(url: str, headers: dict[str, str], method: str = "GET") -> str:
    request = urllib.request.Request(url, headers=headers, method=method)  # noqa: S310
    with _OPENER.open(request, timeout=TIMEOUT_S) as response:
        return str(response.read().decode())


def _aws(base: str) -> dict[str, str | None]:
    token = _get(f"{base}/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, "PUT")
    doc: dict[str, Any] = json.loads(
        _get(
            f"{base}/latest/dynamic/instance-identity/document", {"X-aws-ec2-metadata-token": token}
        )
    )
    return {"region": doc.get("region"), "instance_id": doc.get("instanceId")}


def _azure(base: str) -> dict[str, str | None]:
    doc: dict[str, Any] = json.loads(
        _get(f"{base}/metadata/instance/compute?api-version=2021-02-01", {"Metadata": "true"})
    )
    return {"region": doc.get("location"), "instance_id": doc.get("vmId")}


def _gcp(base: str) -> dict[str, str | None]:
    headers = {"Metadata-Flavor": "Google"}
    zone = _get(f"{base}/computeMetadata/v1/instance/zone", headers).rsplit("/", 1)[-1]
    instance = _get(f"{base}/computeMetadata/v1/instance/id", headers)
    return {"region": zone.rsplit("-", 1)[0] if zone else None, "instance_id": instance or None}


def probe(cloud: str, base_url: str | None = None) -> dict[str, str | None]:
    """Region and instance id from ``cloud``'s metadata service at ``base_url``.

    ``cloud`` is ``aws``, ``azure`` or ``gcp`` (anything else: nothing to ask). Raises
    ``OSError`` (``urllib.error.URLError``, ``TimeoutError``) when the service does not answer
    in time or refuses the request.
    """
    if cloud == "aws":
        return _aws(base_url or _LINK_LOCAL)
    if cloud == "azure":
        return _azure(base_url or _LINK_LOCAL)
    if cloud == "gcp":
        return _gcp(base_url or _GCP)
    return {}
