"""Helpers every adapter uses to build the canonical usage vector."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenline.schemas import Usage

__all__ = ["UNFINISHED", "count", "usage_vector"]

#: The mismatch of an Anthropic stream (direct or on Bedrock) that ended, finished, closed or
#: cut, before its ``message_delta``: ``message_start``'s output count is only a placeholder.
UNFINISHED = "output_tokens not reported: the stream ended before message_delta"


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
    usage: Usage = {
        "input_tokens": input_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_write_input_tokens": cache_write,
        "cache_write_5m_input_tokens": cache_write_5m,
        "cache_write_1h_input_tokens": cache_write_1h,
        "output_tokens": output_tokens,
        "reasoning_tokens": reasoning_tokens,
        "provider_total_tokens": provider_total,
        "mismatch": None,
    }
    ours = input_tokens + cache_read + cache_write + output_tokens + reasoning_tokens
    if (
        min(input_tokens, output_tokens, cache_read, cache_write, reasoning_tokens) >= 0
        and cache_write_5m is None
        and cache_write_1h is None
        and (provider_total is None or ours == provider_total)
        and not checks
    ):
        return usage  # the common case: nothing to check further, nothing to report
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
    if provider_total is not None and ours != provider_total:
        problems.append(f"buckets sum to {ours}, provider total is {provider_total}")
    for name, (mine, theirs) in (checks or {}).items():
        if mine != theirs:
            problems.append(f"{name}: buckets give {mine}, provider reports {theirs}")
    usage["mismatch"] = "; ".join(problems) or None
    return usage
