"""Publish the latest report back into the tools IT managers already use.

Optionally (``report.publish`` in the config) the HTML report is attached to one ServiceNow
record and/or one Jira issue, replacing the previous report attachment of the same name rather
than piling them up, and the headline figures are written in a short comment beside it. The
platform calls live in the connectors (pysnow and the ``jira`` library stay there, behind the
shared HTTP policy); this module only decides what to send and says what happened.

Replacement is "upload first, then delete the older ones": the record is never left without a
report, and a retried upload that created a duplicate is cleaned up by the same step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from momentos.connectors.base import Connector, SourceSettings
from momentos.report.build import ReportFiles
from momentos.report.labels import words_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Published:
    """Where one copy of the report went."""

    platform: str  # servicenow | jira
    target: str  # "<table>/<sys_id>" or the issue key
    attachment: str  # id of the new attachment
    replaced: int  # older report attachments deleted
    commented: bool


def headline_comment(summary: dict[str, Any], language: str, file_name: str) -> str:
    """The short comment written next to the attachment: period and headline figures."""
    words = words_for(language)
    text = words.text
    start, end = summary["period_start"][:10], summary["period_end"][:10]
    parts = [
        f"momentos: {start} \u2013 {end}",
        f"{words.num(summary['items'])} {text['items']}",
    ]
    if summary.get("mean_score") is not None:
        mean = f"{text['mean_score']} {words.dec(summary['mean_score'])}"
        if summary.get("trend") is not None:
            mean += f" ({words.signed(summary['trend'])} {text['vs_previous_short']})"
        parts.append(mean)
    if summary.get("at_risk_share") is not None:
        parts.append(f"{words.num(summary['at_risk'])} {text['at_risk_share']} "
                     f"({words.pct(summary['at_risk_share'])})")
    parts.append(f"{words.num(summary['watermelons'])} {text['watermelons_short']}")
    return "; ".join(parts) + f". {text['attached']}: {file_name}"


def publish_report(
    files: ReportFiles,
    publish: Any,
    sources: list[SourceSettings],
    *,
    language: str = "en",
    make_connector: Callable[[SourceSettings], Connector] | None = None,
) -> list[Published]:
    """Attach ``files.html`` to the configured targets; returns what was published.

    ``publish`` is ``config.model.report.publish``; ``sources`` the configured sources (a
    target names one by ``source``). Nothing is done when no target is configured.
    """
    if make_connector is None:
        from momentos.sync import make_connector as make  # the engine's own factory

        make_connector = make
    by_name = {s.name: s for s in sources}
    comment = (headline_comment(files.summary, language, publish.file_name)
               if publish.comment else None)
    done: list[Published] = []
    targets = [("servicenow", publish.servicenow), ("jira", publish.jira)]
    for platform, target in targets:
        if target is None:
            continue
        connector: Any = make_connector(by_name[target.source])
        try:
            if platform == "servicenow":
                result = connector.publish_attachment(
                    target.table, target.sys_id, files.html, publish.file_name,
                    content_type="text/html", comment=comment,
                )
                where = f"{target.table}/{target.sys_id}"
            else:
                result = connector.publish_attachment(
                    target.issue, files.html, publish.file_name,
                    content_type="text/html", comment=comment,
                )
                where = target.issue
        finally:
            connector.close()
        done.append(Published(platform, where, result["attachment"], result["replaced"],
                              comment is not None))
        log.info("report published to %s %s (replaced %d)", platform, where, result["replaced"])
    return done
