"""The HTML report escapes hostile ticket text wherever it shows it.

Titles, keys, customers, services, groups, assignees, reasons and the report title carry
``<script>``, attribute break-outs, template syntax, ``</style>`` and ``</title>``. The page is
parsed with ``html.parser``: it must hold no script at all (the report has none of its own),
no event-handler attribute, no element that loads or embeds anything, exactly its one style
block, and the hostile text must still be there, as text.
tests/unit/test_report.py::test_hostile_text_is_escaped checks one title; this covers every
shown field and the parse, not only substrings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from momentos.report import build_report

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
PAYLOADS = [
    "<script>alert('t')</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(2)",
    "{{ 7*7 }}{% for x in range(3) %}X{% endfor %}",
    "</style><script>alert(3)</script>",
    "</title><script>alert(4)</script>",
    "<svg/onload=alert(5)>",
    "<iframe src=javascript:alert(6)></iframe>",
    "]]><!-- --><a href=javascript:alert(7)>x</a>",
    "\u202e<b>rtl</b> 😡",
]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _frame() -> pd.DataFrame:
    rows = []
    for i in range(30):
        payload = PAYLOADS[i % len(PAYLOADS)]
        risky = i % 3 != 0
        rows.append({
            "source": "sn", "platform": "servicenow", "container": "incident",
            "key": f"INC{i:04d}{payload if i % 7 == 0 else ''}",
            "url": "javascript:alert(8)" if i % 5 == 0 else f"https://sn.example.test/{i}",
            "title": f"{payload} title {i}",
            "customer": payload if i % 2 else f"Area {payload[:5]}",
            "assignment_group": f"G {payload}", "assignee": f"A {payload}",
            "service": f"S {payload}", "kind": "incident",
            "created": NOW - timedelta(days=i % 20 + 1), "resolved": pd.NaT,
            "moment": ("operation", "evolution", "innovation")[i % 3],
            "experience_score": 20 if risky else 85,
            "experience_level": "poor" if risky else "good",
            "experience_reasons": f"requester upset; {payload}" if risky else "",
            "sentiment": -0.6, "signals": {"reopen_count": 2, "sla_breached": 0.0},
        })
    return pd.DataFrame.from_records(rows)


@pytest.mark.parametrize("language", ["en", "es"])
def test_report_html_contains_no_active_content_from_ticket_text(tmp_path: Path, language: str) -> None:
    files = build_report(_frame(), tmp_path, now=NOW, language=language,
                         title="Report </title><script>alert(9)</script>",
                         customers={"<script>canon</script>": [PAYLOADS[1]]})
    html = files.html.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(html)
    parser.close()
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags
    for forbidden in ("img", "iframe", "object", "embed", "frame", "base", "form", "input",
                      "video", "audio", "source"):
        assert forbidden not in tags, forbidden
    # The page's own empty favicon is its only link element.
    assert [dict(a).get("href") for t, a in parser.tags if t == "link"] == ["data:,"]
    assert tags.count("title") == 1
    # Style blocks: the page's own and one per inline chart (matplotlib's SVG), no payload.
    assert tags.count("style") == 1 + tags.count("svg")
    for body in re.findall(r"<style[^>]*>(.*?)</style>", html, re.DOTALL):
        assert "alert" not in body and "<" not in body
    for tag, attrs in parser.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            if name in ("href", "src", "action", "formaction", "xlink:href"):
                assert not (value or "").strip().lower().startswith(("javascript:", "vbscript:")), (tag, value)
    # The payloads are still on the page, as text (only the at-risk list shows titles).
    text = "".join(parser.text)
    assert "<script>alert('t')</script> title" in text
    assert "{{ 7*7 }}" in text and "49" not in text.replace("2049", "")
    assert "Report </title><script>alert(9)</script>" in text


def test_report_csv_and_json_keep_hostile_text_inert(tmp_path: Path) -> None:
    """Exports carry the text as data: spreadsheet formulas are neutralised by the CSV writer
    (tests/unit/test_report.py::test_awkward_customer_names_and_formulas) and the JSON is
    parseable with the payload intact."""
    import json

    frame = _frame()
    frame.loc[1, "customer"] = "=HYPERLINK(\"http://evil.test\",\"x\")"
    files = build_report(frame, tmp_path, now=NOW)
    data = json.loads(files.json.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    csv_text = files.at_risk_csv.read_text(encoding="utf-8")
    assert "\n=HYPERLINK" not in csv_text and ",=HYPERLINK" not in csv_text
