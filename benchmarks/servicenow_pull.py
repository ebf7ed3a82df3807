"""ServiceNow pull benchmark: N incidents (default 100,000) with about 3 comments each.

A ServiceNow sandbox (``ServiceNowSandbox`` in a ``ServerThread``) runs in a child process, so
the figures of this process are the connector's own: real pysnow over loopback HTTP, keyset
pages of ``--page-size`` records, every page's related context (journal, audit, SLAs, surveys,
display values of references, agents, choice labels) in batched bulk reads.

Two phases against the same sandbox:

1. **pull** — ``ServiceNowConnector.pull`` over the whole incident table, from scratch;
2. **pull + write** — the same pull again, and each page's three writeback fields written back
   through the Batch API (``batch_size`` PATCHes per call). The written records move after the
   pull's window, which ends at the run's start, so they are not read again.

It prints, per phase: requests per 1,000 records (reads and writes separately, as counted by
the connector's request counter and checked against the sandbox's own ``/_sandbox/stats``),
records per second, and this process's RSS: peak (``ru_maxrss``) and current RSS sampled at
every tenth of the pull, which stays flat when pages are processed and released. No
enrichment: that is the enrichment benchmarks' business.

Run it with momentos' interpreter::

    python benchmarks/servicenow_pull.py                       # 100,000 incidents
    python benchmarks/servicenow_pull.py --records 20000
    python benchmarks/servicenow_pull.py --results benchmarks/RESULTS.md   # record the figures
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

SECTION = "## ServiceNow pull"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
PASSWORD_ENV = "MOMENTOS_BENCH_SN_PASSWORD"


# --- the sandbox, in its own process ---------------------------------------------------------------


def _serve(records: int, comments: int, seed: int, conn: Any) -> None:
    """Child process: generate an incidents-only world, trim comments to ``comments`` per
    incident, serve it, report (url, password, facts) and wait to be terminated."""
    import secrets

    from momentos.sandbox.base import ServerThread
    from momentos.sandbox.servicenow import ServiceNowSandbox
    from momentos.sandbox.world import INTEGRATION_USER, generate_world

    started = time.perf_counter()
    world = generate_world(seed=seed, items=records, now=NOW, only_tables=("incident",))
    for item in world.items:
        del item.comments[comments:]
    password = secrets.token_urlsafe(12)
    app = ServiceNowSandbox(world, {INTEGRATION_USER: password}, seed=seed)
    thread = ServerThread(app).start()
    facts = {
        "incidents": len(app.tables["incident"].rows),
        "comments": len(app.tables["sys_journal_field"].rows),
        "audit": len(app.tables["sys_audit"].rows),
        "slas": len(app.tables["task_sla"].rows),
        "surveys": len(app.tables["asmt_assessment_instance"].rows),
        "users": len(app.tables["sys_user"].rows),
        "setup_s": round(time.perf_counter() - started, 1),
    }
    del world
    conn.send((thread.url, password, facts))
    conn.recv()  # any message: stop
    thread.stop()


# --- measuring ---------------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass
class Phase:
    name: str
    records: int = 0
    pages: int = 0
    comments: int = 0
    seconds: float = 0.0
    reads: int = 0
    writes: int = 0
    server: dict[str, int] = field(default_factory=dict)
    rss_samples: list[tuple[int, float]] = field(default_factory=list)
    peak_mb: float = 0.0

    def per_1000(self, count: int) -> float:
        return 1000 * count / self.records if self.records else 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _connector(url: str, page_size: int) -> Any:
    from momentos.connectors.servicenow import ServiceNowConnector, ServiceNowSettings
    from momentos.sandbox.world import INTEGRATION_USER

    settings = ServiceNowSettings.model_validate(
        {
            "name": "bench",
            "type": "servicenow",
            "url": url,
            "auth": {"username": INTEGRATION_USER, "password_env": PASSWORD_ENV},
            "tables": ["incident"],
            "page_size": page_size,
            "batch_size": 50,
        }
    )
    return ServiceNowConnector(settings)


def _server_requests(url: str) -> dict[str, int]:
    return dict(requests.get(f"{url}/_sandbox/stats", timeout=30).json()["requests"])


def run_phase(name: str, url: str, page_size: int, expected: int, write: bool) -> Phase:
    from momentos.connectors.base import FieldChange

    phase = Phase(name)
    connector = _connector(url, page_size)
    before = _server_requests(url)
    next_sample = 0
    started = time.perf_counter()
    # The window ends a second before the phase starts (the world does not change meanwhile),
    # so no record written in this phase's first second comes back within it.
    for page in connector.pull("incident", None, datetime.now(UTC) - timedelta(seconds=1)):
        phase.pages += 1
        phase.records += len(page.items)
        phase.comments += sum(len(i.comments) for i in page.items)
        if write and page.items:
            changes = []
            for item in page.items:
                score = 40 + len(item.comments) * 7 + (item.reassignment_count or 0)
                changes += [
                    FieldChange(item, "moment", None, "operation"),
                    FieldChange(item, "score", None, score),
                    FieldChange(item, "signals", None, f"comments={len(item.comments)}"),
                ]
            for result in connector.write(changes):
                if not result.ok:
                    raise SystemExit(f"write failed: {result.error}")
        if phase.records >= next_sample:
            phase.rss_samples.append((phase.records, round(_rss_mb(), 1)))
            next_sample += max(1, expected // 10)
    phase.seconds = time.perf_counter() - started
    phase.rss_samples.append((phase.records, round(_rss_mb(), 1)))
    phase.reads, phase.writes = connector.counter.read, connector.counter.write
    after = _server_requests(url)
    phase.server = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    phase.server = {k: v for k, v in phase.server.items() if v}
    phase.peak_mb = round(_peak_mb(), 1)
    connector.close()
    return phase


# --- reporting -------------------------------------------------------------------------------------


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    with open("/proc/meminfo", encoding="ascii") as handle:
        mem_kb = int(handle.readline().split()[1])
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {mem_kb / 2**20:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def report(args: argparse.Namespace, facts: dict[str, Any], phases: list[Phase]) -> str:
    lines = [
        SECTION,
        "",
        (
            f"`python benchmarks/servicenow_pull.py --records {args.records} --page-size "
            f"{args.page_size}` on {datetime.now(UTC):%Y-%m-%d}; {_machine()}."
        ),
        "",
        (
            f"Sandbox (separate process, set up in {facts['setup_s']} s): {facts['incidents']:,} "
            f"incidents, {facts['comments']:,} comments and work notes "
            f"({facts['comments'] / max(1, facts['incidents']):.2f} per incident), "
            f"{facts['audit']:,} audit rows, {facts['slas']:,} SLAs, {facts['surveys']:,} survey "
            f"answers, {facts['users']:,} users. Requests are counted by the connector (retries "
            "included) and match the sandbox's own count."
        ),
        "",
        "| phase | records | reads / 1,000 | writes / 1,000 | records/s | peak RSS | RSS at 10% → 100% |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in phases:
        samples = [mb for _, mb in p.rss_samples]
        first = next((mb for n, mb in p.rss_samples if n >= p.records // 10), samples[0])
        lines.append(
            f"| {p.name} | {p.records:,} | {p.per_1000(p.reads):.1f} | {p.per_1000(p.writes):.1f} "
            f"| {p.rate:,.0f} | {p.peak_mb:.0f} MB | {first:.0f} → {samples[-1]:.0f} MB |"
        )
    lines.append("")
    for p in phases:
        endpoints = ", ".join(f"`{k}` {v:,}" for k, v in sorted(p.server.items()))
        lines.append(f"- {p.name}: {p.pages:,} pages; server saw {endpoints}.")
    lines += [
        "",
        (
            "Reads per page: the page's GET plus two Batch API calls carrying the related GETs "
            "(journal, audit, SLAs, survey instances, display values; then survey answers, "
            "audited groups/people and comment authors), each id list chunked to keep every URL "
            "under ~8 kB. Writes: one Batch API call per 50 changed records, the three fields "
            "of each record in one PATCH. Peak RSS is the whole benchmark process; the RSS "
            "samples along the pull stay flat because each page is released before the next."
        ),
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, leaving the others."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    start = existing.find(SECTION + "\n")
    if start == -1:
        updated = existing.rstrip("\n") + "\n\n" + text
    else:
        end = existing.find("\n## ", start + len(SECTION))
        updated = existing[:start] + text + ("" if end == -1 else existing[end + 1 :])
    path.write_text(updated.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--comments", type=int, default=3, help="comments kept per incident")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, help="write the figures into this RESULTS.md")
    args = parser.parse_args(argv)

    context = mp.get_context("spawn")  # the child builds the world; this process stays lean
    parent, child = context.Pipe()
    server = context.Process(
        target=_serve, args=(args.records, args.comments, args.seed, child), daemon=True
    )
    server.start()
    url, password, facts = parent.recv()
    os.environ[PASSWORD_ENV] = password
    print(f"sandbox ready at {url}: {facts}", flush=True)
    try:
        phases = [
            run_phase("pull", url, args.page_size, facts["incidents"], write=False),
            run_phase("pull + write", url, args.page_size, facts["incidents"], write=True),
        ]
    finally:
        parent.send("stop")
        server.join(timeout=30)
    for p in phases:
        if p.records != facts["incidents"]:
            print(
                f"{p.name}: pulled {p.records} of {facts['incidents']} incidents", file=sys.stderr
            )
            return 1
        seen_reads = sum(v for k, v in p.server.items() if k.startswith("GET ")) + p.server.get(
            "POST /api/now/batch", 0
        )
        seen_writes = p.server.get("POST /api/now/v1/batch", 0) + p.server.get(
            "PATCH /api/now/table/<table>/<sys_id>", 0
        )
        if (seen_reads, seen_writes) != (p.reads, p.writes):
            print(f"{p.name}: counted {p.reads}/{p.writes}, server saw {seen_reads}/{seen_writes}")
            return 1
    text = report(args, facts, phases)
    print(text)
    if args.results:
        write_section(args.results, text)
        print(f"figures written to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
