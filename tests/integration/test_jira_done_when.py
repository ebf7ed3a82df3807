"""Issue 4's "Done when", each shown through the real ``SyncEngine`` (or the ``momentos sync``
command) against the Jira sandbox, with the real ``jira`` library over real HTTP underneath.

Every test builds a Jira-only config the way ``momentos.demo.sandbox_config`` does (password in
the environment, never in the file) and asserts on what the *platform* ends up holding, read
from the sandbox's ``/_sandbox/stats`` and its stored issues.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import requests
import yaml
from jira_fixtures import (
    FLAVORS,
    PASSWORD_ENV,
    WORLD_NOW,
    JiraSite,
    RecordingConnector,
    jira_config,
    jira_site,
    jira_world,
    load_config_dict,
    platform_values,
    run_sync,
)

from momentos.enrichment import enrich
from momentos.sandbox.world import INTEGRATION_USER, WorldComment
from momentos.state import StateStore

#: Enrichment reads ages against this instant, so two runs agree on every value.
FIXED_NOW = WORLD_NOW + timedelta(days=1)


def own_changes(site: JiraSite) -> Counter[str]:
    """Changelog entries by the integration user that touched a writeback field, by issue:
    the writes that actually changed something (a PUT that changes nothing leaves none)."""
    fields = {site.app.field_ids[k] for k in ("moment", "score", "signals")}
    out: Counter[str] = Counter()
    for issue in site.app.issues.values():
        for h in issue.histories:
            if h.author.user.username == INTEGRATION_USER and any(i.get("fieldId") in fields for i in h.items):
                out[f"{issue.project}/{issue.key}"] += 1
    return out


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch


# --- the same sync on both flavours ------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_the_same_sync_works_on_both_flavours_and_cloud_never_calls_the_legacy_search(
    flavor: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    world = jira_world(items=700, seed=31)
    with jira_site(world, flavor) as site:
        env.setenv(PASSWORD_ENV, site.password)
        config = load_config_dict(jira_config(site, tmp_path))
        state = StateStore(config.state_url)
        first = run_sync(config, state).sources["jira"]
        second = run_sync(config, state).sources["jira"]
        state.close()
        issues = site.jira_issues()
        assert first.error == "" and first.failed == 0
        assert first.pulled == first.enriched == len(issues)
        assert first.written + first.unchanged + first.skipped_manual == len(issues)
        assert first.written > 0.8 * len(issues)
        # Our own updates come back in the next window and are recognised, never rewritten.
        assert second.written == 0 and second.pulled == 0 and second.requests["write"] == 0
        values = platform_values(site)
        assert all(set(v) == {"moment", "score", "signals"} for v in values.values())
        used = site.stats()["requests"]
        legacy = used.get("GET /rest/api/<ver>/search", 0) + used.get("POST /rest/api/<ver>/search", 0)
        if flavor == "cloud":
            assert legacy == 0, "Cloud removed /search (410); only /search/jql may be called"
            assert used["GET /rest/api/<ver>/search/jql"] > 0
        else:
            assert legacy > 0 and "GET /rest/api/<ver>/search/jql" not in used


# --- 300 issues in one minute, API user in a negative-offset zone ------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_300_issues_in_one_minute_straddling_pages_are_pulled_exactly_once(
    flavor: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    """Two syncs split inside the crowded minute (the first one's start lies in it), pages of
    100 cut through it, and the integration user's profile is UTC−5 (Cloud) / UTC−8 (DC)."""
    world = jira_world(items=1000, seed=3)
    # The sandbox stamps our writes with this clock: after every world change, like a real run.
    clock = lambda: WORLD_NOW + timedelta(hours=1)
    with jira_site(world, flavor, same_minute=300, clock=clock) as site:
        env.setenv(PASSWORD_ENV, site.password)
        me = requests.get(f"{site.url}/rest/api/2/myself", auth=(INTEGRATION_USER, site.password), timeout=10).json()
        assert datetime(2026, 1, 15, tzinfo=ZoneInfo(me["timeZone"])).utcoffset() < timedelta(0)
        minute, crowd = Counter(i.updated.replace(second=0, microsecond=0) for i in site.jira_issues()).most_common(1)[0]
        assert crowd >= 300
        config = load_config_dict(jira_config(site, tmp_path))
        state = StateStore(config.state_url)
        RecordingConnector.pulled = []
        first = run_sync(config, state, now=minute + timedelta(seconds=31), record=True).sources["jira"]
        second = run_sync(config, state, now=clock() + timedelta(minutes=1), record=True).sources["jira"]
        state.close()
        ids = [i.id for i in RecordingConnector.pulled]
        expected = {i.id for i in site.jira_issues()}
        assert first.failed == second.failed == 0
        assert 0 < first.pulled < len(expected), "the first run ended inside the minute"
        assert first.pulled + second.pulled == len(expected)
        assert sorted(Counter(ids).values()) == [1] * len(expected), "every issue came exactly once"
        assert set(ids) == expected


# --- 45 comments, sentiment from the requester's own words -------------------------------------------


REQUESTER_SAYS = [
    "It works now, thanks a lot!",
    "Great, the new laptop is perfect.",
    "Thanks, excellent support.",
]
#: Angry words that must never reach the requester's sentiment: agents', others', quoted mails.
NOT_THEIRS = "This is terrible, awful, unacceptable and useless. I am furious."


def test_45_comments_all_read_and_sentiment_reads_only_the_requesters_own_text(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    world = jira_world(items=400, seed=5)
    target = next(i for i in world.items if i.platform == "jira" and i.container == "SD" and i.participants)
    agent = next(u for u in world.users if u.is_agent and u.username != INTEGRATION_USER)
    other = next(u for u in world.users if not u.is_agent and u.id not in (target.requester_id, *target.participants))
    start = target.created + timedelta(minutes=5)
    comments, own = [], []
    for n in range(45):
        at = start + timedelta(minutes=n)
        if n % 3 == 0:  # the requester, replying by e-mail: a quote and a signature follow
            said = REQUESTER_SAYS[(n // 3) % len(REQUESTER_SAYS)]
            own.append(said)
            text = (f"{said}\n\nOn Mon, 5 Jan 2026 at 10:02, IT Desk <desk@acme.com> wrote:\n> {NOT_THEIRS}"
                    if n % 2 else f"{said}\n\nSaludos,\nAna\nFinanzas\n\nEl lun, 5 ene 2026, Soporte escribió:\n> {NOT_THEIRS}")
            comments.append(WorldComment(str(700000 + n), target.requester_id, at, text))
        else:
            author = agent.id if n % 3 == 1 else other.id
            comments.append(WorldComment(str(700000 + n), author, at, NOT_THEIRS))
    target.comments = comments
    target.updated = max(target.updated, comments[-1].created)
    with jira_site(world, "cloud") as site:
        env.setenv(PASSWORD_ENV, site.password)
        config = load_config_dict(jira_config(site, tmp_path, projects=["SD"]))
        state = StateStore(config.state_url)
        RecordingConnector.pulled = []
        run_sync(config, state, now=FIXED_NOW, record=True)
        rows = {r["id"]: r for r in state.iter_items(["jira"])}
        state.close()
        item = next(i for i in RecordingConnector.pulled if i.id == target.id)
        assert len(item.comments) == 45, "the 25 beyond Cloud's inline 20 were paged in"
        assert site.stats()["requests"]["GET /rest/api/<ver>/issue/<key>/comment"] >= 1
        assert [c.text for c in item.comments if c.author_role == "requester"] == own
        # What enrichment gives for the requester's own words alone, offline …
        alone = enrich(pd.DataFrame([{
            "id": target.id, "kind": "incident", "title": target.title, "description": target.description,
            "comments": json.dumps([{"author_role": "requester", "text": t} for t in own]),
        }]), now=FIXED_NOW)["sentiment"].iloc[0]
        # … and what it would give had the angry text been the requester's.
        angry = enrich(pd.DataFrame([{
            "id": target.id, "kind": "incident", "title": target.title, "description": target.description,
            "comments": json.dumps([{"author_role": "requester", "text": c.text} for c in comments]),
        }]), now=FIXED_NOW)["sentiment"].iloc[0]
        assert alone > 0.3 and angry < alone
        assert rows[target.id]["sentiment"] == pytest.approx(alone)


# --- faults: same end state ----------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_with_5_percent_429_and_5_percent_503_the_end_state_matches_a_fault_free_run(
    flavor: str, tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    ends = []
    for faulty in (False, True):
        # A fresh world per run: the sandbox writes into its world's items.
        with jira_site(jira_world(items=700, seed=41), flavor) as site:
            env.setenv(PASSWORD_ENV, site.password)
            if faulty:
                site.faults(rate_limit_rate=0.05, unavailable_rate=0.05, retry_after_s=0, seed=9)
            work = tmp_path / f"run-{faulty}"
            work.mkdir()
            config = load_config_dict(jira_config(site, work, page_size=50))
            state = StateStore(config.state_url)
            summary = run_sync(config, state, now=FIXED_NOW).sources["jira"]
            state.close()
            assert summary.error == "" and summary.failed == 0
            ends.append((platform_values(site), summary, site.stats()))
    (clean, clean_summary, _), (faulty_end, faulty_summary, stats) = ends
    assert faulty_end == clean
    assert faulty_summary.written == clean_summary.written > 0
    # The faults did happen, and were retried inside the run.
    assert faulty_summary.requests["read"] + faulty_summary.requests["write"] > (
        clean_summary.requests["read"] + clean_summary.requests["write"])
    assert set(stats["writes"].values()) == {1}, "a refused attempt never reached the issue"


# --- killed mid-run, then re-run ---------------------------------------------------------------------------


def test_a_run_killed_mid_way_and_rerun_writes_every_issue_without_duplicates(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    world = jira_world(items=500, seed=51)
    with jira_site(world, "cloud") as site:
        config = tmp_path / "momentos.yaml"
        config.write_text(yaml.safe_dump(jira_config(site, tmp_path, page_size=20)), encoding="utf-8")
        command = [sys.executable, "-m", "momentos", "sync", "--config", str(config), "--json"]
        child_env = {**os.environ, PASSWORD_ENV: site.password}
        # Every request waits a little, so the kill lands in the middle of the writes.
        site.faults(delay_rate=1.0, delay_s=0.01)
        proc = subprocess.Popen(command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(site.stats()["writes"]) < 60 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the run was killed, not finished"
        written_before = len(site.stats()["writes"])
        issues = len(site.jira_issues())
        assert 0 < written_before < issues * 0.8

        site.faults(delay_rate=0.0, delay_s=0.0)
        rerun = subprocess.run(command, check=False, env=child_env, capture_output=True, text=True, timeout=240)
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout)["sources"]["jira"]
        assert summary["failed"] == 0

        values = platform_values(site)
        assert all(set(v) == {"moment", "score", "signals"} for v in values.values()), "every issue has its fields"
        writes = Counter(site.stats()["writes"])
        changed = own_changes(site)
        # A write that changed nothing is a duplicate: at most the one in flight at the kill.
        duplicates = sum(writes[k] - changed[k] for k in writes)
        assert duplicates <= 1, (writes - changed)
        assert max(writes.values()) <= 2
        # Issues written twice changed twice (their value moved on); at most one page was in flight.
        assert sum(1 for n in writes.values() if n == 2) <= 20


