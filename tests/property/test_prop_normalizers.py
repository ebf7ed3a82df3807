"""Property tests: hostile raw platform records never crash the normalizers.

Raw ServiceNow rows and Jira issue JSON with nulls, wrong types, enormous texts, invalid dates,
unknown ADF nodes, HTML, emoji, right-to-left text, control characters, lone surrogates and
latin-1 mojibake, with fields missing or extra. The property: the normalizer returns a
well-typed ``Item``, or fails in a way the engine quarantines with a reason (a typed momentos
error; for Jira, the exception types ``JiraConnector._normalize_page`` turns into a rejected
record). Nothing else escapes.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momentos.connectors.jira import JiraConnector, JiraSettings, normalize_issue
from momentos.connectors.jira import _Context as JiraContext
from momentos.connectors.servicenow import (
    PageContext,
    ServiceNowConnector,
    ServiceNowSettings,
    TableSettings,
)
from momentos.connectors.servicenow import _Context as SnContext
from momentos.errors import MomentosError
from momentos.models import Comment, HistoryEvent, Item

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: One megabyte of text, built once (generating it per example would only slow hypothesis).
MEGABYTE = ("Pedido urgente <b>ya</b> ✅ " * 40_000)[:1_000_000]
HOSTILE_STRINGS = [
    "",
    " ",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ 7*7 }} {% raw %}",
    "</style><style>body{display:none}",
    "😡🔥💥 no funciona 🙏",
    "\u202eRTL override\u202c مرحبا بالعالم שלום",
    "\x00\x01\x07\x1b[31m\x7f",
    "\ud800 lone surrogate \udfff",
    "CafÃ© Ã±andÃº mojibake",
    "caf\xe9 latin-1 \xa0nbsp",
    "2024-13-45 25:61:61",
    "9999-12-31T23:59:59Z",
    "0000-00-00 00:00:00",
    "NaN",
    "-1e309",
    "a" * 10_000,
    MEGABYTE,
]
DATES = [
    "2024-01-02 03:04:05",
    "2024-01-02T03:04:05.000+0000",
    "2024-02-30 00:00:00",
    "not a date",
    "",
    None,
    0,
    -1,
    1.5e9,
    1e20,
    -1e20,
    float("nan"),
    float("inf"),
    2**70,
    True,
    [],
    {},
    {"$date": 1},
]

# Indexes, not the strings: hypothesis would otherwise repr a megabyte in every report.
hostile = st.sampled_from(range(len(HOSTILE_STRINGS))).map(HOSTILE_STRINGS.__getitem__)
texts = st.one_of(hostile, st.text(max_size=40))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.sampled_from(DATES),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
dates = st.one_of(st.sampled_from(DATES), texts)

# --- ADF documents, valid and not --------------------------------------------------------------
adf_inline = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": json_values}),
    st.fixed_dictionaries({"type": st.sampled_from(["hardBreak", "mention", "emoji", "date",
                                                    "status", "inlineCard", "placeholder",
                                                    "unknownInline"]),
                           "attrs": json_values}),
    json_values,
)
adf_nodes = st.recursive(
    adf_inline,
    lambda inner: st.fixed_dictionaries(
        {
            "type": st.one_of(
                st.sampled_from(["doc", "paragraph", "heading", "bulletList", "orderedList",
                                 "listItem", "blockquote", "codeBlock", "table", "tableRow",
                                 "tableCell", "panel", "expand", "mediaSingle", "rule",
                                 "nestedExpand", "taskList", "fancyNewNode"]),
                json_values,
            ),
        },
        optional={"content": st.one_of(st.lists(inner, max_size=4), json_values),
                  "attrs": st.one_of(st.dictionaries(st.sampled_from(["order", "title", "text",
                                                                      "timestamp", "url"]),
                                                     json_values), json_values),
                  "text": json_values},
    ),
    max_leaves=12,
)
adf_docs = st.one_of(
    st.builds(lambda c: {"type": "doc", "version": 1, "content": c}, st.lists(adf_nodes, max_size=4)),
    adf_nodes,
)


def _assert_item(item: Item) -> None:
    """Every field has the type the model promises; datetimes are aware."""
    assert isinstance(item, Item)
    for name in ("source", "platform", "container", "id", "key", "kind", "url", "title",
                 "description", "requester", "customer", "assignment_group", "assignee",
                 "service", "category", "request_type", "state", "priority", "updated_by",
                 "language"):
        assert isinstance(getattr(item, name), str), name
    for name in ("created", "updated", "resolved"):
        value = getattr(item, name)
        assert value is None or (isinstance(value, datetime) and value.tzinfo is not None), name
    assert all(isinstance(c, Comment) and isinstance(c.text, str) for c in item.comments)
    assert all(isinstance(h, HistoryEvent) for h in item.history)
    assert all(isinstance(label, str) for label in item.labels)
    assert item.reopen_count is None or isinstance(item.reopen_count, int)
    assert item.reassignment_count is None or isinstance(item.reassignment_count, int)
    assert item.survey_score is None or isinstance(item.survey_score, float)
    assert item.to_json()["id"] == item.id  # serializable for `momentos pull`


# --- ServiceNow ----------------------------------------------------------------------------------
SN_FIELDS = [
    "sys_id", "number", "short_description", "description", "caller_id", "opened_by", "company",
    "assignment_group", "assigned_to", "business_service", "category", "state", "priority",
    "opened_at", "resolved_at", "closed_at", "sys_created_on", "sys_updated_on",
    "sys_updated_by", "reassignment_count", "reopen_count", "u_relationship_moment",
    "u_experience_score", "u_experience_signals",
]
DATE_FIELDS = {"opened_at", "resolved_at", "closed_at", "sys_created_on", "sys_updated_on"}


@st.composite
def sn_records(draw: Any) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name in SN_FIELDS:
        if draw(st.booleans()):
            record[name] = draw(dates if name in DATE_FIELDS else json_values)
    record.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=3)))
    return record


rows = st.dictionaries(
    st.sampled_from(["value", "sys_created_by", "sys_created_on", "element", "fieldname",
                     "oldvalue", "newvalue", "user", "has_breached", "stage",
                     "planned_end_time"]),
    json_values,
    max_size=6,
)


def _sn_connector() -> tuple[ServiceNowConnector, SnContext]:
    """A connector whose per-run caches are filled, so ``_item`` needs no HTTP."""
    settings_ = ServiceNowSettings.model_validate({
        "name": "sn", "type": "servicenow", "url": "https://sn.example.test",
        "auth": {"username": "u", "password_env": "MOMENTOS_PROPERTY_UNUSED"},
    })
    connector = ServiceNowConnector(settings_)
    connector._api = SimpleNamespace(base_url="https://sn.example.test")  # type: ignore[assignment]
    ctx = SnContext(None, ["incident"])  # type: ignore[arg-type]
    ctx._agents = {"agent.one", "\ud800"}
    ctx._choices = {("incident", "state"): {"1": "New", "<b>": "<script>"}}
    ctx._display = {"sys_user": {"u1": {"name": "Ana <b>", "user_name": "ana",
                                        "preferred_language": "\x00es"}}}
    connector._context = ctx
    return connector, ctx


@PROPERTY
@given(
    record=sn_records(),
    comments=st.lists(rows, max_size=3),
    audit=st.lists(rows, max_size=3),
    sla=st.lists(rows, max_size=2),
    survey=st.lists(st.floats(allow_nan=True), max_size=3),
)
def test_servicenow_record_becomes_an_item_or_a_typed_error(
    record: dict[str, Any], comments: list[Any], audit: list[Any], sla: list[Any],
    survey: list[float],
) -> None:
    connector, _ = _sn_connector()
    sys_id = str(record.get("sys_id", ""))
    page = PageContext(
        comments={sys_id: comments}, audit={sys_id: audit}, sla={sys_id: sla},
        survey={sys_id: survey} if survey else {},
    )
    try:
        item = connector._item(TableSettings(name="incident"), record, page)
    except MomentosError:
        return
    _assert_item(item)


def test_servicenow_record_with_only_a_sys_id() -> None:
    connector, _ = _sn_connector()
    item = connector._item(TableSettings(name="incident"), {"sys_id": "x"}, PageContext())
    _assert_item(item)
    assert item.key == "x" and item.created is None and item.comments == []


# --- Jira ----------------------------------------------------------------------------------------
#: What ``JiraConnector._normalize_page`` catches and turns into a rejected (quarantined) record.
JIRA_QUARANTINED = (KeyError, TypeError, ValueError, AttributeError)

JIRA_FIELD_IDS = {
    "customfield_10010": ("Relationship moment", "com.atlassian.jira.plugin.system.customfieldtypes:select"),
    "customfield_10011": ("Experience score", "com.atlassian.jira.plugin.system.customfieldtypes:float"),
    "customfield_10012": ("Experience signals", "com.atlassian.jira.plugin.system.customfieldtypes:textarea"),
    "customfield_10020": ("Organizations", "com.atlassian.servicedesk:sd-customer-organizations"),
    "customfield_10021": ("Time to resolution", "com.atlassian.servicedesk:sd-sla-field"),
    "customfield_10022": ("Satisfaction", "com.atlassian.servicedesk:sd-request-feedback"),
    "customfield_10023": ("Request participants", "com.atlassian.servicedesk:sd-request-participants"),
    "customfield_10024": ("Customer Request Type", "com.atlassian.servicedesk:vp-origin"),
    "customfield_10025": ("Team", "com.atlassian.teams:rm-teams-custom-field-team:atlassian-team"),
}


def _jira_ctx(cloud: bool) -> JiraContext:
    return JiraContext(
        base_url="https://jira.example.test",
        cloud=cloud,
        me="me-account",
        login="momentos.integration",
        fields={fid: {"id": fid, "name": name, "schema": {"custom": custom}}
                for fid, (name, custom) in JIRA_FIELD_IDS.items()},
        writeback_ids={"moment": "customfield_10010", "score": "customfield_10011",
                       "signals": "customfield_10012"},
        customer_ids=["customfield_10020"],
        agents={"agent-1", "agent.one"},
        done_statuses={"10002", "done"},
    )


users = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"accountId": json_values, "name": json_values,
                                        "displayName": json_values, "emailAddress": json_values,
                                        "key": json_values}),
)
jira_comments = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries({}, optional={"body": st.one_of(adf_docs, json_values),
                                            "author": users, "created": dates,
                                            "jsdPublic": json_values, "visibility": json_values}),
    ),
    max_size=3,
)
jira_histories = st.lists(
    st.fixed_dictionaries({}, optional={
        "id": json_values, "created": dates, "author": users,
        "items": st.lists(st.fixed_dictionaries({}, optional={
            "fieldId": st.one_of(st.sampled_from(["status", "assignee", "priority",
                                                  "customfield_10010", "customfield_10025"]),
                                 json_values),
            "field": json_values, "from": json_values, "to": json_values,
            "fromString": json_values, "toString": json_values,
        }), max_size=3),
    }),
    max_size=3,
)


@st.composite
def jira_issues(draw: Any) -> dict[str, Any]:
    fields = draw(st.fixed_dictionaries({}, optional={
        "summary": json_values,
        "description": st.one_of(adf_docs, json_values),
        "created": dates, "updated": dates, "resolutiondate": dates,
        "issuetype": st.one_of(json_values, st.fixed_dictionaries({"name": json_values})),
        "project": st.one_of(json_values, st.fixed_dictionaries({"key": json_values})),
        "reporter": users, "assignee": users,
        "status": st.one_of(json_values, st.fixed_dictionaries({"name": json_values})),
        "priority": st.one_of(json_values, st.fixed_dictionaries({"name": json_values})),
        "labels": json_values,
        "components": json_values,
        "comment": st.one_of(json_values, st.fixed_dictionaries({"comments": jira_comments})),
        **{fid: json_values for fid in JIRA_FIELD_IDS},
    }))
    issue: dict[str, Any] = {"fields": fields}
    for name, strategy in (("id", json_values), ("key", json_values),
                           ("changelog", st.fixed_dictionaries({"histories": jira_histories}))):
        if draw(st.booleans()):
            issue[name] = draw(strategy)
    if draw(st.booleans()):
        issue["fields"] = draw(json_values)  # fields itself of the wrong type
    issue.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return issue


@PROPERTY
@given(issue=jira_issues(), cloud=st.booleans(), comments=st.none() | jira_comments,
       histories=st.none() | jira_histories)
def test_jira_issue_becomes_an_item_or_a_quarantined_error(
    issue: dict[str, Any], cloud: bool, comments: Any, histories: Any
) -> None:
    try:
        item = normalize_issue(issue, _jira_ctx(cloud), "jira", comments, histories)
    except JIRA_QUARANTINED:
        return
    _assert_item(item)


def test_jira_normalize_page_quarantines_a_broken_issue_and_keeps_the_rest() -> None:
    """The page-level path: a bad issue becomes a rejected record with a reason."""
    connector = JiraConnector(JiraSettings.model_validate({
        "name": "jira", "type": "jira", "url": "https://jira.example.test", "projects": ["SD"],
        "auth": {"username": "u", "password_env": "MOMENTOS_PROPERTY_UNUSED"},
    }))
    connector._complete_comments = lambda issues: {}  # type: ignore[method-assign]
    connector._complete_histories = lambda issues, ctx: {}  # type: ignore[method-assign]
    good = {"id": "1", "key": "SD-1", "fields": {"summary": "ok <b>", "updated": "2024-01-01T00:00:00Z"}}
    bad = {"id": "2", "key": "SD-2", "fields": {"summary": "x", "labels": 5}}  # labels not a list
    items, rejected = connector._normalize_page([good, bad], _jira_ctx(True), service_desk=False)
    assert [i.key for i in items] == ["SD-1"]
    assert [(r[0], r[1]) for r in rejected] == [("2", "SD-2")]
    assert "cannot normalize" in rejected[0][2] and "TypeError" in rejected[0][2]
