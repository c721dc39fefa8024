"""Model normalization: from what a provider or SDK reported to canonical model ids.

Canonical ids follow the LiteLLM keys the base price table comes from, without anything
that only says *where* or *which build* of a model was called:

* lower case; LiteLLM/SDK path prefixes (``openai/``, ``azure/``, ``gemini/``, ``models/``,
  ``bedrock/`` ...) removed;
* Bedrock: ARNs resolved (system inference profiles parsed, application inference profiles
  through the configured map), the geographic prefix (``us.``, ``eu.``, ``apac.``, ``jp.``,
  ``au.``, ``global.`` ...), the vendor prefix (``anthropic.``) and the version suffix
  (``-v2:0``) removed, so ``us.anthropic.claude-3-5-sonnet-20241022-v2:0`` is the Anthropic
  name ``claude-3-5-sonnet-20241022``;
* dates and snapshot suffixes removed from the canonical id: OpenAI ``gpt-4o-2024-08-06`` and
  ``gpt-4-0613``, Anthropic ``claude-sonnet-4-5-20250929`` and ``-latest``, Gemini
  ``gemini-1.5-pro-002``.

The canonical id (``gpt-4o``, ``claude-sonnet-4-5``, ``gemini-2.5-pro``) names the model in
rollups. Because a dated snapshot or a regional endpoint can have its own price, the price
lookup tries ``lookup_ids`` in order, most specific first: the regional id (Bedrock only,
``us.claude-sonnet-4-5-20250929``), the dated id, then the canonical id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

__all__ = [
    "BEDROCK_REGION_PREFIXES",
    "NormalizedModel",
    "Normalizer",
]

BEDROCK_REGION_PREFIXES = ("us-gov", "global", "apac", "us", "eu", "jp", "au", "ca", "in")

# Path prefixes that SDKs and LiteLLM put before a model name.
_PATH_PREFIX = re.compile(
    r"^(?:openai|azure|azure_ai|anthropic|gemini|vertex_ai|google|bedrock|bedrock_converse"
    r"|converse|invoke|models|publishers/google/models)/"
)
_APP_PROFILE_ARN = re.compile(r"^arn:aws[\w-]*:bedrock:[^:]*:\d*:application-inference-profile/")
_BEDROCK_ARN = re.compile(
    r"^arn:aws[\w-]*:bedrock:[^:]*:\d*:(?:inference-profile|foundation-model)/(?P<id>.+)$"
)
_REGION_PREFIX = re.compile(rf"^(?P<region>{'|'.join(BEDROCK_REGION_PREFIXES)})\.(?=[a-z])")
_VENDOR_PREFIX = re.compile(r"^[a-z][a-z0-9-]*\.(?=[a-z])")

# Bedrock ids whose ``-vN`` is part of the model name, not a version suffix.
_BEDROCK_KEEP_VERSION = frozenset({"claude-v1", "claude-v2", "claude-v2:1", "claude-instant-v1"})


@dataclass(frozen=True, slots=True)
class _Rule:
    """``pattern`` is replaced by ``replacement`` (to the specific id when ``dated``)."""

    name: str
    pattern: re.Pattern[str]
    replacement: str = ""


# Applied in order to Bedrock ids after the ARN and the prefixes are gone.
_BEDROCK_RULES = (
    _Rule("context-window variant", re.compile(r":\d+k$")),
    _Rule("vertex-style date", re.compile(r"@(\d{8})$"), r"-\1"),
    _Rule("version suffix", re.compile(r"-v\d+(?::\d+)?$")),
)

# Suffixes that name a dated snapshot: stripped for the canonical id, kept for the
# specific id. One row per provider family.
_SNAPSHOT_SUFFIXES: Mapping[str, tuple[re.Pattern[str], ...]] = {
    "openai": (re.compile(r"-\d{4}-\d{2}-\d{2}$"), re.compile(r"-(?:0[1-9]|1[0-2])\d{2}$")),
    "anthropic": (re.compile(r"-\d{8}$"), re.compile(r"-latest$")),
    "gemini": (re.compile(r"-\d{3}$"), re.compile(r"-latest$")),
}
_FAMILY = {
    "openai": "openai",
    "azure_openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "anthropic",
    "gemini": "gemini",
}
_SHARED_RULES = (_Rule("vertex-style date", re.compile(r"@(\d{8})$"), r"-\1"),)


@dataclass(frozen=True, slots=True)
class NormalizedModel:
    """The result of normalization.

    ``canonical`` is ``None`` when the model cannot be determined; then ``unpriced_reason``
    says why (``unknown_model``, ``unmapped_inference_profile``).
    """

    canonical: str | None
    lookup_ids: tuple[str, ...] = ()
    unpriced_reason: str | None = None

    @property
    def specific(self) -> str | None:
        """The most specific id (the first one looked up)."""
        return self.lookup_ids[0] if self.lookup_ids else None


@dataclass(frozen=True)
class Normalizer:
    """Normalizes models with the operator's maps.

    ``azure_deployments`` maps Azure deployment names to model names; ``inference_profiles``
    maps Bedrock application-inference-profile ARNs (or their ids) to model ids.
    """

    azure_deployments: Mapping[str, str] = field(default_factory=dict)
    inference_profiles: Mapping[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A sha256 of every map this normalizer uses (every field), in canonical order."""
        content = {f.name: getattr(self, f.name) for f in fields(self)}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=_canonical)
        return hashlib.sha256(text.encode()).hexdigest()

    def normalize_event(
        self,
        provider: str,
        request_model: str | None,
        response_model: str | None,
        deployment: str | None,
    ) -> NormalizedModel:
        """Normalize the model of one event.

        Azure: the model from ``response_model`` when present, else the configured model of
        the deployment (``deployment``, or ``request_model``, which the Azure SDKs fill with
        the deployment name), else the deployment name itself. Other providers: the
        response model when present (it is the more specific), else the request model.
        """
        if provider == "azure_openai":
            name = deployment or request_model
            if response_model:
                raw: str | None = response_model
            elif name and name in self.azure_deployments:
                raw = self.azure_deployments[name]
            else:
                raw = name
        else:
            raw = response_model or request_model
        if provider == "bedrock" and request_model and _APP_PROFILE_ARN.match(request_model):
            raw = request_model  # the profile decides the model; a response id may be absent
        if not raw or not raw.strip():
            return NormalizedModel(None, (), "unknown_model")
        return self.normalize(provider, raw)

    def normalize(self, provider: str, model: str) -> NormalizedModel:
        """Normalize one model id reported for ``provider``."""
        text = model.strip()
        region: str | None = None
        if provider == "bedrock":
            resolved = self._resolve_arn(text)
            if resolved is None:
                return NormalizedModel(None, (), "unmapped_inference_profile")
            text = resolved
        text = text.lower()
        while _PATH_PREFIX.match(text):
            text = _PATH_PREFIX.sub("", text, count=1)
        if provider == "bedrock":
            region_match = _REGION_PREFIX.match(text)
            if region_match:
                region = region_match["region"]
                text = text[region_match.end() :]
            text = _VENDOR_PREFIX.sub("", text, count=1)
            if text not in _BEDROCK_KEEP_VERSION:
                for rule in _BEDROCK_RULES:
                    text = rule.pattern.sub(rule.replacement, text)
        else:
            for rule in _SHARED_RULES:
                text = rule.pattern.sub(rule.replacement, text)
        canonical = self._strip_snapshot(provider, text)
        ids = [text, canonical]
        if region is not None:
            ids.insert(0, f"{region}.{text}")
        return NormalizedModel(canonical, tuple(dict.fromkeys(ids)))

    def _resolve_arn(self, text: str) -> str | None:
        if _APP_PROFILE_ARN.match(text):
            profile_id = text.rsplit("/", 1)[-1]
            mapped = self.inference_profiles.get(text) or self.inference_profiles.get(profile_id)
            return self._resolve_arn(mapped) if mapped else None
        arn = _BEDROCK_ARN.match(text)
        return arn["id"] if arn else text

    @staticmethod
    def _strip_snapshot(provider: str, model: str) -> str:
        family = _FAMILY.get(provider)
        if family is None:
            return model
        for suffix in _SNAPSHOT_SUFFIXES[family]:
            stripped = suffix.sub("", model)
            if stripped != model and stripped:
                return stripped
        return model


def _canonical(value: object) -> object:
    """JSON form of a map or collection field (mappings as sorted dicts, sets sorted)."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, tuple):
        return list(value)
    return repr(value)
