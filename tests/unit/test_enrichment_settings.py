"""Settings models for ``moments:`` and ``experience:``: shapes, defaults and every error."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from momentos.enrichment.settings import (
    DEFAULT_WEIGHTS,
    ExperienceSettings,
    MomentRule,
    MomentsSettings,
    default_rules,
)


def test_yaml_shaped_sections_load() -> None:
    moments = MomentsSettings.model_validate(
        {
            "review_threshold": 0.5,
            "rules": [
                {
                    "name": "sap",
                    "platform": "jira",
                    "container": ["SAP", "FI"],
                    "moment": "evolution",
                },
                {"name": "tags", "labels": "pilot", "moment": "innovation", "confidence": 0.8},
                {"name": "by-type", "map_field": "fields.issuetype", "map": {"Bug": "operation"}},
                {"name": "numbers", "fields": {"u_tier": 3}, "moment": "operation"},
            ],
        }
    )
    assert [r.name for r in moments.rules] == ["sap", "tags", "by-type", "numbers"]
    assert moments.rules[1].labels == ["pilot"]
    assert moments.rules[2].map == {"bug": "operation"}  # keys compare case-insensitively
    assert moments.rules[3].fields == {"u_tier": ["3"]}  # YAML ints compare as text

    experience = ExperienceSettings.model_validate(
        {"weights": {"operation": {"chasers": 40}}, "levels": {"good": 80}, "language": "es"}
    )
    assert experience.weights["operation"]["chasers"] == 40
    # Partial weights merge over the defaults instead of dropping the rest.
    assert (
        experience.weights["operation"]["sla_breached"]
        == DEFAULT_WEIGHTS["operation"]["sla_breached"]
    )
    assert experience.weights["innovation"] == DEFAULT_WEIGHTS["innovation"]
    assert experience.levels.good == 80 and experience.levels.fair == 55


def test_defaults() -> None:
    moments = MomentsSettings()
    assert moments.rules == [] and moments.include_default_rules
    assert [r.name for r in moments.effective_rules()] == [r.name for r in default_rules()]
    assert moments.review_threshold == 0.6
    experience = ExperienceSettings()
    assert experience.language == "en"
    assert (experience.levels.good, experience.levels.fair, experience.levels.at_risk) == (
        75,
        55,
        35,
    )


def test_default_rules_cover_the_shipped_mapping() -> None:
    rules = {r.name: r for r in default_rules()}
    assert {"incident", "sc_req_item", "problem"} <= set(
        rules["servicenow-operation"].container or []
    )
    assert {"change_request", "rm_enhancement"} <= set(
        rules["servicenow-evolution"].container or []
    )
    assert {"dmn_demand", "pm_project", "pm_project_task"} <= set(
        rules["servicenow-innovation"].container or []
    )
    assert {"incident", "service request", "problem", "bug", "support"} <= set(
        rules["jira-operation"].kind or []
    )
    assert set(rules["jira-evolution"].kind or []) >= {"change", "improvement"}
    assert set(rules["jira-innovation"].kind or []) >= {"idea", "epic", "initiative"}
    assert rules["jira-auto"].moment == "auto"
    assert {"task", "story", "sub-task"} <= set(rules["jira-auto"].kind or [])


def _rule(**changes: Any) -> dict[str, Any]:
    return {"name": "r", "moment": "operation", **changes}


@pytest.mark.parametrize(
    ("section", "data", "message"),
    [
        ("moments", {"rules": [_rule(moment="support")]}, "operation"),
        ("moments", {"rules": [_rule(map_field="kind", map={"bug": "operation"})]}, "not both"),
        ("moments", {"rules": [{"name": "r", "kind": "bug"}]}, "give a decision"),
        ("moments", {"rules": [{"name": "r", "map": {"bug": "operation"}}]}, "go together"),
        ("moments", {"rules": [{"name": "r", "map_field": "kind", "map": {"bug": "ops"}}]}, "ops"),
        ("moments", {"rules": [_rule(title_regex="([unclosed")]}, "invalid regular expression"),
        ("moments", {"rules": [_rule(kind=[])]}, "empty list"),
        ("moments", {"rules": [_rule(colour="red")]}, "Extra inputs"),
        ("moments", {"rules": [_rule(), _rule()]}, "unique"),
        ("moments", {"rules": [_rule(confidence=1.5)]}, "less than or equal"),
        ("moments", {"review_threshold": -1}, "greater than or equal"),
        ("experience", {"weights": {"ops": {"chasers": 1}}}, "ops"),
        ("experience", {"weights": {"operation": {"mood": 1}}}, "mood"),
        ("experience", {"weights": {"operation": {"chasers": -5}}}, "greater than or equal"),
        ("experience", {"levels": {"good": 50, "fair": 60}}, "descend"),
        ("experience", {"language": "fr"}, "'en' or 'es'"),
        (
            "experience",
            {"chaser_patterns": ["any update", "(broken"]},
            "invalid regular expression",
        ),
        ("experience", {"age_target_days": {"operation": 0}}, "greater than"),
    ],
)
def test_validation_errors(section: str, data: dict[str, Any], message: str) -> None:
    model = MomentsSettings if section == "moments" else ExperienceSettings
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    assert message in str(caught.value)


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        MomentsSettings.model_validate(
            {
                "rules": [
                    _rule(name="a", moment="undefined"),
                    _rule(name="b", map_field="kind", map={"x": "operation"}),
                    _rule(name="c", title_regex="*"),
                ]
            }
        )
    locations = {error["loc"][:2] for error in caught.value.errors()}
    assert locations == {("rules", 0), ("rules", 1), ("rules", 2)}


def test_rule_is_plain_pydantic() -> None:
    rule = MomentRule(name="x", title_regex=r"^\[pilot\]", moment="innovation")
    assert rule.model_dump()["title_regex"] == r"^\[pilot\]"


def test_yaml_example_parses() -> None:
    yaml = pytest.importorskip("yaml")
    document = yaml.safe_load(
        r"""
moments:
  review_threshold: 0.6
  rules:
    - name: sap-evolutives
      platform: jira
      container: [SAP, FI]
      labels: evolutivo
      moment: evolution
    - name: pilots-by-title
      title_regex: '^\[(pilot|piloto)\]'
      moment: innovation
      confidence: 0.9
    - name: jsm-request-types
      platform: jira
      map_field: request_type
      map: {Get IT help: operation, Suggest an idea: innovation, Other: auto}
    - name: tier-field
      fields: {u_business_tier: [gold, platinum]}
      moment: innovation
experience:
  language: es
  levels: {good: 75, fair: 55, at_risk: 35}
  weights:
    operation: {chasers: 35, sla_breached: 25}
  age_target_days: {operation: 3}
  chaser_patterns: ['qu[eé] hay de lo m[ií]o']
"""
    )
    moments = MomentsSettings.model_validate(document["moments"])
    experience = ExperienceSettings.model_validate(document["experience"])
    assert [r.name for r in moments.effective_rules()][:4] == [
        "sap-evolutives",
        "pilots-by-title",
        "jsm-request-types",
        "tier-field",
    ]
    assert experience.weights["operation"]["chasers"] == 35
    assert experience.age_target_days == {"operation": 3, "evolution": 30, "innovation": 90}
