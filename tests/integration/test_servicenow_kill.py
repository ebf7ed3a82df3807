"""A ``momentos sync`` process killed with SIGKILL at an arbitrary page, then run again: every
record ends with its fields, written once (a record of the one page in flight at the kill may
be written again, because a killed run cannot record what it sent). Real CLI processes, real
pysnow, the sandbox in this process; the platform's own write counts decide."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from conftest import SnServer

PAGE = 40
WRITEBACK = ("u_relationship_moment", "u_experience_score", "u_experience_signals")


def _stats(server: SnServer) -> dict[str, Any]:
    return requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()


def _write_batches(server: SnServer) -> int:
    return int(_stats(server)["requests"].get("POST /api/now/v1/batch", 0))


@pytest.mark.parametrize("kill_after_pages", [1, 4])
def test_sync_killed_at_a_page_then_rerun_writes_every_record_once(
    sn_server_factory: Any, sn_config_file: Any, kill_after_pages: int
) -> None:
    server = sn_server_factory()
    records = {r["sys_id"] for r in server.app.rows("task")}
    # Every answer takes a little while, so the kill lands between pages rather than after
    # the run; pages of 40 need one write batch each (batch_size 50).
    requests.post(
        f"{server.url}/_sandbox/faults", json={"delay_rate": 1.0, "delay_s": 0.02}, timeout=10
    )
    config, env = sn_config_file(server, page_size=PAGE, batch_size=50)
    command = [sys.executable, "-m", "momentos", "sync", "--config", str(config), "--json"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while _write_batches(server) < kill_after_pages:
            assert process.poll() is None, "the sync finished before it could be killed"
            assert time.monotonic() < deadline, "the sync never wrote"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    at_kill = Counter(_stats(server)["writes"])
    assert 0 < len(at_kill) < len(records)

    requests.post(f"{server.url}/_sandbox/faults", json={"delay_rate": 0.0}, timeout=10)
    rerun = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    writes = Counter({key.rsplit("/", 1)[1]: n for key, n in _stats(server)["writes"].items()})
    assert set(writes) == records
    again = [sys_id for sys_id, n in writes.items() if n > 1]
    assert max(writes.values()) <= 2 and len(again) <= PAGE
    for sys_id in records:
        row = server.app.record("task", sys_id)
        assert row is not None and all(row.get(f) for f in WRITEBACK)
