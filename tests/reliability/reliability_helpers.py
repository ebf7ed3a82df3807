"""What every reliability scenario shares: reading the platforms back through their APIs,
clean reference runs, fault switches, sync-until-done loops and the end-of-scenario checks.

The checks are the same for every scenario: no item lost (every item carries its fields), the
same moments and scores as a clean run's, no record written more often than the clean run
beyond idempotent replays, no field outside the writeback allowlist touched, and no nudge
note posted twice.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from momentos.config import load_config
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import Sandbox, start_sandbox
from momentos.state import StateStore
from momentos.sync import SyncEngine

SN_TABLES = (
    "incident", "sc_req_item", "problem", "change_request", "rm_enhancement", "pm_project",
    "pm_project_task", "dmn_demand",
)
JIRA_PROJECTS = ("SD", "APP", "PMO")
SN_WRITEBACK = frozenset({"u_relationship_moment", "u_experience_score", "u_experience_signals"})
JIRA_WRITEBACK_NAMES = ("Relationship moment", "Experience score", "Experience signals")
#: What a platform itself changes on every write: version stamps and counters.
SN_BOOKKEEPING = frozenset({"sys_updated_on", "sys_updated_by", "sys_mod_count"})
JIRA_BOOKKEEPING = frozenset({"updated"})
NOTE_MARK = "[momentos-nudge "

#: The HTTP policy as configured for the suite: the same retries, shorter waits (the waits are
#: not under test, and the suite must stay within its time budget).
FAST_HTTP: dict[str, Any] = {"backoff_base_s": 0.02, "backoff_max_s": 0.2}
#: Faults on every request: 5xx, 429 with Retry-After, dropped connections.
FAULTS: dict[str, Any] = {"error_rate": 0.10, "rate_limit_rate": 0.05, "retry_after_s": 0, "drop_rate": 0.01}
NO_FAULTS: dict[str, Any] = {
    "error_rate": 0, "rate_limit_rate": 0, "drop_rate": 0, "delay_rate": 0, "slow_rate": 0,
}


@dataclass
class Platforms:
    """Where the two sandbox platforms answer and which Jira issues they hold."""

    servicenow_url: str
    jira_url: str
    user: str
    password: str
    jira_keys: list[str] = field(default_factory=list)
    ca_cert: str | None = None

    @classmethod
    def of(cls, box: Sandbox) -> Platforms:
        keys = [i.number for i in box.world.items if i.platform == "jira"]
        return cls(box.servicenow_url, box.jira_url, box.user, box.password, keys)

    def requests_seen(self) -> int:
        """Requests both sandboxes have received so far (all endpoints, failed ones too)."""
        return sum(
            sum(requests.get(f"{url}/_sandbox/stats", timeout=10).json()["requests"].values())
            for url in self.urls()
        )

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.password)

    def urls(self) -> tuple[str, str]:
        return (self.servicenow_url, self.jira_url)

    def jira_field_ids(self) -> dict[str, str]:
        answer = requests.get(f"{self.jira_url}/rest/api/2/field", auth=self.auth, timeout=30)
        return {f["name"]: f["id"] for f in answer.json()}


# --- reading the platforms back ----------------------------------------------------------------
def item_key(item: Any) -> str:
    """How ``fields`` names a world item: its sys_id on ServiceNow (enhancements and project
    tasks get their own numbers there), its key on Jira."""
    return item.id if item.platform == "servicenow" else item.number


def fields(p: Platforms) -> dict[str, tuple[str, int]]:
    """(moment, score) of every item on both platforms, read through the platforms' APIs."""
    found: dict[str, tuple[str, int]] = {}
    for table in SN_TABLES:
        rows = requests.get(
            f"{p.servicenow_url}/api/now/table/{table}",
            params={"sysparm_fields": "sys_id,u_relationship_moment,u_experience_score", "sysparm_limit": 10000},
            auth=p.auth, timeout=30,
        ).json()["result"]
        for r in rows:
            score = int(r["u_experience_score"]) if r["u_experience_score"] else -1
            found[r["sys_id"]] = (r["u_relationship_moment"], score)
    ids = p.jira_field_ids()
    moment_id, score_id = ids["Relationship moment"], ids["Experience score"]
    for key in p.jira_keys:
        data = requests.get(
            f"{p.jira_url}/rest/api/2/issue/{key}",
            params={"fields": f"{moment_id},{score_id}"}, auth=p.auth, timeout=30,
        ).json()["fields"]
        moment = (data.get(moment_id) or {}).get("value", "")
        score = data.get(score_id)
        found[key] = (moment, int(score) if score is not None else -1)
    return found


def writes(p: Platforms) -> dict[str, int]:
    """``GET /_sandbox/stats`` writes per record, both platforms."""
    counts: dict[str, int] = {}
    for url in p.urls():
        counts.update(requests.get(f"{url}/_sandbox/stats", timeout=10).json()["writes"])
    return counts


def injected(p: Platforms) -> Counter[str]:
    """Faults the sandboxes injected so far, by kind, both platforms."""
    total: Counter[str] = Counter()
    for url in p.urls():
        total.update(requests.get(f"{url}/_sandbox/stats", timeout=10).json().get("faults", {}))
    return total


def snapshot(p: Platforms) -> dict[str, Any]:
    """Every field of every record, the ServiceNow journal and audit, and every Jira issue with
    its comments and changelog, as the integration user reads them."""
    records: dict[str, dict[str, Any]] = {}
    for table in SN_TABLES:
        rows = requests.get(
            f"{p.servicenow_url}/api/now/table/{table}", params={"sysparm_limit": 10000},
            auth=p.auth, timeout=60,
        ).json()["result"]
        for row in rows:
            records[f"{table}/{row['number']}"] = row
    side: dict[str, dict[str, dict[str, Any]]] = {}
    for table in ("sys_journal_field", "sys_audit"):
        rows = requests.get(
            f"{p.servicenow_url}/api/now/table/{table}", params={"sysparm_limit": 100000},
            auth=p.auth, timeout=60,
        ).json()["result"]
        side[table] = {r["sys_id"]: r for r in rows}
    comments: dict[str, list[dict[str, Any]]] = {}
    histories: dict[str, list[dict[str, Any]]] = {}
    for key in p.jira_keys:
        issue = requests.get(
            f"{p.jira_url}/rest/api/2/issue/{key}", params={"expand": "changelog"},
            auth=p.auth, timeout=30,
        ).json()
        fields_ = dict(issue["fields"])
        fields_.pop("comment", None)  # compared one by one below
        records[f"jira/{key}"] = fields_
        histories[key] = issue.get("changelog", {}).get("histories", [])
        comments[key] = requests.get(
            f"{p.jira_url}/rest/api/2/issue/{key}/comment", params={"maxResults": 1000},
            auth=p.auth, timeout=30,
        ).json()["comments"]
    return {"records": records, "journal": side["sys_journal_field"], "audit": side["sys_audit"],
            "comments": comments, "histories": histories}


# --- the end-of-scenario checks ------------------------------------------------------------------
def outside_allowlist(before: dict[str, Any], after: dict[str, Any], jira_ids: dict[str, str]) -> list[str]:
    """Every change between two snapshots that momentos had no business making."""
    jira_allowed = {jira_ids[name] for name in JIRA_WRITEBACK_NAMES} | JIRA_BOOKKEEPING
    problems: list[str] = []
    b_rec, a_rec = before["records"], after["records"]
    if set(b_rec) != set(a_rec):
        problems.append(f"records appeared or vanished: {sorted(set(b_rec) ^ set(a_rec))[:10]}")
    for key in sorted(set(b_rec) & set(a_rec)):
        old, new = b_rec[key], a_rec[key]
        changed = {f for f in set(old) | set(new) if old.get(f) != new.get(f)}
        allowed = jira_allowed if key.startswith("jira/") else SN_WRITEBACK | SN_BOOKKEEPING
        if changed - allowed:
            problems.append(f"{key}: {sorted(changed - allowed)} changed")
    for table in ("journal", "audit"):
        gone = set(before[table]) - set(after[table])
        if gone:
            problems.append(f"{table}: {len(gone)} rows vanished")
    for sys_id in set(after["audit"]) - set(before["audit"]):
        row = after["audit"][sys_id]
        if row.get("fieldname") not in SN_WRITEBACK:
            problems.append(f"audit: {row.get('documentkey')} field {row.get('fieldname')} changed")
    for sys_id in set(after["journal"]) - set(before["journal"]):
        row = after["journal"][sys_id]
        if row.get("element") != "work_notes" or NOTE_MARK not in str(row.get("value")):
            problems.append(f"journal: {row.get('element_id')} got {row.get('element')}: {str(row.get('value'))[:80]}")
    for key, new_comments in after["comments"].items():
        old_ids = {c["id"] for c in before["comments"].get(key, [])}
        for c in new_comments:
            if c["id"] not in old_ids and NOTE_MARK not in str(c.get("body")):
                problems.append(f"jira/{key}: comment {c['id']} is not a nudge: {str(c.get('body'))[:80]}")
    writeback_names = {name.lower() for name in JIRA_WRITEBACK_NAMES} | set(jira_allowed)
    for key, new_histories in after["histories"].items():
        old_ids = {h["id"] for h in before["histories"].get(key, [])}
        for h in new_histories:
            if h["id"] in old_ids:
                continue
            touched = {str(i.get("field", "")).lower() for i in h.get("items", [])} | {
                str(i.get("fieldId", "")) for i in h.get("items", []) if i.get("fieldId")
            }
            if not touched <= writeback_names | {""}:
                problems.append(f"jira/{key}: changelog {h['id']} touched {sorted(touched)}")
    return problems


def duplicate_notes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Nudge notes posted more than once: marker → copies (a marker names one item's episode)."""
    marks: Counter[str] = Counter()
    for sys_id in set(after["journal"]) - set(before["journal"]):
        marks.update(_marks(str(after["journal"][sys_id].get("value"))))
    for key, new_comments in after["comments"].items():
        old_ids = {c["id"] for c in before["comments"].get(key, [])}
        for c in new_comments:
            if c["id"] not in old_ids:
                marks.update(_marks(json.dumps(c.get("body"))))
    return {m: n for m, n in marks.items() if n > 1}


def changes_made(before: dict[str, Any], after: dict[str, Any]) -> int:
    """Field changes the platforms recorded (ServiceNow audit rows, Jira changelog histories):
    a replayed write of the same values records none."""
    histories = sum(
        1 for key, hs in after["histories"].items() for h in hs
        if h["id"] not in {o["id"] for o in before["histories"].get(key, [])}
    )
    return len(set(after["audit"]) - set(before["audit"])) + histories


def notes_posted(before: dict[str, Any], after: dict[str, Any]) -> int:
    journal = set(after["journal"]) - set(before["journal"])
    jira = sum(
        1 for key, cs in after["comments"].items() for c in cs
        if c["id"] not in {o["id"] for o in before["comments"].get(key, [])}
    )
    return len(journal) + jira


def _marks(text: str) -> list[str]:
    out = []
    start = text.find(NOTE_MARK)
    while start >= 0:
        end = text.find("]", start)
        out.append(text[start : end + 1])
        start = text.find(NOTE_MARK, end)
    return out


def assert_like_clean_run(
    final: dict[str, tuple[str, int]], clean: dict[str, tuple[str, int]],
) -> None:
    """No item lost, and the same moments and scores as the clean run."""
    assert set(final) == set(clean)
    missing = [k for k, (moment, score) in final.items() if not moment or score < 0]
    assert not missing, f"items without fields: {missing[:10]}"
    moments_differ = [k for k in final if final[k][0] != clean[k][0]]
    assert not moments_differ, moments_differ[:10]
    # Open items age between the two runs, which may move a score by a point, never more.
    scores_differ = [k for k in final if abs(final[k][1] - clean[k][1]) > 1]
    assert not scores_differ, [(k, final[k], clean[k]) for k in scores_differ[:10]]


def extra_writes(final: dict[str, int], clean: dict[str, int]) -> dict[str, int]:
    """Writes per record beyond the clean run's (retries and replays)."""
    return {k: n - clean.get(k, 0) for k, n in final.items() if n > clean.get(k, 0)}


# --- configs and runs ------------------------------------------------------------------------------
def write_sandbox_config(
    p: Platforms | Sandbox, tmp: Path, state_url: str | None = None, http: dict[str, Any] | None = None,
    jira_flavor: str | None = None, history: bool = False,
) -> Path:
    """The demo's config for these platforms, with the suite's HTTP policy (the Jira flavour
    detected, as by default; ``jira_flavor`` pins it)."""
    url = state_url or f"sqlite:///{tmp / 'state.db'}"
    config = sandbox_config(p, state_url=url, report_out=str(tmp / "report"))  # type: ignore[arg-type]
    for source in config["sources"]:
        source["http"] = {**FAST_HTTP, **(http or {})}
        if source["type"] == "jira" and jira_flavor:
            source["flavor"] = jira_flavor
    # Scores compare each item with the instance history (stored, plus processed this run,
    # under one window). An item processed again in a later run (a write whose answer was
    # lost changes its version) meets a fuller history than in the clean run and may
    # legitimately score otherwise; the suite compares every field with a clean run, so by
    # default it turns the history off and each score depends on its item (and the clock).
    # test_history_window.py covers the history across runs.
    if not history:
        config["experience"] = {"context_items": 0}
    return write_config(config, tmp / "momentos.yaml")


@dataclass
class CleanRun:
    fields: dict[str, tuple[str, int]]
    writes: dict[str, int]
    notes: int
    changes: int
    requests: int
    duration_s: float


#: The world every scenario syncs (scenarios differ in faults and kill points): one clean
#: reference run per test worker.
WORLD_SEED = 1
ITEMS = 200

_CLEAN: dict[tuple[int, int], CleanRun] = {}


def clean_run(seed: int, items: int, tmp: Path) -> CleanRun:
    """A fault-free, uninterrupted sync of a fresh sandbox (cached per seed and size in this
    worker: the sandbox is deterministic, so the reference is the same)."""
    if (seed, items) in _CLEAN:
        return _CLEAN[(seed, items)]
    with start_sandbox(items=items, seed=seed) as box:
        p = Platforms.of(box)
        before = snapshot(p)
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        config = load_config(write_sandbox_config(box, tmp))
        state = StateStore(config.state_url)
        started, sent = time.monotonic(), p.requests_seen()
        result = SyncEngine(config, state).run()
        duration, sent = time.monotonic() - started, p.requests_seen() - sent
        state.close()
        assert result.ok
        after = snapshot(p)
        assert not outside_allowlist(before, after, p.jira_field_ids())
        assert not duplicate_notes(before, after)
        _CLEAN[(seed, items)] = CleanRun(
            fields(p), writes(p), notes_posted(before, after), changes_made(before, after),
            sent, duration,
        )
    return _CLEAN[(seed, items)]


def set_faults(p: Platforms, faults: dict[str, Any]) -> None:
    for url in p.urls():
        requests.post(f"{url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()


def sync_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "momentos", "sync", "--config", str(config), "--json"]


def unfinished(config: Path) -> dict[str, Any]:
    """Pending writes and unconfirmed nudge notes left in the state store."""
    cfg = load_config(config)
    state = StateStore(cfg.state_url)
    try:
        return {
            "pending_writes": state.pending_summary(),
            "note_intents": [n for s in cfg.sources for n in state.note_intents(s.name)],
        }
    finally:
        state.close()


def sync_until_done(config: Path, env: dict[str, str], attempts: int = 6) -> int:
    """Run ``momentos sync`` until a run ends with nothing failed, pending or unconfirmed;
    returns the number of runs it took."""
    run = None
    left: Any = None
    for attempt in range(1, attempts + 1):
        run = subprocess.run(
            sync_cmd(config), check=False, capture_output=True, text=True, env=env, timeout=240
        )
        summary = json.loads(run.stdout) if run.stdout.strip() else None
        done = bool(summary) and all(s["failed"] == 0 for s in summary["sources"].values())
        if run.returncode == 0 and done:
            left = unfinished(config)
            if not left["pending_writes"] and not left["note_intents"]:
                return attempt
    raise AssertionError(f"sync never completed cleanly: {left}\n{run.stderr[-2000:] if run else ''}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
