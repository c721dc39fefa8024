"""Realistic traffic for the demo: real provider SDK clients, wrapped, against the emulator.

Every tenant's services call all five providers: OpenAI (plain, streamed, a reasoning model,
embeddings, prompt caching), Azure OpenAI (a deployment name), Anthropic (prompt caching,
streamed), Bedrock (converse with a cross-region inference profile, a streamed Meta model)
and Gemini (thinking tokens). Some calls fail at the provider (429 and 500), and one
team calls a fine-tuned model no price list knows. Each wrapped call sends one usage event;
:class:`Traffic` counts them so the demo knows when everything has landed.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
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

    from tokenline.emulator import ProviderEmulator

__all__ = [
    "AZURE_DEPLOYMENTS",
    "TENANTS",
    "UNKNOWN_MODEL",
    "Tenant",
    "Traffic",
    "drive",
    "planned_calls",
]

#: The fine-tuned model no price list knows: its calls are unpriced until a correction.
UNKNOWN_MODEL = "ft:gpt-4o-mini-2024-07-18:initech:support:b7Xq"
AZURE_DEPLOYMENTS = {"chat-prod": "gpt-4o-2024-08-06"}
_LONG_CONTEXT = " ".join(f"policy clause {n} applies to every support answer." for n in range(160))


@dataclass(frozen=True)
class Tenant:
    """A demo tenant: its billing timezone and its teams' users."""

    tenant_id: str
    timezone: str
    project: str
    users: tuple[str, ...]


TENANTS = (
    Tenant("acme", "America/New_York", "support-bot", ("ana", "ben", "cy")),
    Tenant("globex", "Asia/Kolkata", "search", ("dev", "eli")),
    Tenant("initech", "Asia/Kathmandu", "copilot", ("fay", "gus", "hal", "ivy")),
)


@dataclass
class Traffic:
    """What the demo sent: calls per tenant and provider, and the provider errors."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: int = 0

    @property
    def total(self) -> int:
        """Every wrapped call, each of which sends exactly one usage event."""
        return sum(self.calls.values())

    def per_tenant(self) -> dict[str, int]:
        """Calls per tenant."""
        out: Counter[str] = Counter()
        for (tenant, _), n in self.calls.items():
            out[tenant] += n
        return dict(out)


@dataclass
class _Clients:
    openai: Any
    azure: Any
    anthropic: Any
    bedrock: Any
    gemini: Any
    raw: list[Any]

    def close(self) -> None:
        for client in self.raw:
            with contextlib.suppress(Exception):
                client.close()


def _clients(url: str, tenant: Tenant) -> _Clients:
    oai = openai.OpenAI(base_url=f"{url}/v1", api_key="demo", max_retries=0)
    azure = openai.AzureOpenAI(
        azure_endpoint=url, api_key="demo", api_version="2024-10-21", max_retries=0
    )
    claude = anthropic.Anthropic(base_url=url, api_key="demo", max_retries=0)
    bedrock = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    gemini = genai.Client(api_key="demo", http_options=types.HttpOptions(base_url=url))
    tag = {"tenant_id": tenant.tenant_id, "project": tenant.project}
    return _Clients(
        openai=sdk.wrap(oai, **tag),
        azure=sdk.wrap(azure, **tag),
        anthropic=sdk.wrap(claude, **tag),
        bedrock=sdk.wrap(bedrock, **tag),
        gemini=sdk.wrap(gemini, **tag),
        raw=[oai, azure, claude, bedrock, gemini],
    )


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _openai_calls(c: _Clients) -> list[tuple[str, Callable[[], object]]]:
    def stream() -> None:
        for _ in c.openai.chat.completions.create(
            model="gpt-4o-mini", messages=_user("stream a haiku"), stream=True
        ):
            pass

    return [
        (
            "openai",
            lambda: c.openai.chat.completions.create(
                model="gpt-4o",
                messages=[
                    {"role": "system", "content": _LONG_CONTEXT},
                    {"role": "user", "content": "summarize the policy"},
                ],
            ),
        ),
        ("openai", stream),
        (
            "openai",
            lambda: c.openai.chat.completions.create(
                model="o3-mini", messages=_user("plan the migration"), reasoning_effort="low"
            ),
        ),
        (
            "openai",
            lambda: c.openai.embeddings.create(model="text-embedding-3-small", input="ticket 4711"),
        ),
        (
            "azure_openai",
            lambda: c.azure.chat.completions.create(
                model="chat-prod", messages=_user("translate to German")
            ),
        ),
    ]


def _anthropic_calls(c: _Clients) -> list[tuple[str, Callable[[], object]]]:
    system = [{"type": "text", "text": _LONG_CONTEXT, "cache_control": {"type": "ephemeral"}}]

    def stream() -> None:
        with c.anthropic.messages.stream(
            model="claude-haiku-4-5-20251001", max_tokens=64, messages=_user("one line")
        ) as events:
            for _ in events:
                pass

    return [
        (
            "anthropic",
            lambda: c.anthropic.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=128,
                system=system,
                messages=_user("answer from the policy"),
            ),
        ),
        ("anthropic", stream),
    ]


def _bedrock_calls(c: _Clients) -> list[tuple[str, Callable[[], object]]]:
    def stream() -> None:
        reply = c.bedrock.converse_stream(
            modelId="meta.llama3-1-8b-instruct-v1:0",
            messages=[{"role": "user", "content": [{"text": "classify this ticket"}]}],
        )
        for _ in reply["stream"]:
            pass

    return [
        (
            "bedrock",
            lambda: c.bedrock.converse(
                modelId="us.anthropic.claude-3-5-haiku-20241022-v1:0",
                messages=[{"role": "user", "content": [{"text": "route this request"}]}],
            ),
        ),
        ("bedrock", stream),
    ]


def _gemini_calls(c: _Clients) -> list[tuple[str, Callable[[], object]]]:
    thinking = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=256)
    )

    def stream() -> None:
        for _ in c.gemini.models.generate_content_stream(
            model="gemini-2.5-flash-lite", contents="draft a reply"
        ):
            pass

    return [
        (
            "gemini",
            lambda: c.gemini.models.generate_content(
                model="gemini-2.5-flash", contents="think about the refund", config=thinking
            ),
        ),
        ("gemini", stream),
    ]


def _unknown_model_call(c: _Clients) -> tuple[str, Callable[[], object]]:
    return (
        "openai",
        lambda: c.openai.chat.completions.create(model=UNKNOWN_MODEL, messages=_user("help")),
    )


def _round(c: _Clients, tenant: Tenant) -> list[tuple[str, Callable[[], object]]]:
    calls = [*_openai_calls(c), *_anthropic_calls(c), *_bedrock_calls(c), *_gemini_calls(c)]
    if tenant.tenant_id == "initech":
        calls.append(_unknown_model_call(c))
    return calls


def planned_calls(rounds: int) -> int:
    """How many wrapped calls :func:`drive` makes in ``rounds`` rounds."""
    nobody = _Clients(None, None, None, None, None, [])
    return rounds * sum(len(_round(nobody, tenant)) for tenant in TENANTS)


def drive(
    emulator: ProviderEmulator, rounds: int, on_call: Callable[[], None] | None = None
) -> Traffic:
    """Run ``rounds`` rounds of every tenant's calls; every fifth round, two calls fail."""
    traffic = Traffic()
    clients = {t.tenant_id: _clients(emulator.url, t) for t in TENANTS}
    try:
        for n in range(rounds):
            for tenant in TENANTS:
                if n % 5 == 4:
                    emulator.fail_next(429, provider="openai")
                    emulator.fail_next(500, provider="anthropic")
                user = tenant.users[n % len(tenant.users)]
                team = "platform" if n % 3 else "research"
                with sdk.context(user_id=user, session_id=f"{user}-s{n // 4}", team=team):
                    for provider, call in _round(clients[tenant.tenant_id], tenant):
                        traffic.calls[tenant.tenant_id, provider] += 1
                        try:
                            call()
                        except (openai.APIError, anthropic.APIError):
                            traffic.errors += 1
                        if on_call is not None:
                            on_call()
    finally:
        for c in clients.values():
            c.close()
    return traffic
