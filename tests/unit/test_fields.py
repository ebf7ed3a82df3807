"""Unit tests of the fields setup planner: plans from canned platform answers, no HTTP."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from momentos.connectors.servicenow import ServiceNowSettings
from momentos.errors import AuthError, Category
from momentos.fields import AdminRequired, Plan, ServiceNowFields, Step, apply_plan, plan_source


class FakeApi:
    """``fetch_all`` answers from canned rows per table; records what was asked."""

    user = "svc.momentos"
    base_url = "https://example.service-now.com"

    def __init__(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        self.rows = rows
        self.queries: list[tuple[str, str]] = []

    def fetch_all(self, table: str, query: str, fields: Any) -> list[dict[str, Any]]:
        self.queries.append((table, query))
        return self.rows.get(table, [])


def sn_connector(rows: dict[str, list[dict[str, Any]]], **settings: Any) -> Any:
    model = ServiceNowSettings(
        name="sn", type="servicenow", url="https://example.service-now.com",
        auth={"username": "svc.momentos", "password_env": "X"}, **settings,
    )
    return SimpleNamespace(platform="servicenow", settings=model, api=FakeApi(rows))


def test_missing_fields_plan_creates_all_three_on_task_and_the_choices() -> None:
    plan = ServiceNowFields(sn_connector({})).plan()
    assert [(s.action, s.target) for s in plan.steps] == [
        ("create field", "sys_dictionary task.u_relationship_moment"),
        ("create field", "sys_dictionary task.u_experience_score"),
        ("create field", "sys_dictionary task.u_experience_signals"),
        ("add options", "sys_choice task.u_relationship_moment"),
    ]
    assert plan.steps[-1].detail == "operation, evolution, innovation"
    assert not plan.notes and not plan.manual


def test_complete_instance_has_nothing_to_do() -> None:
    rows = {
        "sys_dictionary": [
            {"name": "task", "element": "u_relationship_moment", "internal_type": "choice", "active": "true"},
            {"name": "task", "element": "u_experience_score", "internal_type": "integer", "active": "true"},
            {"name": "task", "element": "u_experience_signals", "internal_type": "string", "active": "true"},
        ],
        "sys_choice": [{"value": v, "inactive": "false"} for v in ("operation", "evolution", "innovation")],
    }
    plan = ServiceNowFields(sn_connector(rows)).plan()
    assert plan.steps == [] and plan.notes == []


def test_wrong_type_and_inactive_choice_are_notes_not_changes() -> None:
    rows = {
        "sys_dictionary": [
            {"name": "incident", "element": "u_relationship_moment", "internal_type": "string", "active": "true"},
            {"name": "task", "element": "u_experience_score", "internal_type": "string", "active": "true"},
        ],
        "sys_choice": [{"value": "operation", "inactive": "true"}],
    }
    connector = sn_connector(rows)
    plan = ServiceNowFields(connector).plan()
    # signals is created; the moment's choices go on the table that owns the column.
    assert [(s.action, s.target) for s in plan.steps] == [
        ("create field", "sys_dictionary task.u_experience_signals"),
        ("add options", "sys_choice incident.u_relationship_moment"),
    ]
    assert plan.steps[1].detail == "evolution, innovation"
    assert any("u_experience_score exists as string, not integer" in n for n in plan.notes)
    assert any("choice 'operation'" in n and "inactive" in n for n in plan.notes)
    assert ("sys_choice", "name=incident^element=u_relationship_moment") in connector.api.queries


def test_custom_column_names_come_from_the_config() -> None:
    connector = sn_connector({}, writeback={"fields": {"score": "u_cx_score"}})
    plan = ServiceNowFields(connector).plan()
    assert [s.target for s in plan.steps] == ["sys_dictionary task.u_cx_score"]


def test_disabled_writeback_plans_nothing() -> None:
    plan = plan_source(sn_connector({}, writeback={"enabled": False}))
    assert plan.steps == [] and "disabled" in plan.notes[0]


def test_apply_runs_automatic_steps_in_order_and_skips_manual_ones() -> None:
    ran: list[str] = []
    plan = Plan("s", "jira", steps=[
        Step("s", "create field", "a", run=lambda: ran.append("a")),
        Step("s", "manual", "screen", "do it by hand"),
        Step("s", "add options", "b", run=lambda: ran.append("b")),
    ])
    seen: list[str] = []
    assert apply_plan(plan, lambda step: seen.append(step.target)) == 2
    assert ran == ["a", "b"] and seen == ["a", "b"]
    assert [s.target for s in plan.manual] == ["screen"]


def test_apply_stops_at_the_first_refusal() -> None:
    def refuse() -> None:
        raise AdminRequired("the ServiceNow user x needs the admin role to create dictionary entries")

    ran: list[str] = []
    plan = Plan("s", "servicenow", steps=[
        Step("s", "create field", "a", run=refuse),
        Step("s", "create field", "b", run=lambda: ran.append("b")),
    ])
    with pytest.raises(AuthError) as info:
        apply_plan(plan)
    assert info.value.category is Category.CONFIGURATION and not info.value.retriable
    assert ran == []
