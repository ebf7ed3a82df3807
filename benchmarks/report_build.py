"""Report build benchmark: one million enriched items → every report file.

The items are synthetic stored rows, shaped as ``StateStore.iter_items()`` yields them (the
enriched row with its ~30-key ``signals`` dict), produced lazily as a database cursor would.
They span two years of history, as a tenant with a million items has: the report's 28-day
period then holds the open items and those resolved in the last four weeks. The same run with
``--recent`` puts every item in the last 56 days instead (a worst case no real tenant has: every
at-risk item lands in the lists, CSV files and workbook).

Phases, timed separately (wall and CPU time: CPU time does not depend on what else the machine
runs): rows → report frame (``momentos.report.load.report_frame``), frame → files
(``build_report``: HTML, 11 CSV files, XLSX, JSON). Making the rows is not timed: by default
``--pool`` distinct rows are made up front and cycled over, as a database cursor hands over
ready-made rows. Peak RSS is the whole process's (pool included).

    /tmp/venv/bin/python benchmarks/report_build.py --items 1000000
    /tmp/venv/bin/python benchmarks/report_build.py --items 1000000 --recent
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from momentos.report import build_report
from momentos.report.load import report_frame

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
MOMENTS = ("operation",) * 7 + ("evolution",) * 2 + ("innovation",)
KINDS = {"operation": ("incident", "request", "problem"), "evolution": ("change", "story"),
         "innovation": ("demand", "idea", "epic")}
CUSTOMERS = [f"Business area {i:02d}" for i in range(40)]
GROUPS = [f"Group {i:02d}" for i in range(25)]
SERVICES = [f"Service {i:02d}" for i in range(60)]
PHRASES = [
    "requester chased {n} times for status", "reopened {n} times", "SLA breached",
    "reassigned {n} times (ping-pong between Group 01 and Group 07)",
    "first answer from IT after {n} h (usual: 2 h)", "no activity for {n} days",
    "negative requester sentiment (-0.{n})", "{n} complaints from the business",
    "open {n} days, 3× the usual for incident", "little business participation (1 person)",
]
TITLES = ["VPN drops every hour", "How do I export the sales report to Excel",
          "Cannot log in to the payroll portal", "New field on the vacation form",
          "Pilot: computer vision for quality control", "Printer on floor 3 jams"]


def rows(n: int, seed: int, recent: bool) -> Iterator[dict[str, Any]]:
    """``n`` stored rows, made one at a time (never held together)."""
    rng = random.Random(seed)
    span = 56.0 if recent else 730.0
    for i in range(n):
        moment = rng.choice(MOMENTS)
        created = NOW - timedelta(days=rng.random() * span)
        is_open = rng.random() < (0.5 if (NOW - created).days < 30 else 0.01)
        resolved = None if is_open else min(created + timedelta(days=rng.expovariate(1 / 4)), NOW)
        score = max(0, min(100, int(rng.gauss(66, 22))))
        level = ("good" if score >= 75 else "fair" if score >= 55
                 else "at_risk" if score >= 35 else "poor")
        reasons = "; ".join(p.format(n=rng.randint(1, 9)) for p in rng.sample(PHRASES, 3)) \
            if level in ("at_risk", "poor") else ""
        jira = i % 3 == 0
        key = f"SD-{i}" if jira else f"INC{i:07d}"
        sla = None if moment != "operation" else rng.random() < 0.2
        yield {
            "id": f"{i:032x}", "key": key,
            "url": f"https://jira.example.com/browse/{key}" if jira else
            f"https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id={i:032x}",
            "title": rng.choice(TITLES), "source": "jira" if jira else "servicenow",
            "platform": "jira" if jira else "servicenow", "container": "SD" if jira else "incident",
            "kind": rng.choice(KINDS[moment]), "customer": rng.choice(CUSTOMERS),
            "assignment_group": rng.choice(GROUPS), "assignee": f"Agent {i % 300}",
            "service": rng.choice(SERVICES), "state": "Open" if is_open else "Closed",
            "priority": "3 - Moderate", "created": created.isoformat(),
            "resolved": None if resolved is None else resolved.isoformat(),
            "updated": (resolved or created).isoformat(), "moment": moment,
            "moment_confidence": 0.9, "moment_reason": "rule", "moment_rule": "rule",
            "needs_review": False, "sentiment": None, "experience_score": score,
            "experience_level": level, "experience_reasons": reasons,
            "signals": {
                "sentiment": None, "participants_sentiment": None, "complaints": 0,
                "agent_concern": 0, "chasers": rng.choice((0, 0, 0, 1, 2)),
                "unanswered_questions": 0, "wait_hours": 3.5, "first_response_hours": 1.0,
                "resolution_hours": 30.0, "reopen_count": 0, "reassignment_count": 1,
                "pingpong": 0, "sla_breached": sla, "priority_raised": 0, "on_hold_hours": 0.0,
                "repeat_contact": 0, "requester_interactions": 2, "channel_switches": None,
                "survey_score": round(rng.random(), 2) if rng.random() < 0.05 else None,
                "lost_hours": round(rng.random() * 20, 1) if moment == "operation" else None,
                "age_days": 3.0, "howto": (rng.random() < 0.15) if moment == "operation" else None,
                "caused_incidents": rng.choice((0, 0, 1)) if moment == "evolution" else None,
                "failed_change": None, "rework": None,
                "business_participants": rng.randint(0, 4) if moment == "innovation" else None,
                "business_share": round(rng.random(), 2) if moment == "innovation" else None,
                "stalled_days": round(rng.random() * 40, 1) if is_open and moment != "operation"
                else None,
                "watermelon": sla is False and level in ("at_risk", "poor"),
            },
            "sla_breached": sla, "survey_score": None, "language": "en",
        }


def pooled(n: int, seed: int, recent: bool, pool: int) -> Iterator[dict[str, Any]]:
    """``n`` rows cycling over ``pool`` distinct ones: the same shapes and distributions at a
    fraction of the cost of making them, so the timing is the report's, not the generator's
    (a database cursor hands over ready-made rows too). The rows are never mutated."""
    rows_ = list(rows(min(pool, n), seed, recent))
    for i in range(n):
        yield rows_[i % len(rows_)]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--recent", action="store_true",
                        help="every item in the last 56 days (worst case)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--pool", type=int, default=50_000,
                        help="distinct rows made and cycled over (0: make every row)")
    args = parser.parse_args()

    source = (pooled(args.items, args.seed, args.recent, args.pool) if args.pool
              else rows(args.items, args.seed, args.recent))
    next_row = next(source)  # the pool is made here, before the clock starts

    def stream() -> Iterator[dict[str, Any]]:
        yield next_row
        yield from source

    wall, cpu = time.perf_counter(), time.process_time()
    frame = report_frame(stream())
    load_s, load_cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = args.out or Path(tempfile.mkdtemp(prefix="momentos-report-bench-"))
    wall, cpu = time.perf_counter(), time.process_time()
    files = build_report(frame, out, now=NOW, customers={"Business area 00": ["BA-00"]})
    build_s, build_cpu = time.perf_counter() - wall, time.process_time() - cpu
    sizes = {p.name: p.stat().st_size for p in [files.html, files.xlsx, files.json]}
    print(
        f"items={args.items:,} recent={args.recent} cpus={os.cpu_count()} "
        f"python={platform.python_version()}\n"
        f"rows -> frame (report_frame): {load_s:.1f} s wall, {load_cpu:.1f} s CPU\n"
        f"frame -> files (build_report): {build_s:.1f} s wall, {build_cpu:.1f} s CPU\n"
        f"report total: {load_s + build_s:.1f} s wall, {load_cpu + build_cpu:.1f} s CPU\n"
        f"items in period: {files.summary['items']:,}; at risk listed: "
        f"{files.summary['at_risk']:,}\n"
        f"peak RSS: {peak_rss_mb():,.0f} MB\n"
        f"files: {sizes} in {out}"
    )


if __name__ == "__main__":
    main()
