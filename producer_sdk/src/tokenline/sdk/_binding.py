"""Binding metering to the process's runtime at call time, never when a client is wrapped.

``wrap()``, ``track()`` and ``instrument()`` may run at import time, before any
``configure()``; and a later ``configure()`` replaces the runtime. So each wrapped object keeps
a ``LazyBinding`` that looks up the process's current runtime on every call: a lock-free read
of one reference, plus the settings-dependent attribution cached per runtime. The lock is taken
only when no runtime exists yet (the first call configures from ``TOKENLINE_*``).

When the SDK cannot be configured, the call still runs, unmetered, and this is logged once
(again only after a runtime was bound in between).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tokenline.sdk._runtime import current_runtime, installed_runtime
from tokenline.sdk.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.sdk._runtime import Runtime

__all__ = ["TENANT_REQUIRED", "LazyBinding"]

log = logging.getLogger(__name__)

TENANT_REQUIRED = "tenant_id: required (wrap(..., tenant_id=...) or TOKENLINE_TENANT_ID)"

Bound = tuple["Runtime", "Mapping[str, Any]"]
"""The runtime in force and the static attribution (settings + the object's keywords) for it."""

_unbound_logged = False


class LazyBinding:
    """The runtime one wrapped client, tracked function or instrumented method reports to."""

    __slots__ = ("_attribution", "_bound")

    def __init__(self, attribution: Mapping[str, Any]) -> None:
        self._attribution = {k: v for k, v in attribution.items() if v is not None}
        self._bound: Bound | None = None

    def get(self) -> Bound | None:
        """The current runtime and this object's static attribution; None when unconfigurable.

        The fast path is one read of the process's runtime reference and one identity check.
        """
        bound = self._bound  # one read: the tuple is replaced whole, never mutated
        if bound is not None and bound[0] is installed_runtime():
            return bound
        return self._bind()

    def _bind(self) -> Bound | None:
        global _unbound_logged  # noqa: PLW0603 - one warning per unconfigured period
        runtime = installed_runtime()
        try:
            if runtime is None:
                runtime = current_runtime()  # configures from TOKENLINE_* (takes the lock)
            if not (self._attribution.get("tenant_id") or runtime.settings.tenant_id):
                raise ConfigError([TENANT_REQUIRED])
            bound = (runtime, runtime.static_attribution(self._attribution))
        except Exception as exc:
            if runtime is not None and runtime.settings.strict:
                raise
            if not _unbound_logged:
                _unbound_logged = True
                trace = None if isinstance(exc, ConfigError) else exc  # problems are listed
                log.warning("tokenline: calls go on unmetered: %s", exc, exc_info=trace)
            return None
        _unbound_logged = False
        self._bound = bound
        return bound
