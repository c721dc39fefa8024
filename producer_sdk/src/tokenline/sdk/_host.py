"""Host metadata, detected once per process.

What the environment tells (hostname, Kubernetes downward-API variables and files, service
name) is read at once; cloud identity is asked of the cloud's metadata service only when
the machine's DMI data names that cloud, in a background thread with short timeouts, and
merged in when it answers. The caller's path never waits on it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tokenline.schemas import Host

__all__ = ["HostDetector"]

log = logging.getLogger(__name__)

_DMI_VENDOR = Path("/sys/class/dmi/id/sys_vendor")
_DMI_PRODUCT = Path("/sys/class/dmi/id/product_name")
_K8S_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _sdk_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokenline-sdk")
    except PackageNotFoundError:
        return None


def local_host(env: Mapping[str, str], service_name: str | None) -> Host:
    """What is known without asking any service."""
    namespace = env.get("POD_NAMESPACE") or env.get("K8S_NAMESPACE")
    if namespace is None and _K8S_NAMESPACE_FILE.is_file():
        namespace = _K8S_NAMESPACE_FILE.read_text().strip() or None
    in_k8s = "KUBERNETES_SERVICE_HOST" in env
    return {
        "hostname": socket.gethostname(),
        "cloud": None,
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        "instance_id": None,
        "k8s_pod": env.get("POD_NAME") or (env.get("HOSTNAME") if in_k8s else None),
        "k8s_namespace": namespace,
        "k8s_node": env.get("NODE_NAME") or env.get("K8S_NODE_NAME"),
        "service_name": service_name or env.get("OTEL_SERVICE_NAME") or env.get("SERVICE_NAME"),
        "sdk_version": _sdk_version(),
        "language": "python",
    }


def dmi_cloud() -> str | None:
    """The cloud the DMI data names, if any (no network)."""
    try:
        text = f"{_DMI_VENDOR.read_text()} {_DMI_PRODUCT.read_text()}".lower()
    except OSError:
        return None
    if "amazon" in text:
        return "aws"
    if "microsoft" in text:
        return "azure"
    if "google" in text:
        return "gcp"
    return None


class HostDetector:
    """Holds the host record; ``start`` fills in cloud identity in the background.

    ``cloud`` (aws, azure, gcp) names the cloud instead of the machine's DMI data, and
    ``metadata_url`` replaces the metadata service's address: for tests and unusual setups.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        service_name: str | None = None,
        *,
        enabled: bool = True,
        cloud_probe: Callable[[str], Mapping[str, str | None]] | None = None,
        cloud: str | None = None,
        metadata_url: str | None = None,
    ) -> None:
        environ = env if env is not None else dict(os.environ)
        self.host: Host = local_host(environ, service_name) if enabled else _blank()
        self._enabled = enabled
        self._cloud_probe = cloud_probe
        self._cloud = cloud
        self._metadata_url = metadata_url
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Ask the cloud metadata service, once, off the caller's path."""
        if not self._enabled or self._thread is not None:
            return
        cloud = self._cloud or dmi_cloud()
        if cloud is None:
            return
        self._thread = threading.Thread(
            target=self._probe, args=(cloud,), name="tokenline-host", daemon=True
        )
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the metadata probe; True when none is running."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _probe(self, cloud: str) -> None:
        from tokenline.sdk._cloud import probe

        try:
            if self._cloud_probe is not None:
                found = self._cloud_probe(cloud)
            else:
                found = probe(cloud, self._metadata_url)
        except Exception:
            log.debug("tokenline host detection failed", exc_info=True)
            return
        merged = dict(self.host)
        merged.update({k: v for k, v in found.items() if v is not None})
        merged["cloud"] = cloud
        self.host = merged  # type: ignore[assignment]  # one reference swap: readers see old or new


def _blank() -> Host:
    return {
        "hostname": None,
        "cloud": None,
        "region": None,
        "instance_id": None,
        "k8s_pod": None,
        "k8s_namespace": None,
        "k8s_node": None,
        "service_name": None,
        "sdk_version": None,
        "language": "python",
    }
