"""The registry every part's metrics start from: process, platform, GC and build info.

Each part keeps its own :class:`~prometheus_client.CollectorRegistry` (tests build several
workers in one process), so the collectors the global registry would have are added here:
``process_*`` (CPU, memory, open files), ``python_info``, ``python_gc_*``, and
``tokenline_build_info{part, version, python}``.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["new_registry", "part_version"]


def part_version(distribution: str) -> str:
    """The installed version of ``distribution``, or ``unknown``."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def new_registry(part: str, distribution: str) -> CollectorRegistry:
    """A registry with the default collectors and ``tokenline_build_info`` for ``part``."""
    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client.gc_collector import GCCollector
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    build = Gauge(
        "tokenline_build_info",
        "The running Tokenline part and its version (always 1).",
        ["part", "version", "python"],
        registry=registry,
    )
    build.labels(part, part_version(distribution), platform.python_version()).set(1)
    return registry
