"""Host normalization and attribution: which cloud, cluster and service, which team pays.

Attribution rules come from the operator's config. A rule matches when every criterion it
sets matches (shell-style globs on tenant, service, namespace and hostname); the first
matching rule wins. The event's own ``team`` is kept when the rule sets none.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenline.schemas import Attribution, Host, UsageEvent

__all__ = [
    "AttributionRule",
    "RulesError",
    "enrich",
    "load_rules",
    "normalize_cloud",
    "parse_rules",
]

_CLOUDS = {
    "aws": "aws",
    "amazon": "aws",
    "ec2": "aws",
    "gcp": "gcp",
    "google": "gcp",
    "gce": "gcp",
    "azure": "azure",
    "microsoft": "azure",
}
_CLUSTER_TAGS = ("cluster", "k8s_cluster", "k8s.cluster", "kubernetes_cluster")
# Deployment pods are named <deployment>-<replicaset hash>-<5 chars>.
_POD_SUFFIX = re.compile(r"-[a-z0-9]{5,10}-[a-z0-9]{5}$")


class RulesError(ValueError):
    """The attribution rules are invalid; ``problems`` lists every one."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class AttributionRule:
    """Criteria (globs; ``None`` matches anything) and what a match attributes (one at least)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # read by parse_rules' validation

    tenant: str | None = None
    service: str | None = None
    namespace: str | None = None
    hostname: str | None = None
    team: str | None = None
    cost_center: str | None = None

    def __post_init__(self) -> None:
        if self.team is None and self.cost_center is None:
            msg = "a rule must set team or cost_center"
            raise ValueError(msg)

    def matches(
        self, tenant: str, service: str | None, namespace: str | None, hostname: str | None
    ) -> bool:
        """Whether every criterion this rule sets matches."""
        pairs = (
            (self.tenant, tenant),
            (self.service, service),
            (self.namespace, namespace),
            (self.hostname, hostname),
        )
        return all(
            pattern is None or (value is not None and fnmatchcase(value, pattern))
            for pattern, value in pairs
        )


def normalize_cloud(value: str | None) -> str | None:
    """Canonical cloud name (aws, gcp, azure) or the lower-cased input."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    for prefix, name in _CLOUDS.items():
        if text.startswith(prefix):
            return name
    return text


def _clean(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _service(host: Host) -> str | None:
    service = _clean(host["service_name"])
    if service is not None:
        return service
    pod = _clean(host["k8s_pod"])
    if pod is not None and _POD_SUFFIX.search(pod):
        return _POD_SUFFIX.sub("", pod)
    return None


@functools.lru_cache(maxsize=4096)
def _host_facts(host: tuple[tuple[str, str | None], ...]) -> tuple[str | None, ...]:
    """Service, namespace, host name, cloud and region of a host record.

    Cached: every event of an SDK process carries the same host record.
    """
    record: Any = dict(host)
    return (
        _service(record),
        _clean(record["k8s_namespace"]),
        _clean(record["hostname"]),
        normalize_cloud(record["cloud"]),
        _clean(record["region"]),
    )


def enrich(event: UsageEvent, rules: Sequence[AttributionRule] = ()) -> Attribution:
    """Normalize the event's host record and attribute it with the first matching rule.

    The result is the contract's ``Attribution``: the fields it adds to the PricedUsageEvent.
    """
    service, namespace, hostname, cloud, region = _host_facts(tuple(event["host"].items()))
    tags = event["tags"]
    cluster = None
    if tags:
        for tag in _CLUSTER_TAGS:
            if tags.get(tag):
                cluster = _clean(tags[tag])
                break
    team, cost_center = event["team"], None
    for rule in rules:
        if rule.matches(event["tenant_id"], service, namespace, hostname):
            team = rule.team or team
            cost_center = rule.cost_center
            break
    return {
        "team": team,
        "cost_center": cost_center,
        "cloud": cloud,
        "cloud_region": region,
        "cluster": cluster,
        "namespace": namespace,
        "service": service,
    }


_RULE = TypeAdapter(AttributionRule)


def parse_rules(data: Any, source: str = "<rules>") -> tuple[AttributionRule, ...]:
    """Rules from a list of mappings (or ``{"attribution": [...]}``), all problems at once."""
    if isinstance(data, dict):
        data = data.get("attribution", [])
    if data is None:
        return ()
    if not isinstance(data, list):
        raise RulesError(source, ["attribution must be a list of rules"])
    rules: list[AttributionRule] = []
    problems: list[str] = []
    for index, item in enumerate(data):
        try:
            rules.append(_RULE.validate_python(item))
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(part) for part in err["loc"])
                problems.append(f"attribution[{index}]{'.' + where if where else ''}: {err['msg']}")
    if problems:
        raise RulesError(source, problems)
    return tuple(rules)


def load_rules(path: Path | str) -> tuple[AttributionRule, ...]:
    """Rules from a YAML file (a list, or a mapping with an ``attribution`` list)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RulesError(str(path), [str(exc)]) from exc
    return parse_rules(data, str(path))
