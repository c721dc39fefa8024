"""Provider adapters, loaded lazily: only the one for a client you wrap is ever imported.

Each adapter module turns one provider SDK's requests and responses into the canonical
usage vector; nothing outside it knows that provider's field names. An adapter module
exposes ``ADAPTER``, an ``Adapter``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokenline.sdk.providers._supported import check_installed

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tokenline.schemas import Provider
    from tokenline.sdk._wrapping import Method

__all__ = ["Adapter", "Patch", "adapter_for", "installed_adapters"]


@dataclass(frozen=True)
class Patch:
    """A method ``instrument()`` patches process-wide: ``module`` + ``qualname``."""

    module: str
    qualname: str
    method: Method
    provider_of: Callable[[Any], Provider]
    """The provider, from the instance the method is called on."""
    method_for: Callable[[Any, tuple[Any, ...]], Method | None] | None = None
    """Choose the Method per call from (instance, args), or None to leave the call alone."""


@dataclass(frozen=True)
class Adapter:
    """How one provider SDK is metered."""

    name: str
    provider_of: Callable[[Any], Provider]
    methods_for: Callable[[Any], Mapping[str, Method]]
    patches: tuple[Patch, ...] = field(default=())
    helpers: frozenset[str] = frozenset()
    """Helper methods run with the wrapped resource as ``self`` (see ``Binding.helpers``)."""


#: client class module prefix → (adapter module, the SDK package it needs, the extra to install)
_ADAPTERS: dict[str, tuple[str, str, str]] = {
    "openai": ("tokenline.sdk.providers._openai", "openai", "openai"),
    "anthropic": ("tokenline.sdk.providers._anthropic", "anthropic", "anthropic"),
    "botocore": ("tokenline.sdk.providers._bedrock", "botocore", "bedrock"),
    "google.genai": ("tokenline.sdk.providers._genai", "google.genai", "gemini"),
    "google.generativeai": (
        "tokenline.sdk.providers._generativeai",
        "google.generativeai",
        "gemini",
    ),
}


def _load(module: str) -> Adapter:
    adapter = importlib.import_module(module).ADAPTER
    assert isinstance(adapter, Adapter)
    return adapter


def adapter_for(client: Any) -> Adapter:
    """The adapter for ``client``'s SDK; TypeError naming the supported ones otherwise."""
    client_module = type(client).__module__
    for prefix, (module, package, _extra) in _ADAPTERS.items():
        if client_module == prefix or client_module.startswith(prefix + "."):
            check_installed(package)
            return _load(module)
    supported = ", ".join(sorted(_ADAPTERS))
    msg = (
        f"tokenline cannot wrap {type(client).__qualname__} from {client_module!r}; "
        f"it wraps clients of: {supported}"
    )
    raise TypeError(msg)


def installed_adapters() -> list[Adapter]:
    """Adapters whose provider SDK is installed (each imported only now)."""
    found = []
    for module, package, _extra in _ADAPTERS.values():
        try:
            present = importlib.util.find_spec(package) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            check_installed(package)
            try:
                found.append(_load(module))
            except ModuleNotFoundError:  # the adapter for this SDK is not shipped yet
                continue
    return found
