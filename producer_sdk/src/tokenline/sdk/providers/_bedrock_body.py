"""The usage an InvokeModel body reports about itself, per model family, and its cross-check.

InvokeModel bodies follow the model family, and most carry the model's own token counts:

- Anthropic (Messages): ``usage`` with ``input_tokens`` (cache excluded),
  ``cache_read_input_tokens``, ``cache_creation_input_tokens`` and its TTL split
  ``cache_creation.ephemeral_5m/1h_input_tokens``, ``output_tokens`` (thinking included; split
  out when ``output_tokens_details.thinking_tokens`` is given). The body also names the
  ``model``. Streamed, ``message_start`` carries the model and the full usage, and
  ``message_delta`` cumulative counts that replace it.
- Amazon Nova: ``usage`` with ``inputTokens``, ``outputTokens``, ``totalTokens`` and
  ``cacheReadInputTokenCount`` / ``cacheWriteInputTokenCount`` (disjoint, as in Converse).
- OpenAI-style bodies (AI21 Jamba, OpenAI gpt-oss): ``usage`` with ``prompt_tokens`` (cached
  reads inside, ``prompt_tokens_details.cached_tokens``) and ``completion_tokens``.
- Meta Llama: ``prompt_token_count`` and ``generation_token_count``.
- Amazon Titan text and embeddings: ``inputTextTokenCount`` and ``results[].tokenCount``.
- Mistral, Cohere and others: no counts in the body.

Which source wins: the body, when it has counts. It is the model's own account of the call,
with the cache buckets and the cache-write TTL split that the ``x-amzn-bedrock-*`` headers
(and a stream's ``amazon-bedrock-invocationMetrics``) lack or may leave out. Those are still
read: every figure they give is checked against the body's buckets, and a difference is
recorded in the usage vector's ``mismatch``, never hidden. Without counts in the body, the
headers or metrics are the usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenline.sdk.providers._usage import count, usage_vector

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.schemas import Usage

__all__ = ["Counts", "anthropic_update", "body_counts", "check_against"]


@dataclass(slots=True)
class Counts:
    """Disjoint token counts as a body reported them."""

    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    split: tuple[int, int] | None = None
    output: int = 0
    reasoning: int = 0
    total: int | None = None

    def vector(self, checks: dict[str, tuple[int, int]] | None = None) -> Usage:
        """The canonical usage vector, with ``checks`` against another source's figures."""
        return usage_vector(
            input_tokens=self.input,
            cache_read=self.cache_read,
            cache_write=self.cache_write,
            cache_write_5m=self.split[0] if self.split is not None else None,
            cache_write_1h=self.split[1] if self.split is not None else None,
            output_tokens=self.output,
            reasoning_tokens=self.reasoning,
            provider_total=self.total,
            checks=checks,
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def anthropic_update(counts: Counts, usage: Mapping[str, Any]) -> None:
    """Replace the counts an Anthropic ``usage`` gives (a stream's deltas are cumulative)."""
    for name, key in (
        ("input", "input_tokens"),
        ("cache_read", "cache_read_input_tokens"),
        ("cache_write", "cache_creation_input_tokens"),
    ):
        value = _int(usage.get(key))
        if value is not None:
            setattr(counts, name, value)
    creation = usage.get("cache_creation")
    if isinstance(creation, dict):
        counts.split = (
            count(creation, "ephemeral_5m_input_tokens"),
            count(creation, "ephemeral_1h_input_tokens"),
        )
    produced = _int(usage.get("output_tokens"))
    if produced is not None:
        thinking = count(usage, "output_tokens_details", "thinking_tokens")
        counts.output, counts.reasoning = produced - thinking, thinking


def _from_usage(usage: Mapping[str, Any]) -> Counts | None:
    if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic
        counts = Counts()
        anthropic_update(counts, usage)
        return counts
    if "inputTokens" in usage:  # Amazon Nova
        return Counts(
            input=count(usage, "inputTokens"),
            cache_read=count(usage, "cacheReadInputTokenCount"),
            cache_write=count(usage, "cacheWriteInputTokenCount"),
            output=count(usage, "outputTokens"),
            total=_int(usage.get("totalTokens")),
        )
    if "prompt_tokens" in usage:  # OpenAI-style (AI21 Jamba, gpt-oss)
        cached = count(usage, "prompt_tokens_details", "cached_tokens")
        reasoning = count(usage, "completion_tokens_details", "reasoning_tokens")
        return Counts(
            input=count(usage, "prompt_tokens") - cached,
            cache_read=cached,
            output=count(usage, "completion_tokens") - reasoning,
            reasoning=reasoning,
            total=_int(usage.get("total_tokens")),
        )
    return None


def body_counts(body: Any) -> Counts | None:
    """The counts a (parsed) InvokeModel body reports; None when it reports none."""
    if not isinstance(body, dict):
        return None
    usage = body.get("usage")
    if isinstance(usage, dict):
        return _from_usage(usage)
    if _int(body.get("prompt_token_count")) is not None:  # Meta Llama
        return Counts(
            input=count(body, "prompt_token_count"), output=count(body, "generation_token_count")
        )
    if _int(body.get("inputTextTokenCount")) is not None:  # Amazon Titan
        results = body.get("results")
        produced = sum(count(r, "tokenCount") for r in results) if isinstance(results, list) else 0
        return Counts(input=count(body, "inputTextTokenCount"), output=produced)
    return None


def check_against(
    counts: Counts, figures: Mapping[str, tuple[str, int | None]]
) -> dict[str, tuple[int, int]]:
    """Checks of the body's buckets against another source's figures.

    ``figures`` maps a bucket (``input``, ``output``, ``cache_read``, ``cache_write``) to the
    other source's name for it and its figure; a figure it does not give (None) is not checked.
    Output is checked with reasoning included, as every source counts it.
    """
    mine = {
        "input": counts.input,
        "output": counts.output + counts.reasoning,
        "cache_read": counts.cache_read,
        "cache_write": counts.cache_write,
    }
    return {
        name: (mine[bucket], figure)
        for bucket, (name, figure) in figures.items()
        if figure is not None
    }
