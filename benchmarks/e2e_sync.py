"""End-to-end sync benchmark against the sandbox: a full first sync, then an incremental sync
after a share of the items changed.

Prints, per phase: wall time, items per second, read and write requests per item (momentos's
own counters, retries included) and peak RSS of this process (sandbox included: it runs in the
same process, so the figure is an upper bound for momentos alone).

    .venv/bin/python benchmarks/e2e_sync.py --items 2000
    .venv/bin/python benchmarks/e2e_sync.py --items 100000 --change-share 0.01

At scale (sandbox and momentos in separate processes, CPU time, the sandbox's own request
counts, the 1.1x check) use ``benchmarks/e2e/run.py``; figures in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import requests

from momentos.config import load_config
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import start_sandbox
from momentos.state import StateStore
from momentos.sync import SyncEngine


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def change_items(box, share: float, seed: int) -> int:
    """A person edits ``share`` of the items (title), through each platform's API."""
    rng = random.Random(seed)
    items = [i for i in box.world.items if rng.random() < share]
    auth = (box.human_user, box.human_password)
    session = requests.Session()
    session.auth = auth
    for item in items:
        if item.platform == "servicenow":
            session.patch(
                f"{box.servicenow_url}/api/now/table/{item.container}/{item.id}",
                json={"short_description": item.title + " (updated)"}, timeout=30,
            ).raise_for_status()
        else:
            session.put(
                f"{box.jira_url}/rest/api/2/issue/{item.number}",
                json={"fields": {"summary": item.title + " (updated)"}}, timeout=30,
            ).raise_for_status()
    return len(items)


def report(phase: str, items: int, seconds: float, result) -> None:
    reads = sum(s.requests["read"] for s in result.sources.values())
    writes = sum(s.requests["write"] for s in result.sources.values())
    enriched = sum(s.enriched for s in result.sources.values())
    per = max(items, 1)
    print(
        f"{phase:<12} items={items:>8} enriched={enriched:>8} wall={seconds:8.2f}s "
        f"items/s={items / seconds:9.1f} reads/item={reads / per:6.3f} writes/item={writes / per:6.3f} "
        f"reads={reads} writes={writes} peak_rss={peak_rss_mb():.0f}MB"
    )
    for name, s in result.sources.items():
        print(f"    {name:<11} pulled={s.pulled} written={s.written} unchanged={s.unchanged} "
              f"failed={s.failed} requests={s.requests}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--change-share", type=float, default=0.01)
    parser.add_argument("--jira-flavor", default="cloud", choices=["cloud", "datacenter"])
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; items={args.items} seed={args.seed}")
    started = time.perf_counter()
    with start_sandbox(items=args.items, seed=args.seed, jira_flavor=args.jira_flavor) as box:
        print(f"sandbox ready in {time.perf_counter() - started:.1f}s")
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        tmp = Path(tempfile.mkdtemp(prefix="momentos-bench-"))
        config = load_config(
            write_config(
                sandbox_config(box, state_url=f"sqlite:///{tmp / 'state.db'}", report_out=str(tmp / "r")),
                tmp / "m.yaml",
            )
        )
        state = StateStore(config.state_url)
        engine = SyncEngine(config, state)

        t0 = time.perf_counter()
        first = engine.run()
        report("first", args.items, time.perf_counter() - t0, first)

        # Let our own writes settle, then a steady-state run with nothing changed.
        t0 = time.perf_counter()
        settle = engine.run()
        report("settle", args.items, time.perf_counter() - t0, settle)

        changed = change_items(box, args.change_share, args.seed)
        time.sleep(1.1)  # the platforms' timestamps have one-second precision
        t0 = time.perf_counter()
        incremental = engine.run()
        report("incremental", changed, time.perf_counter() - t0, incremental)
        state.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
