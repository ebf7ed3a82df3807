"""End-to-end: `momentos explain KEY` against the sandbox, after syncs and a person's edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import start_sandbox

pytestmark = pytest.mark.slow

OTHER = {"operation": "innovation", "evolution": "operation", "innovation": "evolution"}
KEYS = {"key", "source", "moment", "score", "signals", "sentiment", "override", "written"}


def momentos(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "momentos", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})}, check=False,
    )


def stats(box) -> dict[str, dict]:
    return {url: requests.get(f"{url}/_sandbox/stats", timeout=10).json()
            for url in (box.servicenow_url, box.jira_url)}


def writes_of(snapshot: dict[str, dict]) -> dict[str, object]:
    """What counts as writing: the write counters and every request that is not a read."""
    return {
        url: (s["writes"], {k: n for k, n in s["requests"].items()
                            if k.split(" ", 1)[0] in ("PUT", "PATCH", "DELETE")})
        for url, s in snapshot.items()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Sync, a person changes one incident's and one issue's moment, sync again."""
    tmp = tmp_path_factory.mktemp("explain")
    with start_sandbox(items=300, seed=21) as box:
        config = write_config(
            sandbox_config(box, state_url=f"sqlite:///{tmp / 'state.db'}",
                           report_out=str(tmp / "report")),
            tmp / "momentos.yaml",
        )
        env = {SANDBOX_PASSWORD_ENV: box.password}
        first = momentos("sync", "--config", str(config), "--json", env=env)
        assert first.returncode == 0, first.stderr

        human = (box.human_user, box.human_password)
        incident = next(i for i in box.world.items if i.container == "incident")
        url = f"{box.servicenow_url}/api/now/table/incident/{incident.id}"
        ours_sn = requests.get(url, auth=human, params={"sysparm_fields": "u_relationship_moment"},
                               timeout=10).json()["result"]["u_relationship_moment"]
        assert requests.patch(url, json={"u_relationship_moment": OTHER[ours_sn]}, auth=human,
                              timeout=10).ok
        fields = {f["name"]: f["id"] for f in requests.get(
            f"{box.jira_url}/rest/api/2/field", auth=human, timeout=10).json()}
        moment_field = fields["Relationship moment"]
        issue = next(i for i in box.world.items if i.platform == "jira")
        url = f"{box.jira_url}/rest/api/2/issue/{issue.number}"
        ours_jira = requests.get(url, auth=human, params={"fields": moment_field},
                                 timeout=10).json()["fields"][moment_field]["value"]
        response = requests.put(url, json={"fields": {moment_field: {"value": OTHER[ours_jira]}}},
                                auth=human, timeout=10)
        assert response.status_code == 204, response.text

        second = momentos("sync", "--config", str(config), "--json", env=env)
        assert second.returncode == 0, second.stderr
        summary = json.loads(second.stdout)["sources"]
        assert summary["servicenow"]["skipped_manual"] == 1
        assert summary["jira"]["skipped_manual"] == 1

        before = stats(box)
        runs = {
            "sn_text": momentos("explain", "--config", str(config), incident.number, env=env),
            "sn_json": momentos("explain", "--config", str(config), incident.number, "--json",
                                env=env),
            "jira_json": momentos("explain", "--config", str(config), issue.number, "--json",
                                  env=env),
            "jira_es": momentos("explain", "--config", str(config), issue.number, "--lang", "es",
                                env=env),
            "unknown": momentos("explain", "--config", str(config), "INC9999999", env=env),
        }
        after = stats(box)
        yield {
            "runs": runs, "before": before, "after": after,
            "sn": (incident.number, ours_sn, OTHER[ours_sn]),
            "jira": (issue.number, ours_jira, OTHER[ours_jira]),
        }


def test_explain_says_a_person_overrode_the_moment_and_shows_both_values(world):
    run = world["runs"]["sn_text"]
    assert run.returncode == 0, run.stderr
    key, ours, theirs = world["sn"]
    assert key in run.stdout
    line = f"overridden by a person: moment {theirs} (momentos had written {ours})"
    assert line in run.stdout, run.stdout
    for heading in ("Relationship moment", "Experience score", "Signals and their points",
                    "Requester sentiment", "Last written by momentos"):
        assert heading in run.stdout


@pytest.mark.parametrize("which", ["sn", "jira"])
def test_json_has_the_stable_keys_and_consistent_contributions(world, which):
    run = world["runs"][f"{which}_json"]
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)  # --json: one object, nothing else on stdout
    assert KEYS <= set(data)
    key, ours, theirs = world[which]
    assert data["key"] == key
    assert data["source"] == ("servicenow" if which == "sn" else "jira")
    assert {"value", "confidence", "rule", "reason", "needs_review"} <= set(data["moment"])
    assert data["moment"]["value"] in ("operation", "evolution", "innovation")
    assert data["moment"]["reason"]
    assert {"value", "level", "reasons"} <= set(data["score"])
    assert {"value", "texts"} <= set(data["sentiment"])
    for text in data["sentiment"]["texts"]:
        assert {"author_role", "created", "text", "score", "weight"} <= set(text)
    assert data["override"]["field"] == "moment"
    assert (data["override"]["value"], data["override"]["ours"]) == (theirs, ours)
    assert data["override"]["by"]
    written = {w["field"]: w for w in data["written"]}
    assert written["moment"]["value"] == ours and written["moment"]["at"]

    # Every signal with its points; the points rebuild the score.
    names = [s["name"] for s in data["signals"]]
    assert len(names) == len(set(names)) and "sentiment" in names
    assert all({"name", "value", "contribution"} <= set(s) for s in data["signals"])
    total = sum(s["contribution"] for s in data["signals"])
    assert abs(total - data["score"]["points"]) < 0.05
    expected = min(100, max(0, round(100 + total)))
    assert abs(expected - data["score"]["value"]) <= 1
    # The requester texts rebuild the sentiment (weighted mean of their scores).
    scored = [t for t in data["sentiment"]["texts"] if t["score"] is not None and t["weight"]]
    if scored:
        mean = sum(t["score"] * t["weight"] for t in scored) / sum(t["weight"] for t in scored)
        assert abs(mean - data["sentiment"]["value"]) < 0.01


def test_lang_es_prints_spanish_labels(world):
    run = world["runs"]["jira_es"]
    assert run.returncode == 0, run.stderr
    for label in ("Momento de la relación", "Puntuación de experiencia", "Señales y sus puntos",
                  "Sentimiento del solicitante", "Cambio manual", "cambiado por una persona"):
        assert label in run.stdout, run.stdout
    assert "Relationship moment" not in run.stdout


def test_unknown_key_exits_1(world):
    run = world["runs"]["unknown"]
    assert run.returncode == 1
    assert "no item INC9999999 in source" in run.stderr


def test_explain_writes_nothing_on_the_platforms(world):
    assert writes_of(world["after"]) == writes_of(world["before"])
    # It did read: the item was fetched live from both platforms.
    for url in world["before"]:
        assert world["after"][url]["requests"] != world["before"][url]["requests"]


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
def test_connectors_fetch_one_item_by_key_as_pull_builds_it(tmp_path, monkeypatch, flavor):
    """``Connector.fetch``: the same item ``pull`` yields, None for unknown keys, no writes."""
    from datetime import UTC, datetime

    from momentos.config import load_config
    from momentos.sync import make_connector

    with start_sandbox(items=120, seed=5, jira_flavor=flavor) as box:
        monkeypatch.setenv(SANDBOX_PASSWORD_ENV, box.password)
        config = load_config(write_config(
            sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}", report_out=str(tmp_path)),
            tmp_path / "m.yaml"))
        before = writes_of(stats(box))
        for settings in config.sources:
            connector = make_connector(settings)
            stream = connector.streams()[0]
            page = next(connector.pull(stream, None, datetime.now(UTC)))
            pulled = page.items[0]
            connector.close()
            connector = make_connector(settings)
            fetched = connector.fetch(pulled.key)
            assert fetched is not None and fetched.to_json() == pulled.to_json()
            unknown = "INC9999999" if settings.type == "servicenow" else f"{stream}-99999"
            assert connector.fetch(unknown) is None
            assert connector.fetch("NOPE-1") is None  # a project this source does not sync
            assert connector.fetch("x^ORDERBYnumber") is None  # never part of a query
            connector.close()
        assert writes_of(stats(box)) == before
