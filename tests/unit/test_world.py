"""The sandbox's synthetic world: determinism, size and the invariants consumers rely on."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest

from momentos.sandbox.world import (
    HUMAN_USER,
    INTEGRATION_USER,
    World,
    generate_world,
    world_summary,
)

NOW = datetime(2025, 3, 15, tzinfo=UTC)
MOMENTS = {"operation", "evolution", "innovation"}
SN_TABLES = {"incident", "sc_req_item", "problem", "change_request", "pm_project", "dmn_demand"}
SN_PREFIX = {"incident": "INC", "sc_req_item": "RITM", "problem": "PRB",
             "change_request": "CHG", "pm_project": "PRJ", "dmn_demand": "DMND"}
JIRA_PROJECTS = {"SD", "APP", "PMO"}
JIRA_STATUSES = {"Open", "In Progress", "Waiting for customer", "Resolved", "Done", "Closed"}
JIRA_PRIORITIES = {"Highest", "High", "Medium", "Low", "Lowest"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(seed=7, items=2000, now=NOW)


def _timestamps(item) -> list[datetime]:
    stamps = [item.created, item.updated]
    stamps += [s for s in (item.resolved, item.sla_planned_end) if s is not None]
    stamps += [c.created for c in item.comments] + [h.at for h in item.history]
    return stamps


# -- determinism and size ---------------------------------------------------------------------


def test_same_seed_gives_identical_world() -> None:
    a = generate_world(seed=3, items=400, now=NOW)
    b = generate_world(seed=3, items=400, now=NOW)
    assert [asdict(i) for i in a.items] == [asdict(i) for i in b.items]
    assert [asdict(u) for u in a.users] == [asdict(u) for u in b.users]
    assert [asdict(o) for o in a.orgs] == [asdict(o) for o in b.orgs]


def test_different_seed_gives_different_world() -> None:
    a = generate_world(seed=3, items=400, now=NOW)
    b = generate_world(seed=4, items=400, now=NOW)
    assert [i.title for i in a.items] != [i.title for i in b.items]
    assert {i.id for i in a.items}.isdisjoint({i.id for i in b.items if i.platform == "servicenow"})


def test_default_now_is_todays_midnight_utc() -> None:
    w = generate_world(items=50)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert w.now in (today, today - timedelta(days=1))  # tolerate a run across midnight
    assert w.now.tzinfo is not None and w.now.utcoffset() == timedelta(0)


@pytest.mark.parametrize("n", [50, 5000])
def test_exact_size_and_every_container(n: int) -> None:
    w = generate_world(seed=7, items=n, now=NOW)
    assert len(w.items) == n
    containers = Counter((i.platform, i.container) for i in w.items)
    assert {c for p, c in containers if p == "servicenow"} == SN_TABLES
    assert {c for p, c in containers if p == "jira"} == JIRA_PROJECTS
    assert all(count >= 3 for count in containers.values())
    for platform in ("servicenow", "jira"):
        assert {i.truth["moment"] for i in w.items if i.platform == platform} == MOMENTS
    sn_share = sum(i.platform == "servicenow" for i in w.items) / n
    assert 0.5 <= sn_share <= 0.6


# -- invariants ---------------------------------------------------------------------------------


def test_timestamps_ordered_utc_and_not_after_now(world: World) -> None:
    horizon = NOW - timedelta(days=182)
    for item in world.items:
        for ts in _timestamps(item):
            assert ts.tzinfo is not None and ts.utcoffset() == timedelta(0)
            assert ts <= NOW
        assert horizon <= item.created <= item.updated
        comment_times = [c.created for c in item.comments]
        history_times = [h.at for h in item.history]
        assert comment_times == sorted(comment_times)
        assert history_times == sorted(history_times)
        for ts in comment_times + history_times:
            assert item.created <= ts <= item.updated
        if item.resolved is not None:
            assert item.created <= item.resolved <= item.updated
    created = [i.created for i in world.items]
    assert created == sorted(created)


def test_ids_and_numbers_unique_and_well_formed(world: World) -> None:
    ids = [i.id for i in world.items]
    assert len(set(ids)) == len(ids)
    entity_ids = [u.id for u in world.users] + [o.id for o in world.orgs]
    entity_ids += [g.id for g in world.groups]
    assert len(set(entity_ids)) == len(entity_ids)
    assert all(HEX32.match(x) for x in entity_ids)
    comment_ids = [c.id for i in world.items for c in i.comments]
    assert len(set(comment_ids)) == len(comment_ids)
    numbers: dict[str, set[str]] = defaultdict(set)
    for item in world.items:
        assert item.number not in numbers[item.container]
        numbers[item.container].add(item.number)
        if item.platform == "servicenow":
            assert HEX32.match(item.id)
            assert re.fullmatch(SN_PREFIX[item.container] + r"00\d{5}", item.number)
        else:
            assert item.id.isdigit() and int(item.id) >= 10000
            assert re.fullmatch(item.container + r"-\d+", item.number)


def test_people_and_orgs_are_consistent(world: World) -> None:
    users = {u.id: u for u in world.users}
    orgs = {o.id: o for o in world.orgs}
    groups = {g.id for g in world.groups}
    by_username = {u.username: u for u in world.users}
    assert by_username[INTEGRATION_USER].is_agent and by_username[HUMAN_USER].is_agent
    assert len(by_username) == len(world.users)
    companies = [o for o in world.orgs if o.kind == "company"]
    assert 6 <= len(companies) <= 10
    assert 15 <= sum(u.is_agent for u in world.users) - 2 <= 40
    for item in world.items:
        requester = users[item.requester_id]
        assert not requester.is_agent
        assert requester.company_id == item.company_id
        assert orgs[item.company_id].kind == "company"
        assert orgs[item.department_id].company_id == item.company_id
        assert users[item.assignee_id].is_agent
        assert item.group_id in groups
        assert users[item.updated_by_id]
        for pid in item.participants:
            assert not users[pid].is_agent and pid != item.requester_id
        for comment in item.comments:
            author = users[comment.author_id]
            if comment.internal:
                assert author.is_agent
        for event in item.history:
            assert event.by_id in users
        assert item.fields == {}
    human = by_username[HUMAN_USER].id
    assert 0 < sum(i.updated_by_id == human for i in world.items) < 0.1 * len(world.items)


def test_states_priorities_sla_and_request_types(world: World) -> None:
    for item in world.items:
        if item.platform == "servicenow":
            assert re.fullmatch(r"-?\d+", item.state)
            assert item.priority in {"1", "2", "3", "4", "5"}
        else:
            assert item.state in JIRA_STATUSES
            assert item.priority in JIRA_PRIORITIES
        has_sla = item.kind in {"incident", "request", "Incident", "Service Request"}
        assert (item.sla_breached is not None) == has_sla
        if not has_sla:
            assert item.sla_planned_end is None
        assert bool(item.request_type) == (item.container == "SD")
        if item.survey_score is not None:
            assert item.truth["moment"] == "operation" and 1 <= item.survey_score <= 5
            assert item.resolved is not None


def test_history_matches_counters(world: World) -> None:
    resolved_labels = {"Resolved", "Closed Complete", "Done"}
    for item in world.items:
        moves = [h for h in item.history if h.field == "assignment_group" and h.old is not None]
        assert item.reassignment_count == len(moves)
        reopens = [h for h in item.history
                   if h.field == "state" and h.old in resolved_labels and h.new == "In Progress"]
        assert item.reopen_count == len(reopens)
    assert any(i.reopen_count > 0 for i in world.items)
    assert any(i.reassignment_count >= 2 for i in world.items)


def test_languages_mixed_within_every_customer(world: World) -> None:
    langs: dict[str, set[str]] = defaultdict(set)
    for item in world.items:
        assert item.language in {"en", "es"}
        langs[item.company_id].add(item.language)
    assert all(v == {"en", "es"} for v in langs.values())


def test_moments_and_jira_types(world: World) -> None:
    for platform in ("servicenow", "jira"):
        assert {i.truth["moment"] for i in world.items if i.platform == platform} == MOMENTS
    for kind in ("Task", "Story"):
        assert len({i.truth["moment"] for i in world.items if i.kind == kind}) >= 2
    expected = {"incident": "operation", "request": "operation", "problem": "operation",
                "change": "evolution", "Bug": "operation", "Idea": "innovation",
                "Incident": "operation", "Service Request": "operation", "Change": "evolution"}
    for item in world.items:
        assert set(item.truth) == {"moment", "bad_experience"}
        if item.kind in expected:
            assert item.truth["moment"] == expected[item.kind]
    epics = Counter(i.truth["moment"] for i in world.items if i.kind == "Epic")
    assert epics["innovation"] > epics["evolution"] > 0


def test_experience_mix_and_long_conversations(world: World) -> None:
    bad = [i for i in world.items if i.truth["bad_experience"]]
    assert 0.15 <= len(bad) / len(world.items) <= 0.4
    assert sum(len(i.comments) > 20 for i in world.items) >= 2
    good = [i for i in world.items if not i.truth["bad_experience"]]

    def breach_rate(items) -> float:
        with_sla = [i for i in items if i.sla_breached is not None]
        return sum(i.sla_breached for i in with_sla) / len(with_sla)

    # Informative but noisy: bad experiences breach far more often, yet not always.
    assert breach_rate(bad) > breach_rate(good) + 0.3
    assert 0 < breach_rate(good) and breach_rate(bad) < 1


def test_caused_by_points_to_earlier_changes(world: World) -> None:
    by_number = {(i.platform, i.number): i for i in world.items}
    linked = [i for i in world.items if i.caused_by]
    assert linked
    for item in linked:
        assert item.kind in {"incident", "Incident"}
        change = by_number[(item.platform, item.caused_by)]
        assert change.kind in {"change", "Change"}
        assert change.service == item.service and change.created <= item.created


def test_updated_collisions_are_rare_but_present(world: World) -> None:
    counts = Counter(i.updated for i in world.items)
    shared = sum(c for c in counts.values() if c > 1)
    assert 0 < shared <= 0.05 * len(world.items)


def test_summary_counts(world: World) -> None:
    summary = world_summary(world)
    assert summary["items"] == 2000
    assert sum(summary["by_platform"].values()) == 2000
    assert sum(summary["by_moment"].values()) == 2000
    assert sum(sum(c.values()) for c in summary["by_container"].values()) == 2000
    assert set(summary["by_moment"]) == MOMENTS
    assert summary["max_comments"] > 20
