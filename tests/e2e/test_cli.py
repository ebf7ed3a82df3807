"""End-to-end: the `momentos` CLI as a subprocess against the sandbox over real HTTP."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import start_sandbox

pytestmark = pytest.mark.slow


def momentos(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "momentos", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def box():
    with start_sandbox(items=2000, seed=11) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def synced(box, tmp_path_factory):
    """Two consecutive `sync --json` runs against the same 2,000-item sandbox."""
    tmp = tmp_path_factory.mktemp("sync")
    config = write_config(
        sandbox_config(box, state_url=f"sqlite:///{tmp / 'state.db'}", report_out=str(tmp / "report")),
        tmp / "momentos.yaml",
    )
    env = {SANDBOX_PASSWORD_ENV: box.password}
    first = momentos("sync", "--config", str(config), "--json", env=env)
    second = momentos("sync", "--config", str(config), "--json", env=env)
    return {"config": config, "env": env, "first": first, "second": second, "tmp": tmp}


def test_first_sync_enriches_every_item_and_writes(box, synced):
    run = synced["first"]
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)  # --json: the summary is the only stdout
    assert set(summary) == {"sources", "duration_s"}
    per_platform = {"servicenow": 0, "jira": 0}
    for item in box.world.items:
        per_platform[item.platform] += 1
    for name, expected in per_platform.items():
        s = summary["sources"][name]
        assert set(s) == {"pulled", "enriched", "written", "unchanged", "skipped_manual", "failed", "requests"}
        assert s["pulled"] == expected and s["enriched"] == expected
        assert s["failed"] == 0
        assert s["written"] > expected * 0.9
        assert s["requests"]["read"] > 0 and s["requests"]["write"] > 0


def test_second_sync_writes_nothing_and_reads_far_less(synced):
    first = json.loads(synced["first"].stdout)["sources"]
    run = synced["second"]
    assert run.returncode == 0, run.stderr
    second = json.loads(run.stdout)["sources"]
    for name in ("servicenow", "jira"):
        assert second[name]["written"] == 0, second
        # Our own field writes are recognised and skipped; the only items pulled again are those
        # that got a nudge note (our comment is a new version), and they come back unchanged.
        assert second[name]["pulled"] == second[name]["unchanged"], second
        assert second[name]["pulled"] <= first[name]["pulled"] // 10, second
        assert second[name]["failed"] == 0
        assert second[name]["requests"]["write"] == 0
        # Jira search cannot leave out issues we just wrote, so their pages are read again
        # (without any context requests); ServiceNow skips their context too.
        assert second[name]["requests"]["read"] < first[name]["requests"]["read"], (first, second)
    reads = lambda s: sum(v["requests"]["read"] for v in s.values())  # noqa: E731
    assert reads(second) * 2 <= reads(first), (first, second)
    # ServiceNow bounds its window at the sync's start and drops known versions before any
    # context query: one read per table of its default set (eight), nothing more.
    assert second["servicenow"]["requests"]["read"] <= 8, second


def test_written_fields_are_visible_through_the_platform_apis(box, synced):
    auth = (box.user, box.password)
    incident = next(i for i in box.world.items if i.container == "incident")
    record = requests.get(
        f"{box.servicenow_url}/api/now/table/incident/{incident.id}",
        params={"sysparm_fields": "u_relationship_moment,u_experience_score,u_experience_signals"},
        auth=auth,
        timeout=10,
    ).json()["result"]
    assert record["u_relationship_moment"] in ("operation", "evolution", "innovation")
    assert 0 <= int(record["u_experience_score"]) <= 100
    assert record["u_experience_signals"]

    from jira import JIRA

    client = JIRA(server=box.jira_url, basic_auth=auth, max_retries=0)
    fields = {f["name"]: f["id"] for f in client.fields()}
    issue_key = next(i.number for i in box.world.items if i.platform == "jira")
    issue = client.issue(issue_key, fields=",".join(fields[n] for n in ("Relationship moment", "Experience score")))
    moment = getattr(issue.fields, fields["Relationship moment"])
    assert moment.value in ("operation", "evolution", "innovation")
    assert 0 <= getattr(issue.fields, fields["Experience score"]) <= 100


def test_report_from_state(synced):
    run = momentos("report", "--config", str(synced["config"]), env=synced["env"])
    assert run.returncode == 0, run.stderr
    html = Path(run.stdout.strip().split("report: ", 1)[1].strip())
    assert html.exists() and html.stat().st_size > 5000
    assert (html.parent / "customer_moment.csv").exists()


def test_status_json(synced):
    run = momentos("status", "--config", str(synced["config"]), "--json", env=synced["env"])
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["runs"]["sync:all"]["status"] == "ok"
    # The sync collected the rules' confident decisions as labels; no instance model yet.
    assert payload["moment_model"]["trained_at"] is None
    assert payload["moment_model"]["labels_now"]["rule"] > 0
    assert [j["name"] for j in payload["jobs"]] == ["sync-all", "daily-report", "nightly-learn"] and payload["jobs"][0]["next_run"]
    assert sum(payload["items"].values()) == 2000
    assert payload["sentiment_scorer"] == "c"  # the install built the C scorer
    # Both first syncs took several batches (one a table or project at least): each source
    # is listed until a full sync settles it.
    assert set(payload["settle"]) == {"servicenow", "jira"}
    text = momentos("status", "--config", str(synced["config"]), env=synced["env"])
    # The config's sync job runs incrementally and `serve` settles by default: it says so.
    assert "`momentos serve` settles their values" in text.stdout.replace("\n", " ")


def test_dry_run_writes_nothing_and_leaves_state_untouched(tmp_path):
    with start_sandbox(items=200, seed=3) as box:
        state = tmp_path / "state.db"
        config = write_config(
            sandbox_config(box, state_url=f"sqlite:///{state}", report_out=str(tmp_path / "r")),
            tmp_path / "m.yaml",
        )
        run = momentos("sync", "--config", str(config), "--dry-run", "--json", env={SANDBOX_PASSWORD_ENV: box.password})
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        assert summary["sources"]["servicenow"]["written"] > 0  # what *would* be written
        for url in (box.servicenow_url, box.jira_url):
            stats = requests.get(f"{url}/_sandbox/stats", timeout=5).json()
            assert stats["writes"] == {}
        assert summary["sources"]["jira"]["requests"]["write"] == 0
        from momentos.state import StateStore

        store = StateStore(f"sqlite:///{state}")
        assert store.count_items() == {} and store.watermark("servicenow", "incident") is None
        store.close()
        diff = list(csv.DictReader((tmp_path / "r" / "dry-run-diff.csv").open()))
        assert diff and set(diff[0]) == {"source", "key", "field", "current", "new"}


def test_check_passes_on_the_sandbox(box, tmp_path):
    config = write_config(
        sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}", report_out=str(tmp_path)),
        tmp_path / "m.yaml",
    )
    run = momentos("check", "--config", str(config), env={SANDBOX_PASSWORD_ENV: box.password})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("✓") == 2


def test_wrong_password_fails_at_run_time_without_leaking_it(box, tmp_path):
    config = write_config(
        sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}", report_out=str(tmp_path)),
        tmp_path / "m.yaml",
    )
    secret = "wrong-password-123456"
    run = momentos("sync", "--config", str(config), "--json", env={SANDBOX_PASSWORD_ENV: secret})
    assert run.returncode == 1
    assert secret not in run.stdout + run.stderr
    assert "401" in run.stderr


def test_bad_config_lists_every_problem_exits_2_and_writes_nothing(tmp_path):
    state = tmp_path / "never.db"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"""\
sources:
  - name: sn
    type: servicenow
    auth: {{username: u, password_env: X}}
    page_size: many
    colour: red
moments:
  rules:
    - {{name: r1, kind: incident, moment: joy}}
state: {{url: "sqlite:///{state}"}}
"""
    )
    run = momentos("sync", "--config", str(bad))
    assert run.returncode == 2
    for expected in ("sources[0].url", "sources[0].page_size", "unknown key 'colour'", "joy"):
        assert expected in run.stderr, run.stderr
    assert not state.exists()


def test_missing_secret_is_a_config_error(box, tmp_path):
    config = write_config(
        sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}", report_out=str(tmp_path)),
        tmp_path / "m.yaml",
    )
    env = {k: v for k, v in os.environ.items() if k != SANDBOX_PASSWORD_ENV}
    run = subprocess.run(
        [sys.executable, "-m", "momentos", "sync", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 2
    assert f"environment variable {SANDBOX_PASSWORD_ENV} is not set" in run.stderr


def test_enrich_csv_with_only_title_and_description(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(
        "title,description\n"
        "VPN no funciona,Sigue sin funcionar otra vez desde ayer\n"
        "New customer portal pilot,Idea: co-create a portal with distributors\n"
        "Upgrade SAP kernel,Planned upgrade of the SAP kernel to the new release\n"
    )
    dst = tmp_path / "out.csv"
    run = momentos("enrich", str(src), "--out", str(dst))
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(dst.open()))
    assert len(rows) == 3
    for col in ("title", "description", "moment", "moment_confidence", "moment_reason", "sentiment",
                "experience_score", "experience_level", "experience_reasons", "signals"):
        assert col in rows[0]
    assert rows[0]["moment"] == "operation" and float(rows[0]["sentiment"]) < 0
    assert rows[1]["moment"] == "innovation"
    assert rows[2]["moment"] == "evolution"
    assert all(r["experience_level"] in ("good", "fair", "at_risk", "poor") for r in rows)
    json.loads(rows[0]["signals"])
    assert "sentiment" not in run.stderr
    # Without the C scorer: the same sentiment, and a note that says why it is slower.
    slow = tmp_path / "slow.csv"
    run = momentos("enrich", str(src), "--out", str(slow), env={"MOMENTOS_PURE_PYTHON": "1"})
    assert run.returncode == 0, run.stderr
    assert "C scorer was not built" in run.stderr
    assert [r["sentiment"] for r in csv.DictReader(slow.open())] == [r["sentiment"] for r in rows]


def test_demo_runs_and_names_its_report(tmp_path):
    run = momentos("demo", "--items", "300", "--seed", "5", "--out", str(tmp_path / "demo"))
    assert run.returncode == 0, run.stderr
    line = next(l for l in run.stdout.splitlines() if l.startswith("report: "))
    html = Path(line.split("report: ", 1)[1].strip())
    assert html.exists()
    text = html.read_text()
    assert "<svg" in text and "operation" in text.lower()


def test_sandbox_command_prints_one_ready_line_and_stops_on_sigterm(tmp_path):
    config_out = tmp_path / "sandbox.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "momentos", "sandbox", "--items", "100", "--jira-flavor", "datacenter",
         "--config-out", str(config_out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready = json.loads(proc.stdout.readline())
        assert set(ready) == {"servicenow", "jira", "user", "password", "human_user", "human_password", "ca_cert"}
        assert ready["ca_cert"] is None
        assert requests.get(f"{ready['servicenow']}/api/now/table/incident", timeout=5).status_code == 401
        info = requests.get(f"{ready['jira']}/rest/api/2/serverInfo", auth=(ready["user"], ready["password"]), timeout=5)
        assert info.json()["deploymentType"] != "Cloud"
        assert config_out.exists() and ready["password"] not in config_out.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_lets_sync_finish_its_page_and_exit_0(tmp_path):
    with start_sandbox(items=400, seed=8) as box:
        for url in (box.servicenow_url, box.jira_url):
            requests.post(f"{url}/_sandbox/faults", json={"delay_rate": 1.0, "delay_s": 0.05}, timeout=5)
        config = write_config(
            sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}", report_out=str(tmp_path / "r")),
            tmp_path / "m.yaml",
        )
        env = {**os.environ, SANDBOX_PASSWORD_ENV: box.password}
        proc = subprocess.Popen(
            [sys.executable, "-m", "momentos", "sync", "--config", str(config), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        import time

        # Once the platforms see a request the handler is installed (a loaded machine can take
        # seconds just to import); then let it get into its pages.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            sum(requests.get(f"{url}/_sandbox/stats", timeout=5).json()["requests"].values())
            for url in (box.servicenow_url, box.jira_url)
        ):
            time.sleep(0.1)
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        summary = json.loads(out)
        done = sum(s["enriched"] for s in summary["sources"].values())
        assert 0 < done < 400  # stopped part-way, after committing what it had
        from momentos.state import StateStore

        store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
        assert sum(store.count_items().values()) == done
        store.close()


def test_status_says_when_context_items_cuts_the_history_short(synced):
    """The default keeps every item of the last `context_days`; a `context_items` below that
    count keeps the newest, and status names the date the history then starts."""
    from datetime import datetime, timedelta, timezone

    from momentos.state import StateStore

    plain = json.loads(momentos("status", "--config", str(synced["config"]), "--json", env=synced["env"]).stdout)
    assert plain["history"]["capped"] is False and plain["history"]["advice"] is None
    window = plain["history"]["items_in_window"]
    assert 300 < window <= 2000
    data = yaml.safe_load(synced["config"].read_text())
    data["experience"] = {"context_items": 300}
    capped_config = synced["tmp"] / "capped.yaml"
    capped_config.write_text(yaml.safe_dump(data), encoding="utf-8")
    run = momentos("status", "--config", str(capped_config), "--json", env=synced["env"])
    assert run.returncode == 0, run.stderr
    history = json.loads(run.stdout)["history"]
    assert history["capped"] is True and history["items_in_window"] == window
    # The oldest item kept is the oldest of the 300 newest that a sync loads.
    store = StateStore(data["state"]["url"])
    try:
        since = datetime.now(timezone.utc) - timedelta(days=history["context_days"])
        kept = store.recent_items(since, 300)
    finally:
        store.close()
    assert datetime.fromisoformat(history["oldest_kept"]) == min(datetime.fromisoformat(r["created"]) for r in kept)
    text = momentos("status", "--config", str(capped_config), env=synced["env"]).stdout.replace("\n", " ")
    assert "holds only the newest 300 items" in text and "experience.context_items" in text
