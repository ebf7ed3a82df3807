"""Tables, growth analysis and the 1.1x check from ``run.py``'s results.

    python benchmarks/e2e/summarize.py /tmp/e2e-*.json [--log /tmp/e2e-1m.log ...]

JSON files hold finished worlds. ``--log`` adds the phases of a world that did not finish (a
run stopped at a deadline) from ``run.py``'s log lines; such rows are marked "(log)".
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path
from typing import Any

_PHASE = re.compile(
    r"\] (?P<phase>\w+)\s+items=\s*(?P<items>\d+) exit=(?P<exit>-?\d+) wall=\s*(?P<wall_s>[\d.]+)s "
    r"cpu=\s*(?P<cpu_s>[\d.]+)s sandbox_cpu=\s*(?P<sandbox_cpu_s>[\d.]+)s items/s=(?P<items_per_s>[\d.]+|None) "
    r"reads=(?P<reads>\d+) writes=(?P<writes>\d+) server=(?P<server_requests>\d+) "
    r"rss=(?P<peak_rss_mb>[\d.]+)MB sandbox_rss=(?P<sandbox_rss_mb>[\d.]+)MB "
    r"\(peak (?P<sandbox_peak_rss_mb>[\d.]+)\) load=(?P<load>\{.*\})"
)
_WORLD = re.compile(r"world (?P<items>\d+) items, seed (?P<seed>\d+), change shares "
                    r"(?P<shares>\[.*?\]), seeded=(?P<seeded>\w+)")
_READY = re.compile(r"sandbox ready in (?P<wall>[\d.]+)s \(cpu (?P<cpu>[\d.]+)s, rss (?P<rss>\d+)MB\)")


def from_log(path: Path) -> list[dict[str, Any]]:
    """Worlds as far as the log shows them."""
    worlds: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        if m := _WORLD.search(line):
            seeded = m["seeded"] == "True"
            worlds.append({"items": int(m["items"]), "seed": int(m["seed"]),
                           "shares": ast.literal_eval(m["shares"]), "phases": [], "from_log": True,
                           "protocol": "seeded (first sync without writeback)" if seeded else "full"})
        elif (m := _READY.search(line)) and worlds:
            worlds[-1]["sandbox_startup"] = {"wall_s": float(m["wall"]), "cpu_s": float(m["cpu"]),
                                             "rss_mb": float(m["rss"])}
        elif (m := _PHASE.search(line)) and worlds:
            row: dict[str, Any] = {k: v for k, v in m.groupdict().items()}
            for k in ("items", "exit", "reads", "writes", "server_requests"):
                row[k] = int(row[k])
            for k in ("wall_s", "cpu_s", "sandbox_cpu_s", "peak_rss_mb", "sandbox_rss_mb",
                      "sandbox_peak_rss_mb"):
                row[k] = float(row[k])
            row["items_per_s"] = None if row["items_per_s"] == "None" else float(row["items_per_s"])
            row["load"] = ast.literal_eval(row["load"])
            row["requests"] = row["reads"] + row["writes"]
            worlds[-1]["phases"].append(row)
    return worlds


def load(paths: list[Path], logs: list[Path]) -> list[dict[str, Any]]:
    worlds: list[dict[str, Any]] = []
    for p in paths:
        worlds.extend(json.loads(p.read_text())["runs"])
    done = {(w["items"], w["protocol"], tuple(w["shares"])) for w in worlds}
    for p in logs:
        for w in from_log(p):
            if (w["items"], w["protocol"], tuple(w["shares"])) not in done:
                worlds.append(w)
    return worlds


def fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def phase_table(worlds: list[dict[str, Any]]) -> str:
    head = ("| world | protocol | phase | items | wall s | momentos CPU s | sandbox CPU s | items/s "
            "| reads | writes | reads/item | writes/item | sandbox saw | momentos peak RSS MB "
            "| sandbox RSS MB | load (1-min, mean) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for w in worlds:
        proto = kind(w) + variant(w)
        st = w.get("sandbox_startup")
        if st:
            lines.append(f"| {w['items']:,} | {proto} | sandbox start | {w['items']:,} | {fmt(st['wall_s'])} "
                         f"| — | {fmt(st['cpu_s'])} | — | — | — | — | — | — | — | {fmt(st.get('rss_mb'), 0)} "
                         f"| {fmt((st.get('load') or {}).get('mean'), 1)} |")
        for p in w["phases"]:
            n = max(p["items"], 1)
            name = p["phase"] + (" (log)" if w.get("from_log") else "")
            lines.append(
                f"| {w['items']:,} | {proto} | {name} | {p['items']:,} | {fmt(p['wall_s'])} | {fmt(p['cpu_s'])} "
                f"| {fmt(p['sandbox_cpu_s'])} | {fmt(p['items_per_s'])} | {p['reads']:,} | {p['writes']:,} "
                f"| {p['reads'] / n:.3f} | {p['writes'] / n:.3f} | {p['server_requests']:,} "
                f"| {fmt(p['peak_rss_mb'], 0)} | {fmt(p['sandbox_rss_mb'], 0)} | {fmt(p['load'].get('mean'), 1)} |"
            )
    return "\n".join(lines)


def kind(world: dict[str, Any]) -> str:
    """``full``, ``resync`` (full, plus one ``sync --full`` after the settle) or ``seeded``."""
    if world["protocol"].startswith("seeded"):
        return "seeded"
    return "resync" if any(p["phase"] == "resync" for p in world["phases"]) else "full"


def variant(world: dict[str, Any]) -> str:
    """What else set the world apart: a ``--context-items`` other than the default."""
    ctx = world.get("context_items")
    return f", context_items {ctx:,}" if ctx is not None else ""


def why_table(worlds: list[dict[str, Any]]) -> str:
    """Per measured change step recorded with ``--why``: how many changed items each source
    wrote again, and what differed in their written values."""
    head = ("| world | protocol | changed (ServiceNow / Jira) | written again (ServiceNow / Jira) "
            "| share written again (ServiceNow / Jira) | what differed (items) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for w in worlds:
        for change in w.get("changes", []):
            why = change.get("rewritten")
            if not why:
                continue
            changed = change.get("by_platform", {})
            again = why.get("items", {})
            shares = " / ".join(
                f"{again.get(s, 0) / changed[s]:.0%}" if changed.get(s) else "—"
                for s in ("servicenow", "jira")
            )
            parts = ", ".join(f"{name} {n:,}" for name, n in list(why.get("parts", {}).items())[:6])
            lines.append(
                f"| {w['items']:,} | {kind(w)}{variant(w)} | {changed.get('servicenow', 0):,} / "
                f"{changed.get('jira', 0):,} | {again.get('servicenow', 0):,} / "
                f"{again.get('jira', 0):,} | {shares} | {parts} |"
            )
    return "\n".join(lines)


def incrementals(worlds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for w in worlds:
        for p in w["phases"]:
            if p["phase"].startswith("incremental"):
                out.append({"world": w["items"], "protocol": kind(w), "variant": variant(w),
                            "age_s": w.get("age_s") or 0.0, **p})
    return out


def growth_table(worlds: list[dict[str, Any]]) -> str:
    head = ("| world | protocol | phase | changed | share | requests | per changed item | reads | writes "
            "| momentos CPU s | CPU ms per changed item | sandbox CPU s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p in incrementals(worlds):
        n = max(p["items"], 1)
        proto = p["protocol"] + p["variant"]
        lines.append(
            f"| {p['world']:,} | {proto} | {p['phase']} | {p['items']:,} | {p['items'] / p['world']:.0%} "
            f"| {p['requests']:,} | {p['requests'] / n:.3f} | {p['reads']:,} | {p['writes']:,} "
            f"| {fmt(p['cpu_s'])} | {1000 * p['cpu_s'] / n:.1f} | {fmt(p['sandbox_cpu_s'])} |"
        )
    return "\n".join(lines)


def check(worlds: list[dict[str, Any]], big: int, changed: int, protocol: str) -> str:
    """requests(incremental of ``big`` with ``changed`` items changed) / requests(incremental of a
    world of exactly ``changed`` items, all changed); same protocol on both sides."""
    def find(world: int, n: int) -> list[dict[str, Any]]:
        return [p for p in incrementals(worlds)
                if p["world"] == world and p["items"] == n and p["protocol"] == protocol]

    nums, dens = find(big, changed), find(changed, changed)
    label = f"{big:,} items with {changed:,} changed vs a world of just the {changed:,} changed items ({protocol})"
    if not nums or not dens:
        return f"- {label}: not measured ({'numerator' if not nums else 'reference'} missing)"
    return "\n".join(one(num, den, label) for num in nums for den in dens)


def one(num: dict[str, Any], den: dict[str, Any], label: str) -> str:
    ratio = num["requests"] / den["requests"]
    verdict = "PASS" if ratio <= 1.1 else "FAIL"

    def written(p: dict[str, Any]) -> str:
        sources = _sources(p)
        return f"{sum(s.get('written', 0) for s in sources.values()):,}" if sources else "?"

    # A sync of just these items, made at the same moment on the same state, writes exactly
    # what the big world's sync wrote; only its reads can differ with the world's size.
    same = (num["reads"] + num["writes"]) / (den["reads"] + num["writes"])
    aged = (f", reference changed {den['age_s'] / 60:.0f} min after its first sync began"
            if den.get("age_s") else "")
    ctx = f" [big world{num['variant']}]" if num.get("variant") else ""
    return (f"- {label}{ctx}{aged}: {num['requests']:,} / {den['requests']:,} requests = **{ratio:.2f}x** → "
            f"**{verdict}** (limit 1.1x; {num['phase']} vs {den['phase']}). Reads {num['reads']:,} / "
            f"{den['reads']:,} = {num['reads'] / den['reads']:.2f}x; writes {num['writes']:,} / "
            f"{den['writes']:,} = {num['writes'] / den['writes']:.2f}x, for {written(num)} / "
            f"{written(den)} items whose fields changed ({by_source(num)} / {by_source(den)}). "
            f"With the reference's reads and the same writes: {same:.2f}x")


def _sources(p: dict[str, Any]) -> dict[str, Any]:
    """A phase's ``sync --json`` summary by source (empty when the run printed none)."""
    return (p.get("summary") or {}).get("sources") or {}


def by_source(p: dict[str, Any]) -> str:
    """Items written per source, e.g. 'servicenow 4,101, jira 2,679'."""
    sources = _sources(p)
    return ", ".join(f"{name} {s.get('written', 0):,}" for name, s in sources.items()) or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path)
    parser.add_argument("--log", action="append", default=[], type=Path)
    args = parser.parse_args()
    worlds = load(args.results, args.log)
    worlds.sort(key=lambda w: (kind(w), w["items"]))
    print("## Phases\n")
    print(phase_table(worlds))
    print("\n## Incremental syncs: cost against changed items and world size\n")
    print(growth_table(worlds))
    print("\n## What the changed items' writes were (runs with --why)\n")
    print(why_table(worlds))
    print("\n## Done-when: at most 1.1x the requests of a sync of just the changed items\n")
    for protocol in ("full", "resync", "seeded"):
        print(check(worlds, 1_000_000, 10_000, protocol))
        print(check(worlds, 100_000, 10_000, protocol))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
