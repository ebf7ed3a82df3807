"""The ServiceNow connector against the sandbox: real pysnow, real HTTP, no mocks."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from momentos.connectors.base import FieldChange, Page
from momentos.connectors.servicenow import (
    KeysetPaginator,
    ServiceNowConnector,
    ServiceNowSettings,
    _and_query,
    wire_value,
)
from momentos.errors import AuthError
from momentos.models import Item, sn_datetime
from momentos.sandbox.world import HUMAN_USER, World

if TYPE_CHECKING:
    from conftest import SnServer

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _pull_all(connector: ServiceNowConnector, since: datetime | None = None) -> list[Page]:
    return [page for stream in connector.streams() for page in connector.pull(stream, since, NOW)]


def _items(pages: list[Page]) -> list[Item]:
    return [item for page in pages for item in page.items]


def _sn_items(world: World) -> dict[str, Any]:
    return {i.id: i for i in world.items if i.platform == "servicenow"}


# --- settings -------------------------------------------------------------------------------------


def test_settings_defaults_and_shapes() -> None:
    settings = ServiceNowSettings.model_validate(
        {
            "name": "itsm",
            "type": "servicenow",
            "url": "https://acme.service-now.com/",
            "auth": {"username": "u", "password_env": "P"},
            "tables": [
                "incident",
                {"name": "rm_enhancement", "customer_field": "caller_id.department"},
            ],
        }
    )
    incident, enhancement = settings.tables
    assert (incident.kind, incident.requester_field) == ("incident", "caller_id")
    assert (enhancement.kind, enhancement.requester_field) == ("enhancement", "opened_by")
    assert settings.writeback.fields == {
        "moment": "u_relationship_moment",
        "score": "u_experience_score",
        "signals": "u_experience_signals",
    }
    default = ServiceNowSettings.model_validate(
        {
            "name": "x",
            "type": "servicenow",
            "url": "https://a.service-now.com",
            "auth": {"username": "u", "password_env": "P"},
        }
    )
    # The default set: operation, evolution, innovation tables.
    assert [t.name for t in default.tables] == [
        "incident",
        "sc_req_item",
        "problem",
        "change_request",
        "rm_enhancement",
        "dmn_demand",
        "pm_project",
        "pm_project_task",
    ]
    assert default.page_size == 500 and default.batch_reads and default.use_batch_api
    with pytest.raises(ValueError, match="ORDERBY"):
        ServiceNowSettings.model_validate(
            {
                "name": "x",
                "type": "servicenow",
                "url": "https://a.service-now.com",
                "auth": {"username": "u", "password_env": "P"},
                "tables": [{"name": "incident", "filter": "active=true^ORDERBYnumber"}],
            }
        )


def test_query_building_and_wire_values() -> None:
    assert _and_query(["a=1"], None) == "a=1"
    assert _and_query(["a=1"], "b=2^ORc=3") == "a=1^b=2^ORc=3"
    assert _and_query(["a=1"], "b=2^NQc=3") == "a=1^b=2^NQa=1^c=3"
    assert _and_query([], "b=2") == "b=2"
    assert wire_value("score", 72.6) == "73"
    assert wire_value("signals", {"b": 1, "a": "x"}) == '{"a":"x","b":1}'
    assert wire_value("moment", None) == ""


def test_paginator_steps_over_hidden_windows() -> None:
    paginator = KeysetPaginator(page_size=10, since="2026-01-01 00:00:00")
    assert paginator.conditions() == ["sys_updated_on>=2026-01-01 00:00:00"]
    assert paginator.advance([], 35) is True  # an empty window, more to come
    assert paginator.offset == 10
    record = {"sys_updated_on": "2026-02-01 00:00:00", "sys_id": "b" * 32}
    assert paginator.advance([record], 25) is True  # window 10..20 of 25
    assert paginator.cursor == ("2026-02-01 00:00:00", "b" * 32) and paginator.offset == 0
    assert paginator.conditions()[1] == f"sys_updated_on>2026-02-01 00:00:00^ORsys_id>{'b' * 32}"
    with pytest.raises(Exception, match="did not advance"):
        paginator.advance([record], 5)
    # The window ends with the sync's start second, on every query.
    bounded = KeysetPaginator(page_size=10, since=None, until="2026-03-01 10:00:00")
    assert bounded.conditions() == ["sys_updated_on<=2026-03-01 10:00:00"]
    bounded.advance([record], 25)
    assert bounded.conditions()[-1] == "sys_updated_on<=2026-03-01 10:00:00"


# --- pulling --------------------------------------------------------------------------------------


def test_full_pull_every_record_once_and_items_filled(
    sn_readonly_server: SnServer, sn_connector_factory: Any, sn_world: World
) -> None:
    connector = sn_connector_factory(sn_readonly_server, page_size=37)
    pages = _pull_all(connector)
    items = _items(pages)
    world = _sn_items(sn_world)
    app = sn_readonly_server.app
    assert Counter(i.id for i in items) == Counter(world.keys())
    # Every default table has records, enhancements and project tasks included.
    assert {i.container for i in items} == set(connector.streams())
    # Ascending by (updated, id) within each table, and the cursor is the page's last record.
    for page in pages:
        assert page.cursor == (page.items[-1].updated, page.items[-1].id)
        assert page.total is not None and page.total >= len(page.items)
    users = {u.id: u for u in sn_world.users}
    groups = {g.id: g.name for g in sn_world.groups}
    orgs = {o.id: o.name for o in sn_world.orgs}
    for item in items:
        truth = world[item.id]
        assert item.key == app.number_of(truth) and item.title == truth.title
        assert item.container == app.table_of(truth) and item.platform == "servicenow"
        assert item.requester == users[truth.requester_id].name
        assert item.customer == orgs.get(truth.company_id, "")
        assert item.assignment_group == groups.get(truth.group_id, "")
        assert item.assignee == (users[truth.assignee_id].name if truth.assignee_id else "")
        assert item.service == truth.service
        assert item.created is not None and item.updated is not None
        assert item.sla_breached == truth.sla_breached
        if truth.sla_breached is not None:  # stage and planned end of the SLA, from task_sla
            assert item.fields["sla_stage"] == ("completed" if truth.resolved else "in_progress")
            assert item.fields["sla_planned_end"] == sn_datetime(
                truth.sla_planned_end or truth.created
            )
        assert item.reassignment_count == truth.reassignment_count
        assert item.language == users[truth.requester_id].language
        if truth.survey_score is not None:
            assert item.survey_score == pytest.approx((truth.survey_score - 1) / 4)
        else:
            assert item.survey_score is None
        assert len(item.comments) == len(truth.comments)
        assert [h.field for h in item.history] == [h.field for h in truth.history]
        assert item.url.endswith(f"/nav_to.do?uri={item.container}.do?sys_id={item.id}")
        assert item.state and not item.state.lstrip("-").isdigit()  # a label, raw in fields
        assert item.fields["state"] == truth.state
    kinds = {i.container: i.kind for i in items}
    assert kinds["sc_req_item"] == "request" and kinds["change_request"] == "change"
    assert kinds["rm_enhancement"] == "enhancement" and kinds["pm_project_task"] == "project_task"
    # An enhancement is one of the world's changes, so its ground truth is evolution.
    assert all(world[i.id].truth["moment"] == "evolution" for i in items if i.kind == "enhancement")
    # Context came in bulk: far fewer requests than records.
    assert connector.counter.read < len(items) / 3


def test_comment_author_roles(
    sn_readonly_server: SnServer, sn_connector_factory: Any, sn_world: World
) -> None:
    connector = sn_connector_factory(sn_readonly_server, page_size=200)
    items = {i.id: i for i in _items(_pull_all(connector))}
    users = {u.id: u for u in sn_world.users}
    seen: Counter[str] = Counter()
    for truth in _sn_items(sn_world).values():
        item = items[truth.id]
        by_text = sorted((c.created, c.text, c.internal) for c in truth.comments)
        got = sorted(item.comments, key=lambda c: (c.created, c.text))
        for (created, text, internal), comment in zip(by_text, got, strict=True):
            author = next(
                users[c.author_id]
                for c in truth.comments
                if c.text == text and c.created == created
            )
            if author.id == truth.requester_id:
                expected = "requester"
            elif author.is_agent or author.username == HUMAN_USER:
                expected = "agent"
            else:
                expected = "other"
            assert (comment.text, comment.author_role, comment.internal) == (
                text,
                expected,
                internal,
            )
            assert comment.author == author.name
            seen[expected] += 1
    assert seen["requester"] > 0 and seen["agent"] > 0


def test_dot_walked_customer_field(
    sn_readonly_server: SnServer, sn_connector_factory: Any, sn_world: World
) -> None:
    connector = sn_connector_factory(
        sn_readonly_server,
        tables=[
            {"name": "incident", "customer_field": "caller_id.department", "fields": ["caused_by"]}
        ],
    )
    items = _items(_pull_all(connector))
    users = {u.id: u for u in sn_world.users}
    orgs = {o.id: o.name for o in sn_world.orgs}
    world = _sn_items(sn_world)
    assert items
    for item in items:
        department = users[world[item.id].requester_id].department_id
        assert item.customer == orgs.get(department, "")
        assert "caller_id.department" in item.fields and "caused_by" in item.fields


def test_since_window(
    sn_readonly_server: SnServer, sn_connector_factory: Any, sn_world: World
) -> None:
    connector = sn_connector_factory(sn_readonly_server, page_size=50)
    cut = datetime(2026, 9, 1, tzinfo=UTC)
    items = _items(_pull_all(connector, since=cut))
    expected = {i.id for i in _sn_items(sn_world).values() if i.updated >= cut}
    assert {i.id for i in items} == expected and expected


def test_acl_hidden_short_and_empty_pages_do_not_stop_paging(
    sn_server_factory: Any, sn_connector_factory: Any, sn_world: World
) -> None:
    server = sn_server_factory(acl_hidden_rate=0.35)
    connector = sn_connector_factory(server, page_size=4, tables=["incident"])
    app = server.app
    visible = {r["sys_id"] for r in app.rows("incident") if r["sys_id"] not in app.hidden}
    hidden = {r["sys_id"] for r in app.rows("incident")} - visible
    assert hidden and visible
    items = _items(_pull_all(connector))
    assert Counter(i.id for i in items) == Counter(visible)
    # The platform's count still includes what ACLs remove.
    raw = requests.get(
        f"{server.url}/api/now/table/incident",
        params={"sysparm_limit": 4},
        auth=server.auth,
        timeout=10,
    )
    assert raw.headers["X-Total-Count"] == str(len(visible) + len(hidden))
    assert len(raw.json()["result"]) <= 4


def test_same_second_records_straddling_pages(
    sn_server_factory: Any, sn_connector_factory: Any, sn_world: World
) -> None:
    big = _bigger_world()
    server = sn_server_factory(world=big, same_second=500)
    table = server.app.same_second_table
    second = server.app.same_second_value
    sharing = [r for r in server.app.rows(table) if r["sys_updated_on"] == second]
    assert len(sharing) >= 500
    connector = sn_connector_factory(server, page_size=100, tables=[table])
    items = _items(_pull_all(connector))
    assert Counter(i.id for i in items) == Counter(r["sys_id"] for r in server.app.rows(table))


def _bigger_world() -> World:
    from momentos.sandbox.world import generate_world

    return generate_world(seed=5, items=2400, now=datetime(2026, 11, 1, tzinfo=UTC))


def test_faults_are_retried_and_nothing_is_lost(
    sn_server_factory: Any, sn_connector_factory: Any, sn_world: World
) -> None:
    server = sn_server_factory()
    requests.post(
        f"{server.url}/_sandbox/faults",
        json={"error_rate": 0.1, "rate_limit_rate": 0.05, "retry_after_s": 0, "seed": 3},
        timeout=10,
    )
    connector = sn_connector_factory(server, page_size=40)
    items = _items(_pull_all(connector))
    assert Counter(i.id for i in items) == Counter(_sn_items(sn_world).keys())
    assert connector.counter.retries > 0


def test_missing_table_is_skipped_with_a_warning(
    sn_server_factory: Any, sn_connector_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = sn_server_factory(missing_tables=("rm_enhancement",))
    connector = sn_connector_factory(server, tables=["rm_enhancement", "problem"])
    with caplog.at_level(logging.WARNING, logger="momentos.connectors.servicenow"):
        items = _items(_pull_all(connector))
    assert items and {i.container for i in items} == {"problem"}
    assert "rm_enhancement" in caplog.text


def test_forbidden_context_tables_thin_items_but_do_not_stop(
    sn_server_factory: Any, sn_connector_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = sn_server_factory(forbidden_tables=("sys_audit", "asmt_assessment_instance"))
    connector = sn_connector_factory(server, tables=["incident"], page_size=50)
    with caplog.at_level(logging.WARNING, logger="momentos.connectors.servicenow"):
        items = _items(_pull_all(connector))
    assert len(items) == len(list(server.app.rows("incident")))
    assert all(not i.history and i.survey_score is None for i in items)
    assert any(i.comments for i in items)
    assert caplog.text.count("without sys_audit data") == 1  # warned once, not per page


def test_forbidden_task_table_fails_with_an_admin_message(
    sn_server_factory: Any, sn_connector_factory: Any
) -> None:
    server = sn_server_factory(forbidden_tables=("incident",))
    connector = sn_connector_factory(server, tables=["incident"])
    with pytest.raises(AuthError) as caught:
        _pull_all(connector)
    assert "incident" in str(caught.value) and "snc_read_only" in str(caught.value)


def test_wrong_password_fails_fast(
    sn_readonly_server: SnServer, sn_connector_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = sn_connector_factory(sn_readonly_server)
    monkeypatch.setenv(connector.settings.auth.password_env, "wrong-password")
    with pytest.raises(AuthError, match="401"):
        _pull_all(connector)
    assert connector.counter.read == 1  # 401 is not retried


# --- writing --------------------------------------------------------------------------------------


def _change(item: Item, field: str, new: Any) -> FieldChange:
    return FieldChange(item=item, field=field, old=item.current.get(field), new=new)


def test_write_is_visible_counted_and_audited(
    sn_server: SnServer, sn_connector_factory: Any
) -> None:
    connector = sn_connector_factory(sn_server, tables=["incident"], page_size=5)
    item = next(iter(connector.pull("incident", None, NOW))).items[0]
    before = sn_server.app.record("incident", item.id)
    started = datetime.now(UTC).replace(microsecond=0)
    results = connector.write(
        [
            _change(item, "moment", "operation"),
            _change(item, "score", 64.4),
            _change(item, "signals", {"sentiment": -0.4, "sla_breached": True}),
        ]
    )
    assert [(r.item_id, r.ok, sorted(r.fields)) for r in results] == [
        (item.id, True, ["moment", "score", "signals"])
    ]
    assert connector.counter.write == 1
    got = requests.get(
        f"{sn_server.url}/api/now/table/incident/{item.id}",
        params={
            "sysparm_fields": "u_relationship_moment,u_experience_score,u_experience_signals,"
            "sys_updated_on,sys_mod_count,sys_updated_by"
        },
        auth=sn_server.human_auth,
        timeout=10,
    ).json()["result"]
    assert got["u_relationship_moment"] == "operation"
    assert got["u_experience_score"] == "64"
    assert got["u_experience_signals"] == '{"sentiment":-0.4,"sla_breached":true}'
    assert datetime.fromisoformat(got["sys_updated_on"]).replace(tzinfo=UTC) >= started
    assert int(got["sys_mod_count"]) == int(before["sys_mod_count"]) + 1
    assert got["sys_updated_by"] == "momentos.integration"
    assert sn_server.app.stats()["writes"] == {f"incident/{item.id}": 1}
    # The next pull sees its own write: current values, and audit history by the integration user.
    again = next(
        i for p in connector.pull("incident", None, NOW) for i in p.items if i.id == item.id
    )
    assert again.current == {
        "moment": "operation",
        "score": "64",
        "signals": '{"sentiment":-0.4,"sla_breached":true}',
    }
    written = [h for h in again.history if h.field in ("moment", "score", "signals")]
    assert {h.field for h in written} == {"moment", "score", "signals"}
    assert all(h.by == "momentos.integration" for h in written)


def test_batch_api_writes_120_items_in_3_requests(
    sn_server: SnServer, sn_connector_factory: Any
) -> None:
    connector = sn_connector_factory(sn_server, page_size=200, batch_size=50)
    items = _items(_pull_all(connector))[:120]
    assert len(items) == 120
    results = connector.write([_change(i, "moment", "evolution") for i in items])
    assert connector.counter.write <= 3
    assert len(results) == 120 and all(r.ok for r in results)
    writes = sn_server.app.stats()["writes"]
    for item in items:
        assert writes[f"{item.container}/{item.id}"] == 1
        assert sn_server.app.record(item.container, item.id)["u_relationship_moment"] == "evolution"


def test_unserviced_batch_requests_fail_retriably(
    sn_server_factory: Any, sn_connector_factory: Any
) -> None:
    server = sn_server_factory(batch_limit=3)
    connector = sn_connector_factory(server, tables=["incident"], page_size=10, batch_size=5)
    items = _items([next(iter(connector.pull("incident", None, NOW)))])[:5]
    results = connector.write([_change(i, "score", 50) for i in items])
    assert [r.ok for r in results] == [True, True, True, False, False]
    assert all(r.retriable and "limit" in r.error for r in results[3:])


def test_denied_writes_are_per_item_failures(
    sn_server_factory: Any, sn_connector_factory: Any
) -> None:
    server = sn_server_factory(deny_writes=True)
    connector = sn_connector_factory(server, tables=["incident"], page_size=10, use_batch_api=False)
    item = next(iter(connector.pull("incident", None, NOW))).items[0]
    (result,) = connector.write([_change(item, "moment", "operation")])
    assert not result.ok and not result.retriable
    assert "403" in result.error and "write access" in result.error


def test_non_allowlisted_field_raises_before_sending(
    sn_server: SnServer, sn_connector_factory: Any
) -> None:
    connector = sn_connector_factory(sn_server, tables=["incident"], page_size=5)
    item = next(iter(connector.pull("incident", None, NOW))).items[0]
    with pytest.raises(PermissionError):
        connector.write([_change(item, "moment", "operation"), _change(item, "state", "7")])
    assert connector.counter.write == 0
    narrow = sn_connector_factory(
        sn_server, tables=["incident"], writeback={"fields": {"moment": "u_relationship_moment"}}
    )
    with pytest.raises(PermissionError):
        narrow.write([_change(item, "score", 10)])


# --- checking -------------------------------------------------------------------------------------


def test_check_passes_on_the_default_sandbox(
    sn_server: SnServer, sn_connector_factory: Any
) -> None:
    assert sn_connector_factory(sn_server).check() == []


def test_check_reports_missing_fields_and_tables(
    sn_server_factory: Any, sn_connector_factory: Any
) -> None:
    server = sn_server_factory(missing_fields=True, missing_tables=("rm_enhancement",))
    connector = sn_connector_factory(server, tables=["incident", "rm_enhancement"])
    problems = connector.check()
    fixes = {p.fix for p in problems}
    assert "create field u_experience_score (Integer) on task" in fixes
    assert "create field u_relationship_moment (Choice) on task" in fixes
    assert any("rm_enhancement" in p.what for p in problems)
    assert server.app.stats()["writes"] == {}  # nothing to test-write when no field exists


def test_check_reports_write_acl_and_bad_credentials(
    sn_server_factory: Any, sn_connector_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sn_server_factory(deny_writes=True)
    problems = sn_connector_factory(server, tables=["incident"]).check()
    assert len(problems) == 1 and "cannot update" in problems[0].what
    assert "grant role itil" in problems[0].fix
    bad = sn_connector_factory(server, tables=["incident"])
    monkeypatch.setenv(bad.settings.auth.password_env, "nope-nope")
    (problem,) = bad.check()
    assert "refused the credentials" in problem.what


def test_requests_per_thousand_records(
    sn_readonly_server: SnServer, sn_connector_factory: Any
) -> None:
    """Budget guard: context is fetched per page in bulk, not per record."""
    connector = sn_connector_factory(sn_readonly_server, page_size=25)
    pages = _pull_all(connector)
    # Per page: the page, journal, audit, SLAs, survey instances and results, and the
    # references not cached yet; per run: agents and choice labels.
    assert connector.counter.total <= 10 * len(pages) + 2 * len(connector.streams()) + 2


def test_pull_after_write_moves_record_behind_cursor(
    sn_server: SnServer, sn_connector_factory: Any
) -> None:
    """A record updated while paging moves past the keyset cursor instead of shifting offsets."""
    connector = sn_connector_factory(sn_server, tables=["incident"], page_size=20)
    expected = {r["sys_id"] for r in sn_server.app.rows("incident")}
    seen: list[str] = []
    for page in connector.pull("incident", None, NOW):
        seen += [i.id for i in page.items]
        # Write the page's first record: it jumps to the end of the order.
        connector.write([_change(page.items[0], "score", 1)])
    assert expected <= set(seen)


# --- batched context reads ------------------------------------------------------------------------


def _essence(item: Item) -> tuple[Any, ...]:
    """Everything a page's context contributes to an item."""
    return (
        item.id,
        item.key,
        item.requester,
        item.customer,
        item.assignment_group,
        item.assignee,
        item.service,
        item.state,
        item.priority,
        item.sla_breached,
        item.survey_score,
        item.language,
        tuple((c.text, c.author, c.author_role, c.created, c.internal) for c in item.comments),
        tuple((h.field, h.old, h.new, h.at, h.by) for h in item.history),
    )


def test_batched_context_equals_one_get_per_query_with_far_fewer_requests(
    sn_readonly_server: SnServer, sn_connector_factory: Any
) -> None:
    batched = sn_connector_factory(sn_readonly_server)
    plain = sn_connector_factory(sn_readonly_server, batch_reads=False)
    got = sorted(_essence(i) for i in _items(_pull_all(batched)))
    assert got == sorted(_essence(i) for i in _items(_pull_all(plain)))
    assert batched.counter.read * 2 < plain.counter.read
    assert batched.counter.write == plain.counter.write == 0  # batches of GETs count as reads


def test_unserviced_and_multi_page_related_reads_lose_nothing(
    sn_server_factory: Any,
    sn_connector_factory: Any,
    sn_world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read batch that the platform cuts short (unserviced requests) and related queries
    with more rows than one page (continued at the next offset) still bring every row."""
    from momentos.connectors.servicenow import _TableApi

    reference = sorted(
        _essence(i)
        for i in _items(_pull_all(sn_connector_factory(sn_server_factory(), tables=["incident"])))
    )
    monkeypatch.setattr(_TableApi, "related_page_size", 7)
    server = sn_server_factory(batch_limit=3)
    connector = sn_connector_factory(server, tables=["incident"], page_size=60)
    assert sorted(_essence(i) for i in _items(_pull_all(connector))) == reference
    truth = _sn_items(sn_world)
    assert sum(len(truth[i[0]].comments) for i in reference) > 7 * 3


def test_without_the_batch_api_reads_and_writes_fall_back_to_single_requests(
    sn_server_factory: Any, sn_connector_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = sn_server_factory(batch_denied=True, forbidden_tables=("sys_audit",))
    connector = sn_connector_factory(server, tables=["incident"], page_size=40)
    with caplog.at_level(logging.WARNING, logger="momentos.connectors.servicenow"):
        items = _items(_pull_all(connector))
        results = connector.write([_change(i, "moment", "operation") for i in items[:3]])
    assert len(items) == len(list(server.app.rows("incident")))
    assert any(i.comments for i in items) and not any(i.history for i in items)
    assert "reading related rows one GET at a time" in caplog.text
    assert "writing one record per request" in caplog.text
    assert caplog.text.count("without sys_audit data") == 1
    assert all(r.ok for r in results)
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["requests"]
    assert stats["POST /api/now/batch"] == 1 and stats["POST /api/now/v1/batch"] == 1
    assert stats["PATCH /api/now/table/<table>/<sys_id>"] == 3


# --- check ----------------------------------------------------------------------------------------


def test_check_names_wrong_types_unreadable_tables_and_dictionary(
    sn_server_factory: Any, sn_connector_factory: Any
) -> None:
    server = sn_server_factory(forbidden_tables=("problem",))
    connector = sn_connector_factory(
        server,
        tables=["incident", "problem"],
        writeback={
            "fields": {
                "moment": "u_relationship_moment",
                "score": "u_experience_signals",  # a String field where an Integer belongs
                "signals": "u_experience_signals",
            }
        },
    )
    problems = {p.what: p.fix for p in connector.check()}
    assert problems == {
        "itsm: cannot read table problem": "grant momentos.integration read access to problem "
        "(role itil or snc_read_only)",
        "itsm: field u_experience_signals on task is string, not Integer": "change "
        "u_experience_signals to Integer, or point writeback.fields.score at an Integer field",
    }
    blind = sn_server_factory(forbidden_tables=("sys_dictionary",))
    (problem,) = sn_connector_factory(blind, tables=["incident"]).check()
    assert problem.what == "itsm: cannot read sys_dictionary to verify the writeback fields"
    assert "personalize_dictionary" in problem.fix
