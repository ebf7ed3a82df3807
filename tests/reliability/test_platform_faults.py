"""The platforms misbehaving under a sync: slow answers that end in read timeouts, and a
platform that dies (SIGKILL) mid-sync and comes back on the same data.

Both scenarios end like the crash scenarios: the platforms' fields compared with a clean run's,
no item lost, nothing outside the writeback allowlist touched, no nudge note posted twice, and
no field change recorded twice (a replayed write of the same values changes nothing).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from reliability_helpers import (
    FAULTS,
    ITEMS,
    NO_FAULTS,
    WORLD_SEED,
    Platforms,
    assert_like_clean_run,
    changes_made,
    clean_run,
    duplicate_notes,
    extra_writes,
    fields,
    injected,
    item_key,
    notes_posted,
    outside_allowlist,
    set_faults,
    snapshot,
    sync_cmd,
    sync_until_done,
    unfinished,
    write_sandbox_config,
    writes,
)

from momentos.config import load_config
from momentos.demo import SANDBOX_PASSWORD_ENV
from momentos.sandbox import start_sandbox
from momentos.sandbox.persist import read_data_file
from momentos.sandbox.world import generate_world
from momentos.state import StateStore
from momentos.sync import SyncEngine

READY_KEYS = ["servicenow", "jira", "user", "password", "human_user", "human_password", "ca_cert"]
# --- slow answers --------------------------------------------------------------------------------
def test_slow_answers_time_out_are_retried_and_end_like_a_clean_run(tmp_path, caplog):
    """5% of answers held 1.5 s after the request was handled (the write is applied), read
    timeout 0.5 s, on top of 5xx, 429 with Retry-After and dropped connections."""
    seed = 11  # of the faults
    clean = clean_run(WORLD_SEED, ITEMS, tmp_path / "clean")
    caplog.set_level(logging.INFO, logger="momentos.http")
    with start_sandbox(items=ITEMS, seed=WORLD_SEED) as box:
        p = Platforms.of(box)
        before = snapshot(p)
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        config_path = write_sandbox_config(box, tmp_path / "slow", http={"read_timeout_s": 0.5})
        config = load_config(config_path)
        set_faults(p, {**FAULTS, "slow_rate": 0.05, "slow_s": 1.5, "seed": seed})
        runs, started = 0, time.monotonic()
        for runs in range(1, 7):
            state = StateStore(config.state_url)
            result = SyncEngine(config, state).run()
            state.close()
            left = unfinished(config_path)
            if result.ok and not any(s.failed for s in result.sources.values()) and not any(left.values()):
                break
        else:
            pytest.fail(f"sync never completed cleanly: {result.contract()} {left}")
        duration = time.monotonic() - started
        faults = injected(p)
        set_faults(p, NO_FAULTS)
        after = snapshot(p)
        final_fields, final_writes = fields(p), writes(p)
        jira_ids = p.jira_field_ids()

    timeouts = sum("ReadTimeout, retry" in r.getMessage() for r in caplog.records)
    retries = sum(", retry " in r.getMessage() for r in caplog.records)
    dups = duplicate_notes(before, after)
    extra = extra_writes(final_writes, clean.writes)
    print(f"slow: {len(final_fields)} items, {runs} runs in {duration:.1f}s (clean run "
          f"{clean.duration_s:.1f}s), faults {dict(faults)}, {retries} retries "
          f"({timeouts} after read timeouts), {notes_posted(before, after)} notes "
          f"(clean {clean.notes}), {sum(extra.values())} extra writes, duplicates {dups}")
    assert faults["slow"] > 0 and timeouts > 0, "no read timeout was provoked"
    assert_like_clean_run(final_fields, clean.fields)
    problems = outside_allowlist(before, after, jira_ids)
    assert not problems, problems[:10]
    # Replayed writes carry the same values: the platforms record no extra field change (a few
    # more are allowed for open items whose score moved by a point between runs).
    assert changes_made(before, after) <= clean.changes + 10
    # A replay per timed-out or dropped request at most, never a runaway.
    assert max(extra.values(), default=0) <= 6, extra
    # A note whose answer was lost is never sent again by the HTTP policy (a journal PATCH
    # appends); the next run looks for its marker instead.
    assert not dups, dups


def _post_note_under_slow_answers(platform: str, tmp_path: Path) -> tuple[str, int]:
    """Post one nudge note with every answer held past the read timeout; returns what
    post_note did and how many copies of the note the platform holds."""
    from momentos.models import Item
    from momentos.sync import make_connector

    with start_sandbox(items=60, seed=3) as box:
        p = Platforms.of(box)
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        config = load_config(write_sandbox_config(
            box, tmp_path, http={"read_timeout_s": 0.3, "max_retries": 2}
        ))
        settings = next(s for s in config.sources if s.type == platform)
        connector = make_connector(settings)
        world = next(i for i in box.world.items if i.platform == platform)
        item = Item(source=settings.name, platform=platform, container=world.container,
                    id=world.id, key=world.number)
        mark = f"[momentos-nudge {settings.name}:{world.id}:1]"
        # The client's own set-up calls (serverInfo, myself, the project) happen on a first
        # note: one without faults gets them out of the way.
        connector.post_note(item, f"warm-up [momentos-nudge {settings.name}:{world.id}:0]")
        set_faults(p, {"slow_rate": 1.0, "slow_s": 1.0})
        try:
            connector.post_note(item, f"Experience at risk. {mark}")
            outcome = "returned"
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test reports
            outcome = type(exc).__name__
        set_faults(p, NO_FAULTS)
        time.sleep(1.1)  # let the held answers finish
        if platform == "servicenow":
            rows = requests.get(
                f"{box.servicenow_url}/api/now/table/sys_journal_field",
                params={"sysparm_query": f"element_id={world.id}^element=work_notes"},
                auth=p.auth, timeout=10,
            ).json()["result"]
            texts = [r["value"] for r in rows]
        else:
            texts = [json.dumps(c["body"]) for c in requests.get(
                f"{box.jira_url}/rest/api/2/issue/{world.number}/comment", auth=p.auth, timeout=10,
            ).json()["comments"]]
        return outcome, sum(mark in t for t in texts)


def test_jira_note_as_first_call(tmp_path):
    """With flavor auto, a note that is a run's first Jira call (an unconfirmed note retried by
    the engine) is built for the API version the connection settles on (ADF for Cloud's v3)."""
    from momentos.models import Item
    from momentos.sync import make_connector

    with start_sandbox(items=60, seed=3) as box:
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        config = load_config(write_sandbox_config(box, tmp_path, jira_flavor=None))
        settings = next(s for s in config.sources if s.type == "jira")
        world = next(i for i in box.world.items if i.platform == "jira")
        item = Item(source=settings.name, platform="jira", container=world.container,
                    id=world.id, key=world.number)
        make_connector(settings).post_note(item, "Experience at risk. [momentos-nudge jira:1:1]")
        comments = requests.get(
            f"{box.jira_url}/rest/api/2/issue/{world.number}/comment",
            auth=(box.user, box.password), timeout=10,
        ).json()["comments"]
        assert any("[momentos-nudge jira:1:1]" in json.dumps(c["body"]) for c in comments)


def test_jira_note_whose_answer_times_out_is_posted_once(tmp_path):
    """A POST is never replayed: the note's fate is settled by the next run's marker check."""
    outcome, copies = _post_note_under_slow_answers("jira", tmp_path)
    assert outcome == "TransientError"
    assert copies == 1


def test_servicenow_work_note_whose_answer_times_out_is_posted_once(tmp_path):
    """A work note is a PATCH of a journal field, which appends: the HTTP policy does not
    replay it after a read timeout although PATCH is idempotent by HTTP's rules."""
    outcome, copies = _post_note_under_slow_answers("servicenow", tmp_path)
    assert outcome == "TransientError"
    assert copies == 1, f"{copies} copies of one work note ({outcome})"


# --- the platform restarting -------------------------------------------------------------------
class SandboxProcess:
    """``momentos sandbox --data-file`` as a child process on fixed ports."""

    def __init__(self, ports: tuple[int, int], seed: int, data_file: Path, log: Path) -> None:
        self.cmd = [
            sys.executable, "-m", "momentos", "sandbox", "--servicenow-port", str(ports[0]),
            "--jira-port", str(ports[1]), "--items", str(ITEMS), "--seed", str(seed),
            "--data-file", str(data_file),
        ]
        self.log = log
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> dict[str, Any]:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line, f"sandbox did not start: {self.log.read_text()[-2000:]}"
        ready = json.loads(line)
        assert list(ready) == READY_KEYS
        return ready

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def _free_ports() -> tuple[int, int]:
    import socket

    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return int(a.getsockname()[1]), int(b.getsockname()[1])


def test_platform_restart_mid_sync_fails_cleanly_and_the_next_run_completes(tmp_path):
    seed = 12  # of the kill point
    clean = clean_run(WORLD_SEED, ITEMS, tmp_path / "clean")
    data_file = tmp_path / "sandbox-data.jsonl"
    box = SandboxProcess(_free_ports(), WORLD_SEED, data_file, tmp_path / "sandbox.log")
    try:
        ready = box.start()
        header, _ = read_data_file(data_file)
        assert header is not None
        world = generate_world(seed=WORLD_SEED, items=ITEMS, now=datetime.fromisoformat(header.now))
        p = Platforms(ready["servicenow"], ready["jira"], ready["user"], ready["password"],
                      [i.number for i in world.items if i.platform == "jira"])
        before = snapshot(p)
        env = {**os.environ, SANDBOX_PASSWORD_ENV: ready["password"]}
        config = write_sandbox_config(p, tmp_path / "restart")
        # Every answer a little late, so that the kill lands among the writes.
        set_faults(p, {"delay_rate": 1.0, "delay_s": 0.02})
        kill_after = random.Random(seed).randint(40, 180)  # records written before the kill
        sync = subprocess.Popen(sync_cmd(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        written = 0
        while sync.poll() is None:
            written = sum(writes(p).values())
            if written >= kill_after:
                box.kill()
                break
            time.sleep(0.02)
        assert box.proc is not None and box.proc.poll() is not None, "the sync finished before the kill"
        out, err = sync.communicate(timeout=180)
        assert sync.returncode == 1, (out, err[-2000:])
        assert "Traceback" not in err, err[-3000:]
        assert "unreachable" in err, err[-2000:]
        summary = json.loads(out)
        message = [line for line in err.splitlines() if "unreachable" in line][-1]
        again = box.start()
        assert again == ready  # same ports, same accounts
        # No watermark moved past an item the failed run did not process: every item still
        # without fields and without a pending write (a processed item whose write failed;
        # the next run retries it first) is at or after its stream's watermark, less the
        # overlap.
        at_restart = fields(p)
        pending = {(w["source"], w["key"]) for w in unfinished(config)["pending_writes"]}
        unwritten = [i for i in world.items if not at_restart[item_key(i)][0]]
        unprocessed = [i for i in unwritten if (i.platform, i.number) not in pending]
        assert unwritten, "the failed run wrote everything: kill earlier"
        tables = {r["sys_id"]: r["sys_class_name"] for r in requests.get(
            f"{p.servicenow_url}/api/now/table/task",
            params={"sysparm_fields": "sys_id,sys_class_name", "sysparm_limit": 10000},
            auth=p.auth, timeout=30,
        ).json()["result"]}
        state = StateStore(load_config(config).state_url)
        behind = []
        for item in unprocessed:
            stream = tables.get(item.id, item.container)  # ServiceNow: the record's table
            mark = state.watermark(item.platform, stream)
            if mark is not None and item.updated < mark.updated - timedelta(seconds=120):
                behind.append((item.number, item.updated, mark.updated))
        state.close()
        assert not behind, behind[:5]
        runs = sync_until_done(config, env)
        after = snapshot(p)
        final_fields, final_writes = fields(p), writes(p)
        jira_ids = p.jira_field_ids()
    finally:
        box.stop()

    extra = extra_writes(final_writes, clean.writes)
    print(f"restart: {len(final_fields)} items; platform killed after {written} record writes; "
          f"failed run {summary} with {message!r}; at the restart {len(unwritten)} items "
          f"unwritten, {len(unwritten) - len(unprocessed)} of them with pending writes; {runs} more runs; {notes_posted(before, after)} notes (clean {clean.notes}); "
          f"extra writes {extra}; data file {data_file.stat().st_size} bytes")
    assert_like_clean_run(final_fields, clean.fields)
    problems = outside_allowlist(before, after, jira_ids)
    assert not problems, problems[:10]
    assert not duplicate_notes(before, after)
    assert changes_made(before, after) <= clean.changes + 10
    # At most the writes in flight when the platform died are sent again (a ServiceNow batch
    # carries up to 100 records).
    assert sum(extra.values()) <= 100, extra


def test_sandbox_restarted_on_its_data_file_serves_the_same_records(tmp_path):
    """The restart the scenario above relies on: every record, journal and audit row, comment,
    changelog entry, version stamp and write count as before the stop."""
    data_file = tmp_path / "data.jsonl"
    with start_sandbox(items=60, seed=5, data_file=data_file) as box:
        p = Platforms.of(box)
        ids = p.jira_field_ids()
        for item in [i for i in box.world.items if i.platform == "servicenow"][:5]:
            table = box.servicenow.table_of(item)
            requests.patch(
                f"{p.servicenow_url}/api/now/table/{table}/{item.id}",
                json={"u_experience_score": "42", "work_notes": "a note"}, auth=p.auth, timeout=10,
            ).raise_for_status()
        for key in p.jira_keys[:5]:
            requests.put(
                f"{p.jira_url}/rest/api/2/issue/{key}",
                json={"fields": {ids["Experience score"]: 42}}, auth=p.auth, timeout=10,
            ).raise_for_status()
            requests.post(
                f"{p.jira_url}/rest/api/2/issue/{key}/comment", json={"body": "a note"},
                auth=p.auth, timeout=10,
            ).raise_for_status()
        before, counts = snapshot(p), writes(p)
        ports = (box.servicenow_url.rsplit(":", 1)[1], box.jira_url.rsplit(":", 1)[1])
    with data_file.open("a") as f:  # a line cut short by a kill: a request never answered
        f.write('{"p": "jira", "w": ["SD/SD-1"], "issu')
    # Other arguments are overridden by the file: same world, same accounts.
    with start_sandbox(items=50, seed=9, servicenow_port=int(ports[0]), jira_port=int(ports[1]),
                       data_file=data_file) as again:
        assert (again.password, again.human_password) == (box.password, box.human_password)
        assert snapshot(p) == before
        assert writes(p) == counts
    assert len(data_file.read_text().splitlines()) == 1 + 5 + 10
