"""End-to-end sync benchmark at scale: sandbox and momentos in separate processes.

For each run (a world size and a share of its items to change): start ``momentos sandbox
--items N --seed S`` as its own process, then run ``momentos sync --config FILE --json`` as
its own process for each phase:

* ``first``: the first full sync (pull, enrich, write back, nudge notes);
* ``settle``: the next sync, nothing changed (it pages over the first sync's own writes);
* ``incremental0`` (``--warmup K``): K items changed once the overlap window has passed, so
  the watermark leaves the first sync's own writes behind (see ``run_world``);
* ``incrementalN``, one per share given: after a person (the sandbox's ``human_user``) added a
  comment to exactly ``round(share * N)`` items picked at random, through each platform's HTTP
  API, which bumps ``sys_updated_on`` / ``updated`` as a real edit does.

``--seeded`` runs the first sync with writeback and nudges off (see ``run_world``).

Per phase it records wall time, CPU time and peak RSS of the momentos process (``wait4``),
CPU time and peak RSS of the sandbox process (``/proc``), items per second, and requests per
item from both sides: momentos's ``sync --json`` summary (read / write, retries included) and
the sandbox's ``/_sandbox/stats`` (difference over the phase, by endpoint).

    python benchmarks/e2e/run.py --run 10000:0.01,1.0 --warmup 10 --out /tmp/e2e-10k.json
    python benchmarks/e2e/run.py --run 100000:0.01,0.1 --warmup 10 --out /tmp/e2e-100k.json
    python benchmarks/e2e/run.py --seeded --run 1000000:0.01 --out /tmp/e2e-1m.json

``10000:...,1.0`` gives the reference for the issue's Done-when: an incremental sync of just
10,000 changed items (a 10,000-item world where every item changed). ``summarize.py`` reads the
JSON files and prints the tables, the growth analysis and the 1.1x check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import requests

PASSWORD_ENV = "MOMENTOS_SANDBOX_PASSWORD"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def momentos_bin() -> str:
    candidate = Path(sys.executable).with_name("momentos")
    return str(candidate) if candidate.exists() else "momentos"


# --- process measurements ------------------------------------------------------------------------
def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a live process, MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line[:5]] = int(line.split()[1]) / 1024
    return {"rss_mb": out.get("VmRSS", 0.0), "peak_rss_mb": out.get("VmHWM", 0.0)}


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a phase runs."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(loadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        s = self.samples or [0.0]
        return {"min": min(s), "mean": round(sum(s) / len(s), 2), "max": max(s)}


# --- the sandbox process ---------------------------------------------------------------------
class SandboxProcess:
    def __init__(self, items: int, seed: int, jira_flavor: str) -> None:
        self.items = items
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [momentos_bin(), "sandbox", "--items", str(items), "--seed", str(seed),
             "--jira-flavor", jira_flavor],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"sandbox exited with {self.proc.wait()} before its ready line")
        self.ready = json.loads(line)
        self.startup_s = time.perf_counter() - t0
        self.startup_cpu_s = proc_cpu_s(self.proc.pid)
        self.startup_mem = proc_mem_mb(self.proc.pid)
        self.urls = {"servicenow": self.ready["servicenow"], "jira": self.ready["jira"]}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> dict[str, dict[str, int]]:
        """Request counts by platform and endpoint (``/_sandbox/stats``)."""
        return {name: requests.get(f"{url}/_sandbox/stats", timeout=600).json()["requests"]
                for name, url in self.urls.items()}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stats_delta(before: dict, after: dict) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, counts in after.items():
        diff = {k: v - before.get(name, {}).get(k, 0) for k, v in counts.items()}
        out[name] = {k: v for k, v in sorted(diff.items()) if v}
    return out


def what_was_rewritten(before: Path, after: Path) -> dict[str, Any]:
    """Why a step wrote: for each item momentos wrote again between two copies of the state
    store, which parts of its written values differ (``--why``).

    ``signals`` is "level: reasons | name=value ...": the level, the reasons, and each signal
    are counted apart, and reasons that differ only in their figures ("1.7x the usual",
    "usual: 18 min", which come from the instance history) are counted as such."""
    import re
    import sqlite3

    def load(path: Path) -> dict[tuple[str, str, str], tuple[str, str]]:
        with sqlite3.connect(path) as db:
            return {(s, i, f): (v or "", str(w)) for s, i, f, v, w in
                    db.execute("select source, item_id, field, value, written_at from written")}

    def parse(text: str) -> tuple[str, str, dict[str, str]]:
        head, _, tail = text.partition(" | ")
        level, _, reasons = head.partition(": ")
        return level, reasons, dict(p.split("=", 1) for p in tail.split() if "=" in p)

    old, new = load(before), load(after)
    items: dict[str, set[str]] = {}
    parts: dict[str, int] = {}
    only_history: dict[str, int] = {}
    digits = re.compile(r"\d+(?:\.\d+)?")
    per_item: dict[tuple[str, str], set[str]] = {}
    for key, (value, at) in new.items():
        if key not in old or old[key][1] == at:
            continue
        source, item, field = key
        items.setdefault(source, set()).add(item)
        changed = per_item.setdefault((source, item), set())
        if field != "signals":
            changed.add(field)
            continue
        level0, reasons0, values0 = parse(old[key][0])
        level1, reasons1, values1 = parse(value)
        if level0 != level1:
            changed.add("level")
        if reasons0 != reasons1:
            same_words = digits.sub("#", reasons0) == digits.sub("#", reasons1)
            changed.add("reasons (figures only)" if same_words else "reasons (wording)")
        changed.update(f"signal {n}" for n in set(values0) | set(values1)
                       if values0.get(n) != values1.get(n))
    for (source, _), changed in per_item.items():
        for name in changed:
            parts[name] = parts.get(name, 0) + 1
        if changed <= {"score", "reasons (figures only)"}:
            only_history[source] = only_history.get(source, 0) + 1
    return {
        "items": {source: len(ids) for source, ids in items.items()},
        "parts": dict(sorted(parts.items(), key=lambda kv: -kv[1])),
        "only_reason_figures_or_score": only_history,
    }


def copy_state(tmp: Path, name: str) -> Path:
    """A consistent copy of the benchmark's SQLite state store (``--why``)."""
    import sqlite3

    target = tmp / name
    with sqlite3.connect(tmp / "state.db") as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def write_config(box: SandboxProcess, tmp: Path, writeback: bool = True, nudges: bool = True,
                 context_items: int | None = None) -> Path:
    """The demo's config (both platforms, nudges on), with this sandbox's URLs.
    ``context_items``: ``experience.context_items`` (the history enrichment compares items
    with), when not the default."""
    import yaml

    auth = {"username": box.ready["user"], "password_env": PASSWORD_ENV}
    config = {
        "version": 1,
        "sources": [
            {"name": "servicenow", "type": "servicenow", "url": box.urls["servicenow"],
             "auth": dict(auth), "page_size": 500, "writeback": {"enabled": writeback}},
            {"name": "jira", "type": "jira", "url": box.urls["jira"], "auth": dict(auth),
             "projects": ["SD", "APP", "PMO"], "page_size": 100,
             "writeback": {"enabled": writeback}},
        ],
        "nudges": {"enabled": nudges},
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
        "report": {"out": str(tmp / "report"), "language": "en"},
    }
    if context_items is not None:
        config["experience"] = {"context_items": context_items}
    path = tmp / ("momentos.yaml" if writeback else "momentos-nowriteback.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


# --- one sync phase ----------------------------------------------------------------------------
def run_sync(box: SandboxProcess, config: Path, phase: str, items: int, log_path: Path,
             full: bool = False) -> dict[str, Any]:
    """``momentos sync --json`` (``--full`` with ``full``) in its own process, measured from
    outside."""
    env = dict(os.environ, **{PASSWORD_ENV: box.ready["password"]})
    before = box.stats()
    sb_cpu0 = proc_cpu_s(box.pid)
    t0 = time.perf_counter()
    with LoadSampler() as load, open(log_path, "ab") as err:
        command = [momentos_bin(), "sync", "--config", str(config), "--json"]
        proc = subprocess.Popen(command + ["--full"] if full else command,
                                stdout=subprocess.PIPE, stderr=err, env=env)
        reader = threading.Thread(target=lambda: setattr(proc, "_out", proc.stdout.read()))
        reader.start()
        _, status, usage = os.wait4(proc.pid, 0)
        reader.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    sb_cpu = proc_cpu_s(box.pid) - sb_cpu0
    after = box.stats()
    try:
        summary = json.loads(proc._out or b"{}")  # type: ignore[attr-defined]
    except json.JSONDecodeError:
        summary = {"raw": (proc._out or b"")[-2000:].decode(errors="replace")}  # type: ignore[attr-defined]
    sources = summary.get("sources", {})
    reads = sum(s.get("requests", {}).get("read", 0) for s in sources.values())
    writes = sum(s.get("requests", {}).get("write", 0) for s in sources.values())
    delta = stats_delta(before, after)
    server_requests = sum(sum(d.values()) for d in delta.values())
    per = max(items, 1)
    row = {
        "phase": phase, "items": items, "exit": proc.returncode, "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "cpu_user_s": round(usage.ru_utime, 2), "cpu_sys_s": round(usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "sandbox_cpu_s": round(sb_cpu, 2), **{f"sandbox_{k}": round(v, 1)
                                              for k, v in proc_mem_mb(box.pid).items()},
        "items_per_s": round(items / wall, 1) if wall else None,
        "reads": reads, "writes": writes, "reads_per_item": round(reads / per, 4),
        "writes_per_item": round(writes / per, 4), "requests": reads + writes,
        "requests_per_item": round((reads + writes) / per, 4),
        "server_requests": server_requests, "server_by_endpoint": delta,
        "summary": summary, "load": load.summary(),
    }
    log(f"{phase:<11} items={items:>8} exit={row['exit']} wall={wall:8.1f}s cpu={row['cpu_s']:8.1f}s "
        f"sandbox_cpu={sb_cpu:7.1f}s items/s={row['items_per_s']} reads={reads} writes={writes} "
        f"server={server_requests} rss={row['peak_rss_mb']}MB sandbox_rss={row['sandbox_rss_mb']}MB "
        f"(peak {row['sandbox_peak_rss_mb']}) load={row['load']}")
    for name, s in sources.items():
        log(f"    {name:<11} pulled={s.get('pulled')} enriched={s.get('enriched')} "
            f"written={s.get('written')} unchanged={s.get('unchanged')} failed={s.get('failed')} "
            f"requests={s.get('requests')}")
    return row


# --- a person's edits ---------------------------------------------------------------------------
def population(box: SandboxProcess) -> list[tuple[str, str, str]]:
    """Every item as (platform, container, id), read through the platforms' APIs as the human.

    ServiceNow: every ``task`` record's sys_id and class (10,000 a page). Jira: issue ids
    are sequential from 10000 in the sandbox (as on a real instance), and the Jira share is what
    ServiceNow does not hold, so no listing is needed.
    """
    s = requests.Session()
    s.auth = (box.ready["human_user"], box.ready["human_password"])
    out: list[tuple[str, str, str]] = []
    offset = 0
    while True:
        r = s.get(f"{box.urls['servicenow']}/api/now/table/task",
                  params={"sysparm_fields": "sys_id,sys_class_name", "sysparm_limit": 10000,
                          "sysparm_offset": offset}, timeout=600)
        r.raise_for_status()
        out.extend(("servicenow", row["sys_class_name"], row["sys_id"]) for row in r.json()["result"])
        offset += 10000
        if offset >= int(r.headers.get("X-Total-Count", 0)):
            break
    n_jira = box.items - len(out)
    out.extend(("jira", "", str(10_000 + i)) for i in range(n_jira))
    return out


def change_items(box: SandboxProcess, share: float, seed: int, everyone: list[tuple[str, str, str]],
                 workers: int = 4, count: int | None = None) -> dict[str, Any]:
    """A person comments on exactly ``round(share * N)`` (or ``count``) items, picked at random."""
    t0 = time.perf_counter()
    k = min(len(everyone), count if count is not None else round(share * box.items))
    picked = random.Random(seed).sample(everyone, k)
    auth = (box.ready["human_user"], box.ready["human_password"])
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.auth = auth
        return local.s

    def edit(item: tuple[str, str, str]) -> None:
        plat, container, item_id = item
        text = "Checked again with the vendor; we will update you tomorrow."
        if plat == "servicenow":
            r = session().patch(f"{box.urls['servicenow']}/api/now/table/{container}/{item_id}",
                                json={"comments": text}, timeout=60)
        else:
            r = session().post(f"{box.urls['jira']}/rest/api/2/issue/{item_id}/comment",
                               json={"body": text}, timeout=60)
        r.raise_for_status()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(edit, picked))
    by_platform = {p: sum(1 for i in picked if i[0] == p) for p in ("servicenow", "jira")}
    took = time.perf_counter() - t0
    log(f"changed {k} items ({by_platform}) in {took:.1f}s")
    return {"changed": k, "by_platform": by_platform, "wall_s": round(took, 1)}


# --- one world ------------------------------------------------------------------------------------
def run_world(items: int, shares: list[float], seed: int, jira_flavor: str, workdir: Path,
              seeded: bool = False, warmup: int = 0, overlap_s: float = 120.0,
              age_s: float = 0.0, why: bool = False, resync: bool = False,
              context_items: int | None = None) -> dict[str, Any]:
    """One world: first sync, settle, then one (change, incremental) step per share.

    ``warmup`` > 0: before the measured steps, wait until the overlap window (``overlap_s``,
    the sources' ``overlap_seconds``) has passed since the settle ended, change ``warmup`` items
    and sync once. The watermark then sits on those items instead of on the first sync's last
    own writes, so the first measured step does not re-read the first sync's last
    ``overlap_s`` seconds of writes (reported separately, as ``incremental0``).

    ``seeded``: the first sync runs with writeback disabled (pull, enrich, state, nudges), so
    the state store knows every item without the per-issue write cost; the settle and
    incremental syncs run with writeback on. Nudges are off in every phase of this protocol
    (notes posted by a first sync would be echoed by the next one). Used where the full first sync cannot finish in
    the time available; its figures are labelled as such.

    ``resync``: after the settle, one ``sync --full`` (phase ``resync``), as an admin would run
    once after the first sync of a big instance: the first sync compared its early items with
    the history read so far, and the resync rewrites the values that the whole history changes.

    ``why``: copy the state store before each measured step and record what the step wrote
    again and why (``what_was_rewritten``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"e2e-{items}-", dir=workdir))
    log(f"world {items} items, seed {seed}, change shares {shares}, seeded={seeded}: "
        f"starting sandbox ({tmp})")
    with LoadSampler() as load:
        box = SandboxProcess(items, seed, jira_flavor)
    result: dict[str, Any] = {
        "items": items, "seed": seed, "shares": shares, "jira_flavor": jira_flavor,
        "protocol": "seeded (first sync without writeback)" if seeded else "full",
        "sandbox_startup": {"wall_s": round(box.startup_s, 1), "cpu_s": round(box.startup_cpu_s, 1),
                            **{k: round(v, 1) for k, v in box.startup_mem.items()},
                            "load": load.summary()},
        "phases": [], "changes": [],
    }
    log(f"sandbox ready in {box.startup_s:.1f}s (cpu {box.startup_cpu_s:.1f}s, "
        f"rss {box.startup_mem['rss_mb']:.0f}MB)")
    try:
        config = write_config(box, tmp, nudges=not seeded, context_items=context_items)
        log_path = tmp / "sync.log"
        first_config = (write_config(box, tmp, writeback=False, nudges=False, context_items=context_items)
                        if seeded else config)
        first_started = time.perf_counter()
        result["age_s"] = age_s
        result["context_items"] = context_items
        result["phases"].append(run_sync(box, first_config, "first", items, log_path))
        result["phases"].append(run_sync(box, config, "settle", items, log_path))
        if resync:
            result["phases"].append(run_sync(box, config, "resync", items, log_path, full=True))
        settled = time.perf_counter()
        everyone = population(box)
        if warmup:
            wait = overlap_s + 5 - (time.perf_counter() - settled)
            if wait > 0:
                log(f"waiting {wait:.0f}s so the warm-up change falls outside the overlap window")
                time.sleep(wait)
            before = box.stats()
            change = change_items(box, 0.0, seed * 1000, everyone, count=warmup)
            change["server_by_endpoint"] = stats_delta(before, box.stats())
            change["step"] = 0
            result["changes"].append(change)
            time.sleep(1.1)
            row = run_sync(box, config, "incremental0", change["changed"], log_path)
            row["share"] = change["changed"] / items
            result["phases"].append(row)
        if age_s:
            # How long ago the first sync scored an item decides part of what a change makes
            # momentos write (an open item's age, waits and lost hours move with the clock), so
            # a small reference world can be given the big world's delay (``--age``).
            wait = age_s - (time.perf_counter() - first_started)
            if wait > 0:
                log(f"waiting {wait:.0f}s so the changes come {age_s:.0f}s after the first sync began")
                time.sleep(wait)
        for step, share in enumerate(shares, 1):
            snapshot = copy_state(tmp, "before.db") if why else None
            before = box.stats()
            change = change_items(box, share, seed * 1000 + step, everyone)
            change["server_by_endpoint"] = stats_delta(before, box.stats())
            change["step"] = step
            result["changes"].append(change)
            time.sleep(1.1)  # the platforms' timestamps have one-second precision
            row = run_sync(box, config, f"incremental{step}", change["changed"], log_path)
            row["share"] = share
            result["phases"].append(row)
            if snapshot is not None:
                change["rewritten"] = what_was_rewritten(snapshot, tmp / "state.db")
                snapshot.unlink()
                log(f"    rewritten: {change['rewritten']}")
        result["state_db_mb"] = round((tmp / "state.db").stat().st_size / 2**20, 1)
    finally:
        box.stop()
    return result


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gib": round(mem / 2**20, 1),
            "python": sys.version.split()[0], "kernel": platform.release()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[],
                        help="ITEMS:SHARE[,SHARE...]: a world and one change step per share, "
                             "e.g. 100000:0.01,0.01,0.1 (repeatable)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="items changed in a warm-up step that moves the watermark past the "
                             "first sync's own writes (see run_world); 0 = no warm-up")
    parser.add_argument("--seeded", action="store_true",
                        help="first sync without writeback (see run_world); labelled in the output")
    parser.add_argument("--age", type=float, default=0.0,
                        help="seconds after the first sync began before the measured change steps "
                             "(a small reference world given a big world's delay); 0 = at once")
    parser.add_argument("--resync", action="store_true",
                        help="run one 'sync --full' after the settle (see run_world)")
    parser.add_argument("--why", action="store_true",
                        help="record which written values each measured step changed, and why "
                             "(copies the SQLite state store before each step)")
    parser.add_argument("--context-items", type=int, default=None,
                        help="experience.context_items for momentos (default: the config's "
                             "default, 20,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jira-flavor", default="cloud", choices=["cloud", "datacenter"])
    parser.add_argument("--out", type=Path, default=Path("e2e-results.json"))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    runs = [(int(a), [float(x) for x in b.split(",")])
            for a, b in (r.split(":") for r in args.run or ["10000:0.01"])]

    doc: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                           "machine": machine(), "argv": sys.argv, "runs": []}
    log(f"machine {doc['machine']}; load {loadavg()}")
    for items, shares in runs:
        doc["runs"].append(run_world(items, shares, args.seed, args.jira_flavor, args.workdir,
                                     seeded=args.seeded, warmup=args.warmup, age_s=args.age,
                                     why=args.why, resync=args.resync,
                                     context_items=args.context_items))
        doc["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.write_text(json.dumps(doc, indent=1))  # after every world: partial results survive
    log(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
