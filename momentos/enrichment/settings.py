"""Typed settings for enrichment: moment rules (YAML key ``moments:``) and experience scoring
(YAML key ``experience:``).

The config loader embeds these models; nothing here reads files. Every model forbids unknown
keys, and every problem is a normal pydantic ``ValidationError`` so the loader can report all of
them at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Moment = Literal["operation", "evolution", "innovation"]
RuleMoment = Literal["operation", "evolution", "innovation", "auto"]
#: Scored signals, in the order they are computed, written to ``signals`` and weighed. Each
#: has its definition in docs/SIGNALS.md; the weights below say how many points each can move.
SIGNALS: tuple[str, ...] = (
    "sentiment",
    "participants_sentiment",
    "complaints",
    "agent_concern",
    "chasers",
    "unanswered_questions",
    "wait_hours",
    "first_response_hours",
    "resolution_hours",
    "reopen_count",
    "reassignment_count",
    "pingpong",
    "sla_breached",
    "priority_raised",
    "on_hold_hours",
    "repeat_contact",
    "requester_interactions",
    "channel_switches",
    "survey_score",
    "lost_hours",
    "age_days",
    "howto",
    "caused_incidents",
    "failed_change",
    "rework",
    "business_participants",
    "business_share",
    "stalled_days",
)

Signal = Literal[
    "sentiment",
    "participants_sentiment",
    "complaints",
    "agent_concern",
    "chasers",
    "unanswered_questions",
    "wait_hours",
    "first_response_hours",
    "resolution_hours",
    "reopen_count",
    "reassignment_count",
    "pingpong",
    "sla_breached",
    "priority_raised",
    "on_hold_hours",
    "repeat_contact",
    "requester_interactions",
    "channel_switches",
    "survey_score",
    "lost_hours",
    "age_days",
    "howto",
    "caused_incidents",
    "failed_change",
    "rework",
    "business_participants",
    "business_share",
    "stalled_days",
]

#: How each signal is written in the ``signals`` JSON object.
SIGNAL_TYPES: dict[str, type] = {
    "sentiment": float,
    "participants_sentiment": float,
    "complaints": int,
    "agent_concern": int,
    "chasers": int,
    "unanswered_questions": int,
    "wait_hours": float,
    "first_response_hours": float,
    "resolution_hours": float,
    "reopen_count": int,
    "reassignment_count": int,
    "pingpong": int,
    "sla_breached": bool,
    "priority_raised": int,
    "on_hold_hours": float,
    "repeat_contact": int,
    "requester_interactions": int,
    "channel_switches": int,
    "survey_score": float,
    "lost_hours": float,
    "age_days": float,
    "howto": bool,
    "caused_incidents": int,
    "failed_change": bool,
    "rework": int,
    "business_participants": int,
    "business_share": float,
    "stalled_days": float,
}

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

# Points (on the 0-100 scale) that each signal can take away at full severity, per moment
# (sentiment and survey answers can also give points back). Fitted on sandbox seeds 1-3 and
# rounded (benchmarks/enrichment_quality.py --fit prints the fit); see docs/SIGNALS.md.
# Operation is judged mostly by the process (waiting, chasing, SLA, reopening); evolution and
# innovation mostly by what the business says and whether IT answers them.
_ZERO: dict[str, float] = {name: 0.0 for name in SIGNALS}
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "operation": _ZERO
    | {
        "sentiment": 29.0,
        "participants_sentiment": 10.0,
        "complaints": 3.0,
        "agent_concern": 60.0,
        "chasers": 31.0,
        "unanswered_questions": 5.0,
        "wait_hours": 3.0,
        "first_response_hours": 35.0,
        "resolution_hours": 20.0,
        "reopen_count": 15.0,
        "reassignment_count": 31.0,
        "pingpong": 14.0,
        "sla_breached": 10.0,
        "priority_raised": 35.0,
        "repeat_contact": 5.0,
        "requester_interactions": 35.0,
        "channel_switches": 5.0,
        "survey_score": 50.0,
    },
    "evolution": _ZERO
    | {
        "sentiment": 54.0,
        "participants_sentiment": 3.0,
        "complaints": 9.0,
        "agent_concern": 60.0,
        "chasers": 10.0,
        "unanswered_questions": 20.0,
        "wait_hours": 13.0,
        "first_response_hours": 35.0,
        "resolution_hours": 21.0,
        "reopen_count": 20.0,
        "reassignment_count": 27.0,
        "pingpong": 25.0,
        "sla_breached": 10.0,
        "priority_raised": 5.0,
        "repeat_contact": 5.0,
        "requester_interactions": 6.0,
        "survey_score": 50.0,
        "caused_incidents": 10.0,
        "failed_change": 30.0,
        "rework": 15.0,
        "stalled_days": 34.0,
    },
    "innovation": _ZERO
    | {
        "sentiment": 27.0,
        "participants_sentiment": 11.0,
        "complaints": 19.0,
        "agent_concern": 60.0,
        "chasers": 12.0,
        "unanswered_questions": 27.0,
        "wait_hours": 14.0,
        "first_response_hours": 35.0,
        "resolution_hours": 19.0,
        "reopen_count": 15.0,
        "reassignment_count": 35.0,
        "pingpong": 27.0,
        "sla_breached": 10.0,
        "repeat_contact": 5.0,
        "requester_interactions": 16.0,
        "survey_score": 50.0,
        "business_participants": 5.0,
        "business_share": 5.0,
        "stalled_days": 35.0,
    },
}

#: Days an item may take (resolved - created, or now - created while open) before ``age_days``
#: counts, and the typical resolution time when the frame has too few similar items to tell.
DEFAULT_AGE_TARGET_DAYS: dict[str, float] = {
    "operation": 5.0,
    "evolution": 30.0,
    "innovation": 90.0,
}
#: Hours a requester can wait for an answer before it starts to hurt (severity 1/2 there).
DEFAULT_WAIT_TARGET_HOURS: dict[str, float] = {
    "operation": 24.0,
    "evolution": 72.0,
    "innovation": 120.0,
}
#: Typical hours to IT's first response when the data has too few similar items to tell.
DEFAULT_RESPONSE_TARGET_HOURS: dict[str, float] = {
    "operation": 4.0,
    "evolution": 24.0,
    "innovation": 48.0,
}
#: Days without any activity after which open work counts as stalled (severity 1/2 there).
DEFAULT_STALL_DAYS: dict[str, float] = {
    "operation": 5.0,
    "evolution": 14.0,
    "innovation": 21.0,
}
#: States in which the item waits for the customer (compared lower-case).
DEFAULT_HOLD_STATES: tuple[str, ...] = (
    "on hold",
    "pending",
    "awaiting user info",
    "awaiting caller",
    "waiting for customer",
    "waiting for support",
    "pending customer",
    "en espera",
    "pendiente",
    "esperando al cliente",
    "3",
    "-5",
)
#: Close codes, resolutions or states that mean a change failed or was backed out (substrings,
#: compared lower-case on ``close_code``, ``resolution``, ``change_result`` and ``state``).
DEFAULT_FAILED_CHANGE_VALUES: tuple[str, ...] = (
    "unsuccessful",
    "failed",
    "backed out",
    "backout",
    "rolled back",
    "rollback",
    "fallido",
    "revertido",
    "marcha atras",
    "vuelta atras",
)
#: Kinds counted as incidents when looking for incidents caused by a change.
DEFAULT_INCIDENT_KINDS: tuple[str, ...] = ("incident", "bug", "problem")

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
    #: Rules below this confidence ("mostly innovation") yield to the learned model when it is
    #: at least ``override_confidence`` sure of another moment; 0 turns overruling off.
    model_can_override_below: float = Field(default=0.9, ge=0.0, le=1.0)
    override_confidence: float = Field(default=0.8, ge=0.0, le=1.0)

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
Positive = Annotated[float, Field(gt=0.0)]


class LostTimeSettings(BaseModel):
    """Estimated lost time: ``users affected x working hours elapsed x share of work lost``.

    Only operation items count (something the requester needed did not work). Working hours
    are ``workday_hours / 24`` of the elapsed hours, capped at ``cap_hours`` elapsed.
    """

    model_config = ConfigDict(extra="forbid")

    #: People affected by priority rank (1 = critical .. 5 = planning).
    users_by_priority: dict[int, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=lambda: {1: 20.0, 2: 5.0, 3: 1.0, 4: 1.0, 5: 1.0}
    )
    #: Share of their work lost while it lasts: defects block, requests and questions less.
    loss_share: dict[Literal["defect", "request", "howto"], Annotated[float, Field(ge=0, le=1)]] = (
        Field(default_factory=lambda: {"defect": 0.5, "request": 0.2, "howto": 0.1})
    )
    workday_hours: float = Field(default=8.0, gt=0.0, le=24.0)
    cap_hours: float = Field(default=240.0, gt=0.0)

    @field_validator("users_by_priority", mode="before")
    @classmethod
    def _merge_users(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {1: 20.0, 2: 5.0, 3: 1.0, 4: 1.0, 5: 1.0, **value}
        return value


#: Per-moment maps of ``experience:`` whose partial values are merged over these defaults.
_MOMENT_TARGET_DEFAULTS: dict[str, dict[str, float]] = {
    "age_target_days": DEFAULT_AGE_TARGET_DAYS,
    "wait_target_hours": DEFAULT_WAIT_TARGET_HOURS,
    "stall_days": DEFAULT_STALL_DAYS,
    "response_target_hours": DEFAULT_RESPONSE_TARGET_HOURS,
}


class ExperienceSettings(BaseModel):
    """The ``experience:`` section: per-moment signal weights, levels, reason language, and the
    windows and targets the signals are measured against."""

    model_config = ConfigDict(extra="forbid")

    #: Points each signal can take away at full severity (sentiment and survey can also add).
    #: Partial maps are merged over the defaults, so ``{operation: {chasers: 40}}`` is enough.
    weights: dict[Moment, dict[Signal, Weight]] = Field(
        default_factory=lambda: {m: dict(w) for m, w in DEFAULT_WEIGHTS.items()}
    )
    age_target_days: dict[Moment, Positive] = Field(
        default_factory=lambda: dict(DEFAULT_AGE_TARGET_DAYS)
    )
    wait_target_hours: dict[Moment, Positive] = Field(
        default_factory=lambda: dict(DEFAULT_WAIT_TARGET_HOURS)
    )
    stall_days: dict[Moment, Positive] = Field(default_factory=lambda: dict(DEFAULT_STALL_DAYS))
    response_target_hours: dict[Moment, Positive] = Field(
        default_factory=lambda: dict(DEFAULT_RESPONSE_TARGET_HOURS)
    )
    #: Typical resolution hours by kind (``incident: 24``); kinds not listed use the median of
    #: similar items in the frame (and context), else ``age_target_days`` of their moment.
    resolution_target_hours: dict[str, Positive] = Field(default_factory=dict)
    #: Similar items needed before their median counts as "typical".
    min_group_size: int = Field(default=10, ge=2)
    repeat_contact_days: float = Field(default=14.0, gt=0.0)
    caused_incident_days: float = Field(default=7.0, gt=0.0)
    #: The instance history a sync compares each item with (typical durations, repeat
    #: contact, incidents after a change): items created or resolved in the last
    #: ``context_days``, at most ``context_items`` of the newest.
    context_days: float = Field(default=120.0, gt=0.0)
    context_items: int = Field(default=20_000, ge=0)
    hold_states: list[str] = Field(default_factory=lambda: list(DEFAULT_HOLD_STATES))
    failed_change_values: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FAILED_CHANGE_VALUES)
    )
    incident_kinds: list[str] = Field(default_factory=lambda: list(DEFAULT_INCIDENT_KINDS))
    lost_time: LostTimeSettings = Field(default_factory=LostTimeSettings)
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

    @field_validator(
        "age_target_days", "wait_target_hours", "stall_days", "response_target_hours",
        mode="before",
    )
    @classmethod
    def _merge_moment_targets(cls, value: Any, info: ValidationInfo) -> Any:
        # A partial map ({innovation: 90}) keeps the defaults of the other moments.
        if not isinstance(value, dict):
            return value
        return {**_MOMENT_TARGET_DEFAULTS[info.field_name], **value}

    @field_validator("resolution_target_hours", mode="before")
    @classmethod
    def _kinds_lower(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).strip().lower(): v for k, v in value.items()}
        return value

    @field_validator("hold_states", "failed_change_values", "incident_kinds")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value if v.strip()]

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
            # Mostly innovation, but some demands and projects evolve existing systems: sure
            # enough to decide, not sure enough to teach the learned model.
            confidence=0.85,
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
            confidence=0.85,
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
                "story": "auto",
                "task": "auto",
                "sub-task": "auto",
                "subtask": "auto",
            },
        ),
        MomentRule(
            name="by-kind-innovation",
            map_field="kind",
            map={
                "demand": "innovation",
                "project": "innovation",
                "idea": "innovation",
                "epic": "innovation",
                "initiative": "innovation",
            },
            confidence=0.85,
        ),
    ]
