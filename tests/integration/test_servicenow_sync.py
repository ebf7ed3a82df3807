"""Issue 3's "Done when", end to end: the real ``SyncEngine`` with the real ServiceNow
connector (pysnow over HTTP) against the sandbox. What the platform ends up holding is read
from the sandbox itself (``/_sandbox/stats`` and its stored rows), never from momentos.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from momentos.sandbox.world import World, generate_world
from momentos.state import StateStore
from momentos.sync import SyncEngine, SyncResult

if TYPE_CHECKING:
    from conftest import SnServer

NOW = datetime(2026, 12, 1, tzinfo=UTC)
WRITEBACK = ("u_relationship_moment", "u_experience_score", "u_experience_signals")


def _sync(config: Any, now: datetime | None = NOW) -> SyncResult:
    state = StateStore(config.state_url)
    try:
        return SyncEngine(config, state).run(now=now)
    finally:
        state.close()


def _stats(server: SnServer) -> dict[str, Any]:
    return requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()


def _records(server: SnServer, table: str = "task") -> dict[str, dict[str, str]]:
    return {r["sys_id"]: r for r in server.app.rows(table)}


def _writes_by_record(server: SnServer) -> Counter[str]:
    return Counter({key.rsplit("/", 1)[1]: n for key, n in _stats(server)["writes"].items()})


@pytest.fixture(scope="module")
def big_world() -> World:
    return generate_world(seed=5, items=2400, now=datetime(2026, 11, 1, tzinfo=UTC))


def test_sync_writes_each_record_once_and_a_resync_is_quiet(
    sn_server_factory: Any, sn_config_factory: Any
) -> None:
    """First sync writes every record once; a re-sync with nothing changed (our own writes are
    the only changes) writes nothing, reads one page per table and no related table."""
    server = sn_server_factory()
    config = sn_config_factory(server, state="quiet.db")
    first = _sync(config, now=None).sources["servicenow"]
    records = _records(server)
    assert first.failed == 0 and not first.error
    assert first.pulled == first.written == len(records)
    assert set(_writes_by_record(server).values()) == {1}
    assert all(r.get("u_relationship_moment") for r in records.values())
    before = _stats(server)

    for _ in range(2):  # twice: the second re-sync sees the first re-sync's (empty) window
        again = _sync(config, now=None).sources["servicenow"]
        after = _stats(server)
        assert again.written == 0 and again.failed == 0 and again.pulled == 0
        assert again.requests == {"read": len(config.sources[0].tables), "write": 0}
        assert after["writes"] == before["writes"]
        # Only the main table was read: the known versions were dropped before any related
        # (journal, audit, SLA, survey, display value) query was built.
        new = Counter(after["requests"]) - Counter(before["requests"])
        assert new == {"GET /api/now/table/<table>": len(config.sources[0].tables)}
        before = after


def test_a_first_sync_of_several_batches_says_how_to_settle_its_values(
    sn_server_factory: Any, sn_config_factory: Any, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("momentos.sync.BATCH_ITEMS", 20)
    server = sn_server_factory()
    config = sn_config_factory(server, state="settle.db")
    with caplog.at_level(logging.INFO, logger="momentos.sync"):
        first = _sync(config, now=None).sources["servicenow"]
    assert first.enriched > 40
    assert re.search(r"first sync done \(\d+ items in \d+ batches\).*sync --full", caplog.text)
    state = StateStore(config.state_url)
    try:
        assert set(state.marks_named("settle_pending")) == {"servicenow"}
    finally:
        state.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="momentos.sync"):
        _sync(config, now=None)
    assert "first sync done" not in caplog.text
    state = StateStore(config.state_url)
    try:
        assert state.marks_named("settle_pending")  # an incremental sync settles nothing
        SyncEngine(config, state).run(full=True)
        assert state.marks_named("settle_pending") == {}
    finally:
        state.close()

    # A first sync that found nothing has nothing to settle.
    empty = sn_config_factory(server, state="empty.db", tables=[
        {"name": "incident", "filter": "number=NOSUCHRECORD"},
        {"name": "change_request", "filter": "number=NOSUCHRECORD"},
    ])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="momentos.sync"):
        assert _sync(empty, now=None).sources["servicenow"].pulled == 0
    assert "first sync done" not in caplog.text
    state = StateStore(empty.state_url)
    try:
        assert state.marks_named("settle_pending") == {}
    finally:
        state.close()


def test_serve_settles_a_first_sync_after_its_next_sync_job(
    sn_server_factory: Any, sn_config_factory: Any, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from momentos.config import JobSettings
    from momentos.scheduler import Service, settles_itself

    monkeypatch.setattr("momentos.sync.BATCH_ITEMS", 20)
    server = sn_server_factory()
    job = JobSettings(name="sync", type="sync", cron="*/5 * * * *")

    def run_job(config: Any) -> tuple[list[int], dict[str, str]]:
        """The job's status and the ``pulled`` count of each sync run it made."""
        caplog.clear()
        service = Service(config)
        with caplog.at_level(logging.INFO):
            service.run_job(job)
        assert service._runs[-1]["status"] == "ok"
        state = StateStore(config.state_url)
        try:
            pending = state.marks_named("settle_pending")
        finally:
            state.close()
        pulled = [int(n) for n in re.findall(r"sync servicenow: pulled=(\d+)", caplog.text)]
        return pulled, pending

    config = sn_config_factory(server, state="serve-settle.db")
    assert not settles_itself(config, "servicenow")  # no sync job: `status` says to run it
    config.model.schedule.jobs = [job]
    assert settles_itself(config, "servicenow")
    pulled, pending = run_job(config)  # the first sync: it makes the mark, settles nothing
    assert len(pulled) == 1 and pulled[0] > 40 and "servicenow" in pending
    assert "`momentos serve` settles their values with one full sync" in caplog.text
    first = pulled[0]
    # The next job syncs what changed (nothing here), then runs the full sync that settles.
    pulled, pending = run_job(config)
    assert pulled == [0, first] and pending == {}
    assert "running one full sync to settle" in caplog.text
    pulled, _ = run_job(config)  # settled: plain incremental syncs from now on
    assert pulled == [0]

    # Turned off, or with a request budget (a full sync would never finish), the admin decides.
    off = sn_config_factory(server, state="serve-off.db")
    off.model.schedule.settle_first_sync = False
    budget = sn_config_factory(server, state="serve-budget.db", max_requests=10_000)
    for config in (off, budget):
        config.model.schedule.jobs = [job]
        assert not settles_itself(config, "servicenow")
        run_job(config)
        assert "run `momentos sync --full` once" in caplog.text
        pulled, pending = run_job(config)
        assert pulled == [0] and "servicenow" in pending


def test_500_records_sharing_one_second_are_synced_exactly_once(
    sn_server_factory: Any, sn_config_factory: Any, big_world: World
) -> None:
    server = sn_server_factory(world=big_world, same_second=500)
    table = server.app.same_second_table
    sharing = [
        r for r in server.app.rows(table) if r["sys_updated_on"] == server.app.same_second_value
    ]
    assert len(sharing) >= 500
    config = sn_config_factory(server, page_size=100, tables=[table])
    summary = _sync(config).sources["servicenow"]
    rows = _records(server, table)
    assert summary.pulled == summary.written == len(rows)
    assert _writes_by_record(server) == Counter(dict.fromkeys(rows, 1))
    # The shared second straddles five page boundaries and the watermark sits inside it: a
    # re-sync from the watermark minus the overlap finds only versions it knows.
    assert _sync(config).sources["servicenow"].written == 0
    assert _writes_by_record(server) == Counter(dict.fromkeys(rows, 1))


def test_acl_short_and_empty_pages_and_the_end_of_run_count(
    sn_server_factory: Any, sn_config_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = sn_server_factory(acl_hidden_rate=0.35)
    app = server.app
    rows = _records(server, "incident")
    visible = {i for i in rows if i not in app.hidden}
    assert len(visible) < len(rows)
    config = sn_config_factory(server, page_size=4, tables=["incident"])
    with caplog.at_level(logging.INFO, logger="momentos.sync"):
        summary = _sync(config, now=None).sources["servicenow"]
    assert summary.pulled == summary.written == len(visible)
    assert set(_writes_by_record(server)) == visible
    # The server's count for the window includes what ACLs hide; the figures are in the log.
    warned = re.search(r"counted (\d+) records in the window but (\d+) were processed", caplog.text)
    assert warned and int(warned[1]) == len(rows)
    # Processed: every visible record, plus any of our own writes made within the sync's first
    # second, which the window includes and drops as known.
    assert len(visible) <= int(warned[2]) < len(rows)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="momentos.sync"):
        assert _sync(config, now=None).sources["servicenow"].written == 0
    assert "counted" not in caplog.text  # known versions are not "missing" records


def test_batch_api_writes_take_one_request_per_50_changed_records(
    sn_server_factory: Any, sn_config_factory: Any, big_world: World
) -> None:
    server = sn_server_factory(world=big_world)
    config = sn_config_factory(server, page_size=200, batch_size=50, tables=["incident"])
    summary = _sync(config).sources["servicenow"]
    changed = summary.written
    assert changed == len(_records(server, "incident")) > 400
    # Pages of 200 fill whole batches of 50; only the last page's last batch is partial.
    assert summary.requests["write"] == math.ceil(changed / 50)
    requests_ = _stats(server)["requests"]
    assert requests_["POST /api/now/v1/batch"] == math.ceil(changed / 50)
    assert "PATCH /api/now/table/<table>/<sys_id>" not in requests_


def test_reads_stay_under_20_requests_per_1000_records(
    sn_server_factory: Any, sn_config_factory: Any, big_world: World
) -> None:
    """All related context included (journal, audit, SLAs, surveys, display values)."""
    server = sn_server_factory(world=big_world)
    config = sn_config_factory(server)
    summary = _sync(config).sources["servicenow"]
    items = summary.pulled
    assert items == len(_records(server)) > 1200
    assert 1000 * summary.requests["read"] / items <= 20


def test_injected_429_and_5xx_end_with_the_same_field_values(
    sn_server_factory: Any, sn_config_factory: Any
) -> None:
    calm = sn_server_factory()
    stormy = sn_server_factory()
    requests.post(
        f"{stormy.url}/_sandbox/faults",
        json={"rate_limit_rate": 0.05, "error_rate": 0.05, "retry_after_s": 0, "seed": 4},
        timeout=10,
    )
    done = {}
    for name, server in (("calm", calm), ("stormy", stormy)):
        config = sn_config_factory(server, page_size=60)
        done[name] = _sync(config).sources["servicenow"]
        assert done[name].failed == 0 and not done[name].error
    faulty = _stats(stormy)["requests"]
    assert done["stormy"].requests["read"] + done["stormy"].requests["write"] > sum(
        done["calm"].requests.values()
    )  # the retries were counted
    assert faulty.get("GET /api/now/table/<table>", 0) > done["calm"].requests["read"] / 3

    def fields(server: SnServer) -> dict[str, tuple[str, ...]]:
        return {
            sys_id: tuple(row.get(f, "") for f in WRITEBACK)
            for sys_id, row in _records(server).items()
        }

    calm_fields = fields(calm)
    assert all(all(values) for values in calm_fields.values())
    assert fields(stormy) == calm_fields


def test_request_budget_stops_cleanly_and_reruns_finish_the_job(
    sn_server_factory: Any, sn_config_factory: Any, caplog: pytest.LogCaptureFixture,
    big_world: World,
) -> None:
    # Tables of several hundred records: more than one budgeted run's worth each.
    server = sn_server_factory(big_world)
    config = sn_config_factory(server, page_size=50, max_requests=25, state="budget.db")
    total = len(_records(server))
    runs = 0
    with caplog.at_level(logging.INFO, logger="momentos.sync"):
        while not all(r.get("u_relationship_moment") for r in _records(server).values()):
            runs += 1
            assert runs <= 12, "the budgeted runs do not converge"
            summary = _sync(config).sources["servicenow"]
            assert sum(summary.requests.values()) <= 25
            assert not summary.error and summary.failed == 0
            # Every budgeted run makes progress: it starts in the stream where the last one
            # stopped instead of spending the budget on the streams already caught up.
            assert summary.written > 0
    assert runs > 1
    assert "request budget of 25 reached" in caplog.text
    assert "the watermark is consistent" in caplog.text
    # Every record written exactly once over all the runs, none skipped.
    assert _writes_by_record(server) == Counter(dict.fromkeys(_records(server), 1))
    assert len(_writes_by_record(server)) == total
    # And the next run finds nothing to do.
    assert _sync(config).sources["servicenow"].written == 0


def test_unauthorized_and_forbidden_fail_fast_with_an_admin_message(
    sn_server_factory: Any, sn_config_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sn_server_factory(forbidden_tables=("problem",))
    forbidden = _sync(sn_config_factory(server, tables=["problem"])).sources["servicenow"]
    assert forbidden.requests == {"read": 1, "write": 0}
    assert (
        "HTTP 403" in forbidden.error
        and "grant the integration user read access to problem" in forbidden.error
    )
    config = sn_config_factory(server, tables=["incident"])
    monkeypatch.setenv(config.sources[0].auth.password_env, "not-the-password")
    refused = _sync(config).sources["servicenow"]
    assert refused.requests == {"read": 1, "write": 0}
    assert "HTTP 401" in refused.error and "check the user name and password" in refused.error
    assert _stats(server)["writes"] == {}


def test_a_run_that_read_its_whole_window_resumes_from_its_own_start(
    sn_server_factory: Any, sn_config_factory: Any
) -> None:
    """After a sync that wrote every record, the next run pages over those writes (versions it
    knows). It read them more than the overlap after they were stamped, so nothing can have
    been invisible to it: the run after resumes from its start, past the whole write burst,
    not from the last write it met nor an overlap before its start. A run that reads records
    stamped within the overlap keeps the overlap before the time it read them. A person's edit
    is picked up either way."""
    import time
    from datetime import timedelta

    from momentos.sandbox.world import HUMAN_USER

    def marks() -> dict[str, datetime]:
        state = StateStore(config.state_url)
        try:
            found = {t.name: state.watermark("servicenow", t.name) for t in tables}
        finally:
            state.close()
        assert all(found.values()), found  # every table had records in each window
        return {name: mark.updated for name, mark in found.items() if mark}

    server = sn_server_factory()
    config = sn_config_factory(server, state="window.db", overlap_seconds=2)
    tables = config.sources[0].tables
    assert _sync(config, now=None).sources["servicenow"].written > 0
    stamp = max(r["sys_updated_on"] for r in _records(server).values())
    last_write = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    # The run "starts" just after the burst (stamps are whole seconds) and reads it 2.5 s or
    # more after the last stamp, more than the 2 s overlap.
    time.sleep(max(0.0, (last_write + timedelta(seconds=3.5) - datetime.now(UTC)).total_seconds()))
    start = last_write + timedelta(seconds=1)
    settle = _sync(config, now=start).sources["servicenow"]
    assert settle.pulled == settle.written == 0
    # The next run starts at `start` (the mark less the 2 s overlap): past every write.
    assert marks() == dict.fromkeys(marks(), start + timedelta(seconds=2))

    # A person's edit, read straight away: the run cannot rule out that a record stamped just
    # before its reads was not visible yet, so the next run looks back the overlap before them.
    # A 30 s overlap, so that the read surely comes within it (stamps are whole seconds).
    config.sources[0] = config.sources[0].model_copy(update={"overlap_seconds": 30})
    record = next(r for r in _records(server, "incident").values())
    edit = requests.patch(
        f"{server.url}/api/now/table/incident/{record['sys_id']}", auth=(HUMAN_USER, server.human_password),
        json={"comments": "Sigue sin funcionar, ¿alguna novedad?"}, timeout=10,
    )
    assert edit.status_code == 200
    time.sleep(1.1)  # stamped in an earlier second than the run's start
    before = datetime.now(UTC)
    picked = _sync(config, now=None).sources["servicenow"]
    after = datetime.now(UTC)
    assert picked.pulled == 1 and not picked.error
    incident = marks()["incident"]
    assert before <= incident <= after, (before, incident, after)
    edited = datetime.strptime(_records(server, "incident")[record["sys_id"]]["sys_updated_on"],
                               "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert incident - timedelta(seconds=30) <= edited  # the next run would read it again

    time.sleep(1.1)
    edit = requests.patch(
        f"{server.url}/api/now/table/incident/{record['sys_id']}", auth=(HUMAN_USER, server.human_password),
        json={"comments": "Any update? Still broken."}, timeout=10,
    )
    assert edit.status_code == 200
    time.sleep(1.1)
    again = _sync(config, now=None).sources["servicenow"]
    assert again.pulled == 1 and not again.error


def test_a_history_cut_short_by_context_items_is_logged_once(
    sn_server_factory: Any, sn_config_factory: Any, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When `experience.context_items` keeps a shorter span than `context_days`, the sync says
    so, with the date the history starts and what to raise; `serve` syncs every few minutes,
    so a process says it once."""
    from momentos import sync

    monkeypatch.setattr(sync, "_HISTORY_WARNED", set())
    server = sn_server_factory()
    config = sn_config_factory(server, state="capped.db")
    assert _sync(config, now=None).sources["servicenow"].written > 0
    assert "holds only the newest" not in caplog.text  # the default keeps them all
    config.model.experience = config.model.experience.model_copy(update={"context_items": 20})
    state = StateStore(config.state_url)
    try:
        kept = sync.stored_history(state, config.experience, datetime.now(UTC))
    finally:
        state.close()
    assert len(kept) == 20
    caplog.clear()
    # Full syncs: a run that finds nothing new never loads the history.
    with caplog.at_level(logging.INFO, logger="momentos.sync"):
        for _ in range(2):
            state = StateStore(config.state_url)
            try:
                assert SyncEngine(config, state).run(full=True).sources["servicenow"].enriched > 0
            finally:
                state.close()
    warnings = [r.getMessage() for r in caplog.records if "holds only the newest" in r.getMessage()]
    assert len(warnings) == 1, warnings
    oldest = kept["created"].min().strftime("%Y-%m-%d %H:%M")
    assert f"newest 20 items, created since {oldest} UTC" in warnings[0]
    assert "experience.context_items" in warnings[0]


def test_repeat_contacts_and_caused_incidents_count_every_stored_item(
    sn_server_factory: Any, sn_config_factory: Any
) -> None:
    """`experience.context_items` bounds the history held in memory, which typical durations
    read; repeat contacts and caused incidents count the state store's items whatever it is.
    So a full resync with a history of 10 items gives each item the counts a resync with the
    whole history gives (before, older items met few of their neighbours and counted less)."""
    import json

    server = sn_server_factory()
    config = sn_config_factory(server, state="neighbours.db")
    assert _sync(config).sources["servicenow"].written > 0

    default = config.model.experience

    def resync(context_items: int) -> dict[str, tuple[Any, Any]]:
        config.model.experience = default.model_copy(update={"context_items": context_items})
        state = StateStore(config.state_url)
        try:
            assert SyncEngine(config, state).run(full=True, now=NOW).sources["servicenow"].enriched
            counts = {}
            for row in state.iter_items():
                signals = row["signals"]
                signals = json.loads(signals) if isinstance(signals, str) else signals
                counts[row["key"]] = (signals.get("repeat_contact"), signals.get("caused_incidents"))
            return counts
        finally:
            state.close()

    small = resync(10)
    whole = resync(default.context_items)
    assert small == whole
    assert sum(1 for repeat, _ in whole.values() if repeat) >= 5
    assert sum(1 for _, caused in whole.values() if caused) >= 5


def test_a_dry_run_shows_what_the_first_sync_then_writes(
    sn_server_factory: Any, sn_config_factory: Any
) -> None:
    """A dry run stores nothing, so its later batches count their repeat contacts and caused
    incidents over the earlier batches it holds in memory, as the real sync counts them over
    the store: the values it shows are the values the sync writes."""
    server = sn_server_factory()
    config = sn_config_factory(server, state="dry.db")
    state = StateStore(config.state_url)
    try:
        dry = SyncEngine(config, state).run(dry_run=True, now=NOW)
        assert state.count_items() == {}
        real = SyncEngine(config, state).run(now=NOW)
        assert real.sources["servicenow"].written == dry.sources["servicenow"].written > 0
        ids = {row["key"]: row["id"] for row in state.iter_items()}
        written = state.last_written("servicenow", list(ids.values()))
        shown = {(ids[d["key"]], d["field"]): d["new"] for d in dry.diff}
        assert shown == {k: v for k, v in written.items() if k in shown}
        assert len(shown) == len(written)
    finally:
        state.close()
