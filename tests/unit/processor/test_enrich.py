from __future__ import annotations

import pytest

from tests.factories import host, usage_event
from tokenline.processor.enrich import (
    AttributionRule,
    RulesError,
    enrich,
    normalize_cloud,
    parse_rules,
)

pytestmark = pytest.mark.unit


def test_host_is_normalized() -> None:
    event = usage_event(host=host(cloud="Amazon EC2"), tags={"cluster": "prod-eu"})
    result = enrich(event)
    assert (result["cloud"], result["cloud_region"]) == ("aws", "eu-west-1")
    assert (result["cluster"], result["namespace"], result["service"]) == (
        "prod-eu",
        "search",
        "search-api",
    )
    assert (result["team"], result["cost_center"]) == ("relevance", None)


def test_service_falls_back_to_the_deployment_of_the_pod() -> None:
    event = usage_event(host=host(service_name=None, k8s_pod="ranker-5d8f7b9c4-x2k9p"))
    assert enrich(event)["service"] == "ranker"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("GCP", "gcp"), ("google_cloud", "gcp"), ("azure", "azure"), ("", None), ("onprem", "onprem")],
)
def test_cloud_names(given: str, expected: str | None) -> None:
    assert normalize_cloud(given) == expected


def test_first_matching_rule_wins() -> None:
    rules = parse_rules(
        [
            {"tenant": "globex", "team": "never", "cost_center": "CC-0"},
            {
                "namespace": "sea*",
                "hostname": "api-*",
                "team": "search-team",
                "cost_center": "CC-1",
            },
            {"tenant": "*", "team": "fallback", "cost_center": "CC-9"},
        ]
    )
    result = enrich(usage_event(), rules)
    assert (result["team"], result["cost_center"]) == ("search-team", "CC-1")


def test_event_team_is_kept_when_the_rule_sets_none() -> None:
    rules = (AttributionRule(service="search-api", cost_center="CC-7"),)
    result = enrich(usage_event(team="relevance"), rules)
    assert (result["team"], result["cost_center"]) == ("relevance", "CC-7")


def test_criteria_on_missing_fields_do_not_match() -> None:
    rules = (AttributionRule(namespace="*", team="k8s"),)
    event = usage_event(host=host(k8s_namespace=None))
    assert enrich(event, rules)["team"] == "relevance"


def test_rules_report_every_problem() -> None:
    with pytest.raises(RulesError) as info:
        parse_rules({"attribution": [{"tenant": "a"}, {"team": "x", "colour": "red"}]})
    assert len(info.value.problems) == 2
    assert "must set team or cost_center" in info.value.problems[0]
    assert info.value.problems[1].startswith("attribution[1].colour: ")


def test_a_rule_that_attributes_nothing_is_refused_however_it_is_made() -> None:
    with pytest.raises(ValueError, match="must set team or cost_center"):
        AttributionRule(tenant="acme")
