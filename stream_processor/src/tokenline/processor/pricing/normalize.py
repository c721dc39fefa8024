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
  ``gemini-1.5-pro-002``;
* Vertex AI: resource paths (``projects/p/locations/l/publishers/google/models/…``) removed,
  Claude's Vertex name ``claude-sonnet-4-5@20250929`` read as ``claude-sonnet-4-5-20250929``
  (canonical ``claude-sonnet-4-5``), other version tags (``@001``, ``@default``) kept in the
  specific id and removed from the canonical one.

The canonical id (``gpt-4o``, ``claude-sonnet-4-5``, ``gemini-2.5-pro``) names the model in
rollups. Because a dated snapshot, a model version or a regional endpoint can have its own
price, the price lookup tries ``lookup_ids`` in order, most specific first: the
cross-region profile id (Bedrock only, ``us.claude-sonnet-4-5-20250929``), the versioned
id (Bedrock only, ``titan-embed-text-v2:0``), the dated id, then the canonical id.

Where a call was processed is ``NormalizedModel.region``: the AWS region of a Bedrock call
(the event's ``region``), the data zone of an Azure deployment (``eu``, ``us``, ``apac``,
``us-gov``, ``global``, ``global-standard``: from the deployment map, ``prod: eu/gpt-4o``,
else from the event's ``region`` when it names a zone or an Azure Government region).
:func:`base_rate_applies` says where a model's base price holds when the table has no
price for that region.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

__all__ = [
    "AZURE_DATA_ZONES",
    "AZURE_ZONES",
    "BEDROCK_BASE_REGIONS",
    "BEDROCK_REGION_PREFIXES",
    "NormalizedModel",
    "Normalizer",
    "base_rate_applies",
    "without_version",
]

BEDROCK_REGION_PREFIXES = ("us-gov", "global", "apac", "us", "eu", "jp", "au", "ca", "in")
# Azure OpenAI data zones, priced apart from the Global deployment price (the base price).
AZURE_DATA_ZONES = ("us-gov", "apac", "eu", "us")
AZURE_ZONES = ("global-standard", "global", *AZURE_DATA_ZONES)
# The AWS regions whose on-demand Bedrock price is the base price of LiteLLM's list.
BEDROCK_BASE_REGIONS = frozenset({"us-east-1", "us-east-2", "us-west-1", "us-west-2"})

_AZURE_ZONE_PATH = re.compile(rf"^(?P<zone>{'|'.join(AZURE_ZONES)})/")
_AWS_REGION_PATH = re.compile(r"^(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-\d+)/")

# Path prefixes that SDKs and LiteLLM put before a model name.
_PATH_PREFIX = re.compile(
    r"^(?:openai|azure|azure_ai|anthropic|gemini|vertex_ai|google|bedrock|bedrock_converse"
    r"|converse|invoke|models|publishers/(?:google|anthropic)/models"
    r"|projects/[^/]+/locations/[^/]+)/"
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
)
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")

# Suffixes that name a dated snapshot: stripped for the canonical id, kept for the
# specific id. One row per provider family.
_SNAPSHOT_SUFFIXES: Mapping[str, tuple[re.Pattern[str], ...]] = {
    "openai": (re.compile(r"-\d{4}-\d{2}-\d{2}$"), re.compile(r"-(?:0[1-9]|1[0-2])\d{2}$")),
    "anthropic": (re.compile(r"-\d{8}$"), re.compile(r"-latest$")),
    "gemini": (re.compile(r"-\d{3}$"), re.compile(r"-latest$")),
    # Vertex AI: Claude's ``@20250929`` (already ``-20250929``), Gemini's ``-002``, and
    # Vertex's other version tags (``@001``, ``@latest``, ``@default``).
    "vertex_ai": (
        re.compile(r"@[a-z0-9.-]+$"),
        re.compile(r"-\d{8}$"),
        re.compile(r"-\d{3}$"),
        re.compile(r"-latest$"),
    ),
}
_FAMILY = {
    "openai": "openai",
    "azure_openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "anthropic",
    "gemini": "gemini",
    "vertex_ai": "vertex_ai",
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
    region: str | None = None

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
        region: str | None = None,
    ) -> NormalizedModel:
        """Normalize the model of one event.

        Azure: the model from ``response_model`` when present, else the configured model of
        the deployment (``deployment``, or ``request_model``, which the Azure SDKs fill with
        the deployment name), else the deployment name itself. The data zone comes from the
        deployment map (``eu/gpt-4o``), else from ``region``. Bedrock: the request model (the
        model id, inference profile or profile ARN the call was billed under), else the
        response model. Other providers: the response model when present (it is the more
        specific), else the request model; ``region`` is the Bedrock call's AWS region.
        """
        if provider == "azure_openai":
            name = deployment or request_model
            mapped = self.azure_deployments.get(name) if name else None
            zone_match = _AZURE_ZONE_PATH.match(_strip_path(mapped.lower())) if mapped else None
            if zone_match:
                region = zone_match["zone"]
            if response_model:
                raw: str | None = response_model
                if zone_match:
                    raw = f"{zone_match['zone']}/{response_model}"
            elif mapped:
                raw = mapped
            else:
                raw = name
        elif provider == "bedrock":
            # Bedrock bills the model id the call named (a cross-region profile such as
            # ``us.anthropic...`` carries its own rate); a body's ``model`` is the vendor's
            # short name, which loses the profile.
            raw = request_model or response_model
        else:
            raw = response_model or request_model
        if not raw or not raw.strip():
            return NormalizedModel(None, (), "unknown_model")
        return self.normalize(provider, raw, region)

    def normalize(self, provider: str, model: str, region: str | None = None) -> NormalizedModel:
        """Normalize one model id reported for ``provider`` (called in ``region``, if known).

        A region or zone path segment (``azure/eu/gpt-4o``, ``bedrock/eu-central-1/…``)
        sets the region; otherwise ``region`` is taken as the call's region.
        """
        text = model.strip()
        geo: str | None = None
        if provider == "bedrock":
            resolved = self._resolve_arn(text)
            if resolved is None:
                return NormalizedModel(None, (), "unmapped_inference_profile")
            text = resolved
        text = _strip_path(text.lower())
        scope = _scope(provider, region)
        path_scope = _AZURE_ZONE_PATH if provider == "azure_openai" else _AWS_REGION_PATH
        if provider in ("azure_openai", "bedrock") and (found := path_scope.match(text)):
            scope = found[1]
            text = _strip_path(text[found.end() :])
        versioned = text
        if provider == "bedrock":
            region_match = _REGION_PREFIX.match(text)
            if region_match:
                geo = region_match["region"]
                text = text[region_match.end() :]
            text = _VENDOR_PREFIX.sub("", text, count=1)
            versioned = text
            if text not in _BEDROCK_KEEP_VERSION:
                for rule in _BEDROCK_RULES:
                    text = rule.pattern.sub(rule.replacement, text)
                versioned = text
                text = without_version(text)
        else:
            for rule in _SHARED_RULES:
                text = rule.pattern.sub(rule.replacement, text)
            versioned = text
        canonical = self._strip_snapshot(provider, text)
        ids = [versioned, text, canonical]
        if geo is not None:
            ids[:0] = [f"{geo}.{versioned}", f"{geo}.{text}"]
        return NormalizedModel(canonical, tuple(dict.fromkeys(ids)), region=scope)

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


def without_version(model_id: str) -> str:
    """A Bedrock id without its version suffix: ``titan-embed-text-v2:0`` → ``titan-embed-text``."""
    if model_id in _BEDROCK_KEEP_VERSION:
        return model_id
    return _VERSION_SUFFIX.sub("", model_id)


def base_rate_applies(provider: str, region: str, priced_regions: frozenset[str]) -> bool:
    """Whether a model's base price holds in ``region`` when the table has no price there.

    ``priced_regions`` are the regions (zones) that have a price of their own for the model.

    * Azure: a data zone (``eu``, ``us``, ``apac``, ``us-gov``) has its own price list, so
      the base (Global deployment) price never stands in for it; ``global`` and
      ``global-standard`` are the base price.
    * Bedrock: the base price is the US East / US West on-demand price. Elsewhere it holds
      only where the map prices the model the same everywhere, that is it lists no region of
      the same partition (commercial, or GovCloud ``us-gov-*``) with a price of its own.
    * Every other provider has one price wherever it is called.
    """
    if provider == "azure_openai":
        return region not in AZURE_DATA_ZONES
    if provider == "bedrock":
        if region in BEDROCK_BASE_REGIONS:
            return True
        gov = region.startswith("us-gov-")
        return not any(r.startswith("us-gov-") == gov for r in priced_regions)
    return True


def _strip_path(text: str) -> str:
    while _PATH_PREFIX.match(text):
        text = _PATH_PREFIX.sub("", text, count=1)
    return text


def _scope(provider: str, region: str | None) -> str | None:
    """The region an event's ``region`` field names for pricing, if any."""
    if not region or not region.strip():
        return None
    text = region.strip().lower()
    if provider == "bedrock":
        return text
    if provider == "azure_openai":
        if text in AZURE_ZONES:
            return text
        if text.startswith("usgov"):  # Azure Government: usgovvirginia, usgovarizona, ...
            return "us-gov"
    return None
