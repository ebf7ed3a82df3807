"""Jira pull benchmark: momentos against dlt's REST API source and Singer's tap-jira.

One Jira Cloud sandbox (``JiraSandbox``, over https with its own CA) serves N issues (default
20,000) with comments and changelogs. Each tool pulls all of them, one after the other, as a
separate process; the script reports for each:

* requests per 1,000 issues — counted by the sandbox (``/_sandbox/stats``), retries included;
* issues per second — issues the tool delivered / wall time of its process (start-up included);
* peak RSS — ``ru_maxrss`` of the tool's process (``os.wait4``).

What each tool fetches (the point of the comparison is that momentos does more):

* **momentos** — ``momentos pull`` with a Jira-only config: ``/search/jql`` with an explicit field
  list and ``expand=changelog``, every comment beyond the 20 inlined ones
  (``/issue/{id}/comment``), every changelog beyond the 20 inlined ones (``POST
  /changelog/bulkfetch``), normalized items written as JSON Lines.
* **dlt** — ``benchmarks/jira_peer_dlt.py``: the REST API source on ``/rest/api/3/search/jql``
  with ``fields=*all`` and ``expand=changelog``, cursor-paged by ``nextPageToken``, loaded into
  DuckDB (inlined comments/changelog only).
* **tap-jira** (Singer, singer-io) — the ``issues``, ``issue_comments`` and ``changelogs``
  streams: ``/rest/api/2/search/jql`` with ``fields=*all`` and ``expand=changelog,transitions``,
  50 a page; it is https-only, hence the sandbox's TLS (inlined comments/changelog only).

The peers are installed from PyPI into their own virtual environments under
``--venvs`` (default ``$TMPDIR/momentos-bench-venvs``, reused between runs), never into
momentos' environment. Run it with momentos' interpreter::

    python benchmarks/jira_pull.py                 # 20,000 issues, all three tools
    python benchmarks/jira_pull.py --issues 2000 --tools momentos
    python benchmarks/jira_pull.py --results benchmarks/RESULTS.md   # record the figures
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from momentos.sandbox.base import ServerThread, make_self_signed_cert, tls_dir
from momentos.sandbox.jira import JiraSandbox
from momentos.sandbox.world import HUMAN_USER, INTEGRATION_USER, generate_world

HERE = Path(__file__).resolve().parent
PROJECTS = ["SD", "APP", "PMO"]
#: Peer tools and the exact releases measured (pinned, so figures stay comparable).
PEERS: dict[str, list[str]] = {
    "dlt": ["dlt[duckdb]==1.31.0"],
    "tap-jira": ["tap-jira==2.6.0"],
}
SECTION = "## Jira pull"


@dataclasses.dataclass
class Run:
    tool: str
    issues: int
    wall_s: float
    rss_mb: float
    requests: int
    endpoints: dict[str, int]
    fetched: str  # what the tool brought besides the issue fields
    note: str = ""
    ok: bool = True

    @property
    def per_1000(self) -> float:
        return self.requests * 1000 / self.issues if self.issues else float("nan")

    @property
    def per_second(self) -> float:
        return self.issues / self.wall_s if self.wall_s else float("nan")


# --- the sandbox ---------------------------------------------------------------------------------


class Site:
    """A Cloud sandbox with ``issues`` issues over https."""

    def __init__(self, issues: int, seed: int) -> None:
        # About 45% of a generated world is Jira; generate enough and keep exactly ``issues``.
        world = generate_world(seed=seed, items=int(issues / 0.44) + 200, now=datetime(2026, 3, 2, tzinfo=UTC))
        jira = [i for i in world.items if i.platform == "jira"][:issues]
        if len(jira) < issues:
            raise SystemExit(f"the world has only {len(jira)} Jira issues")
        world = dataclasses.replace(world, items=jira)
        self.password = "bench-" + os.urandom(6).hex()
        self.app = JiraSandbox(world, {INTEGRATION_USER: self.password, HUMAN_USER: self.password + "h"},
                               seed=seed, flavor="cloud")
        # Render ADF bodies once up front: the first tool must not pay for what later ones reuse.
        self.app.prerender()
        cert, key = make_self_signed_cert(tls_dir())
        self.ca = str(cert)
        self.server = ServerThread(self.app, tls=(cert, key)).start()
        self.url = self.server.url
        self.issues = issues
        self.comments = sum(len(i.comments) for i in self.app.issues.values())
        self.histories = sum(len(i.histories) for i in self.app.issues.values())

    def requests_so_far(self) -> Counter[str]:
        stats = requests.get(f"{self.url}/_sandbox/stats", verify=self.ca, timeout=30).json()
        return Counter(stats["requests"])

    def stop(self) -> None:
        self.server.stop()


# --- measuring a process --------------------------------------------------------------------------


def measure(tool: str, command: list[str], site: Site, env: dict[str, str], stdout: Path,
            cwd: Path) -> tuple[float, float, dict[str, int], int]:
    """Run ``command``; return wall seconds, peak RSS (MB), requests by endpoint, exit code."""
    before = site.requests_so_far()
    started = time.perf_counter()
    with stdout.open("wb") as out, (cwd / f"{tool}.stderr").open("wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        # wait4 returns the rusage of exactly this child: its peak RSS, nobody else's.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    used = site.requests_so_far() - before
    return wall, usage.ru_maxrss / 1024, dict(used), proc.returncode


def ensure_venv(name: str, packages: list[str], root: Path) -> Path:
    """A virtual environment with ``packages`` under ``root/name`` (reused when it has them)."""
    venv = root / name
    marker = venv / "momentos-bench.json"
    if marker.exists() and json.loads(marker.read_text()) == packages:
        return venv
    print(f"installing {', '.join(packages)} into {venv} …", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)
    marker.write_text(json.dumps(packages))
    return venv


# --- the tools ----------------------------------------------------------------------------------------


def run_momentos(site: Site, work: Path) -> Run:
    config = {
        "version": 1,
        "sources": [{
            "name": "jira", "type": "jira", "url": site.url, "flavor": "cloud", "ca_bundle": site.ca,
            "auth": {"username": INTEGRATION_USER, "password_env": "MOMENTOS_BENCH_PASSWORD"},
            "projects": PROJECTS, "page_size": 100,
        }],
        "state": {"url": f"sqlite:///{work / 'state.db'}"},
        "report": {"out": str(work / "report")},
    }
    path = work / "momentos.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    out = work / "momentos-items.jsonl"
    env = {**os.environ, "MOMENTOS_BENCH_PASSWORD": site.password}
    command = [sys.executable, "-m", "momentos", "pull", "--config", str(path), "--out", str(out), "--full"]
    wall, rss, used, code = measure("momentos", command, site, env, work / "momentos.stdout", work)
    issues = comments = history = 0
    if out.exists():
        with out.open(encoding="utf-8") as handle:
            for line in handle:
                item = json.loads(line)
                issues += 1
                comments += len(item.get("comments") or [])
                history += len(item.get("history") or [])
    fetched = f"all comments ({comments:,}), full tracked history ({history:,} events), JSM context"
    return Run("momentos", issues, wall, rss, sum(used.values()), used, fetched, ok=code == 0)


def run_dlt(site: Site, work: Path, venvs: Path, complete: bool = False, sample: int = 0) -> Run:
    venv = ensure_venv("dlt", PEERS["dlt"], venvs)
    # The complete variant sends two requests per issue: it runs on a sample of 100-issue pages
    # (its per-issue rates do not depend on the total).
    pages = max(1, sample // 100) if complete and sample and sample < site.issues else None
    args = {"url": site.url, "user": INTEGRATION_USER, "password": site.password, "ca": site.ca,
            "projects": PROJECTS, "workdir": str(work / "dlt"), "complete": complete, "max_pages": pages}
    tool = "dlt-complete" if complete else "dlt"
    command = [str(venv / "bin" / "python"), str(HERE / "jira_peer_dlt.py"), json.dumps(args)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    wall, rss, used, code = measure(tool, command, site, env, work / f"{tool}.stdout", work)
    result: dict[str, Any] = {}
    lines = (work / f"{tool}.stdout").read_text(encoding="utf-8").strip().splitlines()
    if code == 0 and lines:
        result = json.loads(lines[-1])
    children = result.get("child_rows") or {}
    if complete:
        fetched = (f"all comments ({children.get('issue_comments', 0):,}), full changelog "
                   f"({children.get('issue_changelogs', 0):,} histories), one request each per issue")
    else:
        comments = children.get("issues__fields__comment__comments", 0)
        history = children.get("issues__changelog__histories", 0)
        fetched = f"inlined comments only ({comments:,}), inlined changelog only ({history:,} histories)"
    note = ""
    if result:
        note = (f"extract {result['extract_s']:.1f} s ({result['issues'] / max(result['extract_s'], 1e-9):,.0f} "
                f"issues/s extracting alone), normalize {result['normalize_s']:.1f} s, load {result['load_s']:.1f} s")
        if pages:
            note = f"run on a sample of the first {pages * 100:,} issues; " + note
    if code != 0:
        err = (work / f"{tool}.stderr").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        note = "failed: " + (err[-1] if err else f"exit {code}")
    return Run(tool, int(result.get("issues", 0)), wall, rss, sum(used.values()), used, fetched,
               note=note, ok=code == 0)


def trust_in_certifi(venv: Path, ca: str) -> None:
    """Make tap-jira's private venv trust the sandbox CA.

    tap-jira is https-only and has no CA setting, and it sends with ``Session.send``, which
    (unlike ``Session.request``) never reads ``REQUESTS_CA_BUNDLE``; so the only way in is the
    usual corporate-CA workaround: append the CA to the certifi bundle of *its* environment.
    The original bundle is kept beside it and restored into the file on every run.
    """
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import certifi; print(certifi.where())"],
                           check=True, capture_output=True, text=True).stdout.strip()
    bundle = Path(where)
    original = bundle.with_name(bundle.name + ".orig")
    if not original.exists():
        original.write_bytes(bundle.read_bytes())
    bundle.write_bytes(original.read_bytes() + b"\n" + Path(ca).read_bytes())


def run_tap_jira(site: Site, work: Path, venvs: Path) -> Run:
    venv = ensure_venv("tap-jira", PEERS["tap-jira"], venvs)
    tap = str(venv / "bin" / "tap-jira")
    config = work / "tap-config.json"
    config.write_text(json.dumps({
        "start_date": "2000-01-01T00:00:00Z", "username": INTEGRATION_USER, "password": site.password,
        "base_url": site.url, "user_agent": "momentos-benchmark", "request_timeout": 300,
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    trust_in_certifi(venv, site.ca)
    discovered = subprocess.run([tap, "--config", str(config), "--discover"], env=env, check=False,
                                capture_output=True, text=True, cwd=work)
    if discovered.returncode != 0:
        last = (discovered.stderr.strip().splitlines() or [f"exit {discovered.returncode}"])[-1]
        return Run("tap-jira", 0, 0.0, 0.0, 0, {}, "", note=f"discovery failed: {last}", ok=False)
    catalog = json.loads(discovered.stdout)
    wanted = {"issues", "issue_comments", "changelogs"}
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            # Select the streams and every field of them, as a user ticking the streams does.
            if stream["tap_stream_id"] in wanted:
                entry["metadata"]["selected"] = True
    properties = work / "tap-catalog.json"
    properties.write_text(json.dumps(catalog))
    command = [tap, "--config", str(config), "--properties", str(properties)]
    out = work / "tap-jira.stdout"
    wall, rss, used, code = measure("tap-jira", command, site, env, out, work)
    records: Counter[str] = Counter()
    with out.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith('{"type": "RECORD"') or '"type": "RECORD"' in line[:40]:
                match = re.search(r'"stream": "([^"]+)"', line)
                if match:
                    records[match.group(1)] += 1
    fetched = (f"inlined comments only ({records['issue_comments']:,}), inlined changelog only "
               f"({records['changelogs']:,} histories)")
    note = ""
    if code != 0:
        err = (work / "tap-jira.stderr").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        note = "failed: " + (err[-1] if err else f"exit {code}")
    return Run("tap-jira", records["issues"], wall, rss, sum(used.values()), used, fetched, note=note, ok=code == 0)


# --- reporting -----------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0.0
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    return f"{os.cpu_count()} CPUs (nproc), {ram:.0f} GiB RAM, {cpu or 'unknown CPU'}, Python {platform.python_version()}"


def table(runs: list[Run]) -> str:
    rows = ["| tool | issues | requests | requests / 1,000 issues | issues / s | wall s | peak RSS MB | also fetched |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        status = "" if r.ok else " (failed)"
        rows.append(f"| {r.tool}{status} | {r.issues:,} | {r.requests:,} | {r.per_1000:.1f} | {r.per_second:,.0f} | "
                    f"{r.wall_s:.1f} | {r.rss_mb:.0f} | {r.fetched} |")
    return "\n".join(rows)


def verdict(runs: list[Run]) -> list[str]:
    ours = next((r for r in runs if r.tool == "momentos"), None)
    lines = []
    if ours is None:
        return lines
    for peer in runs:
        if peer is ours:
            continue
        if not peer.ok or not peer.issues:
            lines.append(f"- {peer.tool}: no comparable figure ({peer.note or 'it failed'}).")
            continue
        faster = ours.per_second / peer.per_second
        fewer = peer.per_1000 / ours.per_1000
        requests_word = f"{fewer:.2f}× fewer" if fewer >= 1 else f"{1 / fewer:.2f}× more"
        lines.append(
            f"- vs {peer.tool}: momentos is {faster:.1f}× {'faster' if faster >= 1 else 'slower'} "
            f"({ours.per_second:,.0f} vs {peer.per_second:,.0f} issues/s) with {requests_word} "
            f"requests per 1,000 issues ({ours.per_1000:.1f} vs {peer.per_1000:.1f})."
        )
    return lines


def reading(runs: list[Run], site: Site) -> list[str]:
    """How the momentos figure splits, so a reader sees what the extra requests bought."""
    ours = next((r for r in runs if r.tool == "momentos"), None)
    if ours is None:
        return []
    search = sum(n for k, n in ours.endpoints.items() if k.endswith("/search/jql"))
    context = sum(n for k, n in ours.endpoints.items() if k.endswith(("/comment", "/changelog/bulkfetch", "/changelog")))
    other = ours.requests - search - context
    floor = -(-site.issues // 100)
    text = (
        f"Reading the figures: momentos' {ours.requests:,} requests are {search} search pages (Cloud "
        f"returns at most 100 issues a page when fields are asked, so {floor} is the floor for any tool; "
        "momentos keeps one watermark per project, so each project ends with its own partial page), "
        f"{context} requests for the comments and changelogs beyond the 20 that Cloud inlines "
        f"(`/issue/{{id}}/comment`, `POST /changelog/bulkfetch`) and {other} one-off reads (server "
        "info, user, fields, statuses, agent groups). A tool that stops at the inlined 20 can come in "
        "under it; one that fetches every comment and changelog per issue pays two requests per issue."
    )
    return [text, ""]


def write_results(path: Path, site: Site, runs: list[Run]) -> None:
    """Replace (or add) this benchmark's section of RESULTS.md; other sections stay as they are."""
    body = [
        SECTION, "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        (f"`python benchmarks/jira_pull.py --issues {site.issues}`: one Jira **Cloud** sandbox over https "
         f"({site.issues:,} issues, {site.comments:,} comments, {site.histories:,} changelog histories), "
         "each tool run once as its own process against it; requests counted by the sandbox, retries "
         "included; issues/s = issues delivered / the process's wall time (start-up included); "
         "peak RSS of the process."),
        "",
        table(runs), "",
        *verdict(runs), "",
    ]
    body += reading(runs, site)
    notes = [f"- {r.tool}: {r.note}" for r in runs if r.note]
    if notes:
        body += ["Notes:", *notes, ""]
    body += [
        "Peers, each in its own virtualenv: " + ", ".join(p for ps in PEERS.values() for p in ps)
        + ". dlt: REST API source on `/rest/api/3/search/jql` (`fields=*all`, `expand=changelog`, "
        "100 a page, `nextPageToken` cursor) into DuckDB; tap-jira: `issues`, `issue_comments`, "
        "`changelogs` streams (`/rest/api/2/search/jql`, `fields=*all`, "
        "`expand=changelog,transitions`, 50 a page). Neither pages comments or changelogs beyond "
        "the 20 that Cloud inlines; momentos does (`/issue/{id}/comment`, `POST /changelog/bulkfetch`).",
        "",
    ]
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    section = "\n".join(body)
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tools", default="momentos,dlt,dlt-complete,tap-jira",
                        help="comma-separated: momentos, dlt, dlt-complete, tap-jira")
    parser.add_argument("--venvs", type=Path, default=Path(tempfile.gettempdir()) / "momentos-bench-venvs")
    parser.add_argument("--complete-sample", type=int, default=2000,
                        help="issues dlt-complete pulls (two requests per issue), 0 = all")
    parser.add_argument("--results", type=Path, help="write the figures into this RESULTS.md section")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.venvs.mkdir(parents=True, exist_ok=True)
    # Install first: pip's time is not the pull's.
    for tool in tools:
        peer = "dlt" if tool == "dlt-complete" else tool
        if peer in PEERS:
            ensure_venv(peer, PEERS[peer], args.venvs)
    print(f"building a Cloud sandbox with {args.issues:,} issues …", file=sys.stderr, flush=True)
    site = Site(args.issues, args.seed)
    runs: list[Run] = []
    # MOMENTOS_BENCH_KEEP=1 keeps each tool's files (stderr, outputs) for a look afterwards.
    tmp = tempfile.mkdtemp(prefix="momentos-bench-")
    try:
        for tool in tools:
            work = Path(tmp) / tool
            work.mkdir()
            print(f"running {tool} …", file=sys.stderr, flush=True)
            if tool == "momentos":
                runs.append(run_momentos(site, work))
            elif tool in ("dlt", "dlt-complete"):
                runs.append(run_dlt(site, work, args.venvs, complete=tool == "dlt-complete",
                                    sample=args.complete_sample))
            elif tool == "tap-jira":
                runs.append(run_tap_jira(site, work, args.venvs))
            else:
                raise SystemExit(f"unknown tool {tool!r}")
            legacy = sum(n for k, n in runs[-1].endpoints.items() if k.endswith("/search"))
            if legacy:
                runs[-1].note = (runs[-1].note + "; " if runs[-1].note else "") + (
                    f"{legacy} calls to the removed /search")
    finally:
        site.stop()
        if not os.environ.get("MOMENTOS_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nJira pull, Cloud sandbox, {args.issues:,} issues — {machine()}\n")
    print(table(runs))
    print()
    for line in verdict(runs):
        print(line)
    for r in runs:
        print(f"\n{r.tool} requests: " + ", ".join(f"{k} ×{v}" for k, v in sorted(r.endpoints.items())))
        if r.note:
            print(f"{r.tool}: {r.note}")
    if args.results:
        write_results(args.results, site, runs)
        print(f"\nwrote {args.results}")


if __name__ == "__main__":
    main()
