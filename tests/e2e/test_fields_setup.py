"""End-to-end: `momentos fields setup` against sandbox platforms started without the three
writeback fields (issue 8, part 1).

Done when: without ``--apply`` the plan is listed and nothing changes; with ``--apply`` the
fields are created, ``check`` passes and a sync writes them; a second run has nothing to do and
sends no write; a user without admin rights gets a plain admin message and exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import Sandbox, start_sandbox

pytestmark = pytest.mark.slow

HUMAN_PASSWORD_ENV = "MOMENTOS_TEST_HUMAN_PASSWORD"
_READ_POSTS = ("/search", "/search/jql", "/batch")


def momentos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "momentos", *args],
        check=False, capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )


def config_for(box: Sandbox, tmp: Path, source: str, *, human: bool = False, name: str = "momentos.yaml") -> Path:
    config = sandbox_config(box, state_url=f"sqlite:///{tmp / 'state.db'}", report_out=str(tmp / "report"))
    config["sources"] = [s for s in config["sources"] if s["name"] == source or source == "all"]
    config["nudges"] = {"enabled": False}
    if human:
        for s in config["sources"]:
            s["auth"] = {"username": box.human_user, "password_env": HUMAN_PASSWORD_ENV}
    return write_config(config, tmp / name)


def envs(box: Sandbox) -> dict[str, str]:
    return {SANDBOX_PASSWORD_ENV: box.password, HUMAN_PASSWORD_ENV: box.human_password}


def stats(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/_sandbox/stats", timeout=10).json()


def write_requests(snapshot: dict[str, Any]) -> int:
    """Requests that may change something: every non-GET except the POSTs that only read."""
    return sum(
        n for key, n in snapshot["requests"].items()
        if key.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE")
        and not key.rstrip("/").endswith(_READ_POSTS)
    )


def run_done_when(box: Sandbox, tmp: Path, source: str, url: str) -> dict[str, Any]:
    """Plan → check fails → apply → check passes → sync writes → second run does nothing."""
    config = config_for(box, tmp, source)
    env = envs(box)
    before = stats(url)

    plan = momentos("fields", "setup", "--config", str(config), env=env)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "nothing was changed" in plan.stdout
    assert stats(url)["writes"] == before["writes"]
    assert write_requests(stats(url)) == write_requests(before)
    failing = momentos("check", "--config", str(config), env=env)
    assert failing.returncode == 1, failing.stdout + failing.stderr

    applied = momentos("fields", "setup", "--config", str(config), "--apply", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "change(s) made" in applied.stdout
    checked = momentos("check", "--config", str(config), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    synced = momentos("sync", "--config", str(config), "--json", env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    summary = json.loads(synced.stdout)["sources"][source]
    assert summary["failed"] == 0 and summary["written"] > 0, summary

    settled = stats(url)
    again = momentos("fields", "setup", "--config", str(config), "--apply", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout
    after = stats(url)
    assert after["writes"] == settled["writes"]
    assert write_requests(after) == write_requests(settled)
    return {"plan": plan.stdout, "applied": applied.stdout, "summary": summary}


def test_servicenow_plan_apply_sync_and_nothing_to_do(tmp_path: Path) -> None:
    with start_sandbox(items=200, seed=5, options={"missing_fields": True}) as box:
        app = box.servicenow
        assert "u_relationship_moment" not in app.tables["incident"].schema
        outcome = run_done_when(box, tmp_path, "servicenow", box.servicenow_url)
        plan = outcome["plan"]
        for column in ("task.u_relationship_moment", "task.u_experience_score", "task.u_experience_signals"):
            assert f"sys_dictionary {column}" in plan
        assert "operation, evolution, innovation" in plan
        # The columns are real on every task table, with their choices, and hold what the sync
        # wrote.
        entries = {r.get("element"): r for r in app.rows("sys_dictionary") if r.get("name") == "task"}
        assert entries["u_relationship_moment"]["internal_type"] == "choice"
        assert entries["u_experience_score"]["internal_type"] == "integer"
        assert entries["u_experience_signals"]["max_length"] == "4000"
        choices = {r["value"] for r in app.rows("sys_choice") if r.get("element") == "u_relationship_moment"}
        assert choices == {"operation", "evolution", "innovation"}
        written = [r for r in app.rows("incident") if r.get("u_relationship_moment")]
        assert written and all(r["u_relationship_moment"] in choices for r in written)
        assert all(r.get("u_experience_score", "").isdigit() for r in written)


def test_jira_cloud_plan_apply_sync_and_nothing_to_do(tmp_path: Path) -> None:
    with start_sandbox(items=200, seed=5, options={"missing_fields": True}) as box:
        app = box.jira
        outcome = run_done_when(box, tmp_path, "jira", box.jira_url)
        plan = outcome["plan"]
        for name in ("Relationship moment", "Experience score", "Experience signals"):
            assert f"'{name}'" in plan
        for key in ("SD", "APP", "PMO"):
            assert f"screen '{key}: Default screen'" in plan
        ids = app.field_ids
        assert {"moment", "score", "signals"} <= set(ids)
        assert [o["value"] for o in app.moment_options] == ["operation", "evolution", "innovation"]
        for key in ("SD", "APP", "PMO"):
            assert {ids["moment"], ids["score"], ids["signals"]} <= app._screens[key]
        tagged = [i for i in app.issues.values() if i.values.get("moment")]
        assert tagged and all(i.values["moment"] in ("operation", "evolution", "innovation") for i in tagged)


def test_jira_datacenter_creates_fields_and_names_the_manual_steps(tmp_path: Path) -> None:
    with start_sandbox(items=200, seed=5, jira_flavor="datacenter", options={"missing_fields": True}) as box:
        config = config_for(box, tmp_path, "jira")
        env = envs(box)
        applied = momentos("fields", "setup", "--config", str(config), "--apply", env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        out = " ".join(applied.stdout.split())
        assert "3 change(s) made" in out
        assert "Configure > Edit Options: add" in out and "operation, evolution, innovation" in out
        for key in ("SD", "APP", "PMO"):
            assert f"Project {key} > Project settings > Screens" in out
        assert {"moment", "score", "signals"} <= set(box.jira.field_ids)
        before = stats(box.jira_url)
        again = momentos("fields", "setup", "--config", str(config), "--apply", env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "create field" not in again.stdout and "manual step(s) remain" in again.stdout
        assert write_requests(stats(box.jira_url)) == write_requests(before)
        assert len([f for f in box.jira.fields.values() if f["name"] == "Experience score"]) == 1


def test_non_admin_users_get_the_admin_message_and_exit_1(tmp_path: Path) -> None:
    options = {"missing_fields": True, "not_admin": True}
    with start_sandbox(items=200, seed=5, options=options) as box:
        env = envs(box)
        config = config_for(box, tmp_path, "servicenow")
        sn = momentos("fields", "setup", "--config", str(config), "--apply", env=env)
        assert sn.returncode == 1, sn.stdout + sn.stderr
        assert f"the ServiceNow user {box.user} needs the admin role to create dictionary entries" in " ".join(sn.stderr.split())
        assert "Traceback" not in sn.stderr

        config = config_for(box, tmp_path, "jira", name="jira.yaml")
        jira = momentos("fields", "setup", "--config", str(config), "--apply", env=env)
        assert jira.returncode == 1, jira.stdout + jira.stderr
        assert f"the Jira user {box.user} needs the 'Administer Jira' global permission" in " ".join(jira.stderr.split())
        assert "Traceback" not in jira.stderr
        assert "moment" not in box.jira.field_ids
        assert "u_relationship_moment" not in box.servicenow.tables["task"].schema


def test_servicenow_human_user_is_no_admin(tmp_path: Path) -> None:
    """The sandbox's IT agent (itil, no admin) may read the dictionary but not extend it."""
    with start_sandbox(items=200, seed=5, options={"missing_fields": True}) as box:
        config = config_for(box, tmp_path, "servicenow", human=True)
        run = momentos("fields", "setup", "--config", str(config), "--apply", env=envs(box))
        assert run.returncode == 1, run.stdout + run.stderr
        assert f"the ServiceNow user {box.human_user} needs the admin role" in " ".join(run.stderr.split())
        assert "sys_dictionary task.u_relationship_moment" in run.stdout  # the plan was shown
        assert "u_relationship_moment" not in box.servicenow.tables["task"].schema


def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsources: [{name: x, type: servicenow}]\n", encoding="utf-8")
    run = momentos("fields", "setup", "--config", str(bad), env={})
    assert run.returncode == 2, run.stdout + run.stderr
