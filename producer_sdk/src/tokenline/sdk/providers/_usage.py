"""Helpers every adapter uses to build the canonical usage vector."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenline.sdk._call import empty_usage

if TYPE_CHECKING:
    from tokenline.schemas import Usage

__all__ = ["count", "usage_vector"]


def count(obj: Any, *path: str) -> int:
    """The integer at ``obj.path...`` (attributes or keys), 0 when any step is missing."""
    value = obj
    for name in path:
        if value is None:
            return 0
        value = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_vector(
    *,
    input_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_5m: int | None = None,
    cache_write_1h: int | None = None,
    output_tokens: int = 0,
    reasoning_tokens: int = 0,
    provider_total: int | None = None,
    checks: dict[str, tuple[int, int]] | None = None,
) -> Usage:
    """Disjoint buckets, checked: ``checks`` maps a name to (our sum, the provider's figure).

    Any bucket below zero, a TTL split that does not add up to the writes, a provider total
    the buckets do not reach, or a failed check is reported in ``mismatch``, never hidden.
    """
    usage = empty_usage()
    usage["input_tokens"] = input_tokens
    usage["cache_read_input_tokens"] = cache_read
    usage["cache_write_input_tokens"] = cache_write
    usage["cache_write_5m_input_tokens"] = cache_write_5m
    usage["cache_write_1h_input_tokens"] = cache_write_1h
    usage["output_tokens"] = output_tokens
    usage["reasoning_tokens"] = reasoning_tokens
    usage["provider_total_tokens"] = provider_total
    problems = [
        f"{name}={value} < 0"
        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cache_read", cache_read),
            ("cache_write", cache_write),
            ("reasoning_tokens", reasoning_tokens),
        )
        if value < 0
    ]
    if cache_write_5m is not None or cache_write_1h is not None:
        split = (cache_write_5m or 0) + (cache_write_1h or 0)
        if split != cache_write:
            problems.append(f"cache write split {split} != cache writes {cache_write}")
    if provider_total is not None:
        ours = input_tokens + cache_read + cache_write + output_tokens + reasoning_tokens
        if ours != provider_total:
            problems.append(f"buckets sum to {ours}, provider total is {provider_total}")
    for name, (ours, theirs) in (checks or {}).items():
        if ours != theirs:
            problems.append(f"{name}: buckets give {ours}, provider reports {theirs}")
    usage["mismatch"] = "; ".join(problems) or None
    return usage
