"""``wrap(client)``: the same client surface, with the adapter's methods metered.

The proxy is a wrapt ObjectProxy, so ``isinstance`` checks and every attribute the adapter
does not meter behave exactly as on the client. Attribute paths leading to a metered method
(``chat`` → ``chat.completions`` → ``chat.completions.create``) return proxies in turn;
each is made once per client and cached.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import wrapt

from tokenline.sdk._wrapping import Metered

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tokenline.schemas import Provider
    from tokenline.sdk._binding import LazyBinding
    from tokenline.sdk._wrapping import Method

__all__ = ["Binding", "ClientProxy", "metered_callable"]


@dataclass(frozen=True)
class Binding:
    """What a wrapped client meters, for whom."""

    runtime: LazyBinding
    """The runtime in force at each call, with the client's attribution (bound at first call)."""
    provider: Provider
    methods: Mapping[str, Method]
    helpers: frozenset[str] = frozenset()
    """Paths of helper methods (e.g. ``chat.completions.stream``) that call metered methods
    on their own resource: they run with the proxy as ``self``, so the inner call is metered."""

    @functools.cached_property
    def prefixes(self) -> frozenset[str]:
        """Every attribute path that leads to a metered method."""
        found: set[str] = set()
        for path in (*self.methods, *self.helpers):
            parts = path.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts)))
        return frozenset(found)


def metered_callable(fn: Callable[..., Any], metered: Metered) -> Callable[..., Any]:
    """``fn`` with the same signature, metered."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def metered_async(*args: Any, **kwargs: Any) -> Any:
            return await metered.call_async(fn, args, kwargs)

        return metered_async

    @functools.wraps(fn)
    def metered_sync(*args: Any, **kwargs: Any) -> Any:
        return metered.call_sync(fn, args, kwargs)

    return metered_sync


_own = object.__getattribute__
_proxied = wrapt.ObjectProxy.__getattribute__


class ClientProxy(wrapt.ObjectProxy[Any]):
    """A provider client, or one of its resources, with metered methods."""

    def __init__(self, wrapped: Any, binding: Binding, path: str = "") -> None:
        super().__init__(wrapped)
        self._self_binding = binding
        self._self_path = path
        self._self_cache: dict[str, Any] = {}

    def __enter__(self) -> Any:
        entered = self.__wrapped__.__enter__()
        # `with wrap(client) as c:` must give back the metered proxy, not the bare client
        return self if entered is self.__wrapped__ else entered

    def __exit__(self, *exc_info: Any) -> Any:
        return self.__wrapped__.__exit__(*exc_info)

    async def __aenter__(self) -> Any:
        entered = await self.__wrapped__.__aenter__()
        return self if entered is self.__wrapped__ else entered

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc_info)

    def __getattribute__(self, name: str) -> Any:
        # Resolved paths first: wrapt would fail its own lookup (an AttributeError made and
        # dropped) before reaching __getattr__ on every step of `client.chat.completions.create`.
        found = _own(self, "_self_cache").get(name)
        return found if found is not None else _proxied(self, name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_self_"):
            raise AttributeError(name)
        attr = getattr(self.__wrapped__, name)
        binding = self._self_binding
        path = f"{self._self_path}.{name}" if self._self_path else name
        method = binding.methods.get(path)
        if method is not None and callable(attr):
            metered = Metered(binding.runtime, binding.provider, method)
            result: Any = metered_callable(attr, metered)
        elif path in binding.helpers and callable(attr):
            result = functools.partial(getattr(type(self.__wrapped__), name), self)
        elif path in binding.prefixes:
            result = ClientProxy(attr, binding, path)
        else:
            return attr
        self._self_cache[name] = result
        return result
