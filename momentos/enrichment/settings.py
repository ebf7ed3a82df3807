"""Typed settings for enrichment: moment rules (YAML key ``moments:``) and experience scoring
(YAML key ``experience:``).

The config loader embeds these models; nothing here reads files. Every model forbids unknown
keys, and every problem is a normal pydantic ``ValidationError`` so the loader can report all of
them at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Moment = Literal["operation", "evolution", "innovation"]
RuleMoment = Literal["operation", "evolution", "innovation", "auto"]
Signal = Literal[
    "sentiment",
    "chasers",
    "reopen_count",
    "reassignment_count",
    "sla_breached",
    "survey_score",
    "age_days",
]

#: Signals in the order they are computed, written to ``signals`` and weighed.
SIGNALS: tuple[str, ...] = (
    "sentiment",
    "chasers",
    "reopen_count",
    "reassignment_count",
    "sla_breached",
    "survey_score",
    "age_days",
)

#: Criteria a rule can match on, in the order they appear in reasons.
CRITERIA: tuple[str, ...] = (
    "source",
    "platform",
    "container",
    "kind",
    "category",
    "request_type",
    "labels",
)

# Points (on the 0-100 scale) that each signal can take away at full severity, per moment.
# Operation is where waiting, chasing and SLA breaches hurt most; innovation is judged mostly
# by how the people co-creating it feel, so sentiment weighs more and process counters less.
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "operation": {
        "sentiment": 30.0,
        "chasers": 30.0,
        "reopen_count": 25.0,
        "reassignment_count": 15.0,
        "sla_breached": 20.0,
        "survey_score": 30.0,
        "age_days": 10.0,
    },
    "evolution": {
        "sentiment": 30.0,
        "chasers": 25.0,
        "reopen_count": 20.0,
        "reassignment_count": 10.0,
        "sla_breached": 10.0,
        "survey_score": 25.0,
        "age_days": 10.0,
    },
    "innovation": {
        "sentiment": 35.0,
        "chasers": 25.0,
        "reopen_count": 10.0,
        "reassignment_count": 5.0,
        "sla_breached": 5.0,
        "survey_score": 25.0,
        "age_days": 5.0,
    },
}

#: Days an item may take (resolved - created, or now - created while open) before age counts.
DEFAULT_AGE_TARGET_DAYS: dict[str, float] = {
    "operation": 5.0,
    "evolution": 30.0,
    "innovation": 90.0,
}

StrList = list[str]


def _as_str_list(value: Any) -> Any:
    """YAML gives ints and bools for values like ``10100`` or ``yes``; compare them as text."""
    if value is None:
        return None
    if isinstance(value, (str, int, float, bool)):
        return [str(value)]
    if isinstance(value, (list, tuple)):
        return [str(v) if isinstance(v, (int, float, bool)) else v for v in value]
    return value


def _compile_pattern(pattern: str) -> str:
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return pattern


class MomentRule(BaseModel):
    """One mapping rule: every given criterion must match (AND); the first matching rule wins.

    Criteria compare case-insensitively and accept one value or a list of values (any of them);
    ``labels`` matches when the item has any of the listed labels. ``fields`` matches any item
    column or platform field (``Item.fields``) by name; prefix ``fields.`` to force the latter.
    The decision is either a fixed ``moment`` or a value map (``map_field`` + ``map``); a rule
    that maps to ``auto`` hands the item to the keyword classifier.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    source: StrList | None = None
    platform: StrList | None = None
    container: StrList | None = None
    kind: StrList | None = None
    category: StrList | None = None
    request_type: StrList | None = None
    labels: StrList | None = None
    fields: dict[str, StrList] = Field(default_factory=dict)
    title_regex: str | None = None
    moment: RuleMoment | None = None
    map_field: str | None = None
    map: dict[str, RuleMoment] | None = None
    confidence: float = Field(default=0.95, ge=0.0, le=1.0)

    @field_validator(*CRITERIA, mode="before")
    @classmethod
    def _criterion_list(cls, value: Any) -> Any:
        return _as_str_list(value)

    @field_validator(*CRITERIA)
    @classmethod
    def _criterion_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty list never matches; leave the criterion out instead")
        return value

    @field_validator("fields", mode="before")
    @classmethod
    def _fields_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): _as_str_list(v) for k, v in value.items()}
        return value

    @field_validator("fields")
    @classmethod
    def _field_values_not_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        empty = [name for name, values in value.items() if not values]
        if empty:
            raise ValueError(f"an empty list never matches: {', '.join(empty)}")
        return value

    @field_validator("map", mode="before")
    @classmethod
    def _map_keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).strip().lower(): v for k, v in value.items()}
        return value

    @field_validator("title_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        return None if value is None else _compile_pattern(value)

    @model_validator(mode="after")
    def _one_decision(self) -> MomentRule:
        has_map = self.map is not None or self.map_field is not None
        if self.moment is not None and has_map:
            raise ValueError("give either 'moment' or 'map_field' + 'map', not both")
        if self.moment is None and not has_map:
            raise ValueError("give a decision: 'moment' or 'map_field' + 'map'")
        if has_map and (self.map is None or not self.map_field):
            raise ValueError("'map_field' and 'map' go together")
        if self.map is not None and not self.map:
            raise ValueError("'map' must map at least one value")
        return self


class MomentsSettings(BaseModel):
    """The ``moments:`` section: ordered rules (first match wins) and the review threshold.

    The shipped ``default_rules()`` run after the configured ones unless
    ``include_default_rules`` is false, so a config only lists what is special about its
    data; a configured rule with a default rule's name replaces that default.
    """

    model_config = ConfigDict(extra="forbid")

    rules: list[MomentRule] = Field(default_factory=list)
    include_default_rules: bool = True
    review_threshold: float = Field(default=0.6, ge=0.0, le=1.0)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[MomentRule]) -> list[MomentRule]:
        seen: set[str] = set()
        duplicates: set[str] = set()
        for rule in rules:
            (duplicates if rule.name in seen else seen).add(rule.name)
        if duplicates:
            raise ValueError(
                f"rule names must be unique; repeated: {', '.join(sorted(duplicates))}"
            )
        return rules

    def effective_rules(self) -> list[MomentRule]:
        """The rules in the order they apply: configured ones, then the unreplaced defaults."""
        if not self.include_default_rules:
            return list(self.rules)
        taken = {rule.name for rule in self.rules}
        return [*self.rules, *(rule for rule in default_rules() if rule.name not in taken)]


class ExperienceLevels(BaseModel):
    """Lowest score of each level; below ``at_risk`` the level is ``poor``."""

    model_config = ConfigDict(extra="forbid")

    good: float = Field(default=75.0, ge=0.0, le=100.0)
    fair: float = Field(default=55.0, ge=0.0, le=100.0)
    at_risk: float = Field(default=35.0, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _descending(self) -> ExperienceLevels:
        if not self.good > self.fair > self.at_risk:
            raise ValueError(
                "levels must descend: good > fair > at_risk "
                f"(got {self.good:g}, {self.fair:g}, {self.at_risk:g})"
            )
        return self


Weight = Annotated[float, Field(ge=0.0, le=100.0)]


class ExperienceSettings(BaseModel):
    """The ``experience:`` section: per-moment signal weights, levels, reason language."""

    model_config = ConfigDict(extra="forbid")

    #: Points each signal can take away at full severity (sentiment and survey can also add).
    #: Partial maps are merged over the defaults, so ``{operation: {chasers: 40}}`` is enough.
    weights: dict[Moment, dict[Signal, Weight]] = Field(
        default_factory=lambda: {m: dict(w) for m, w in DEFAULT_WEIGHTS.items()}
    )
    age_target_days: dict[Moment, Annotated[float, Field(gt=0.0)]] = Field(
        default_factory=lambda: dict(DEFAULT_AGE_TARGET_DAYS)
    )
    levels: ExperienceLevels = Field(default_factory=ExperienceLevels)
    language: Literal["en", "es"] = "en"
    #: Extra regular expressions (case-insensitive) for requester comments that chase status;
    #: added to the built-in English and Spanish ones.
    chaser_patterns: list[str] = Field(default_factory=list)
    max_reasons: int = Field(default=3, ge=1, le=7)

    @field_validator("weights", mode="before")
    @classmethod
    def _merge_weights(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[Any, Any] = {m: dict(w) for m, w in DEFAULT_WEIGHTS.items()}
        for moment, weights in value.items():
            if moment in merged and isinstance(weights, dict):
                merged[moment].update(weights)
            else:
                merged[moment] = weights  # unknown moment or bad shape: let validation say so
        return merged

    @field_validator("age_target_days", mode="before")
    @classmethod
    def _merge_targets(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {**DEFAULT_AGE_TARGET_DAYS, **value}

    @field_validator("chaser_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        errors = []
        for pattern in value:
            try:
                _compile_pattern(pattern)
            except ValueError as exc:
                errors.append(str(exc))
        if errors:
            raise ValueError("; ".join(errors))
        return value


def default_rules() -> list[MomentRule]:
    """The shipped mapping: ServiceNow tables, Jira issue types, then any source by ``kind``.

    Jira ``Task``, ``Story`` and ``Sub-task`` can be any moment, so they go to the keyword
    classifier (``auto``); so do items no rule matches.
    """
    return [
        MomentRule(
            name="servicenow-operation",
            platform="servicenow",
            container=[
                "incident",
                "sc_req_item",
                "sc_request",
                "sc_task",
                "problem",
                "incident_task",
                "problem_task",
            ],
            moment="operation",
        ),
        MomentRule(
            name="servicenow-evolution",
            platform="servicenow",
            container=["change_request", "change_task", "rm_enhancement"],
            moment="evolution",
        ),
        MomentRule(
            name="servicenow-innovation",
            platform="servicenow",
            container=["dmn_demand", "pm_project", "pm_project_task"],
            moment="innovation",
        ),
        MomentRule(
            name="jira-operation",
            platform="jira",
            kind=[
                "incident",
                "service request",
                "service request with approvals",
                "request",
                "problem",
                "bug",
                "support",
                "question",
            ],
            moment="operation",
        ),
        MomentRule(
            name="jira-evolution",
            platform="jira",
            kind=["change", "improvement", "enhancement"],
            moment="evolution",
        ),
        MomentRule(
            name="jira-innovation",
            platform="jira",
            kind=["idea", "epic", "initiative"],
            moment="innovation",
        ),
        MomentRule(
            name="jira-auto",
            platform="jira",
            kind=["task", "story", "sub-task", "subtask"],
            moment="auto",
        ),
        # Files and third-party connectors: the contract's normalized kinds.
        MomentRule(
            name="by-kind",
            map_field="kind",
            map={
                "incident": "operation",
                "request": "operation",
                "service request": "operation",
                "problem": "operation",
                "bug": "operation",
                "support": "operation",
                "question": "operation",
                "change": "evolution",
                "improvement": "evolution",
                "enhancement": "evolution",
                "demand": "innovation",
                "project": "innovation",
                "idea": "innovation",
                "epic": "innovation",
                "initiative": "innovation",
                "story": "auto",
                "task": "auto",
                "sub-task": "auto",
                "subtask": "auto",
            },
        ),
    ]
