"""Moment rules (order, first match, value maps, auto, regex, fields) and the keyword fallback."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from momentos.enrichment.moments import assign_moments, classify_fallback, find_keywords
from momentos.enrichment.settings import MomentRule, MomentsSettings
from momentos.models import MOMENTS


def _settings(*rules: dict[str, Any], threshold: float = 0.6) -> MomentsSettings:
    return MomentsSettings(
        rules=[MomentRule.model_validate(r) for r in rules],
        include_default_rules=False,
        review_threshold=threshold,
    )


def test_default_rules_servicenow_tables_and_jira_types() -> None:
    frame = pd.DataFrame(
        {
            "platform": ["servicenow", "servicenow", "servicenow", "jira", "jira", "jira"],
            "container": ["incident", "change_request", "dmn_demand", "OPS", "APP", "INNO"],
            "kind": ["incident", "change", "demand", "Bug", "Improvement", "Epic"],
            "title": ["x"] * 6,
        }
    )
    out = assign_moments(frame, MomentsSettings())
    assert out["moment"].tolist() == [
        "operation",
        "evolution",
        "innovation",
        "operation",
        "evolution",
        "innovation",
    ]
    assert out["moment_reason"][0] == (
        "rule 'servicenow-operation': platform = servicenow, table = incident"
    )
    assert out["moment_reason"][3] == "rule 'jira-operation': platform = jira, kind = Bug"
    # Demands and epics are mostly innovation: decided, but not sure enough to teach the model.
    assert out["moment_confidence"].tolist() == [0.95, 0.95, 0.85, 0.95, 0.95, 0.85]
    assert not out["needs_review"].any()


def test_configured_rules_run_before_the_defaults_and_replace_them_by_name() -> None:
    settings = MomentsSettings.model_validate(
        {
            "rules": [
                {"name": "sap", "container": "SAP", "moment": "evolution"},
                {"name": "jira-auto", "platform": "jira", "kind": "task", "moment": "operation"},
            ]
        }
    )
    names = [rule.name for rule in settings.effective_rules()]
    assert names[:2] == ["sap", "jira-auto"] and names.count("jira-auto") == 1
    assert "servicenow-operation" in names
    frame = pd.DataFrame(
        {
            "platform": ["jira", "jira", "servicenow"],
            "container": ["SAP", "APP", "incident"],
            "kind": ["bug", "task", "incident"],
        }
    )
    out = assign_moments(frame, settings)
    assert out["moment_rule"].tolist() == ["sap", "jira-auto", "servicenow-operation"]
    assert out["moment"].tolist() == ["evolution", "operation", "operation"]
    only = MomentsSettings(rules=settings.rules, include_default_rules=False)
    assert [rule.name for rule in only.effective_rules()] == ["sap", "jira-auto"]


def test_rules_apply_in_order_and_first_match_wins() -> None:
    settings = _settings(
        {"name": "pilots", "labels": ["pilot"], "moment": "innovation"},
        {"name": "jira-bugs", "platform": "jira", "kind": "bug", "moment": "operation"},
        {"name": "everything-jira", "platform": "jira", "moment": "evolution"},
    )
    frame = pd.DataFrame(
        {
            "platform": ["jira", "jira", "JIRA", "servicenow"],
            "kind": ["bug", "bug", "story", "incident"],
            "labels": [["Pilot", "x"], [], "", None],
            "title": ["a", "b", "c", "d"],
        }
    )
    out = assign_moments(frame, settings)
    assert out["moment_rule"].tolist()[:3] == ["pilots", "jira-bugs", "everything-jira"]
    assert out["moment"].tolist()[:3] == ["innovation", "operation", "evolution"]
    assert out["moment_reason"][0] == "rule 'pilots': label = pilot"
    assert out["moment_rule"][3] == ""  # nothing matched: fallback
    assert out["moment_reason"][3].startswith("no rule matched; ")


def test_all_criteria_must_match() -> None:
    settings = _settings(
        {"name": "sap-fi", "container": "SAP", "category": ["finance", "fi"], "moment": "evolution"}
    )
    frame = pd.DataFrame({"container": ["SAP", "SAP", "HR"], "category": ["FI", "hr", "fi"]})
    out = assign_moments(frame, settings)
    assert out["moment_rule"].tolist() == ["sap-fi", "", ""]
    assert out["moment_reason"][0] == "rule 'sap-fi': container = SAP, category = FI"


def test_value_map_rule_maps_and_falls_through_unmapped_values() -> None:
    settings = _settings(
        {
            "name": "request-types",
            "map_field": "request_type",
            "map": {"Get IT help": "operation", "New idea": "innovation", "Other": "auto"},
        },
        {"name": "rest", "moment": "evolution"},
    )
    frame = pd.DataFrame(
        {
            "request_type": ["get it help", "New idea", "Other", "Something else"],
            "title": ["a", "b", "Upgrade to Java 21", "d"],
        }
    )
    out = assign_moments(frame, settings)
    assert out["moment"].tolist() == ["operation", "innovation", "evolution", "evolution"]
    assert out["moment_rule"].tolist() == [
        "request-types",
        "request-types",
        "request-types",
        "rest",
    ]
    assert out["moment_reason"][0] == "rule 'request-types': request type = get it help"
    # "auto" hands over to the keyword classifier and says so.
    assert out["moment_reason"][2] == (
        "rule 'request-types': request type = Other → auto; keywords: 'upgrade'"
    )
    assert out["moment_reason"][3] == "rule 'rest': matches every item"


def test_auto_rule_uses_fallback_confidence_and_flags_review() -> None:
    settings = _settings({"name": "tasks", "kind": "task", "moment": "auto"})
    frame = pd.DataFrame(
        {
            "kind": ["task", "task"],
            "title": ["Nueva funcionalidad: piloto de IA generativa", "Misc"],
        }
    )
    out = assign_moments(frame, settings)
    assert out["moment"].tolist() == ["innovation", "operation"]
    assert out["moment_rule"].tolist() == ["tasks", "tasks"]
    assert 0.6 <= out["moment_confidence"][0] <= 0.7
    assert out["moment_confidence"][1] == 0.3
    assert out["needs_review"].tolist() == [False, True]
    assert (
        out["moment_reason"][1]
        == "rule 'tasks': kind = task → auto; no keywords; default 'operation'"
    )


def test_title_regex_is_case_insensitive() -> None:
    settings = _settings(
        {"name": "pilot-titles", "title_regex": r"^\[(pilot|piloto)\]", "moment": "innovation"},
    )
    frame = pd.DataFrame({"title": ["[PILOTO] chatbot", "chatbot [pilot]", None]})
    out = assign_moments(frame, settings)
    assert out["moment_rule"].tolist() == ["pilot-titles", "", ""]
    assert out["moment_reason"][0] == r"rule 'pilot-titles': title matches '^\[(pilot|piloto)\]'"


def test_fields_match_columns_and_platform_fields() -> None:
    settings = _settings(
        {"name": "tier", "fields": {"u_tier": "gold"}, "moment": "innovation"},
        {"name": "component", "fields": {"components": ["Billing"]}, "moment": "evolution"},
        {"name": "column", "fields": {"priority": "1"}, "moment": "operation"},
    )
    frame = pd.DataFrame(
        {
            "priority": ["3", "3", "1", "3"],
            "fields": [
                {"u_tier": {"display_value": "Gold", "value": "g"}},
                {"components": [{"name": "Billing"}, {"name": "Web"}]},
                {},
                '{"u_tier": "gold"}',  # JSON text from a file
            ],
        }
    )
    out = assign_moments(frame, settings)
    assert out["moment_rule"].tolist() == ["tier", "component", "column", "tier"]
    assert out["moment_reason"][0] == "rule 'tier': u_tier = gold"
    assert out["moment_reason"][1] == "rule 'component': components = billing"


def test_container_aliases_and_labels_from_text() -> None:
    settings = _settings(
        {"name": "ops", "container": "OPS", "labels": "urgent", "moment": "operation"}
    )
    frame = pd.DataFrame({"project": ["OPS", "OPS"], "labels": ["vpn, urgent", '["x"]']})
    out = assign_moments(frame, settings)
    assert out["moment_rule"].tolist() == ["ops", ""]


def test_fallback_bilingual_keywords_and_reason() -> None:
    frame = pd.DataFrame(
        {
            "title": [
                "Nueva funcionalidad y upgrade",
                "La impresora no funciona",
                "Improve the report performance",
                "Proof of concept for a new product",
                "",
            ],
            "description": ["", "desde ayer", "", "", None],
            "kind": ["", "", "", "", "story"],
        },
        index=[10, 11, 12, 13, 14],
    )
    out = classify_fallback(frame)
    assert list(out.index) == [10, 11, 12, 13, 14]
    assert out["moment"].tolist() == [
        "innovation",
        "operation",
        "evolution",
        "innovation",
        "evolution",
    ]
    assert out["reason"][10] == "keywords: 'nueva funcionalidad'; also evolution: 'upgrade'"
    assert out["reason"][11] == "keywords: 'no funciona', 'impresora'"
    assert out["reason"][14] == "no keywords; default for kind 'story'"
    assert (out["confidence"] <= 0.7).all()
    # A contested guess is less sure than a clear one.
    assert out["confidence"][10] < out["confidence"][13]


def test_find_keywords_whole_words_plurals_and_accents() -> None:
    assert find_keywords("Mejoras en los informes") == ["mejora", "informe"]
    assert find_keywords("migracion y MIGRACIÓN") == ["migracion", "migracion"]
    assert find_keywords("poco a poco") == []  # "poc" is a whole word only
    assert find_keywords("Cambio de contraseña") == ["cambio de contraseña"]  # ñ is kept


def test_keywords_belong_to_one_moment_only() -> None:
    from momentos.enrichment import lexicon as lx

    seen: dict[str, str] = {}
    for moment, keywords in lx.MOMENT_KEYWORDS.items():
        assert moment in MOMENTS
        for keyword in keywords:
            key = lx.deaccent(keyword).lower()
            assert seen.setdefault(key, moment) == moment, keyword


def test_bad_values_still_get_a_moment() -> None:
    frame = pd.DataFrame(
        {
            "platform": [None, 3, ["jira"], np.nan],
            "kind": [{"a": 1}, None, "bug", 1.5],
            "title": [None, 42, "x" * 200_000, float("nan")],
            "labels": [None, 5, {"a"}, "a;b"],
        }
    )
    out = assign_moments(frame, MomentsSettings())
    assert set(out["moment"]) <= set(MOMENTS)
    assert out["moment_reason"].map(lambda r: isinstance(r, str) and r != "").all()
