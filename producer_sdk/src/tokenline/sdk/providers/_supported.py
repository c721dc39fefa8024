"""The provider library versions the adapters are built and tested for.

The ranges are the SDK's own extras (``tokenline-sdk[openai]`` and the others, in its
package metadata): one place says them. Wrapping a client, or ``instrument()``, with a provider
library outside its range warns once per library (``UnsupportedProviderVersion``): an adapter
reads some of a library's private attributes (``resource._client``, ``Client._api_client``,
``Chats._modules``, a response's ``_request_id``), which a new major version may move. The
call itself is never refused, and a failed check is silent.
"""

from __future__ import annotations

import functools
import importlib.metadata
import threading
import warnings
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

__all__ = ["DISTRIBUTIONS", "UnsupportedProviderVersion", "check_installed", "supported", "verdict"]

#: The client's import package → the distribution whose version the extras bound.
DISTRIBUTIONS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "botocore": "boto3",
    "google.genai": "google-genai",
    "google.generativeai": "google-generativeai",
}

_warned: set[str] = set()
_lock = threading.Lock()


class UnsupportedProviderVersion(UserWarning):
    """A provider library installed outside the range the SDK supports."""


@functools.cache
def supported() -> dict[str, SpecifierSet]:
    """Each provider distribution's supported range, from ``tokenline-sdk``'s extras."""
    try:
        requires = importlib.metadata.requires("tokenline-sdk") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    wanted = set(DISTRIBUTIONS.values())
    ranges: dict[str, SpecifierSet] = {}
    for text in requires:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.name in wanted and requirement.marker is not None:
            ranges[requirement.name] = requirement.specifier
    return ranges


def verdict(distribution: str, installed: str) -> str | None:
    """Why ``installed`` of ``distribution`` is unsupported, or ``None`` when it is supported."""
    spec = supported().get(distribution)
    if spec is None or spec.contains(installed, prereleases=True):
        return None
    return (
        f"tokenline-sdk supports {distribution}{spec}, and {distribution} {installed} is "
        f"installed: its calls are metered, but usage may be missed where the library changed. "
        f"Install a supported {distribution} or a tokenline-sdk that supports this one."
    )


def check_installed(package: str) -> None:
    """Warn once if the installed distribution behind ``package`` is out of its range."""
    distribution = DISTRIBUTIONS.get(package)
    if distribution is None:
        return
    try:
        message = verdict(distribution, importlib.metadata.version(distribution))
    except Exception:  # noqa: BLE001 - a version check never stops a wrap
        return
    if message is None:
        return
    with _lock:
        if distribution in _warned:
            return
        _warned.add(distribution)
    warnings.warn(message, UnsupportedProviderVersion, stacklevel=3)
