"""Unit tests for ``momentos.report``: files, figures, escaping, languages, empty input.

The frame is built by hand so every expected figure can be recomputed with plain pandas here,
independently of the report's own aggregation code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentos.report import ReportFiles, build_report
from momentos.report.build import safe_href

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
HOSTILE_URL = "javascript:alert(1)"
MOMENT_ORDER = {"operation": 0, "evolution": 1, "innovation": 2}

# customer, moment, score, level, reasons
_ROWS: list[tuple[object, str, int, str, str]] = [
    ("Finance", "operation", 85, "good", ""),
    ("Finance", "operation", 40, "at_risk", "reopened twice; slow first response"),
    ("Finance", "operation", 20, "poor", "reopened twice; SLA breached; requester upset"),
    ("Finance", "evolution", 72, "good", ""),
    ("Finance", "evolution", 35, "at_risk", "change rolled back"),
    ("Finance", "innovation", 90, "good", ""),
    ("Sales", "operation", 60, "fair", "slow first response"),
    ("Sales", "operation", 25, "poor", "SLA breached; reassigned 3 times"),
    ("Sales", "operation", 30, "at_risk", "SLA breached"),
    ("Sales", "evolution", 55, "fair", ""),
    ("Sales", "innovation", 45, "at_risk", "no update in 30 days; demand parked"),
    ("Sales", "innovation", 80, "good", ""),
    ("Logistics", "operation", 95, "good", ""),
    ("Logistics", "operation", 75, "good", ""),
    ("Logistics", "evolution", 15, "poor", "change rolled back; requester upset"),
    ("Logistics", "evolution", 65, "fair", ""),
    ("Logistics", "innovation", 70, "good", ""),
    (None, "operation", 33, "at_risk", "reopened twice"),
    ("", "innovation", 88, "good", ""),
    (np.nan, "evolution", 50, "fair", ""),
]


def _frame() -> pd.DataFrame:
    """Twenty items over three customers (plus blank ones), all moments, both platforms."""
    records = []
    for i, (customer, moment, score, level, reasons) in enumerate(_ROWS):
        jira = i % 3 == 0
        key = f"SD-{i}" if jira else f"INC00100{i:02d}"
        records.append({
            "source": "jira-sd" if jira else "snow-prod",
            "platform": "jira" if jira else "servicenow",
            "container": "SD" if jira else "incident",
            "key": key,
            "url": f"https://example.test/browse/{key}",
            "title": f"Item {i}",
            "customer": customer,
            "assignment_group": "Service Desk" if i % 2 else "Apps",
            "assignee": "" if i == 4 else f"agent{i % 4}",
            "service": "ERP" if i % 2 else "CRM",
            "kind": "incident",
            "created": NOW - timedelta(days=i + 1, hours=1),
            "resolved": NOW - timedelta(hours=1) if i % 5 == 0 else pd.NaT,
            "moment": moment,
            "experience_score": score,
            "experience_level": level,
            "experience_reasons": reasons,
            "sentiment": np.nan if i % 4 else -0.5,
            "signals": {"reopen_count": i % 3},
        })
    frame = pd.DataFrame.from_records(records)
    frame.loc[2, "title"] = HOSTILE_TITLE
    frame.loc[7, "url"] = HOSTILE_URL
    return frame


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportFiles, pd.DataFrame]:
    """The English report of ``_frame()``, built once for the module."""
    frame = _frame()
    out = tmp_path_factory.mktemp("report_en") / "nested" / "out"
    return build_report(frame, out, now=NOW), frame


def _expected_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """customer x moment figures recomputed from scratch with pandas."""
    data = frame.assign(
        customer=frame["customer"].fillna("").replace("", "(no customer)"),
        risky=frame["experience_level"].isin(["at_risk", "poor"]),
    )
    table = data.groupby(["customer", "moment"]).agg(
        items=("key", "size"), mean_score=("experience_score", "mean"), at_risk=("risky", "sum")
    ).reset_index()
    table["mean_score"] = table["mean_score"].round(1)
    return table


def test_files_exist(built: tuple[ReportFiles, pd.DataFrame]) -> None:
    files, _ = built
    for path in (files.html, files.customer_moment_csv, files.at_risk_csv):
        assert path.is_file() and path.stat().st_size > 0
    assert files.html.name == "report.html"


def test_customer_moment_csv_figures(built: tuple[ReportFiles, pd.DataFrame]) -> None:
    files, frame = built
    got = pd.read_csv(files.customer_moment_csv, keep_default_na=False)
    assert list(got.columns) == [
        "customer", "moment", "items", "mean_score", "at_risk", "top_reasons",
        "previous_items", "previous_mean_score", "trend", "watermelons",
    ]
    expected = _expected_cells(frame)
    merged = got.merge(expected, on=["customer", "moment"], suffixes=("", "_exp"),
                       how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged
    assert (merged["items"] == merged["items_exp"]).all()
    assert np.allclose(merged["mean_score"], merged["mean_score_exp"])
    assert (merged["at_risk"] == merged["at_risk_exp"]).all()
    assert got["items"].sum() == len(frame)

    # Sorted by customer ("(no customer)" last), then operation/evolution/innovation.
    real = got.loc[got["customer"] != "(no customer)"]
    assert list(real["customer"]) == sorted(real["customer"])
    assert got["customer"].iloc[-1] == "(no customer)"
    for _, block in got.groupby("customer"):
        order = block["moment"].map(MOMENT_ORDER).tolist()
        assert order == sorted(order)


def test_top_reasons(built: tuple[ReportFiles, pd.DataFrame]) -> None:
    files, _ = built
    got = pd.read_csv(files.customer_moment_csv, keep_default_na=False).set_index(
        ["customer", "moment"]
    )
    # Finance operation: "reopened twice" x2 first, then the singles alphabetically.
    assert got.loc[("Finance", "operation"), "top_reasons"] == (
        "reopened twice; SLA breached; requester upset"
    )
    assert got.loc[("Sales", "operation"), "top_reasons"] == (
        "SLA breached; reassigned 3 times"
    )
    # Reasons of items that are not at risk do not count.
    assert got.loc[("Logistics", "operation"), "top_reasons"] == ""
    assert "slow first response" not in got.loc[("Sales", "operation"), "top_reasons"].split("; ")[:1]


def test_at_risk_csv(built: tuple[ReportFiles, pd.DataFrame]) -> None:
    files, frame = built
    got = pd.read_csv(files.at_risk_csv, keep_default_na=False)
    assert list(got.columns) == [
        "key", "url", "source", "customer", "moment", "experience_score", "experience_level",
        "experience_reasons", "assignee", "assignment_group", "age_days", "title",
    ]
    risky = frame.loc[frame["experience_level"].isin(["at_risk", "poor"])]
    assert len(got) == len(risky)
    assert set(got["key"]) == set(risky["key"])
    assert got["experience_score"].is_monotonic_increasing
    assert got["experience_level"].isin(["at_risk", "poor"]).all()
    # Age: to resolution when resolved, else to now; whole days.
    row1 = got.set_index("key").loc["INC0010001"]
    assert row1["age_days"] == 2  # open, created 2 days 1 hour ago
    row10 = got.set_index("key").loc["INC0010010"]
    assert row10["age_days"] == 11  # created 11 days 1 hour ago, resolved 1 hour ago


def test_hostile_text_is_escaped(built: tuple[ReportFiles, pd.DataFrame]) -> None:
    files, _ = built
    html = files.html.read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert HOSTILE_TITLE not in html
    assert "<img" not in html
    assert "<script" not in html.lower()


def test_only_item_links_leave_the_page(built: tuple[ReportFiles, pd.DataFrame]) -> None:
    files, frame = built
    html = files.html.read_text(encoding="utf-8")
    # No element loads anything: no src attribute on any tag (escaped text does not count).
    assert not re.search(r"""<[^>]*\ssrc\s*=""", html, re.IGNORECASE)
    assert "@import" not in html
    assert not re.search(r"url\((?!#)", html), "only in-page references such as clip paths"
    hrefs = re.findall(r"""\bhref\s*=\s*["']([^"']*)["']""", html, re.IGNORECASE)
    # The one data: URL is the empty favicon that stops browsers asking the network for one.
    assert hrefs.count("data:,") == 1
    external = [h for h in hrefs if not h.startswith("#") and h != "data:,"]
    assert external, "the at-risk list links its items"
    allowed = set(frame["url"]) - {HOSTILE_URL}
    assert set(external) <= allowed
    assert HOSTILE_URL not in hrefs
    assert 'href="javascript' not in html.lower()
    # Beyond the item links and the SVG namespace names, no address appears at all.
    rest = re.sub(r'\bhref="https?://[^"]*"', "", html)
    rest = re.sub(r'\bxmlns(:\w+)?="http://www\.w3\.org/[^"]*"', "", rest)
    assert "http:" not in rest and "https:" not in rest
    # The item with the unsafe url is still listed, as plain text.
    assert ">INC0010007<" in html


def test_svg_chart_is_inline(built: tuple[ReportFiles, pd.DataFrame]) -> None:
    files, _ = built
    html = files.html.read_text(encoding="utf-8")
    assert html.count("<svg") == 3  # scores, levels, weekly trends
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_matrix_and_labels_in_english(built: tuple[ReportFiles, pd.DataFrame]) -> None:
    files, _ = built
    html = files.html.read_text(encoding="utf-8")
    assert '<html lang="en">' in html
    for word in ("Customer 360", "Operation", "Evolution", "Innovation", "How to read"):
        assert word in html
    for customer in ("Finance", "Sales", "Logistics", "(no customer)"):
        assert customer in html
    assert "needs attention" in html


def test_spanish_labels(tmp_path: Path) -> None:
    files = build_report(_frame(), tmp_path, now=NOW, language="es", title="Informe")
    html = files.html.read_text(encoding="utf-8")
    assert '<html lang="es">' in html
    for word in ("Cliente 360", "Operación", "Evolución", "Innovación", "Cómo leer",
                 "(sin cliente)", "en riesgo"):
        assert word in html
    assert "Customer 360" not in html
    # The CSV files stay in the English contract whatever the page language.
    cells = pd.read_csv(files.customer_moment_csv, keep_default_na=False)
    assert "(no customer)" in set(cells["customer"])
    assert set(cells["moment"]) == {"operation", "evolution", "innovation"}


def test_unknown_language_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="language"):
        build_report(_frame(), tmp_path, now=NOW, language="xx")


def test_empty_frame_writes_a_valid_report(tmp_path: Path) -> None:
    files = build_report(pd.DataFrame(), tmp_path / "empty", now=NOW)
    html = files.html.read_text(encoding="utf-8")
    assert html.lstrip().startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "no data" in html
    cells = pd.read_csv(files.customer_moment_csv)
    risky = pd.read_csv(files.at_risk_csv)
    assert cells.empty and list(cells.columns)[:2] == ["customer", "moment"]
    assert risky.empty and risky.columns[0] == "key"


def test_empty_frame_with_columns(tmp_path: Path) -> None:
    files = build_report(_frame().iloc[0:0], tmp_path, now=NOW, language="es")
    assert "no hay datos" in files.html.read_text(encoding="utf-8")


def test_no_at_risk_items(tmp_path: Path) -> None:
    frame = _frame()
    frame = frame.loc[~frame["experience_level"].isin(["at_risk", "poor"])]
    files = build_report(frame, tmp_path, now=NOW)
    html = files.html.read_text(encoding="utf-8")
    assert "No customer has items at risk" in html
    assert pd.read_csv(files.at_risk_csv).empty


def test_awkward_customer_names_and_formulas(tmp_path: Path) -> None:
    """Markup, mathtext dollars and spreadsheet formulas in ticket text stay inert."""
    frame = _frame()
    frame.loc[0:3, "customer"] = "R&D <b>$x$</b> $"
    frame.loc[1, "title"] = "=HYPERLINK(\"http://evil.test\")"
    files = build_report(frame, tmp_path, now=NOW)
    html = files.html.read_text(encoding="utf-8")
    assert "R&amp;D &lt;b&gt;$x$&lt;/b&gt; $" in html
    assert "<b>" not in html
    risky = pd.read_csv(files.at_risk_csv, keep_default_na=False).set_index("key")
    assert risky.loc["INC0010001", "title"].startswith("'=")


def test_output_is_deterministic(tmp_path: Path) -> None:
    first = build_report(_frame(), tmp_path / "a", now=NOW)
    second = build_report(_frame(), tmp_path / "b", now=NOW)
    assert first.html.read_bytes() == second.html.read_bytes()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.service-now.com/incident.do?sys_id=1", True),
        ("http://jira.local:8080/browse/SD-1", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html,<b>x</b>", False),
        ("/browse/SD-1", False),
        ("https://", False),
        ("https://host/a b", False),
        ("", False),
    ],
)
def test_safe_href(url: str, expected: bool) -> None:
    assert (safe_href(url) != "") is expected


def test_missing_columns_and_moments(tmp_path: Path) -> None:
    """Only score, level and moment present: blanks are bucketed, not dropped or crashed on."""
    frame = pd.DataFrame({
        "experience_score": [10, 80, np.nan],
        "experience_level": ["poor", "good", None],
        "moment": ["operation", " Evolution ", None],
    })
    files = build_report(frame, tmp_path, now=NOW)
    cells = pd.read_csv(files.customer_moment_csv, keep_default_na=False)
    assert list(cells["moment"]) == ["operation", "evolution", "(no moment)"]
    assert set(cells["customer"]) == {"(no customer)"}
    assert cells["items"].sum() == 3
    risky = pd.read_csv(files.at_risk_csv, keep_default_na=False)
    assert list(risky["experience_score"]) == [10]


def test_moment_without_items_keeps_its_column(tmp_path: Path) -> None:
    frame = _frame()
    frame = frame.loc[frame["moment"] != "innovation"]
    html = build_report(frame, tmp_path, now=NOW).html.read_text(encoding="utf-8")
    assert "Innovation" in html  # the empty column is itself a finding


def test_levels_follow_enrichment_thresholds(tmp_path: Path) -> None:
    """Mean scores are coloured with the thresholds the items were levelled with."""
    frame = _frame().loc[lambda f: f["customer"] == "Logistics"]  # operation mean 85.0
    default = build_report(frame, tmp_path / "a", now=NOW).html.read_text(encoding="utf-8")
    strict = build_report(
        frame, tmp_path / "b", now=NOW, levels={"good": 90, "fair": 80, "at_risk": 60}
    ).html.read_text(encoding="utf-8")
    assert '<span class="score lvl-good">85.0</span>' in default
    assert '<span class="score lvl-fair">85.0</span>' in strict
    assert "good ≥ 90" in strict
    with pytest.raises(ValueError, match="descend"):
        build_report(frame, tmp_path / "c", now=NOW, levels={"good": 10})
