"""The writer only ever touches the three writeback fields, even when the config asks for more.

Two ways a config could aim writes at a platform field that is not momentos's:
1. an unknown logical name (``writeback.fields: {priority: ...}``): refused at load time;
2. a known logical name mapped onto a platform field people own (``moment: short_description``,
   ``score: assignee``, ``signals: description`` / ``summary``): it must be refused as well, by
   the config (exit 2) or at write time, and the platform record must not change.
Connector.allowed_field is exercised directly by
tests/integration/test_servicenow_connector.py::test_non_allowlisted_field_raises_before_sending
and tests/integration/test_jira_connector.py::test_jira_only_allowlisted_fields_are_written,
for logical names only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from typer.testing import CliRunner

from momentos.cli import app
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config
from momentos.sandbox import start_sandbox

runner = CliRunner()


@pytest.fixture(scope="module")
def box() -> Iterator[Any]:
    with start_sandbox(items=60, seed=12) as sandbox:
        yield sandbox


def _config(box: Any, folder: Path, sn_fields: dict[str, str] | None,
            jira_fields: dict[str, str] | None) -> Path:
    raw = sandbox_config(box, state_url=f"sqlite:///{folder / 'state.db'}",
                         report_out=str(folder / "report"))
    raw["nudges"] = {"enabled": False}
    raw["sources"][0]["tables"] = ["incident"]
    raw["sources"][1]["projects"] = ["SD"]
    # The source not under test writes nothing, so any write seen comes from the one under test.
    raw["sources"][0]["writeback"] = {"fields": sn_fields} if sn_fields else {"enabled": False}
    raw["sources"][1]["writeback"] = {"fields": jira_fields} if jira_fields else {"enabled": False}
    path = folder / "momentos.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _writes(box: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for url in (box.servicenow_url, box.jira_url):
        total.update(requests.get(f"{url}/_sandbox/stats", timeout=10).json()["writes"])
    return total


def _snapshot(box: Any) -> dict[str, Any]:
    sn = {r["sys_id"]: (r.get("short_description"), r.get("description"), r.get("assigned_to"),
                        r.get("priority"), r.get("state"))
          for r in box.servicenow.rows("incident")}
    sn["journal"] = len(list(box.servicenow.rows("sys_journal_field")))
    jira = {i.key: (i.item.title, i.item.description, i.assignee,
                    i.priority, i.status, list(i.labels))
            for i in box.jira.issues.values() if i.project == "SD"}
    return {"sn": sn, "jira": jira}


def _run(*args: str, box: Any) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={SANDBOX_PASSWORD_ENV: box.password})
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, text


def test_unknown_logical_writeback_field_is_a_config_error(box: Any, tmp_path: Path) -> None:
    config = _config(box, tmp_path, {"moment": "u_relationship_moment", "priority": "priority"},
                     {"state": "Status"})
    before = _writes(box)
    code, text = _run("sync", "--config", str(config), box=box)
    assert code == 2, text
    assert "sources[0].writeback.fields" in " ".join(text.split())
    assert "sources[1].writeback.fields" in " ".join(text.split())
    assert _writes(box) == before


@pytest.mark.parametrize(
    ("sn_fields", "jira_fields"),
    [
        ({"moment": "short_description"}, None),
        ({"score": "priority", "signals": "description"}, None),
        ({"signals": "comments"}, None),
        (None, {"moment": "summary"}),
        (None, {"signals": "description"}),
        (None, {"score": "assignee", "moment": "labels"}),
    ],
    ids=["sn-short_description", "sn-priority-description", "sn-comments", "jira-summary",
         "jira-description", "jira-assignee-labels"],
)
def test_writeback_mapped_onto_a_platform_owned_field_is_refused(
    box: Any, tmp_path: Path, sn_fields: dict[str, str] | None, jira_fields: dict[str, str] | None
) -> None:
    config = _config(box, tmp_path, sn_fields, jira_fields)
    before_writes, before = _writes(box), _snapshot(box)
    validate_code, validate_text = _run("config", "validate", "--config", str(config), box=box)
    sync_code, sync_text = _run("sync", "--config", str(config), box=box)
    after = _snapshot(box)
    assert after == before, "a field people own was overwritten"
    assert _writes(box) == before_writes, "nothing was written at all"
    assert validate_code == 2 or sync_code in (1, 2), (validate_text, sync_text)
