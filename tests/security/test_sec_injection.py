"""Query injection: config values cannot widen what a pull reads.

The ServiceNow table ``filter`` is ANDed into the encoded query and the Jira ``jql`` setting
is ANDed with the project and the time window. Both sandboxes parse queries for real
(``momentos/sandbox/servicenow.py::parse_query``, ``momentos/sandbox/jql.py``), so each
hostile value is pulled through the real connector and the result is compared with the
honest window: it must be a subset of it (same project or table, updated inside the window),
or the value must be refused (a configuration error, or the platform's 400 as a typed error).
Project keys, table names and field names are validated at load time
(tests/unit/test_config.py holds the ORDER BY and field-name cases).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from momentos.config import parse_config
from momentos.connectors.jira import JiraConnector, JiraSettings
from momentos.connectors.servicenow import ServiceNowConnector, ServiceNowSettings
from momentos.errors import ConfigError, MomentosError
from momentos.sandbox import start_sandbox
from momentos.sandbox.world import generate_world

WORLD_NOW = datetime(2026, 11, 1, tzinfo=UTC)
PASSWORD_ENV = "MOMENTOS_SEC_INJECTION_PASSWORD"


@pytest.fixture(scope="module")
def box() -> Iterator[Any]:
    world = generate_world(seed=9, items=160, now=WORLD_NOW)
    with start_sandbox(world=world, seed=9) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _password(box: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, box.password)


def _auth(box: Any) -> dict[str, str]:
    return {"username": box.user, "password_env": PASSWORD_ENV}


# --- ServiceNow encoded queries --------------------------------------------------------------


def _sn_pull(box: Any, since: datetime | None, until: datetime,
             filter_: str | None = None) -> dict[str, datetime]:
    table: dict[str, Any] = {"name": "incident"}
    if filter_ is not None:
        table["filter"] = filter_
    connector = ServiceNowConnector(ServiceNowSettings.model_validate({
        "name": "sn", "type": "servicenow", "url": box.servicenow_url, "auth": _auth(box),
        "tables": [table], "page_size": 40, "http": {"max_retries": 0},
    }))
    try:
        return {i.key: i.updated for page in connector.pull("incident", since, until)
                for i in page.items}
    finally:
        connector.close()


def _window(box: Any) -> tuple[datetime, datetime]:
    """A window holding roughly the middle third of the incidents."""
    stamps = sorted(
        datetime.strptime(r["sys_updated_on"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        for r in box.servicenow.rows("incident")
    )
    assert len(stamps) >= 30
    return stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]


SN_FILTERS = [
    "active=true^NQsys_idISNOTEMPTY",
    "active=true^NQ^NQsys_idISNOTEMPTY",
    "sys_updated_on<1970-01-01 00:00:00^ORsys_idISNOTEMPTY",
    "active=true\n^NQsys_idISNOTEMPTY",
    "priority=1^EQ^NQsys_idISNOTEMPTY",
    "^NQsys_idISNOTEMPTY",
    "short_descriptionLIKE^NQ",
    "^ORsys_updated_on>=1970-01-01 00:00:00",
    "ORsys_idISNOTEMPTY",
    "active=true^ORsys_updated_on>=1970-01-01 00:00:00",
]


@pytest.mark.parametrize("filter_", SN_FILTERS)
def test_servicenow_filter_cannot_widen_the_window(box: Any, filter_: str) -> None:
    since, until = _window(box)
    honest = _sn_pull(box, since, until)
    assert 0 < len(honest) < len(list(box.servicenow.rows("incident")))
    try:
        pulled = _sn_pull(box, since, until, filter_)
    except (ConfigError, ValidationError, MomentosError):
        return  # refused: fine
    outside = {k: v for k, v in pulled.items() if v is None or not since <= v <= until}
    assert not outside, f"filter {filter_!r} read records outside the window: {sorted(outside)[:5]}"
    assert set(pulled) <= set(honest)


@pytest.mark.parametrize(
    "filter_", ["active=true^ORDERBYDESCnumber", "ORDERBYsys_id", "x=1^ORDERBYDESCsys_updated_on"]
)
def test_servicenow_filter_cannot_reorder_the_pull(filter_: str) -> None:
    with pytest.raises(ValidationError):
        ServiceNowSettings.model_validate({
            "name": "sn", "type": "servicenow", "url": "https://sn.example.test",
            "auth": {"username": "u", "password_env": "X"},
            "tables": [{"name": "incident", "filter": filter_}],
        })


@pytest.mark.parametrize(
    "table",
    [{"name": "incident^NQ"}, {"name": "incident", "fields": ["number^NQsys_id"]},
     {"name": "incident", "customer_field": "company^ORsys_id"},
     {"name": "incident", "requester_field": "caller_id,sys_id"}],
)
def test_servicenow_names_in_the_config_are_validated(table: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse_config(
            "sources:\n  - {name: sn, type: servicenow, url: 'https://sn.example.test', "
            "auth: {username: u, password_env: X}, tables: [" + repr(table).replace("'", '"') + "]}\n"
        )


# --- Jira JQL --------------------------------------------------------------------------------


def _jira_pull(box: Any, since: datetime | None, until: datetime, jql: str | None = None,
               project: str = "SD") -> dict[str, tuple[str, datetime | None]]:
    raw: dict[str, Any] = {
        "name": "jira", "type": "jira", "url": box.jira_url, "auth": _auth(box),
        "projects": [project], "http": {"max_retries": 0},
    }
    if jql is not None:
        raw["jql"] = jql
    connector = JiraConnector(JiraSettings.model_validate(raw))
    try:
        return {i.key: (i.container, i.updated) for page in connector.pull(project, since, until)
                for i in page.items}
    finally:
        connector.close()


JQL_VALUES = [
    'labels = "x" OR project = APP',
    "labels = x\nOR project = APP",
    'summary ~ "\\") OR project = APP OR (summary ~ \\""',
    "project = APP) OR (project = PMO",
    "issuetype = Bug) OR (updated >= 0",
    "^NQproject = APP",
    "status != Done ^OR project = APP",
    "project = APP OR project = PMO OR",
    "(((",
]


@pytest.mark.parametrize("jql", JQL_VALUES)
def test_jira_jql_cannot_widen_the_project_or_the_window(box: Any, jql: str) -> None:
    until = WORLD_NOW - timedelta(days=5)
    since = WORLD_NOW - timedelta(days=60)
    honest = _jira_pull(box, since, until)
    try:
        pulled = _jira_pull(box, since, until, jql)
    except (ConfigError, ValidationError, MomentosError):
        return  # refused at load time or by the platform (HTTP 400): fine
    foreign = sorted(k for k, (project, _) in pulled.items() if project != "SD")
    assert not foreign, f"jql {jql!r} read issues of other projects: {foreign[:5]}"
    outside = sorted(k for k, (_, updated) in pulled.items()
                     if updated is None or not since <= updated <= until + timedelta(seconds=1))
    assert not outside, f"jql {jql!r} read issues outside the window: {outside[:5]}"
    assert set(pulled) <= set(honest)


@pytest.mark.parametrize(
    "key", ['SD" OR project = "APP', "SD OR APP", "SD\nAPP", "SD)", "SD^NQ", 'SD"', "S D"]
)
def test_jira_project_keys_are_validated(key: str) -> None:
    with pytest.raises(ValidationError):
        JiraSettings.model_validate({
            "name": "jira", "type": "jira", "url": "https://jira.example.test",
            "auth": {"username": "u", "password_env": "X"}, "projects": [key],
        })


def test_the_jql_momentos_sends_keeps_the_admin_filter_in_parentheses() -> None:
    connector = JiraConnector(JiraSettings.model_validate({
        "name": "jira", "type": "jira", "url": "https://jira.example.test",
        "auth": {"username": "u", "password_env": "X"}, "projects": ["SD"],
        "jql": "labels = a OR labels = b",
    }))
    jql = connector.jql("SD", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert jql.startswith("(labels = a OR labels = b) AND project = \"SD\" AND updated >= ")
    assert jql.endswith(" ORDER BY updated ASC, key ASC")
