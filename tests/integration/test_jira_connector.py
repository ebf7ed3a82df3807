"""JiraConnector end to end: the real jira library over real HTTP against JiraSandbox, both
flavours where they differ (Cloud: /search/jql + tokens + ADF; Data Center: /search + offsets)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import jira
import pytest
import requests
from jira_fixtures import (  # noqa: F401 - fixtures are used by name
    FLAVORS,
    JiraSite,
    jira_connector_factory,
    jira_default_world,
    jira_settings,
    jira_site,
    jira_world,
    pull_all,
)
from pydantic import ValidationError

from momentos.connectors.base import FieldChange
from momentos.connectors.jira import JiraConnector, JiraSettings
from momentos.errors import AuthError
from momentos.models import Item
from momentos.sandbox.base import make_self_signed_cert, tls_dir
from momentos.sandbox.world import INTEGRATION_USER, World, WorldComment, WorldHistory

Factory = Callable[..., JiraConnector]


@pytest.fixture(scope="module", params=FLAVORS)
def jira_shared_site(request: pytest.FixtureRequest, jira_default_world: World) -> Iterator[JiraSite]:  # noqa: F811
    """One read-only sandbox per flavour for the tests that never write."""
    with jira_site(jira_default_world, request.param) as site:
        yield site


# --- reading ----------------------------------------------------------------------------------


def test_jira_pull_gets_every_issue_exactly_once_over_many_pages(
    jira_shared_site: JiraSite, jira_connector_factory: Factory  # noqa: F811
) -> None:
    site = jira_shared_site
    before = site.stats()["requests"]
    connector = jira_connector_factory(site, page_size=40)
    items, pages = pull_all(connector)
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids)) == len(site.jira_issues())
    assert set(ids) == {i.id for i in site.jira_issues()}
    assert len(pages) > 3 * len(connector.streams())
    for stream_pages in _by_stream(pages):
        cursors = [p.cursor for p in stream_pages if p.cursor]
        assert cursors == sorted(cursors), "cursors ascend by (updated, id)"
    used = Counter(site.stats()["requests"]) - Counter(before)
    if site.flavor == "cloud":
        assert used["GET /rest/api/<ver>/search/jql"] >= len(pages)
        assert not any(k.endswith("/search") for k in used), "Cloud never calls the removed search"
        assert all(p.total is None for p in pages)
    else:
        assert used["GET /rest/api/<ver>/search"] > 0
        last_totals = [sp[-1].total for sp in _by_stream(pages)]
        assert sum(last_totals) == len(ids)


def _by_stream(pages: list) -> list[list]:
    groups: dict[str, list] = {}
    for page in pages:
        if page.items:
            groups.setdefault(page.items[0].container, []).append(page)
    return list(groups.values())


def test_jira_items_are_normalized(jira_shared_site: JiraSite, jira_connector_factory: Factory) -> None:  # noqa: F811
    site = jira_shared_site
    connector = jira_connector_factory(site)
    items = {i.id: i for i in pull_all(connector)[0]}
    world = {w.id: w for w in site.jira_issues()}
    orgs = {o.id: o.name for o in site.world.orgs}
    groups = {g.id: g.name for g in site.world.groups}
    kinds = {"Incident": "incident", "Service Request": "request", "Problem": "problem", "Change": "change",
             "Story": "story", "Task": "task", "Bug": "bug", "Epic": "epic", "Idea": "idea"}
    for item_id, item in items.items():
        w = world[item_id]
        assert item.platform == "jira" and item.key == w.number and item.container == w.container
        assert item.kind == kinds[w.kind]
        assert item.url == f"{site.url}/browse/{w.number}"
        assert item.title == w.title and item.state == w.state and item.priority == w.priority
        assert item.created == w.created and item.updated == w.updated and item.resolved == w.resolved
        assert item.customer == orgs[w.company_id]
        assert item.assignment_group == groups[w.group_id]
        assert item.service == w.service and item.labels == w.labels
        assert item.reopen_count == w.reopen_count and item.reassignment_count == w.reassignment_count
        assert item.sla_breached == (w.sla_breached if w.container == "SD" else None)
        assert item.request_type == w.request_type
        assert len(item.comments) == len(w.comments)
        assert [c.internal for c in item.comments] == [c.internal for c in sorted(w.comments, key=lambda c: c.created)]
        if w.container == "SD" and w.survey_score and w.resolved:
            assert item.survey_score == pytest.approx((w.survey_score - 1) / 4)
        assert set(item.current) == {"moment", "score", "signals"}
    states = Counter(h.field for i in items.values() for h in i.history)
    assert {"assigned_to", "state", "assignment_group"} <= set(states)


def test_jira_same_minute_issues_straddling_pages_come_exactly_once(
    jira_connector_factory: Factory,  # noqa: F811
) -> None:
    """300 issues share one ``updated`` minute (15 per second), pages of 100 cut through it,
    and the API user sits in UTC−5: full and incremental windows each return every issue once."""
    world = jira_world(items=1200, seed=3)
    for flavor in FLAVORS:
        with jira_site(world, flavor, same_minute=300) as site:
            connector = jira_connector_factory(site, page_size=100, projects=["SD", "APP", "PMO"])
            minute = Counter(i.updated.replace(second=0) for i in site.jira_issues()).most_common(1)[0]
            assert minute[1] >= 300
            items, _ = pull_all(connector)
            assert len(items) == len({i.id for i in items}) == len(site.jira_issues())
            since = minute[0] + timedelta(seconds=21)  # inside the minute, between two seconds
            recent, _ = pull_all(connector, since=since)
            expected = {i.id for i in site.jira_issues() if i.updated >= since}
            assert len(recent) == len({i.id for i in recent}) == len(expected)
            assert {i.id for i in recent} == expected
            exact = minute[0] + timedelta(seconds=3)  # a second that 15 issues share
            same, _ = pull_all(connector, since=exact)
            assert {i.id for i in same} == {i.id for i in site.jira_issues() if i.updated >= exact}


def _agent_and_others(world: World, item: object) -> tuple[str, str]:
    agent = next(u for u in world.users if u.is_agent and u.username not in (INTEGRATION_USER,))
    outsider = next(u for u in world.users if not u.is_agent and u.id != item.requester_id  # type: ignore[attr-defined]
                    and u.id not in item.participants)  # type: ignore[attr-defined]
    return agent.id, outsider.id


def test_jira_45_comments_all_read_with_author_roles(jira_connector_factory: Factory) -> None:  # noqa: F811
    world = jira_world(items=400, seed=5)
    target = next(i for i in world.items if i.platform == "jira" and i.container == "SD" and i.participants)
    agent_id, outsider_id = _agent_and_others(world, target)
    authors = [target.requester_id, target.participants[0], agent_id, outsider_id]
    expected_roles = ["requester", "requester", "agent", "other"]
    start = target.created + timedelta(minutes=5)
    target.comments = [
        WorldComment(str(900000 + n), authors[n % 4], start + timedelta(minutes=n),
                     f"comment {n}" + ("\n\nOn Mon, 5 Jan 2026, IT wrote:\n> old" if n == 7 else ""),
                     internal=n % 4 == 2 and n % 8 == 2)
        for n in range(45)
    ]
    target.updated = max(target.updated, target.comments[-1].created)
    for flavor in FLAVORS:
        with jira_site(world, flavor) as site:
            connector = jira_connector_factory(site, projects=["SD"])
            items, _ = pull_all(connector)
            item = next(i for i in items if i.id == target.id)
            assert [c.text for c in item.comments] == [f"comment {n}" for n in range(45)]
            assert [c.author_role for c in item.comments] == [expected_roles[n % 4] for n in range(45)]
            assert [c.internal for c in item.comments] == [n % 8 == 2 for n in range(45)]
            calls = site.stats()["requests"].get("GET /rest/api/<ver>/issue/<key>/comment", 0)
            assert (calls >= 1) if flavor == "cloud" else (calls == 0), "DC inlines every comment"


def test_jira_long_changelogs_are_completed(jira_connector_factory: Factory) -> None:  # noqa: F811
    """Cloud inlines 20 histories (bulk fetch completes them); Data Center inlines 100 (the
    paged changelog completes them). Reopens and reassignments count over the whole history."""
    world = jira_world(items=400, seed=8)
    target = next(i for i in world.items if i.platform == "jira" and i.container == "SD")
    at = target.created + timedelta(minutes=1)
    history = []
    for n in range(60):  # 60 reopen cycles: Resolved → In Progress → Resolved
        history.append(WorldHistory("state", "In Progress", "Resolved", at + timedelta(minutes=2 * n), target.requester_id))
        history.append(WorldHistory("state", "Resolved", "In Progress", at + timedelta(minutes=2 * n + 1), target.requester_id))
    target.history = history
    target.state = "In Progress"
    target.resolved = None
    target.updated = max(target.updated, history[-1].at)
    for flavor in FLAVORS:
        with jira_site(world, flavor) as site:
            connector = jira_connector_factory(site, projects=["SD"])
            item = next(i for i in pull_all(connector)[0] if i.id == target.id)
            assert len([h for h in item.history if h.field == "state"]) == 120
            assert item.reopen_count == 60
            used = site.stats()["requests"]
            if flavor == "cloud":
                assert used.get("POST /rest/api/<ver>/changelog/bulkfetch", 0) >= 1
            else:
                assert used.get("GET /rest/api/<ver>/issue/<key>/changelog", 0) >= 1


def test_jira_csat_from_feedback_endpoint_when_no_satisfaction_field(jira_connector_factory: Factory) -> None:  # noqa: F811
    world = jira_world(items=600, seed=9)
    with jira_site(world, "cloud", satisfaction_field=False) as site:
        connector = jira_connector_factory(site, projects=["SD"])
        items = {i.id: i for i in pull_all(connector)[0]}
        sd = [w for w in site.jira_issues() if w.container == "SD"]
        rated = [w for w in sd if w.survey_score and w.resolved]
        assert rated, "the world has rated requests"
        for w in sd:
            expected = (w.survey_score - 1) / 4 if (w.survey_score and w.resolved) else None
            assert items[w.id].survey_score == expected
        calls = site.stats()["requests"]["GET /rest/servicedeskapi/request/<key>/feedback"]
        done = sum(1 for w in sd if w.state in ("Resolved", "Closed", "Done"))
        assert calls == done, "only resolved requests are asked for feedback"


def test_jira_admin_jql_is_anded(jira_shared_site: JiraSite, jira_connector_factory: Factory) -> None:  # noqa: F811
    connector = jira_connector_factory(jira_shared_site, jql="labels = escalated OR priority = Highest")
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert connector.jql("SD", since, None) == (
        '(labels = escalated OR priority = Highest) AND project = "SD" AND '
        f"updated >= {int(since.timestamp() * 1000)} ORDER BY updated ASC, key ASC"
    )
    items = pull_all(connector)[0]
    expected = {w.id for w in jira_shared_site.jira_issues() if "escalated" in w.labels or w.priority == "Highest"}
    assert {i.id for i in items} == expected and items


def test_jira_pull_survives_rate_limits_and_server_errors(
    jira_default_world: World, jira_connector_factory: Factory  # noqa: F811
) -> None:
    for flavor in FLAVORS:
        with jira_site(jira_default_world, flavor) as site:
            site.faults(rate_limit_rate=0.05, error_rate=0.05, retry_after_s=0, seed=4)
            connector = jira_connector_factory(site, page_size=50)
            items, _ = pull_all(connector)
            assert sorted(i.id for i in items) == sorted(w.id for w in site.jira_issues())
            assert connector.counter.retries > 0


def test_jira_wrong_password_is_an_auth_error(jira_shared_site: JiraSite, jira_connector_factory: Factory,  # noqa: F811
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    connector = jira_connector_factory(jira_shared_site)
    monkeypatch.setenv("MOMENTOS_TEST_JIRA_PASSWORD", "wrong-password-123")
    with pytest.raises(AuthError):
        list(connector.pull("SD", None, datetime.now(UTC)))
    problems = connector.check()
    assert len(problems) == 1 and "cannot log in" in problems[0].what


def test_jira_tls_uses_the_sources_ca_even_with_requests_ca_bundle_set(
    jira_connector_factory: Factory, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from momentos.sandbox.base import ServerThread
    from momentos.sandbox.jira import JiraSandbox

    world = jira_world(items=100, seed=2)
    cert, key = make_self_signed_cert(tls_dir())
    app = JiraSandbox(world, {INTEGRATION_USER: "s3cret-pass"}, flavor="cloud")
    server = ServerThread(app, tls=(cert, key)).start()
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
        monkeypatch.setenv("MOMENTOS_TEST_JIRA_PASSWORD", "s3cret-pass")
        settings = JiraSettings.model_validate({
            "name": "jira", "type": "jira", "url": server.url, "ca_bundle": str(cert),
            "auth": {"username": INTEGRATION_USER, "password_env": "MOMENTOS_TEST_JIRA_PASSWORD"},
            "projects": ["SD"],
        })
        connector = JiraConnector(settings)
        assert len(pull_all(connector)[0]) == sum(1 for i in world.items if i.container == "SD")
        connector.close()
    finally:
        server.stop()


# --- writing ---------------------------------------------------------------------------------


def _changes(items: list[Item], n: int) -> list[FieldChange]:
    out = []
    for k, item in enumerate(items[:n]):
        out += [
            FieldChange(item, "moment", item.current.get("moment"), ("operation", "evolution", "innovation")[k % 3]),
            FieldChange(item, "score", item.current.get("score"), str(40 + k)),
            FieldChange(item, "signals", item.current.get("signals"), f"fair: slow replies | sentiment=-0.{k}"),
        ]
    return out


def test_jira_write_is_visible_counted_and_known_next_time(jira_connector_factory: Factory) -> None:  # noqa: F811
    for flavor in FLAVORS:
        world = jira_world(items=300, seed=21)
        with jira_site(world, flavor) as site:
            connector = jira_connector_factory(site, projects=["SD"])
            items = pull_all(connector)[0]
            targets = items[:4]
            results = connector.write(_changes(targets, 4))
            assert [r.ok for r in results] == [True] * 4
            assert all(r.updated is not None for r in results), "the written version is read back"
            writes = site.stats()["writes"]
            assert {k: writes[k] for k in writes} == {f"SD/{t.key}": 1 for t in targets}
            client = jira.JIRA(server=site.url, basic_auth=(INTEGRATION_USER, site.password), max_retries=0)
            fields = {f["name"]: f["id"] for f in client.fields()}
            raw = client.issue(targets[1].key).raw["fields"]
            assert raw[fields["Relationship moment"]]["value"] == "evolution"
            assert raw[fields["Experience score"]] == 41
            assert raw[fields["Experience signals"]] == "fair: slow replies | sentiment=-0.1"
            again = {i.id: i for i in pull_all(connector)[0]}
            fresh = again[targets[1].id]
            assert fresh.current == {"moment": "evolution", "score": 41,
                                     "signals": "fair: slow replies | sentiment=-0.1"}
            mine = [h for h in fresh.history if h.field in ("moment", "score", "signals")]
            assert {h.field for h in mine} == {"moment", "score", "signals"}
            assert all(h.by == INTEGRATION_USER for h in mine)
            assert fresh.updated_by == INTEGRATION_USER
            versions = {r.item_id: r.updated for r in results}
            connector.known = lambda pairs, v=versions: {i for i, u in pairs if v.get(i) == u}
            skipped = {i.id for i in pull_all(connector)[0]}
            assert skipped.isdisjoint(versions) and len(skipped) == len(items) - 4


def test_jira_field_not_on_screen_is_a_clear_permanent_failure(jira_connector_factory: Factory) -> None:  # noqa: F811
    world = jira_world(items=300, seed=22)
    with jira_site(world, "cloud", fields_missing_from_screen=["SD:Experience score"]) as site:
        connector = jira_connector_factory(site, projects=["SD", "APP"])
        items = pull_all(connector)[0]
        sd = next(i for i in items if i.container == "SD")
        app = next(i for i in items if i.container == "APP")
        results = connector.write([
            FieldChange(sd, "score", None, "70"),
            FieldChange(app, "score", None, "70"),
        ])
        assert results[0].ok is False and results[0].retriable is False
        assert results[0].error == "add field Experience score to the edit screen of project SD"
        assert results[1].ok is True
        problems = connector.check()
        assert [p.fix for p in problems] == ["add field Experience score to the edit screen of project SD"]


def test_jira_only_allowlisted_fields_are_written(jira_shared_site: JiraSite, jira_connector_factory: Factory) -> None:  # noqa: F811
    connector = jira_connector_factory(
        jira_shared_site, writeback={"fields": {"moment": "Relationship moment"}})
    item = pull_all(connector)[0][0]
    before = jira_shared_site.stats()["writes"]
    with pytest.raises(PermissionError):
        connector.write([FieldChange(item, "moment", None, "operation"), FieldChange(item, "signals", None, "x")])
    with pytest.raises(PermissionError):
        connector.write([FieldChange(item, "priority", None, "High")])
    assert jira_shared_site.stats()["writes"] == before, "nothing was sent"


def test_jira_notify_users_falls_back_once_without_admin(
    jira_connector_factory: Factory, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    world = jira_world(items=300, seed=23)
    with jira_site(world, "datacenter", not_admin=True) as site:
        connector = jira_connector_factory(site, projects=["APP"])
        items = pull_all(connector)[0][:3]
        with caplog.at_level(logging.WARNING, logger="momentos.jira"):
            results = connector.write([FieldChange(i, "moment", None, "evolution") for i in items])
        assert all(r.ok for r in results)
        assert [connector.write_counts[i.key] for i in items] == [2, 1, 1]
        assert sum("suppress notifications" in r.message for r in caplog.records) == 1


def test_jira_writes_issues_concurrently_after_the_first_put(
    jira_connector_factory: Factory,  # noqa: F811
) -> None:
    """``write_workers`` PUTs are in flight together (the first PUT of a run goes alone). The
    wrapper below only holds each real PUT at a barrier: if the writes were sequential, the
    barrier would never fill and the wait would break."""
    world = jira_world(items=300, seed=23)
    with jira_site(world, "cloud") as site:
        connector = jira_connector_factory(site, projects=["APP"], write_workers=4)
        items = pull_all(connector)[0][:9]
        client = connector.client
        real_put = client.put_raw
        barrier = threading.Barrier(4, timeout=20)
        threads: set[str] = set()
        calls = [0]

        def put_raw(url, body, params):  # noqa: ANN001, ANN202
            calls[0] += 1
            if calls[0] > 1:
                threads.add(threading.current_thread().name)
                barrier.wait()
            return real_put(url, body, params)

        client.put_raw = put_raw
        results = connector.write([FieldChange(i, "score", None, 40 + n) for n, i in enumerate(items)])
        assert [r.item_id for r in results] == [i.id for i in items] and all(r.ok for r in results)
        assert len(threads) == 4
        assert {i.key: site.app.by_key[i.key].values["score"] for i in items} == {
            i.key: 40 + n for n, i in enumerate(items)}


# --- check and settings ----------------------------------------------------------------------------


def test_jira_check_passes_on_the_default_sandbox(jira_shared_site: JiraSite, jira_connector_factory: Factory) -> None:  # noqa: F811
    assert jira_shared_site.app.fields  # sanity
    assert jira_connector_factory(jira_shared_site).check() == []


@pytest.mark.parametrize(
    ("options", "fixes"),
    [
        ({"missing_fields": True}, [
            "create custom field 'Relationship moment' (Select List (single choice))",
            "create custom field 'Experience score' (Number)",
            "create custom field 'Experience signals' (Paragraph)",
        ]),
        ({"fields_missing_from_screen": ["Experience signals"]}, [
            f"add field Experience signals to the edit screen of project {p}" for p in ("SD", "APP", "PMO")
        ]),
        ({"moment_options": ["operation", "evolution"]}, [
            "add option 'innovation' to field Relationship moment",
        ]),
    ],
)
def test_jira_check_lists_problems_with_fixes(
    jira_default_world: World, jira_connector_factory: Factory, options: dict, fixes: list[str]  # noqa: F811
) -> None:
    for flavor in FLAVORS:
        with jira_site(jira_default_world, flavor, **options) as site:
            problems = jira_connector_factory(site).check()
            assert [p.fix for p in problems] == fixes


def test_jira_check_reports_unknown_project(jira_shared_site: JiraSite, jira_connector_factory: Factory) -> None:  # noqa: F811
    problems = jira_connector_factory(jira_shared_site, projects=["SD", "NOPE"]).check()
    assert [p.what for p in problems] == ["project NOPE does not exist or is not visible"]


def test_jira_settings_validation(jira_shared_site: JiraSite, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = jira_settings(jira_shared_site, monkeypatch, projects=["sd", "app", "SD"])
    assert settings.projects == ["SD", "APP"]
    assert settings.writeback.fields == {
        "moment": "Relationship moment", "score": "Experience score", "signals": "Experience signals"}
    assert settings.page_size == 100 and settings.flavor == "auto"
    for bad in ({"jql": "project = SD ORDER BY created"}, {"projects": []}, {"flavor": "server"},
                {"projects": ["not a key"]}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            jira_settings(jira_shared_site, monkeypatch, **bad)


def test_jira_dc_bearer_token(jira_default_world: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    with jira_site(jira_default_world, "datacenter") as site:
        monkeypatch.setenv("MOMENTOS_TEST_JIRA_TOKEN", site.password)
        settings = JiraSettings.model_validate({
            "name": "jira-dc", "type": "jira", "url": site.url, "flavor": "datacenter",
            "auth": {"token_env": "MOMENTOS_TEST_JIRA_TOKEN"}, "projects": ["PMO"],
        })
        connector = JiraConnector(settings)
        assert len(pull_all(connector)[0]) == sum(1 for w in site.jira_issues() if w.container == "PMO")
        assert requests.get(f"{site.url}/_sandbox/stats", timeout=5).ok
        connector.close()


class _RepeatingSearch:
    """Stands in for the library wrapper: a search that keeps answering the same token."""

    def __init__(self) -> None:
        self.calls = 0

    def search_cloud(self, jql: str, token: str | None, size: int, fields: list[str], expand: str | None) -> dict:
        self.calls += 1
        return {"issues": [{"id": str(self.calls)}], "nextPageToken": "same-token", "isLast": False}


def test_jira_paginator_stops_on_a_token_that_does_not_advance() -> None:
    from momentos.connectors.jira import CloudPaginator
    from momentos.errors import PlatformError

    search = _RepeatingSearch()
    paginator = CloudPaginator(search, "project = SD", ["summary"], 100)  # type: ignore[arg-type]
    with pytest.raises(PlatformError, match="already returned"):
        list(paginator.pages())
    assert search.calls == 2  # the first page gives the token; the next answers it again → stop


def test_jira_dc_issue_deleted_during_the_run_does_not_break_the_page(
    jira_connector_factory: Factory,  # noqa: F811
) -> None:
    world = jira_world(items=300, seed=24)
    with jira_site(world, "datacenter") as site:
        connector = jira_connector_factory(site, projects=["SD"])
        victim = next(w for w in site.jira_issues() if w.container == "SD")
        auth = ("it.agent", site.human_password)

        def delete_then_nothing_known(pairs: list) -> set[str]:
            # Called between the id listing and the fetch: the window has just changed.
            requests.delete(f"{site.url}/rest/api/2/issue/{victim.number}", auth=auth, timeout=10)
            return set()

        connector.known = delete_then_nothing_known
        items = pull_all(connector)[0]
        expected = {w.id for w in site.jira_issues() if w.container == "SD"} - {victim.id}
        assert {i.id for i in items} == expected
        strict = requests.get(f"{site.url}/rest/api/2/search", auth=auth, timeout=10,
                              params={"jql": f"key = {victim.number}"})
        assert strict.status_code == 400 and "does not exist for field 'key'" in strict.text
