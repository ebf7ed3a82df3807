"""Publishing the report back into the tools: publishing twice leaves exactly one report
attachment on the target record (ServiceNow) and issue (Jira) of the sandbox, holding the latest
report, with the headline figures in a comment beside it.

Real HTTP against the sandbox platforms, through the connectors (pysnow's session and the
``jira`` library, both behind the shared HTTP policy).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from momentos.config import parse_config
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config
from momentos.errors import ConfigError
from momentos.report import build_report
from momentos.report.publish import headline_comment, publish_report
from momentos.sandbox import start_sandbox

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FILE_NAME = "momentos-report.html"


def _report(out: Path, title: str):
    frame = pd.DataFrame([
        {"key": "INC1", "customer": "Finance", "moment": "operation", "experience_score": 30,
         "experience_level": "poor", "experience_reasons": "SLA breached",
         "created": "2026-05-30T10:00:00+00:00"},
        {"key": "SD-1", "customer": "Finance", "moment": "operation", "experience_score": 90,
         "experience_level": "good", "created": "2026-05-29T10:00:00+00:00"},
    ])
    return build_report(frame, out, now=NOW, title=title)


def test_publishing_twice_leaves_one_attachment(tmp_path: Path) -> None:
    with start_sandbox(items=40, seed=5) as box:
        human = (box.human_user, box.human_password)
        incident = requests.get(
            f"{box.servicenow_url}/api/now/table/incident",
            params={"sysparm_limit": "1", "sysparm_fields": "sys_id"}, auth=human, timeout=10,
        ).json()["result"][0]["sys_id"]
        raw = sandbox_config(box, state_url=f"sqlite:///{tmp_path / 's.db'}",
                             report_out=str(tmp_path / "r"))
        raw["report"]["publish"] = {
            "servicenow": {"source": "servicenow", "table": "incident", "sys_id": incident},
            "jira": {"source": "jira", "issue": "SD-1"},
            "file_name": FILE_NAME,
        }
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        config = parse_config(yaml.safe_dump(raw))
        publish = config.model.report.publish

        first = _report(tmp_path / "first", "first report")
        done = publish_report(first, publish, config.sources)
        assert [(p.platform, p.replaced) for p in done] == [("servicenow", 0), ("jira", 0)]
        second = _report(tmp_path / "second", "second report")
        done = publish_report(second, publish, config.sources)
        assert [(p.platform, p.replaced) for p in done] == [("servicenow", 1), ("jira", 1)]
        latest = second.html.read_bytes()

        # ServiceNow: one attachment of that name on the record, holding the latest report.
        listed = requests.get(
            f"{box.servicenow_url}/api/now/attachment",
            params={"sysparm_query": f"table_name=incident^table_sys_id={incident}"},
            auth=human, timeout=10,
        ).json()["result"]
        assert [a["file_name"] for a in listed] == [FILE_NAME]
        content = requests.get(listed[0]["download_link"], auth=human, timeout=10).content
        assert content == latest
        stats = requests.get(f"{box.servicenow_url}/_sandbox/stats", timeout=10).json()
        assert stats["requests"]["POST /api/now/attachment/file"] == 2
        assert stats["requests"]["DELETE /api/now/attachment/<sys_id>"] == 1
        assert stats["requests"]["PATCH /api/now/table/<table>/<sys_id>"] >= 2  # the comments

        # Jira: one attachment of that name on the issue, holding the latest report.
        issue = requests.get(f"{box.jira_url}/rest/api/2/issue/SD-1",
                             params={"fields": "attachment"}, auth=human, timeout=10).json()
        attachments = issue["fields"]["attachment"]
        assert [a["filename"] for a in attachments] == [FILE_NAME]
        assert requests.get(attachments[0]["content"], auth=human, timeout=10).content == latest
        comments = requests.get(f"{box.jira_url}/rest/api/2/issue/SD-1/comment", auth=human,
                                timeout=10).json()["comments"]
        ours = [c["body"] for c in comments if str(c["body"]).startswith("momentos:")]
        assert len(ours) == 2 and "1 at risk or poor" in ours[-1]


def test_comment_has_the_headline_figures() -> None:
    summary = {"period_start": "2026-05-04T12:00:00+00:00", "period_end": "2026-06-01T12:00:00",
               "items": 1234, "mean_score": 61.24, "trend": -3.0, "at_risk": 300,
               "at_risk_share": 0.243, "watermelons": 7}
    text = headline_comment(summary, "en", FILE_NAME)
    assert text == (
        "momentos: 2026-05-04 \u2013 2026-06-01; 1,234 items; mean experience score 61.2 "
        "(\u22123.0 vs previous period); 300 at risk or poor (24.3%); 7 watermelons (SLA met, "
        "experience poor). Full report attached: momentos-report.html"
    )
    assert "sandías" in headline_comment(summary, "es", FILE_NAME)


def test_publish_target_must_name_a_source_of_its_platform() -> None:
    raw = {"report": {"publish": {"jira": {"source": "nowhere", "issue": "OPS-1"}}}}
    with pytest.raises(ConfigError, match="no jira source named 'nowhere'"):
        parse_config(yaml.safe_dump(raw))
