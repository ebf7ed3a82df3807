"""Enrichment speed: ``momentos enrich`` on a million items with about three comments each.

Run by hand (never in the test suite)::

    /tmp/venv/bin/python benchmarks/enrichment_speed.py                 # 1,000,000 items
    /tmp/venv/bin/python benchmarks/enrichment_speed.py --items 100000  # a quicker look

It writes a JSON Lines input (cached in a temporary folder between runs), runs the real CLI
(``momentos enrich INPUT --out OUTPUT``) in a subprocess, and prints items per second and the
subprocess tree's peak memory. Then it measures requester sentiment alone (texts per second,
one core) against VADER on the same texts in the same run; VADER lives in its own throw-away virtual
environment (see ``enrichment_common.vader_scores``), never in momentos' dependencies.

The input is synthetic but honest about the work: every title, description and comment is a
distinct string (a ticket reference, a name, a number), so no cache of repeated texts helps;
kinds follow a typical mix, so about a quarter of the items go through the learned model.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from enrichment_common import vader_scores

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[1]
START = datetime(2025, 1, 1, tzinfo=UTC)

#: (kind, share, platform, container): a typical mix of ITSM work.
_KINDS = (
    ("incident", 0.38, "servicenow", "incident"),
    ("request", 0.20, "servicenow", "sc_req_item"),
    ("problem", 0.03, "servicenow", "problem"),
    ("change", 0.10, "servicenow", "change_request"),
    ("demand", 0.05, "servicenow", "dmn_demand"),
    ("project", 0.03, "servicenow", "pm_project"),
    ("bug", 0.05, "jira", "APP"),
    ("story", 0.07, "jira", "APP"),
    ("task", 0.07, "jira", "PMO"),
    ("epic", 0.02, "jira", "PMO"),
)
_FIRST = ("Ana", "Luis", "Marta", "John", "Emily", "Carlos", "Lucía", "Tom", "Sara", "Pablo")
_CUSTOMERS = ("Finanzas", "Marketing", "Ventas", "Logística", "Recursos Humanos", "Legal",
              "Compras", "Customer Care")
_GROUPS = ("Service Desk", "Network", "Desktop Support", "SAP Finance", "Database", "PMO")


def _texts() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(comment, language) and (title, language) pools from the files written for momentos."""
    with (DATA / "sentiment_labelled.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    comments = [(r["text"], r["language"]) for r in rows]
    default = ROOT / "momentos" / "enrichment" / "data" / "moments_default.csv"
    with default.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    titles = [(r["text"], r["language"]) for r in rows]
    return comments, titles


def make_input(path: Path, items: int, seed: int = 1) -> None:
    """Write ``items`` JSON Lines items with three comments each, every text distinct."""
    rng = random.Random(seed)
    comments, titles = _texts()
    cumulative = []
    total = 0.0
    for kind in _KINDS:
        total += kind[1]
        cumulative.append(total)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(items):
            x = rng.random() * total
            kind, _, plat, container = next(k for k, c in zip(_KINDS, cumulative) if x < c)
            title, language = titles[rng.randrange(len(titles))]
            who = _FIRST[rng.randrange(len(_FIRST))]
            created = START + timedelta(minutes=rng.randrange(180 * 24 * 60))
            resolved = created + timedelta(hours=rng.expovariate(1 / 40))
            thread = []
            when = created
            for k in range(3):
                text, _ = comments[rng.randrange(len(comments))]
                when = when + timedelta(hours=rng.expovariate(1 / 8))
                role = "agent" if k == 1 else "requester"
                thread.append({
                    "author_role": role,
                    "text": f"{who}: {text} (ref {rng.randrange(10**7)})",
                    "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                })
            record = {
                "id": f"item-{i}",
                "source": plat,
                "platform": plat,
                "container": container,
                "kind": kind,
                "title": f"{title} #{i}",
                "description": f"{title}. Reported by {who} from {rng.choice(_CUSTOMERS)}, "
                               f"case {rng.randrange(10**6)}.",
                "comments": thread,
                "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "resolved": resolved.strftime("%Y-%m-%dT%H:%M:%SZ") if rng.random() < 0.9
                else None,
                "priority": str(1 + rng.randrange(5)),
                "reopen_count": rng.choice((0, 0, 0, 0, 1, 2)),
                "reassignment_count": rng.choice((0, 0, 1, 1, 2, 4)),
                "sla_breached": rng.random() < 0.2,
                "survey_score": rng.choice((None,) * 8 + (1, 3, 5)),
                "customer": rng.choice(_CUSTOMERS),
                "assignment_group": rng.choice(_GROUPS),
                "requester": who,
                "service": rng.choice(("SAP", "VPN", "Outlook", "CRM", "Teams")),
                "language": language,
            }
            handle.write(json.dumps(record, ensure_ascii=False))
            handle.write("\n")


def _tree(pid: int) -> list[int]:
    """A process and all its descendants (Linux ``/proc``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children", encoding="ascii") as handle:
                todo.extend(int(child) for child in handle.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return found


def _proc_kb(path: str, field: str) -> int:
    """A ``field:  N kB`` line of a ``/proc`` file, in kB; 0 when the process is gone."""
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def _tree_pss_mb(pids: list[int]) -> float:
    """The sum of the processes' proportional set sizes, in MB: pages forked workers share
    with their parent count once. Costly to read (the kernel walks every page table: about
    15 ms for this tree), so it is sampled only twice a second."""
    return sum(_proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in pids) / 1024.0


def run_cli(source: Path, target: Path) -> tuple[float, float, float, float, list[float]]:
    """(wall seconds, CPU seconds, peak PSS in MB of the whole process tree, sum of each
    process's own peak RSS in MB, one-minute load averages seen during the run) of ``momentos
    enrich`` in a subprocess. CPU seconds (user + system, workers included) tell the cost when
    other work shares the machine.

    Memory is measured two ways, so that measuring does not slow what is measured (reading
    PSS twenty times a second took about a fifth of a core, 7 s of a 60 s run):
    - each process's peak RSS (``VmHWM``, kept by the kernel, cheap to read) every 0.1 s;
      their sum is an upper bound of what the tree held at once, since shared pages count
      in every process that maps them;
    - the tree's PSS every 0.5 s, which counts shared pages once but can miss a short peak.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "momentos", "enrich", str(source), "--out", str(target)],
        stdout=subprocess.DEVNULL,
    )
    peak_pss = 0.0
    peaks_kb: dict[int, int] = {}
    loads: list[float] = []
    next_load = next_pss = start
    while process.poll() is None:
        pids = _tree(process.pid)
        for pid in pids:
            peaks_kb[pid] = max(peaks_kb.get(pid, 0), _proc_kb(f"/proc/{pid}/status", "VmHWM:"))
        now = time.perf_counter()
        if now >= next_pss:
            peak_pss = max(peak_pss, _tree_pss_mb(pids))
            next_pss += 0.5
        if now >= next_load:
            loads.append(os.getloadavg()[0])
            next_load += 1.0
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"momentos enrich failed with exit code {process.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, peak_pss, sum(peaks_kb.values()) / 1024.0, loads


def stage_breakdown(source: Path, rows: int = 20_000) -> dict[str, float]:
    """CPU microseconds per item and stage on one worker-sized chunk, in this process (one
    core), set up as a worker is: its memory settings, no cyclic garbage collection during
    the chunk, the output written to a file."""
    import gc

    from momentos.enrichment import OUTPUT_COLUMNS, columns, sentiment
    from momentos.enrichment.frame import (
        _read_jsonl_range,
        _worker_init,
        _write_jsonl_appended,
    )
    from momentos.enrichment.learn import default_model
    from momentos.enrichment.moments import assign_moments
    from momentos.enrichment.score import score_experience
    from momentos.enrichment.settings import ExperienceSettings, MomentsSettings
    from momentos.enrichment.signals import chaser_regex, compute_signals, signal_json_texts

    model = default_model()
    now = START + timedelta(days=200)
    times: dict[str, float] = {}

    def timed(name: str, call):  # type: ignore[no-untyped-def]
        start = time.process_time()
        value = call()
        times[name] = time.process_time() - start
        return value

    _worker_init()
    start, stop, first = _first_range(source, rows)
    gc.collect()
    gc.disable()
    frame, raw = timed("read JSON Lines", lambda: _read_jsonl_range(source, start, stop, first,
                                                                    raw_bytes=True))
    comments = timed("explode comments", lambda: columns.comments_table(frame))
    history = columns.history_table(frame)
    tags = timed("moments (rules + model)", lambda: assign_moments(frame, MomentsSettings(),
                                                                    model))
    moment = tags["moment"].to_numpy(dtype=object)
    languages = columns.text(frame, "language").map(sentiment.normalize_language)
    timed("  of which sentiment", lambda: (
        sentiment.requester_sentiment(columns.text(frame, "description"), comments, languages)))
    signals = timed("signals (with sentiment)", lambda: compute_signals(
        frame, comments, history, now, chaser_regex(), settings=ExperienceSettings(),
        moments=moment, frame_is_population=True))
    scored = timed("score, level, reasons", lambda: score_experience(signals, moment,
                                                                     ExperienceSettings()))
    timed("signals JSON", lambda: signal_json_texts(signals))
    del scored
    from momentos.enrichment import enrich

    out = enrich(frame, now=now, model=model, frame_is_population=True, signals_as_text=True)
    with tempfile.TemporaryDirectory() as folder, (Path(folder) / "part.jsonl").open(
        "w", encoding="utf-8", newline=""
    ) as handle:
        timed("write JSON Lines", lambda: _write_jsonl_appended(
            raw, out[list(OUTPUT_COLUMNS)], handle))
    gc.enable()
    return {name: value * 1e6 / len(frame) for name, value in times.items()}


def _first_range(source: Path, rows: int) -> tuple[int, int, int]:
    """The byte range of the first ``rows`` lines, as ``enrich_file`` cuts it."""
    from momentos.enrichment.frame import _iter_jsonl_ranges

    return next(_iter_jsonl_ranges(source, rows))


def sentiment_speed(texts: list[str], languages: list[str]) -> float:
    """Requester-sentiment texts per second on one core (no cache hits: texts are distinct)."""
    from momentos.enrichment.sentiment import score_texts

    start = time.perf_counter()
    score_texts(texts, languages)
    return len(texts) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--texts", type=int, default=200_000,
                        help="texts for the sentiment-vs-VADER comparison")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "momentos-speed")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / f"items-{args.items}.jsonl"
    target = args.workdir / f"enriched-{args.items}.jsonl"
    if not source.exists():
        start = time.perf_counter()
        make_input(source.with_suffix(".partial"), args.items)
        source.with_suffix(".partial").replace(source)
        print(f"wrote {args.items:,} items to {source} in {time.perf_counter() - start:.0f} s")

    print(f"# Enrichment speed — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()} "
          f"({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})")
    load = os.getloadavg()[0]
    seconds, cpu, peak_mb, peaks_mb, loads = run_cli(source, target)
    with target.open(encoding="utf-8") as handle:
        written = sum(1 for _ in handle)
    cores = min(os.cpu_count() or 1, 4)
    print(f"momentos enrich: {written:,} items in {seconds:.1f} s = {written / seconds:,.0f} "
          f"items/s; CPU {cpu:.0f} s (user + system, all processes) = "
          f"{written / cpu:,.0f} items per CPU-second = {cpu * 1e6 / written:.0f} CPU µs per "
          f"item, about {cpu / cores:.0f} s on {cores} idle cores; peak memory "
          f"{peak_mb:,.0f} MB (PSS of all processes, sampled twice a second), at most "
          f"{peaks_mb:,.0f} MB (sum of each process's peak RSS); input "
          f"{source.stat().st_size / 1e6:,.0f} "
          f"MB; load average before the run {load:.1f}, during it "
          f"{min(loads, default=load):.1f}–{max(loads, default=load):.1f}")
    print("CPU microseconds per item, by stage (one 20,000-item chunk, one core):")
    for name, micros in stage_breakdown(source).items():
        print(f"  {name:<28} {micros:7.1f}")

    # Sentiment alone, against VADER on exactly the same texts.
    texts: list[str] = []
    languages: list[str] = []
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            texts.append(record["description"])
            languages.append(record["language"])
            texts.extend(c["text"] for c in record["comments"] if c["author_role"] != "agent")
            languages.extend([record["language"]] * (len(texts) - len(languages)))
            if len(texts) >= args.texts:
                break
    ours = sentiment_speed(texts, languages)
    _, vader_seconds = vader_scores(texts)
    vader = len(texts) / vader_seconds
    print(f"sentiment on {len(texts):,} texts: momentos {ours:,.0f} texts/s, VADER {vader:,.0f} "
          f"texts/s ({ours / vader:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
