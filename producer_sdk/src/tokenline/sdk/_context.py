"""Attribution for a block of code, through contextvars (threads and asyncio tasks)."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["context", "current_attribution"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_attribution: ContextVar[Mapping[str, Any]] = ContextVar("tokenline_attribution", default=_EMPTY)


@contextmanager
def context(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    team: str | None = None,
    project: str | None = None,
    tenant_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Attribute every call made inside the block; nested blocks add to outer ones.

    ``with tokenline.sdk.context(user_id="u-17", tags={"feature": "search"}): ...``
    An asyncio task started inside the block keeps its attribution.
    """
    outer = _attribution.get()
    given = {
        "user_id": user_id,
        "session_id": session_id,
        "team": team,
        "project": project,
        "tenant_id": tenant_id,
    }
    merged: dict[str, Any] = {**outer, **{k: v for k, v in given.items() if v is not None}}
    if tags:
        merged["tags"] = {**outer.get("tags", {}), **tags}
    token = _attribution.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _attribution.reset(token)


def current_attribution() -> Mapping[str, Any]:
    """The attribution in force here."""
    return _attribution.get()
