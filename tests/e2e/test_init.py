"""End-to-end: `momentos init` discovers the sandbox platforms and writes a config that
validates, checks and syncs; it never overwrites without --force and survives an unreachable
platform."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from momentos.sandbox import start_sandbox

pytestmark = pytest.mark.slow


def momentos(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "momentos", *args],
        check=False, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def box():
    # One table missing and one forbidden to the integration user: init must leave both out.
    options = {"missing_tables": ["rm_enhancement"], "forbidden_tables": ["pm_project_task"]}
    with start_sandbox(items=300, seed=17, options=options) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def env(box):
    return {
        "MOMENTOS_SN_USER": box.user, "MOMENTOS_SN_PASSWORD": box.password,
        "MOMENTOS_JIRA_USER": box.user, "MOMENTOS_JIRA_TOKEN": box.password,
    }


@pytest.fixture(scope="module")
def initialised(box, env, tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "config" / "momentos.yaml"
    run = momentos("init", "--servicenow", box.servicenow_url, "--jira", box.jira_url,
                   "--out", str(out), env=env)
    return {"run": run, "out": out}


def test_init_writes_a_discovered_config(box, initialised):
    run, out = initialised["run"], initialised["out"]
    assert run.returncode == 0, run.stderr
    assert out.exists()
    text = out.read_text(encoding="utf-8")
    # Secrets never reach the file or the terminal; the file names the variables.
    for blob in (text, run.stdout, run.stderr):
        assert box.password not in blob
    assert "password_env: MOMENTOS_SN_PASSWORD" in text
    assert "password_env: MOMENTOS_JIRA_TOKEN" in text

    from momentos.config import load_config

    cfg = load_config(out)
    sn, jira = cfg.source("servicenow"), cfg.source("jira")
    tables = [t.name for t in sn.tables]
    assert "incident" in tables and "sc_req_item" in tables
    assert "rm_enhancement" not in tables and "pm_project_task" not in tables
    assert "# - {name: rm_enhancement}" in text and "does not exist" in text
    assert "# - {name: pm_project_task}" in text and "may not read it" in text
    assert set(jira.projects) == set(box.jira.projects)
    assert jira.flavor == "cloud"
    assert "Incident: jira-operation → operation" in text
    assert "Task: jira-auto → decided from the text" in text
    assert set(jira.customer_fields) == {"Business area", "Organizations"}
    assert "JSM organizations" in text
    assert "could not discover" not in text.split("\nversion: 1\n", 1)[1]  # only the header explains it


def test_init_config_validates_checks_and_syncs(box, env, initialised):
    out = str(initialised["out"])
    validate = momentos("config", "validate", "--config", out, env=env)
    assert validate.returncode == 0, validate.stderr
    check = momentos("check", "--config", out, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    sync = momentos("sync", "--config", out, "--json", env=env)
    assert sync.returncode == 0, sync.stderr
    summary = json.loads(sync.stdout)["sources"]
    for name in ("servicenow", "jira"):
        assert summary[name]["pulled"] > 0 and summary[name]["failed"] == 0, summary


def test_second_init_refuses_without_force(box, env, initialised):
    out = initialised["out"]
    before = out.read_bytes()
    again = momentos("init", "--servicenow", box.servicenow_url, "--out", str(out), env=env)
    assert again.returncode == 2
    assert "--force" in again.stderr and str(out) in again.stderr
    assert out.read_bytes() == before
    forced = momentos("init", "--servicenow", box.servicenow_url, "--out", str(out), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert out.read_bytes() != before
    assert "type: jira" not in out.read_text(encoding="utf-8")


def test_unreachable_platform_still_writes_a_valid_file(box, env, tmp_path):
    out = tmp_path / "momentos.yaml"
    dead = f"http://127.0.0.1:{closed_port()}"
    run = momentos("init", "--servicenow", dead, "--jira", box.jira_url, "--out", str(out), env=env)
    assert run.returncode == 0, run.stderr
    assert "warning" in run.stderr and "servicenow" in run.stderr and "unreachable" in run.stderr
    text = out.read_text(encoding="utf-8")
    assert "could not discover the readable tables" in text and "unreachable" in text
    assert "- {name: incident}" in text  # the default tables are kept
    assert "- APP" in text  # Jira was still discovered
    validate = momentos("config", "validate", "--config", str(out), env=env)
    assert validate.returncode == 0, validate.stderr


def test_refused_credentials_and_missing_variables(box, env, tmp_path):
    out = tmp_path / "momentos.yaml"
    wrong = {**env, "MOMENTOS_JIRA_TOKEN": "not-the-password"}
    wrong.pop("MOMENTOS_SN_PASSWORD")
    run = momentos("init", "--servicenow", box.servicenow_url, "--jira", box.jira_url,
                   "--out", str(out), env={**wrong, "MOMENTOS_SN_PASSWORD": ""})
    assert run.returncode == 0, run.stderr
    assert "MOMENTOS_SN_PASSWORD not set" in run.stderr
    assert "refused the credentials" in run.stderr
    text = out.read_text(encoding="utf-8")
    assert "projects: [CHANGEME]" in text
    assert "not-the-password" not in text + run.stdout + run.stderr
    validate = momentos("config", "validate", "--config", str(out), env=env)
    assert validate.returncode == 0, validate.stderr


def test_init_needs_a_platform(tmp_path):
    run = momentos("init", "--out", str(tmp_path / "x.yaml"))
    assert run.returncode == 2
    assert not (tmp_path / "x.yaml").exists()
