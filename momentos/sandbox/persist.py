"""A sandbox that survives a restart: ``momentos sandbox --data-file PATH``.

The generated world is a pure function of ``(seed, items, now)``, so the data file holds only
those, the credentials and options (first line), then one JSON line per request that changed
something: the records it changed, in their new state. Starting again on the same file
regenerates the world and replays the lines, so a restarted sandbox serves the records, notes,
versions, ``sys_updated_on``/``updated`` and write counts it had when it stopped.

Each line is written and flushed while the app's lock is held, before the client gets its
answer, so a SIGKILL loses nothing that was answered. A line cut short by the kill belongs to a
request that was never answered, as a database rolls back an uncommitted transaction; it is
ignored on reload. Not journaled: attachments, OAuth tokens, bulk-edit task progress, faults,
request counts, and field definitions created through the admin endpoints.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from momentos.sandbox.world import WorldComment

log = logging.getLogger("momentos.sandbox")

FORMAT = 1


@dataclass
class Header:
    """What regenerates the same world and the same accounts."""

    seed: int
    items: int
    now: str  # ISO timestamp of the world's "now"
    jira_flavor: str
    password: str
    human_password: str
    options: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.__dict__}


def read_data_file(path: Path) -> tuple[Header | None, list[dict[str, Any]]]:
    """The header and the change lines of a data file; (None, []) when it is missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        return None, []
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    if not isinstance(first, dict) or first.get("format") != FORMAT:
        raise ValueError(f"{path}: not a momentos sandbox data file")
    try:
        header = Header(**{k: v for k, v in first.items() if k != "format"})
    except TypeError as exc:
        raise ValueError(f"{path}: bad header: {exc}") from None
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            entries.append(json.loads(line))
        except ValueError:
            if number != len(lines):
                raise ValueError(f"{path}:{number}: corrupt change line") from None
            log.warning("%s: last line cut short (unanswered request), ignored", path)
    return header, entries


class Recorder:
    """Journals each changing request of both platform apps to one append-only file."""

    def __init__(self, path: Path, header: Header | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if header is not None:  # a new file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(header.as_json()) + "\n", encoding="utf-8")
        else:
            _drop_cut_line(path)
        self._file: TextIO = path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            self._file.close()

    # --- the base app's hooks ------------------------------------------------------------------
    def begin(self, app: Any) -> Any:
        if app.platform == "servicenow":
            return {name: len(table.rows) for name, table in app.tables.items()}
        return None

    def commit(self, app: Any, mark: Any, touched: list[str]) -> None:
        if app.platform == "servicenow":
            entry = _servicenow_change(app, mark, touched)
        else:
            entry = _jira_change(app, touched)
        if entry is None:
            return
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            # Flushed to the OS before the answer leaves: a SIGKILL of the sandbox cannot lose
            # it (only a machine crash could, which the tests do not simulate).
            self._file.write(line + "\n")
            self._file.flush()


def _drop_cut_line(path: Path) -> None:
    """Cut a last line left unfinished by a kill, so that new lines start on their own."""
    with path.open("rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def replay(apps: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """Apply journaled changes to freshly built apps, in order."""
    for entry in entries:
        app = apps[entry["p"]]
        for key in entry.get("w", []):
            app.writes[key] += 1
        if entry["p"] == "servicenow":
            _servicenow_apply(app, entry)
        else:
            _jira_apply(app, entry)
    jira = apps.get("jira")
    if jira is not None and any(e["p"] == "jira" for e in entries):
        jira.order = sorted(jira.issues.values(), key=lambda i: i.order_key)
        jira._version += 1
        jira._search_cache.clear()


# --- ServiceNow: rows of tables ----------------------------------------------------------------
def _servicenow_change(app: Any, mark: dict[str, int], touched: list[str]) -> dict[str, Any] | None:
    inserted: dict[str, list[dict[str, str]]] = {}
    for name, table in app.tables.items():
        added = len(table.rows) - mark.get(name, 0)
        if added > 0:
            newest = itertools.islice(reversed(table.rows.values()), added)
            inserted[name] = [dict(row) for row in reversed(list(newest))]
    updated: list[tuple[str, dict[str, str]]] = []
    for key in dict.fromkeys(touched):
        table, _, sys_id = key.partition("/")
        row = app.tables[table].rows.get(sys_id) if table in app.tables else None
        if row is not None:
            updated.append((table, dict(row)))
    if not (touched or inserted):
        return None
    return {"p": "servicenow", "w": touched, "ins": inserted, "upd": updated,
            "numbers": dict(app._numbers)}


def _servicenow_apply(app: Any, entry: dict[str, Any]) -> None:
    shared: dict[str, dict[str, str]] = {}  # a task row is one dict in its table and in task
    for name, rows in entry.get("ins", {}).items():
        table = app.tables.get(name)
        if table is None:
            continue
        for row in rows:
            obj = shared.setdefault(row["sys_id"], dict(row))
            if row["sys_id"] not in table.rows:
                table.insert(obj)
    for name, row in entry.get("upd", []):
        table = app.tables.get(name)
        current = table.rows.get(row["sys_id"]) if table is not None else None
        if current is None:
            continue
        old = {k: current.get(k, "") for k, v in row.items() if current.get(k, "") != v}
        if not old:
            continue
        current.update(row)
        for other_name in {name, current.get("sys_class_name", name), "task"}:
            other = app.tables.get(other_name)
            if other is not None and row["sys_id"] in other.rows:
                other.reindex(current, old)
    app._numbers.update(entry.get("numbers", {}))


# --- Jira: issues ------------------------------------------------------------------------------
def _login(user: Any) -> str:
    return user.user.username


def _jira_change(app: Any, touched: list[str]) -> dict[str, Any] | None:
    if not touched:
        return None
    issues: list[dict[str, Any]] = []
    for key in dict.fromkeys(touched):
        issue_key = key.partition("/")[2]
        issue = app.by_key.get(issue_key)
        if issue is None:
            issues.append({"key": issue_key, "deleted": True})
            continue
        issues.append({
            "key": issue.key,
            "updated_ms": issue.updated_ms,
            "updated_by": issue.item.updated_by_id,
            "values": issue.values,
            "fields": issue.item.fields,
            "title": issue.item.title,
            "description": issue.item.description,
            "labels": issue.labels,
            "comments": [[c.id, _login(c.author), c.created_ms, c.text, c.internal] for c in issue.comments],
            "histories": [[h.id, _login(h.author), h.created_ms, h.items] for h in issue.histories],
        })
    return {"p": "jira", "w": touched, "issues": issues,
            "next": [app._next_comment, app._next_history]}


def _jira_apply(app: Any, entry: dict[str, Any]) -> None:
    from momentos.sandbox.jira import _Comment, _History

    def user(login: str) -> Any:
        return app.user_by_login.get(login) or app._user_or_integration("")

    for state in entry.get("issues", []):
        issue = app.by_key.get(state["key"])
        if issue is None:
            continue
        if state.get("deleted"):
            del app.issues[issue.id]
            del app.by_key[issue.key]
            continue
        issue.updated_ms = state["updated_ms"]
        issue.item.updated = datetime.fromtimestamp(issue.updated_ms / 1000, tz=UTC)
        issue.item.updated_by_id = state["updated_by"]
        issue.values = dict(state["values"])
        issue.item.fields = dict(state["fields"])
        if issue.item.description != state["description"]:
            issue.item.description = state["description"]
            issue.description_adf = None
        issue.item.title = state["title"]
        issue.labels = list(state["labels"])
        issue.comments = [
            _Comment(cid, user(login), created, text, internal)
            for cid, login, created, text, internal in state["comments"]
        ]
        issue.item.comments = [
            WorldComment(str(c.id), c.author.user.id, datetime.fromtimestamp(c.created_ms / 1000, tz=UTC),
                         c.text, c.internal)
            for c in issue.comments
        ]
        issue.histories = [
            _History(hid, user(login), created, items) for hid, login, created, items in state["histories"]
        ]
    app._next_comment, app._next_history = entry["next"]
