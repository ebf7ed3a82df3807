"""Crash safety: `momentos sync` killed with SIGKILL at several points under injected faults,
then re-run until it finishes, ends with the platforms' fields of a clean run.

Each scenario compares every item's written fields on both platforms with a fault-free,
uninterrupted run against an identical sandbox (same seed), and checks that no record was
written more than once beyond the single write in flight when the process died.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from momentos.config import load_config
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import Sandbox, start_sandbox
from momentos.state import StateStore
from momentos.sync import SyncEngine

ITEMS = 240
FAULTS = {"error_rate": 0.10, "rate_limit_rate": 0.05, "retry_after_s": 0, "drop_rate": 0.01}


def _fields(box: Sandbox) -> dict[str, tuple[str, int]]:
    """(moment, score) of every item on both platforms, read through the platforms' APIs."""
    auth = (box.user, box.password)
    found: dict[str, tuple[str, int]] = {}
    for table in ("incident", "sc_req_item", "problem", "change_request", "pm_project", "dmn_demand"):
        rows = requests.get(
            f"{box.servicenow_url}/api/now/table/{table}",
            params={"sysparm_fields": "number,u_relationship_moment,u_experience_score", "sysparm_limit": 10000},
            auth=auth, timeout=30,
        ).json()["result"]
        for r in rows:
            score = int(r["u_experience_score"]) if r["u_experience_score"] else -1
            found[r["number"]] = (r["u_relationship_moment"], score)
    field_ids = {f["name"]: f["id"] for f in requests.get(f"{box.jira_url}/rest/api/2/field", auth=auth, timeout=30).json()}
    moment_id, score_id = field_ids["Relationship moment"], field_ids["Experience score"]
    for item in box.world.items:
        if item.platform != "jira":
            continue
        data = requests.get(
            f"{box.jira_url}/rest/api/2/issue/{item.number}",
            params={"fields": f"{moment_id},{score_id}"}, auth=auth, timeout=30,
        ).json()["fields"]
        moment = (data.get(moment_id) or {}).get("value", "")
        score = data.get(score_id)
        found[item.number] = (moment, int(score) if score is not None else -1)
    return found


def _writes(box: Sandbox) -> dict[str, int]:
    counts: dict[str, int] = {}
    for url in (box.servicenow_url, box.jira_url):
        counts.update(requests.get(f"{url}/_sandbox/stats", timeout=10).json()["writes"])
    return counts


def _config(box: Sandbox, tmp: Path, state_url: str | None = None) -> Path:
    url = state_url or f"sqlite:///{tmp / 'state.db'}"
    return write_config(
        sandbox_config(box, state_url=url, report_out=str(tmp / "report")), tmp / "momentos.yaml"
    )


def _clean_run(seed: int, tmp: Path) -> tuple[dict[str, tuple[str, int]], dict[str, int]]:
    with start_sandbox(items=ITEMS, seed=seed) as box:
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        config = load_config(_config(box, tmp))
        state = StateStore(config.state_url)
        result = SyncEngine(config, state).run()
        state.close()
        assert result.ok
        return _fields(box), _writes(box)


def _set_faults(box: Sandbox, faults: dict[str, Any]) -> None:
    for url in (box.servicenow_url, box.jira_url):
        requests.post(f"{url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()


@pytest.mark.parametrize(
    ("seed", "backend"),
    [(1, "sqlite"), (2, "sqlite"), (3, "sqlite"), (4, "sqlite"), (5, "sqlite"), (6, "postgresql")],
)
def test_killed_runs_under_faults_end_like_a_clean_run(seed, backend, tmp_path, request):
    state_url = None
    if backend == "postgresql":
        from sqlalchemy import create_engine

        from momentos.state import metadata

        state_url = request.getfixturevalue("pg_url")
        engine = create_engine(state_url)
        metadata.drop_all(engine)
        engine.dispose()
    clean_fields, clean_writes = _clean_run(seed, tmp_path / "clean")
    rng = random.Random(seed)
    with start_sandbox(items=ITEMS, seed=seed) as box:
        env = {**os.environ, SANDBOX_PASSWORD_ENV: box.password}
        config = _config(box, tmp_path / "faulty", state_url)
        cmd = [sys.executable, "-m", "momentos", "sync", "--config", str(config), "--json"]
        # Slow every request a little so that the kills land inside the run, not after it.
        _set_faults(box, {**FAULTS, "delay_rate": 1.0, "delay_s": 0.01, "seed": seed})
        kills = 0
        for _ in range(3):
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            time.sleep(1.0 + rng.random() * 2.5)  # past start-up, somewhere in the pages
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        assert kills >= 1, "the run finished before any kill: slow the sandbox further"
        # Re-run (faults still on) until a run completes with nothing failed or pending.
        _set_faults(box, {**FAULTS, "delay_rate": 0.0, "seed": seed + 100})
        status = [sys.executable, "-m", "momentos", "status", "--config", str(config), "--json"]
        for _ in range(6):
            run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
            summary = json.loads(run.stdout) if run.stdout.strip() else None
            pending = json.loads(subprocess.run(status, capture_output=True, text=True, env=env).stdout)
            done = summary and all(s["failed"] == 0 for s in summary["sources"].values())
            if run.returncode == 0 and done and not pending["pending_writes"]:
                break
        else:
            pytest.fail(f"sync never completed cleanly: {pending}\n{run.stderr[-2000:]}")
        _set_faults(box, {"error_rate": 0, "rate_limit_rate": 0, "drop_rate": 0, "delay_rate": 0})
        fields = _fields(box)
        writes = _writes(box)

    assert set(fields) == set(clean_fields)
    missing = [k for k, (moment, score) in fields.items() if not moment or score < 0]
    assert not missing, f"items without fields: {missing[:10]}"
    moments_differ = [k for k in fields if fields[k][0] != clean_fields[k][0]]
    assert not moments_differ, moments_differ[:10]
    # Open items age between the two runs, which may move a score by a point, never more.
    scores_differ = [k for k in fields if abs(fields[k][1] - clean_fields[k][1]) > 1]
    assert not scores_differ, [(k, fields[k], clean_fields[k]) for k in scores_differ[:10]]
    # No record written more than once beyond the write in flight at each kill (and the
    # idempotent replays of a write whose answer was lost to a dropped connection).
    extra = {k: n - clean_writes.get(k, 0) for k, n in writes.items() if n > clean_writes.get(k, 0)}
    assert sum(extra.values()) <= kills + 10, extra
