"""`momentos serve`: runs a job, refuses a second service on the same state, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import start_sandbox
from momentos.scheduler import Service
from momentos.config import load_config, JobSettings

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
        assert [r["status"] for r in service._runs] == ["ok", "ok"]
        assert (tmp_path / "r" / "report.html").exists()


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
