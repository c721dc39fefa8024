"""Wrapped calls for the end-to-end test, and the ground truth computed from their answers.

The truth never asks Tokenline: each call's tokens come from the usage the provider SDK
returned to the caller, split into the disjoint buckets by each provider's documented rules,
and priced with the test's own per-million prices (``PRICES``), so a wrong adapter, price
lookup, rounding, window or upsert anywhere in the pipeline shows up as a difference.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anthropic
import boto3
import openai
from botocore.config import Config
from google import genai
from google.genai import types

from tokenline import sdk

if TYPE_CHECKING:
    from collections.abc import Callable

BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning")
TENANTS = ("t-acme", "t-globex", "t-initech", "t-umbrella", "t-wayne")
LONG = " ".join(f"clause {n} of the support policy applies here." for n in range(150))

#: (provider, request model) → per-million prices of each bucket; none of these models is in
#: the shipped snapshot, so only the test's price file prices them.
PRICES: dict[tuple[str, str], dict[str, Decimal]] = {
    ("openai", "gpt-e2e-chat"): {
        "input": Decimal("2.5"),
        "cache_read": Decimal("1.25"),
        "cache_write": Decimal("2.5"),
        "output": Decimal(10),
        "reasoning": Decimal(10),
    },
    ("openai", "o3-e2e"): {
        "input": Decimal("1.1"),
        "cache_read": Decimal("0.55"),
        "cache_write": Decimal("1.1"),
        "output": Decimal("4.4"),
        "reasoning": Decimal("4.4"),
    },
    ("anthropic", "claude-e2e-sonnet"): {
        "input": Decimal(3),
        "cache_read": Decimal("0.3"),
        "cache_write": Decimal("3.75"),
        "output": Decimal(15),
        "reasoning": Decimal(15),
    },
    ("bedrock", "us.anthropic.claude-e2e-haiku-v1:0"): {
        "input": Decimal("0.8"),
        "cache_read": Decimal("0.08"),
        "cache_write": Decimal(1),
        "output": Decimal(4),
        "reasoning": Decimal(4),
    },
    ("gemini", "gemini-e2e-flash"): {
        "input": Decimal("0.3"),
        "cache_read": Decimal("0.075"),
        "cache_write": Decimal("0.3"),
        "output": Decimal("2.5"),
        "reasoning": Decimal("2.5"),
    },
}

#: How the overrides file names each model (bedrock's inference profile is normalized).
PRICE_FILE_MODEL = {
    "us.anthropic.claude-e2e-haiku-v1:0": "us.claude-e2e-haiku",
}


def price_file(prices: dict[tuple[str, str], dict[str, Decimal]]) -> str:
    """An overrides YAML document with ``prices``, effective from 2020."""
    lines = ["prices:"]
    for (provider, model), rates in prices.items():
        lines += [
            f"  - provider: {provider}",
            f'    model: "{PRICE_FILE_MODEL.get(model, model)}"',
            "    valid_from: 2020-01-01",
            "    unit: per_million",
            f'    input: "{rates["input"]}"',
            f'    output: "{rates["output"]}"',
            f'    cache_read: "{rates["cache_read"]}"',
            f'    cache_write: "{rates["cache_write"]}"',
            f'    reasoning: "{rates["reasoning"]}"',
        ]
    return "\n".join(lines) + "\n"


def cost(key: tuple[str, str], tokens: dict[str, int], prices: Any = None) -> Decimal:
    """The exact cost of one call's buckets."""
    rates = (prices or PRICES)[key]
    return sum((rates[b] * tokens[b] / 1_000_000 for b in BUCKETS), start=Decimal(0)).quantize(
        Decimal("1e-12")
    )


@dataclass
class Truth:
    """Requests, tokens per bucket and cost per (tenant, provider, request model)."""

    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    tokens: dict[tuple[str, str, str], Counter[str]] = field(default_factory=dict)
    costs: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def add(self, tenant: str, key: tuple[str, str], tokens: dict[str, int]) -> None:
        """Count one call."""
        group = (tenant, *key)
        self.requests[group] += 1
        self.tokens.setdefault(group, Counter()).update(tokens)
        self.costs[group] += cost(key, tokens)

    def merge(self, other: Truth) -> None:
        """Add another worker's truth."""
        self.requests.update(other.requests)
        self.costs.update(other.costs)
        for group, counts in other.tokens.items():
            self.tokens.setdefault(group, Counter()).update(counts)

    def table(self) -> dict[tuple[str, str, str], tuple[Any, ...]]:
        """(tenant, provider, model) → (requests, *bucket tokens, cost)."""
        return {
            g: (n, *(self.tokens[g][b] for b in BUCKETS), self.costs[g])
            for g, n in self.requests.items()
        }


def _openai_buckets(usage: Any) -> dict[str, int]:
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    details = usage.completion_tokens_details
    reasoning = (details.reasoning_tokens or 0) if details else 0
    return {
        "input": usage.prompt_tokens - cached,
        "cache_read": cached,
        "cache_write": 0,
        "output": usage.completion_tokens - reasoning,
        "reasoning": reasoning,
    }


class Caller:
    """One worker's wrapped clients; :meth:`call` makes call ``n`` and returns its truth."""

    def __init__(self, url: str) -> None:
        self._raw = [
            openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0),
            anthropic.Anthropic(base_url=url, api_key="k", max_retries=0),
            boto3.client(
                "bedrock-runtime",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="y",
                config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
            ),
            genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url)),
        ]
        self.openai, self.anthropic, self.bedrock, self.gemini = self._raw
        self._kinds: list[Callable[[int], tuple[tuple[str, str], dict[str, int]]]] = [
            self._chat,
            self._chat_cached,
            self._chat_stream,
            self._reasoning,
            self._claude,
            self._converse,
            self._gemini,
        ]

    def close(self) -> None:
        """Close the underlying clients."""
        for client in self._raw:
            client.close()

    def call(self, n: int, truth: Truth) -> None:
        """Make call ``n`` for its tenant through a wrapped client, and count it in ``truth``."""
        tenant = TENANTS[n % len(TENANTS)]
        kind = self._kinds[(n // len(TENANTS)) % len(self._kinds)]
        with sdk.context(user_id=f"u{n % 11}", session_id=f"s{n % 97}"):
            key, tokens = kind(n)
        truth.add(tenant, key, tokens)

    # Each kind wraps a fresh proxy over the shared raw client: wrap() is cheap and the
    # tenant differs per call.
    def _wrapped(self, client: Any, n: int) -> Any:
        return sdk.wrap(client, tenant_id=TENANTS[n % len(TENANTS)], project=f"p{n % 3}")

    def _chat(self, n: int) -> tuple[tuple[str, str], dict[str, int]]:
        reply = self._wrapped(self.openai, n).chat.completions.create(
            model="gpt-e2e-chat", messages=[{"role": "user", "content": "word " * (n % 40 + 1)}]
        )
        return ("openai", "gpt-e2e-chat"), _openai_buckets(reply.usage)

    def _chat_cached(self, n: int) -> tuple[tuple[str, str], dict[str, int]]:
        reply = self._wrapped(self.openai, n).chat.completions.create(
            model="gpt-e2e-chat",
            messages=[
                {"role": "system", "content": LONG},
                {"role": "user", "content": f"question {n % 5}"},
            ],
        )
        return ("openai", "gpt-e2e-chat"), _openai_buckets(reply.usage)

    def _chat_stream(self, n: int) -> tuple[tuple[str, str], dict[str, int]]:
        usage = None
        for chunk in self._wrapped(self.openai, n).chat.completions.create(
            model="gpt-e2e-chat",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        ):
            usage = chunk.usage or usage
        return ("openai", "gpt-e2e-chat"), _openai_buckets(usage)

    def _reasoning(self, n: int) -> tuple[tuple[str, str], dict[str, int]]:
        reply = self._wrapped(self.openai, n).chat.completions.create(
            model="o3-e2e",
            messages=[{"role": "user", "content": "plan it"}],
            reasoning_effort=("low", "medium", "high")[n % 3],
        )
        return ("openai", "o3-e2e"), _openai_buckets(reply.usage)

    def _claude(self, n: int) -> tuple[tuple[str, str], dict[str, int]]:
        system = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
        reply = self._wrapped(self.anthropic, n).messages.create(
            model="claude-e2e-sonnet",
            max_tokens=16 + n % 32,
            system=system if n % 2 else "be brief",
            messages=[{"role": "user", "content": f"question {n % 7}"}],
        )
        u = reply.usage
        return ("anthropic", "claude-e2e-sonnet"), {
            "input": u.input_tokens,
            "cache_read": u.cache_read_input_tokens or 0,
            "cache_write": u.cache_creation_input_tokens or 0,
            "output": u.output_tokens,
            "reasoning": 0,
        }

    def _converse(self, n: int) -> tuple[tuple[str, str], dict[str, int]]:
        model = "us.anthropic.claude-e2e-haiku-v1:0"
        reply = self._wrapped(self.bedrock, n).converse(
            modelId=model,
            messages=[{"role": "user", "content": [{"text": "route " * (n % 9 + 1)}]}],
        )
        u = reply["usage"]
        return ("bedrock", model), {
            "input": u["inputTokens"],
            "cache_read": u.get("cacheReadInputTokens", 0),
            "cache_write": u.get("cacheWriteInputTokens", 0),
            "output": u["outputTokens"],
            "reasoning": 0,
        }

    def _gemini(self, n: int) -> tuple[tuple[str, str], dict[str, int]]:
        config = types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=32 * (n % 3))
        )
        reply = self._wrapped(self.gemini, n).models.generate_content(
            model="gemini-e2e-flash", contents=f"think {n % 13}", config=config
        )
        u = reply.usage_metadata
        cached = u.cached_content_token_count or 0
        return ("gemini", "gemini-e2e-flash"), {
            "input": (u.prompt_token_count or 0) - cached,
            "cache_read": cached,
            "cache_write": 0,
            "output": u.candidates_token_count or 0,
            "reasoning": u.thoughts_token_count or 0,
        }
