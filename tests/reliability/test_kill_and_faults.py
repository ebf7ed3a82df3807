"""Crash safety: `momentos sync` killed with SIGKILL at random points under injected faults,
then re-run until it finishes, ends with the platforms' fields of a clean run.

The kill points are drawn from a seeded generator as a number of requests the sandboxes have
received (so they land inside the pulls, the writes or the notes whatever the machine's
speed). Each scenario compares every item's written fields on both platforms with a
fault-free, uninterrupted run against an identical sandbox (same seed), checks that no record
was written more than once beyond the writes in flight when the process died, that nothing
outside the three writeback fields changed, and that no nudge note was posted twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from reliability_helpers import (
    FAULTS,
    ITEMS,
    NO_FAULTS,
    WORLD_SEED,
    Platforms,
    assert_like_clean_run,
    clean_run,
    duplicate_notes,
    extra_writes,
    fields,
    injected,
    outside_allowlist,
    set_faults,
    snapshot,
    sync_cmd,
    sync_until_done,
    write_sandbox_config,
    writes,
)

from momentos.demo import SANDBOX_PASSWORD_ENV
from momentos.sandbox import start_sandbox

KILLS = 3


def _kill_at(proc: subprocess.Popen, p: Platforms, after_requests: int) -> bool:
    """SIGKILL ``proc`` once the sandboxes have seen ``after_requests`` more requests."""
    start = p.requests_seen()
    while proc.poll() is None:
        if p.requests_seen() - start >= after_requests:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("seed", "backend"),
    [(1, "sqlite"), (2, "sqlite"), (3, "sqlite"), (4, "postgresql")],
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
    clean = clean_run(WORLD_SEED, ITEMS, tmp_path / "clean")
    rng = random.Random(seed)
    with start_sandbox(items=ITEMS, seed=WORLD_SEED) as box:
        p = Platforms.of(box)
        before = snapshot(p)
        start = p.requests_seen()
        env = {**os.environ, SANDBOX_PASSWORD_ENV: box.password}
        config = write_sandbox_config(box, tmp_path / "faulty", state_url)
        # A clean run sends about 170 requests; each kill lands after a random share of them.
        set_faults(p, {**FAULTS, "seed": seed})
        kills = 0
        for _ in range(KILLS):
            proc = subprocess.Popen(sync_cmd(config), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=env)
            kills += _kill_at(proc, p, rng.randint(5, 140))
        assert kills >= 1, "every run finished before its kill point"
        # Re-run (faults still on) until a run completes with nothing failed or pending.
        set_faults(p, {**FAULTS, "seed": seed + 100})
        runs = sync_until_done(config, env)
        faults = injected(p)
        sent = p.requests_seen() - start
        set_faults(p, NO_FAULTS)
        after = snapshot(p)
        final_fields, final_writes = fields(p), writes(p)
        jira_ids = p.jira_field_ids()

    extra = extra_writes(final_writes, clean.writes)
    print(f"kill seed {seed} ({backend}): {len(final_fields)} items, {kills} kills, {runs} runs to "
          f"finish, faults {dict(faults)}, {sent} requests (clean run {clean.requests}), "
          f"{sum(extra.values())} extra writes")
    assert_like_clean_run(final_fields, clean.fields)
    problems = outside_allowlist(before, after, jira_ids)
    assert not problems, problems[:10]
    assert not duplicate_notes(before, after)
    # No record written more than once beyond the write in flight at each kill (and the
    # idempotent replays of a write whose answer was lost to a dropped connection).
    assert sum(extra.values()) <= kills + 10, extra
