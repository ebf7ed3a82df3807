"""`momentos serve`: runs a job, refuses a second service on the same state, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
import yaml

from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import start_sandbox
from momentos.scheduler import Service
from momentos.config import load_config, JobSettings
from momentos.enrichment import learn
from momentos.state import StateStore

pytestmark = pytest.mark.slow


def test_job_runs_through_the_service_and_records_its_run(tmp_path, monkeypatch):
    with start_sandbox(items=100, seed=2) as box:
        monkeypatch.setenv(SANDBOX_PASSWORD_ENV, box.password)
        path = write_config(
            sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}", report_out=str(tmp_path / "r")),
            tmp_path / "m.yaml",
        )
        config = load_config(path)
        service = Service(config)
        service.run_job(JobSettings(name="sync", type="sync", cron="* * * * *"))
        service.run_job(JobSettings(name="report", type="report", cron="* * * * *"))
        service.run_job(JobSettings(name="learn", type="retrain", cron="0 3 * * *"))
        assert [r["status"] for r in service._runs] == ["ok", "ok", "ok"]
        assert (tmp_path / "r" / "report.html").exists()
        # The retrain job trained the instance's moment model on what the sync's rules decided.
        state = StateStore(config.state_url)
        try:
            rule_labels = [l for l in state.training_labels() if l["origin"] == "rule"]
            assert len(rule_labels) > 50
            stored = state.load_model(learn.MODEL_NAME)
            assert stored is not None and stored[2]["origin"] == "instance"
            assert stored[2]["labels"] == len(state.training_labels())
            model = learn.model_for(state)
            assert model.meta["origin"] == "instance"
            assert state.run_history("retrain:learn")[0]["status"] == "ok"
        finally:
            state.close()


def test_serve_locks_the_state_and_stops_cleanly_on_sigterm(tmp_path):
    with start_sandbox(items=100, seed=2) as box:
        config = sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}", report_out=str(tmp_path / "r"))
        config["schedule"] = {"jobs": [{"name": "sync-all", "type": "sync", "cron": "* * * * *"}]}
        path = write_config(config, tmp_path / "m.yaml")
        env = {**os.environ, SANDBOX_PASSWORD_ENV: box.password}
        cmd = [sys.executable, "-m", "momentos", "serve", "--config", str(path)]
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 30
            lock = tmp_path / "s.db.serve.lock"
            while not lock.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
            assert second.returncode == 1
            assert "another `momentos serve`" in second.stderr
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=60) == 0
            assert "next run" in first.stderr.read()
        finally:
            if first.poll() is None:
                first.kill()
    assert yaml.safe_load(path.read_text())["schedule"]["jobs"][0]["cron"] == "* * * * *"


@pytest.mark.timeout(540)
def test_five_one_minute_cycles_never_overlap(tmp_path):
    """Five ticks of `* * * * *`. The first sync is slowed past the next tick: that tick must be
    skipped (max_instances=1), never run alongside. Then SIGTERM stops the service with exit 0."""
    from datetime import datetime, timezone

    with start_sandbox(items=150, seed=4) as box:
        config = sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}", report_out=str(tmp_path / "r"))
        config["schedule"] = {"misfire_grace_s": 30, "jobs": [{"name": "every-minute", "type": "sync", "cron": "* * * * *"}]}
        # The slowed first run must last between one and two ticks: Jira writes one at a time,
        # so its length follows the request count (concurrent writes would shorten it).
        for source in config["sources"]:
            if source["type"] == "jira":
                source["write_workers"] = 1
        path = write_config(config, tmp_path / "m.yaml")
        env = {**os.environ, SANDBOX_PASSWORD_ENV: box.password}
        slow = {"delay_rate": 1.0, "delay_s": 0.75}
        for url in (box.servicenow_url, box.jira_url):
            requests.post(f"{url}/_sandbox/faults", json=slow, timeout=5)
        started = datetime.now(timezone.utc)
        proc = subprocess.Popen(
            [sys.executable, "-m", "momentos", "serve", "--config", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        from momentos.state import StateStore

        try:
            # Five minute boundaries from the first run's (the service may start after the
            # boundary that follows `started`), plus time for the last run to finish.
            end = None
            sped_up = False
            while end is None or time.time() < end:
                time.sleep(2)
                assert end is not None or time.time() < started.timestamp() + 150, "no run started"
                if not (tmp_path / "s.db").exists():
                    continue
                store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
                history = store.run_history("sync:all")
                store.close()
                if history and end is None:
                    first_tick = history[0]["started_at"].replace(second=0, microsecond=0).timestamp()
                    end = first_tick + 4 * 60 + 20
                if not sped_up and history and history[0]["finished_at"] is not None:
                    for url in (box.servicenow_url, box.jira_url):
                        requests.post(f"{url}/_sandbox/faults", json={"delay_rate": 0}, timeout=5)
                    sped_up = True
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 0
            stderr = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
        store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
        history = store.run_history("sync:all")
        store.close()
    assert sped_up, "the first run never finished"
    first = history[0]
    assert (first["finished_at"] - first["started_at"]).total_seconds() > 60, "first run was not slow enough"
    # Each of the 5 ticks either ran the job or was skipped because a run still held its only
    # instance: the slow first run, and any job that ran long (the job after the first sync
    # also settles it with a full sync, which on a loaded machine can outlast its minute).
    skipped = stderr.count("maximum number of running instances reached")
    log_tail = "\n".join(stderr.splitlines()[-40:])
    assert skipped >= 1, log_tail
    assert len(history) + skipped == 5, (history, log_tail)
    assert len(history) >= 3, (history, log_tail)
    for earlier, later in zip(history, history[1:]):
        assert earlier["finished_at"] <= later["started_at"], "two runs of one job overlapped"
    assert all(run["status"] == "ok" for run in history)
