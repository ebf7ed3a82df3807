"""Human overrides: a person's edit of a field momentos writes is kept, on both platforms."""

from __future__ import annotations

import pytest
import requests

from momentos.config import load_config
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config, write_config
from momentos.sandbox import start_sandbox
from momentos.state import StateStore
from momentos.sync import SyncEngine

OTHER = {"operation": "innovation", "evolution": "operation", "innovation": "evolution"}


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    from sqlalchemy import create_engine

    from momentos.state import metadata

    url = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


def test_human_edits_of_the_moment_are_kept_and_counted(tmp_path, monkeypatch, state_url):
    with start_sandbox(items=300, seed=21) as box:
        monkeypatch.setenv(SANDBOX_PASSWORD_ENV, box.password)
        config = load_config(
            write_config(sandbox_config(box, state_url=state_url, report_out=str(tmp_path)), tmp_path / "m.yaml")
        )
        state = StateStore(config.state_url)
        engine = SyncEngine(config, state)
        first = engine.run()
        assert first.ok and first.sources["servicenow"].written > 0

        human = (box.human_user, box.human_password)
        edited: dict[str, str] = {}
        # Ten ServiceNow incidents, edited by an IT agent through the Table API.
        incidents = [i for i in box.world.items if i.container == "incident"][:10]
        for inc in incidents:
            url = f"{box.servicenow_url}/api/now/table/incident/{inc.id}"
            ours = requests.get(url, auth=human, params={"sysparm_fields": "u_relationship_moment"}, timeout=10)
            value = OTHER[ours.json()["result"]["u_relationship_moment"]]
            assert requests.patch(url, json={"u_relationship_moment": value}, auth=human, timeout=10).ok
            edited[inc.id] = value
        # Ten Jira issues, edited by the same agent.
        fields = {f["name"]: f["id"] for f in requests.get(f"{box.jira_url}/rest/api/2/field", auth=human, timeout=10).json()}
        moment_field = fields["Relationship moment"]
        issues = [i for i in box.world.items if i.platform == "jira"][:10]
        for issue in issues:
            url = f"{box.jira_url}/rest/api/2/issue/{issue.number}"
            ours = requests.get(url, auth=human, params={"fields": moment_field}, timeout=10).json()
            value = OTHER[ours["fields"][moment_field]["value"]]
            response = requests.put(url, json={"fields": {moment_field: {"value": value}}}, auth=human, timeout=10)
            assert response.status_code == 204, response.text
            edited[issue.id] = value

        before = _writes(box)
        second = engine.run()
        assert second.sources["servicenow"].skipped_manual == 10
        assert second.sources["jira"].skipped_manual == 10
        # Only the edited items came back; their score may be rewritten (it is recomputed
        # against the whole stored history now), never their moment.
        assert second.sources["servicenow"].pulled == 10 and second.sources["jira"].pulled == 10
        assert second.sources["servicenow"].written <= 10 and second.sources["jira"].written <= 10
        touched = {key.split("/", 1)[1] for key, n in _writes(box).items() if n > before.get(key, 0)}
        assert touched <= set(edited) | {i.number for i in issues}

        # The people's values are still there, and the overrides are remembered with who made them.
        for inc in incidents:
            record = requests.get(
                f"{box.servicenow_url}/api/now/table/incident/{inc.id}", auth=human,
                params={"sysparm_fields": "u_relationship_moment"}, timeout=10,
            ).json()["result"]
            assert record["u_relationship_moment"] == edited[inc.id]
        for issue in issues:
            data = requests.get(
                f"{box.jira_url}/rest/api/2/issue/{issue.number}", auth=human, params={"fields": moment_field}, timeout=10
            ).json()
            assert data["fields"][moment_field]["value"] == edited[issue.id]
        overrides = state.all_overrides("moment")
        assert {o["item_id"] for o in overrides} == set(edited)
        assert {o["value"] for o in overrides} == set(edited.values()) | set()
        assert all(o["by"] for o in overrides)
        # The people's moments are in the moment model's training set, as human labels.
        labelled = {l["item_id"]: l["moment"] for l in state.training_labels() if l["origin"] == "human"}
        assert labelled == edited
        # The person's moment is the item's moment from now on: its stored row (what reports
        # read) says so, and its score is the one of that moment.
        stored = {r["id"]: r for r in state.iter_items() if r["id"] in edited}
        assert {i: r["moment"] for i, r in stored.items()} == edited
        assert all(r["moment_rule"] == "person" and r["moment_confidence"] == 1.0 for r in stored.values())

        # The person changes their mind: the latest correction is the one remembered, learned
        # and scored.
        again = incidents[0]
        url = f"{box.servicenow_url}/api/now/table/incident/{again.id}"
        value = OTHER[edited[again.id]]
        assert requests.patch(url, json={"u_relationship_moment": value}, auth=human, timeout=10).ok
        edited[again.id] = value
        engine.run()
        assert {o["item_id"]: o["value"] for o in state.all_overrides("moment")}[again.id] == value
        assert {l["item_id"]: l["moment"] for l in state.training_labels() if l["origin"] == "human"} == edited
        assert next(r for r in state.iter_items() if r["id"] == again.id)["moment"] == value

        # A full resync recomputes everything and still leaves the people's values alone.
        third = engine.run(full=True)
        assert third.sources["servicenow"].skipped_manual == 10
        assert third.sources["jira"].skipped_manual == 10
        # And once everything was computed against the same history, another one has nothing
        # to write.
        fourth = engine.run(full=True)
        assert fourth.sources["servicenow"].written == 0 and fourth.sources["jira"].written == 0
        assert fourth.sources["servicenow"].skipped_manual == 10
        for inc in incidents:
            record = requests.get(
                f"{box.servicenow_url}/api/now/table/incident/{inc.id}", auth=human,
                params={"sysparm_fields": "u_relationship_moment"}, timeout=10,
            ).json()["result"]
            assert record["u_relationship_moment"] == edited[inc.id]
        state.close()


def _writes(box) -> dict[str, int]:
    """Write counts per record on both platforms (the sandboxes' admin stats)."""
    counts: dict[str, int] = {}
    for url in (box.servicenow_url, box.jira_url):
        counts.update(requests.get(f"{url}/_sandbox/stats", timeout=10).json()["writes"])
    return counts
