"""End-to-end: `momentos mapping preview` after a sync of the sandbox reports exactly the items a
new mapping would change, lists idle rules, and writes nothing to the platforms or the state."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import start_sandbox

pytestmark = pytest.mark.slow

TASKS_RULE = {"name": "jira-tasks-are-evolution", "platform": "jira", "kind": "task", "moment": "evolution"}
IDLE_RULE = {"name": "sap-tickets", "platform": "servicenow", "container": "u_sap_ticket", "moment": "operation"}


def momentos(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "momentos", *args],
        check=False, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def writes(box) -> dict[str, dict[str, int]]:
    return {url: requests.get(f"{url}/_sandbox/stats", timeout=10).json()["writes"]
            for url in (box.servicenow_url, box.jira_url)}


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def stored_rows(db: Path) -> list[dict]:
    import json

    with sqlite3.connect(db) as conn:
        return [json.loads(r[0]) for r in conn.execute("select data from items")]


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("preview")
    with start_sandbox(items=400, seed=23) as box:
        config = sandbox_config(box, state_url=f"sqlite:///{tmp / 'state.db'}", report_out=str(tmp / "report"))
        current = write_config(config, tmp / "current.yaml")
        config["moments"] = {"rules": [IDLE_RULE, TASKS_RULE]}
        new = write_config(config, tmp / "new.yaml")
        env = {SANDBOX_PASSWORD_ENV: box.password}
        sync = momentos("sync", "--config", str(current), "--json", env=env)
        assert sync.returncode == 0, sync.stderr
        yield {"box": box, "tmp": tmp, "current": current, "new": new, "env": env,
               "db": tmp / "state.db"}


def expected_changes(db: Path) -> set[tuple[str, str]]:
    """Independently of the preview: Jira tasks the last sync did not tag evolution."""
    return {
        (r["source"], r["key"]) for r in stored_rows(db)
        if r["platform"] == "jira" and r["kind"] == "task" and r["moment"] != "evolution"
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("against", [False, True], ids=["against-state", "against-config"])
def test_preview_reports_exactly_the_changed_items_and_writes_nothing(synced, against):
    box, db = synced["box"], synced["db"]
    expected = expected_changes(db)
    assert len(expected) >= 5  # the sandbox has Jira tasks the model tags operation or innovation
    writes_before, state_before = writes(box), dump(db)
    out = synced["tmp"] / f"preview-{against}.csv"
    args = ["mapping", "preview", "--config", str(synced["new"]), "--out", str(out)]
    if against:
        args += ["--against", str(synced["current"])]
    run = momentos(*args, env=synced["env"])
    assert run.returncode == 0, run.stderr

    rows = read_csv(out)
    assert {(r["source"], r["key"]) for r in rows} == expected
    for row in rows:
        assert row["moment_after"] == "evolution" and row["moment_before"] != "evolution"
        assert row["rule_after"] == "jira-tasks-are-evolution"
        assert row["level_before"] and row["level_after"]

    # Read-only: no platform write, no state change.
    assert writes(box) == writes_before
    assert dump(db) == state_before

    text = run.stdout
    assert f"{len(expected)} items would change moment" in text
    assert "jira-tasks-are-evolution" in text
    # The idle rule is listed among the rules that never match, with its position.
    never = text.split("rules never match", 1)[1].split("\n\n", 1)[0]
    assert "#1 sap-tickets" in never
    # Items no rule matches are counted (the stored rows tell how many the sync left to the text).
    unmatched = sum(1 for r in stored_rows(db) if not r.get("moment_rule"))
    assert f"{unmatched} items match no rule" in text
    # The distribution per source and project shows the tasks moving to evolution.
    assert "moment distribution" in text and "jira/PMO:" in text


def test_preview_defaults_its_csv_to_the_report_folder(synced):
    run = momentos("mapping", "preview", "--config", str(synced["new"]), "--items", "50", env=synced["env"])
    assert run.returncode == 0, run.stderr
    path = synced["tmp"] / "report" / "mapping-preview.csv"
    assert path.exists()
    assert "over 50 items" in run.stdout
    rows = read_csv(path)
    assert set(rows[0]) >= {"source", "key", "moment_before", "moment_after", "level_before",
                            "level_after", "rule_after"} if rows else True


def test_preview_with_an_invalid_config_exits_2(synced, tmp_path):
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(Path(synced["new"]).read_text(encoding="utf-8"))
    data["moments"]["rules"][0]["moment"] = "sideways"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    run = momentos("mapping", "preview", "--config", str(bad), env=synced["env"])
    assert run.returncode == 2
    assert "moments.rules[0]" in run.stderr


def test_preview_without_state_pulls_and_compares_with_the_shipped_mapping(synced, tmp_path):
    """No state store yet: the items are pulled (read-only) and "before" is the shipped mapping,
    which is also what the synced config uses, so the same tasks change."""
    box = synced["box"]
    data = yaml.safe_load(Path(synced["new"]).read_text(encoding="utf-8"))
    data["state"]["url"] = f"sqlite:///{tmp_path / 'nostate.db'}"
    config = tmp_path / "new.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    writes_before = writes(box)
    out = tmp_path / "preview.csv"
    run = momentos("mapping", "preview", "--config", str(config), "--out", str(out), env=synced["env"])
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "nostate.db").exists()  # the preview never creates a state store
    assert "shipped default mapping" in run.stdout
    assert {(r["source"], r["key"]) for r in read_csv(out)} == expected_changes(synced["db"])
    assert writes(box) == writes_before
