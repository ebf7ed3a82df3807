"""Authentication, rate limits and writeback of the Jira connector against the sandbox: the real
``jira`` library over real HTTP, through the connector or the real ``SyncEngine``.

Waits are recorded instead of slept where a test shows *how long* the policy would wait (the
policy adapter's ``sleep`` hook); nothing in the jira library or requests is replaced.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jira_fixtures import (  # noqa: F401 - fixtures are used by name
    PASSWORD_ENV,
    WORLD_NOW,
    JiraSite,
    jira_config,
    jira_connector_factory,
    jira_site,
    jira_world,
    load_config_dict,
    platform_values,
    pull_all,
    run_sync,
)

from momentos.connectors.base import FieldChange
from momentos.connectors.http import PolicyAdapter
from momentos.connectors.jira import JiraConnector, JiraSettings
from momentos.sandbox.world import INTEGRATION_USER
from momentos.state import StateStore

Factory = Callable[..., JiraConnector]
FIXED_NOW = WORLD_NOW + timedelta(days=1)


def recorded_sleeps(connector: JiraConnector, site: JiraSite) -> list[float]:
    """Make the connector's policy adapter note its waits instead of sleeping them."""
    adapter = connector.client.session.get_adapter(site.url)
    assert isinstance(adapter, PolicyAdapter), "the one HTTP policy is mounted on the jira session"
    sleeps: list[float] = []
    adapter._sleep = sleeps.append
    return sleeps


# --- authentication ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavor", "auth", "scheme"),
    [
        pytest.param("cloud", {"username": f"{INTEGRATION_USER}@example.com", "password_env": "TOKEN"},
                     "basic", id="cloud-email-and-api-token"),
        pytest.param("datacenter", {"token_env": "TOKEN"}, "bearer", id="dc-personal-access-token"),
        pytest.param("datacenter", {"username": INTEGRATION_USER, "password_env": "TOKEN"}, "basic",
                     id="dc-basic"),
    ],
)
def test_jira_authentication_paths(flavor: str, auth: dict[str, str], scheme: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    world = jira_world(items=300, seed=61)
    with jira_site(world, flavor) as site:
        monkeypatch.setenv("TOKEN", site.password)  # the sandbox's PAT/API token is the password
        connector = JiraConnector(JiraSettings.model_validate({
            "name": "jira", "type": "jira", "url": site.url, "auth": auth, "projects": ["PMO"]}))
        items = pull_all(connector)[0]
        assert {i.id for i in items} == {w.id for w in site.jira_issues() if w.container == "PMO"}
        # The library's TokenAuth sends "Authorization: Bearer <PAT>"; basic sends user:secret.
        assert type(connector.client.session.auth).__name__ == ("TokenAuth" if scheme == "bearer" else "tuple")
        assert connector.check() == []
        connector.close()


def test_jira_cloud_refuses_a_bearer_token_with_a_clear_check_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    with jira_site(jira_world(items=100, seed=62), "cloud") as site:
        monkeypatch.setenv("TOKEN", site.password)
        connector = JiraConnector(JiraSettings.model_validate({
            "name": "jira", "type": "jira", "url": site.url, "auth": {"token_env": "TOKEN"}, "projects": ["SD"]}))
        problems = connector.check()
        assert len(problems) == 1 and problems[0].what.startswith(f"cannot log in to Jira at {site.url}")
        assert "e-mail on Cloud" in problems[0].fix
        connector.close()


# --- rate limits and faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "maximum", "low", "high"),
    [
        pytest.param(2, 1, 1.0, 1.0, id="capped-at-the-configured-maximum"),
        # Above the jira library's own 60 s cap (ResilientSession max_retry_delay): honoured.
        pytest.param(120, 300, 120.0, 120.0 * 1.03, id="above-the-librarys-60s"),
    ],
)
def test_jira_429_waits_retry_after_up_to_the_configured_maximum_and_logs_rate_limit_headers(
    retry_after: float, maximum: float, low: float, high: float,
    jira_connector_factory: Factory, caplog: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    with jira_site(jira_world(items=300, seed=63), "cloud") as site:
        site.faults(rate_limit_rate=0.3, retry_after_s=retry_after, seed=3)
        connector = jira_connector_factory(
            site, projects=["SD"], http={"retry_after_max_s": maximum, "max_retries": 10})
        sleeps = recorded_sleeps(connector, site)
        with caplog.at_level(logging.DEBUG, logger="momentos.http"):
            items = pull_all(connector)[0]
        assert len(items) == sum(1 for w in site.jira_issues() if w.container == "SD")
        assert sleeps and all(low <= s <= high for s in sleeps), sleeps
        assert connector.counter.retries == len(sleeps)
        logged = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
        assert logged and "X-RateLimit-Remaining" in logged[0] and "X-RateLimit-Limit" in logged[0]


def test_jira_503_backs_off_exponentially(jira_connector_factory: Factory) -> None:  # noqa: F811
    with jira_site(jira_world(items=300, seed=64), "datacenter") as site:
        site.faults(unavailable_rate=0.3, seed=5)
        connector = jira_connector_factory(
            site, projects=["SD", "APP"],
            http={"backoff_base_s": 0.5, "backoff_max_s": 8, "jitter": 0.25, "max_retries": 10})
        sleeps = recorded_sleeps(connector, site)
        items = pull_all(connector)[0]
        assert len(items) == sum(1 for w in site.jira_issues() if w.container in ("SD", "APP"))
        assert sleeps and min(sleeps) >= 0.5 and max(sleeps) <= 8 * 1.25
        assert any(s >= 1.0 for s in sleeps), "a second retry of one request waits twice as long"


def test_jira_per_issue_write_limit_holds_within_a_run(jira_connector_factory: Factory) -> None:  # noqa: F811
    with jira_site(jira_world(items=300, seed=65), "cloud", not_admin=True) as site:
        connector = jira_connector_factory(site, projects=["APP"], max_writes_per_issue=2)
        first, second = pull_all(connector)[0][:2]
        # The 403 on notifyUsers=false and the write without it: two writes to the first issue.
        assert [r.ok for r in connector.write([FieldChange(first, "score", None, "40")])] == [True]
        assert connector.write_counts[first.key] == 2
        again = connector.write([FieldChange(first, "score", None, "41"), FieldChange(second, "score", None, "41")])
        assert [r.ok for r in again] == [False, True]
        assert again[0].retriable and "per-issue write limit (2 a run)" in again[0].error
        assert site.stats()["writes"] == {f"APP/{first.key}": 2, f"APP/{second.key}": 1}


# --- writeback through the sync engine ----------------------------------------------------------------


def test_jira_cloud_without_admin_falls_back_to_notifying_writes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with jira_site(jira_world(items=300, seed=66), "cloud", not_admin=True) as site:
        monkeypatch.setenv(PASSWORD_ENV, site.password)
        config = load_config_dict(jira_config(site, tmp_path))
        state = StateStore(config.state_url)
        with caplog.at_level(logging.WARNING, logger="momentos.jira"):
            summary = run_sync(config, state, now=FIXED_NOW).sources["jira"]
        state.close()
        assert summary.failed == 0 and summary.written > 0
        assert sum("may not suppress notifications" in r.getMessage() for r in caplog.records) == 1
        writes = Counter(site.stats()["writes"].values())
        assert writes == {1: summary.written - 1, 2: 1}, "only the first write was refused"


def _bulk_config(site: JiraSite, tmp: Path, **source: Any) -> dict[str, Any]:
    # Signals text differs per issue; moment and score repeat, so issues share values.
    return jira_config(site, tmp, writeback={"fields": {"moment": "Relationship moment", "score": "Experience score"}},
                       bulk_poll_interval_s=0.01, **source)


def test_jira_cloud_bulk_edit_groups_identical_values_and_ends_like_single_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ends = {}
    for bulk in (False, True):
        with jira_site(jira_world(items=700, seed=67), "cloud", bulk_task_polls=2) as site:
            monkeypatch.setenv(PASSWORD_ENV, site.password)
            work = tmp_path / str(bulk)
            work.mkdir()
            config = load_config_dict(_bulk_config(site, work, bulk_edit=bulk))
            state = StateStore(config.state_url)
            first = run_sync(config, state, now=FIXED_NOW).sources["jira"]
            second = run_sync(config, state, now=FIXED_NOW + timedelta(minutes=5)).sources["jira"]
            state.close()
            assert first.failed == 0 and second.written == 0 and second.requests["write"] == 0
            ends[bulk] = (platform_values(site), first, site.stats())
    (single, single_summary, _), (bulked, bulk_summary, stats) = ends[False], ends[True]
    assert bulked == single and bulk_summary.written == single_summary.written > 0
    used = stats["requests"]
    tasks = used["POST /rest/api/<ver>/bulk/issues/fields"]
    assert tasks >= 2 and used["GET /rest/api/<ver>/bulk/queue/<task_id>"] == 3 * tasks
    assert bulk_summary.requests["write"] < single_summary.requests["write"]
    assert set(stats["writes"].values()) == {1}, "each issue edited once, by a task or a PUT"


@pytest.mark.parametrize(
    ("flavor", "options", "warning"),
    [
        pytest.param("cloud", {"bulk_edit_denied": True}, "bulk edit refused", id="no-bulk-permission"),
        pytest.param("datacenter", {}, "bulk_edit is a Jira Cloud API", id="data-center"),
    ],
)
def test_jira_bulk_edit_falls_back_to_put_with_a_warning(
    flavor: str, options: dict[str, Any], warning: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with jira_site(jira_world(items=300, seed=68), flavor, **options) as site:
        monkeypatch.setenv(PASSWORD_ENV, site.password)
        config = load_config_dict(_bulk_config(site, tmp_path, bulk_edit=True))
        state = StateStore(config.state_url)
        with caplog.at_level(logging.WARNING, logger="momentos.jira"):
            summary = run_sync(config, state, now=FIXED_NOW).sources["jira"]
        state.close()
        assert summary.failed == 0 and summary.written > 0
        assert sum(warning in r.getMessage() for r in caplog.records) == 1
        assert sum(site.stats()["writes"].values()) == summary.written
        assert site.stats()["requests"].get("GET /rest/api/<ver>/bulk/queue/<task_id>", 0) == 0


def test_jira_bulk_edit_reports_a_field_missing_from_a_screen_with_its_fix(
    jira_connector_factory: Factory,  # noqa: F811
) -> None:
    with jira_site(jira_world(items=300, seed=69), "cloud", fields_missing_from_screen=["SD:Experience score"]) as site:
        connector = jira_connector_factory(site, projects=["SD", "APP"], bulk_edit=True, bulk_poll_interval_s=0.01)
        items = pull_all(connector)[0]
        sd = [i for i in items if i.container == "SD"][:2]
        app = [i for i in items if i.container == "APP"][:2]
        results = connector.write([FieldChange(i, "score", None, "70") for i in sd + app])
        assert [r.ok for r in results] == [False, False, True, True]
        assert {r.error for r in results[:2]} == {"add field Experience score to the edit screen of project SD"}
        assert not results[0].retriable
        assert results[2].updated is not None and results[2].updated > datetime(2026, 1, 1).astimezone()
        assert site.stats()["requests"]["POST /rest/api/<ver>/bulk/issues/fields"] == 1
