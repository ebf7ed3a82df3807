"""Unit tests for the report's period comparison, per-moment indicators, cross-checks, formats
(CSV = XLSX = JSON), the stored-row loader and the progress helper.

Frames are small and hand-made so each expected figure is recomputed here independently.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentos.progress import Tracker, progress
from momentos.report import build_report
from momentos.report.build import TABLE_NAMES
from momentos.report.insights import _bounces, _spearman
from momentos.report.load import report_frame
from momentos.report.tables import customer_aliases, make_period, prepare

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _item(i: int, **overrides: object) -> dict[str, object]:
    """One stored-row-like item: ``overrides`` win."""
    row: dict[str, object] = {
        "key": f"INC{i:07d}",
        "url": f"https://snow.example/nav_to.do?uri=incident.do?sys_id={i:032d}",
        "title": f"Item {i}",
        "source": "snow",
        "platform": "servicenow",
        "kind": "incident",
        "customer": "Finance",
        "assignment_group": "Service Desk",
        "assignee": "Ana",
        "service": "ERP",
        "created": (NOW - timedelta(days=3)).isoformat(),
        "resolved": None,
        "moment": "operation",
        "experience_score": 80,
        "experience_level": "good",
        "experience_reasons": "",
        "signals": {},
    }
    row.update(overrides)
    return row


def _two_periods() -> list[dict[str, object]]:
    """Finance: 4 items now (mean 50), 4 resolved in the previous period (mean 70);
    Retail (alias of ACME Retail) on Jira: 3 now; one item resolved long ago (outside)."""
    rows = []
    for i, score in enumerate((20, 40, 60, 80)):
        level = "poor" if score < 35 else "at_risk" if score < 55 else "good"
        rows.append(_item(i, experience_score=score, experience_level=level,
                          experience_reasons="SLA breached; reopened 2 times" if score < 55
                          else ""))
    for i, score in enumerate((60, 70, 70, 80), start=10):
        rows.append(_item(i, experience_score=score, created=(NOW - timedelta(days=50)).isoformat(),
                          resolved=(NOW - timedelta(days=40)).isoformat()))
    for i, name in enumerate(("Retail", "acme retail ", "ACME Retail"), start=20):
        rows.append(_item(i, customer=name, source="jira", platform="jira", key=f"RET-{i}",
                          url=f"https://jira.example/browse/RET-{i}", experience_score=90))
    rows.append(_item(30, created=(NOW - timedelta(days=400)).isoformat(),
                      resolved=(NOW - timedelta(days=390)).isoformat(), experience_score=5,
                      experience_level="poor", experience_reasons="ancient"))
    return rows


@pytest.fixture(scope="module")
def two_periods(tmp_path_factory: pytest.TempPathFactory):
    frame = pd.DataFrame(_two_periods())
    out = tmp_path_factory.mktemp("periods")
    files = build_report(frame, out, now=NOW, customers={"ACME Retail": ["Retail"]})
    return files, frame


def test_periods_and_trend(two_periods) -> None:
    files, _ = two_periods
    cells = pd.read_csv(files.csv["customer_moment"], keep_default_na=False)
    finance = cells.set_index(["customer", "moment"]).loc[("Finance", "operation")]
    assert finance["items"] == 4 and finance["mean_score"] == 50.0
    assert finance["previous_items"] == 4 and float(finance["previous_mean_score"]) == 70.0
    assert float(finance["trend"]) == -20.0
    assert finance["at_risk"] == 2
    # The item resolved 390 days ago is in neither period.
    assert "ancient" not in files.at_risk_csv.read_text(encoding="utf-8")
    assert files.summary["items"] == 7 and files.summary["previous_items"] == 4


def test_customer_aliases_join_platforms(two_periods) -> None:
    files, _ = two_periods
    customers = pd.read_csv(files.csv["customers"], keep_default_na=False)
    assert set(customers["customer"]) == {"Finance", "ACME Retail"}
    assert customers.set_index("customer").loc["ACME Retail", "items"] == 3
    # A trend needs enough items on both sides: ACME Retail has no previous period.
    assert customers.set_index("customer").loc["ACME Retail", "trend"] == ""


def test_alias_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        customer_aliases({"A": ["x"], "B": ["X "]})


def test_period_rule_open_items_are_current() -> None:
    until = NOW - timedelta(days=10)
    frame = pd.DataFrame([
        _item(1, created=(NOW - timedelta(days=20)).isoformat()),  # open: current
        _item(2, created=(NOW - timedelta(days=20)).isoformat(),
              resolved=(NOW - timedelta(days=5)).isoformat()),  # resolved after until: current
        _item(3, created=(NOW - timedelta(days=5)).isoformat()),  # created after until: out
        _item(4, created=(NOW - timedelta(days=60)).isoformat(),
              resolved=(NOW - timedelta(days=45)).isoformat()),  # previous period
    ])
    items = prepare(frame, NOW, period=make_period(until, 28))
    assert items["period"].tolist() == [1, 1, -1, 0]
    assert items["age_days"].tolist()[:2] == [10, 10]


def test_indicators_and_not_available(tmp_path: Path) -> None:
    rows = [
        _item(1, signals={"howto": True, "chasers": 2, "lost_hours": 3.0}, title="How do I export"),
        _item(2, signals={"howto": False, "chasers": 0, "lost_hours": 1.0}),
        _item(3, moment="evolution", kind="change", signals={"caused_incidents": 1},
              resolved=(NOW - timedelta(days=1)).isoformat()),
        _item(4, moment="evolution", kind="change", signals={"caused_incidents": 0}),
        _item(5, moment="innovation", kind="idea",
              signals={"stalled_days": 30.0, "business_participants": 2}),
    ]
    files = build_report(pd.DataFrame(rows), tmp_path, now=NOW)
    table = pd.read_csv(files.csv["moment_indicators"], keep_default_na=False)
    got = table.set_index("indicator")
    value = got["value"].replace("", "nan").astype(float)
    assert value["howto_share"] == 0.5 and got.loc["howto_share", "count"] == 1
    assert value["chased_share"] == 0.5
    assert value["lost_hours"] == 4.0
    assert value["changes_with_incidents"] == 0.5
    assert value["lead_time_days"] == 2.0  # created 3 days ago, resolved 1 day ago
    assert value["stalled"] == 1.0
    assert value["business_participants"] == 2.0
    # No item carries failed_change or business_share: said so, not shown as zero.
    assert str(got.loc["failed_changes", "available"]) == "False"
    assert got.loc["failed_changes", "value"] == ""
    html = files.html.read_text(encoding="utf-8")
    assert html.count("not available: no item carries this signal") == 2


def test_pingpong_from_history_and_from_reasons(tmp_path: Path) -> None:
    assert _bounces(["Desk", "Network", "Desk", "Apps"]) == [("Network", "Desk")]
    assert _bounces(["Desk", "Desk", "Apps"]) == []
    rows = [
        _item(1, groups_path=["Desk", "Network", "Desk"], experience_score=30),
        _item(2, groups_path=["Network", "Desk", "Network"], experience_score=50),
        _item(3, experience_reasons="reassigned 3 times (ping-pong between Apps and Desk)"),
    ]
    files = build_report(pd.DataFrame(rows), tmp_path, now=NOW)
    pairs = pd.read_csv(files.csv["pingpong"], keep_default_na=False)
    records = {(r.group_a, r.group_b): r for r in pairs.itertuples()}
    assert records[("Desk", "Network")].items == 2
    assert records[("Desk", "Network")].mean_score == 40.0
    assert records[("Desk", "Network")].basis == "history"
    assert records[("Apps", "Desk")].basis == "reasons"


def test_watermelons_and_survey_agreement(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(40):
        score = int(rng.integers(0, 100))
        level = "poor" if score < 35 else "at_risk" if score < 55 else "good"
        survey = None if i % 4 == 3 else min(max(score / 100 + rng.normal(0, 0.15), 0), 1)
        rows.append(_item(i, experience_score=score, experience_level=level,
                          sla_breached=bool(i % 2), survey_score=survey))
    frame = pd.DataFrame(rows)
    files = build_report(frame, tmp_path, now=NOW)
    melons = pd.read_csv(files.csv["watermelons"], keep_default_na=False)
    expected = frame.loc[(~frame["sla_breached"]) & frame["experience_level"].isin(
        ["at_risk", "poor"])]
    assert set(melons["key"]) == set(expected["key"])
    assert files.summary["watermelons"] == len(expected)
    assert files.summary["sla_met"] == 20

    # Spearman recomputed independently: Pearson of the ranks, ranks by sorting positions.
    paired = frame.dropna(subset=["survey_score"])
    x = paired["experience_score"].rank().to_numpy()
    y = paired["survey_score"].astype(float).rank().to_numpy()
    expected_rho = float(np.corrcoef(x, y)[0, 1])
    assert files.summary["survey_pairs"] == len(paired)
    assert files.summary["survey_spearman"] == pytest.approx(expected_rho, abs=1e-3)
    assert _spearman(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    assert _spearman(np.array([1.0, 1, 1]), np.array([3.0, 2, 1])) is None


def test_weekly_trends(tmp_path: Path) -> None:
    rows = [
        _item(1, created=(NOW - timedelta(days=1)).isoformat(), experience_score=40),
        _item(2, created=(NOW - timedelta(days=2)).isoformat(), experience_score=60),
        _item(3, created=(NOW - timedelta(days=8)).isoformat(), experience_score=90),
    ]
    files = build_report(pd.DataFrame(rows), tmp_path, now=NOW)
    weekly = pd.read_csv(files.csv["weekly"], keep_default_na=False)
    assert len(weekly) == 8 * 3  # eight weeks x three moments
    ops = weekly.loc[weekly["moment"] == "operation"].set_index("week_start")
    assert ops.loc["2024-05-25", "items"] == 2 and float(ops.loc["2024-05-25", "mean_score"]) == 50.0
    assert ops.loc["2024-05-18", "items"] == 1
    assert ops["items"].sum() == 3


def test_xlsx_holds_the_csv_figures(two_periods) -> None:
    from openpyxl import load_workbook

    files, _ = two_periods
    book = load_workbook(files.xlsx, read_only=True)
    assert book.sheetnames == ["summary", *TABLE_NAMES]
    for name in TABLE_NAMES:
        csv = pd.read_csv(files.csv[name], keep_default_na=False, dtype=str)
        rows = list(book[name].iter_rows(values_only=True))
        assert list(rows[0]) == list(csv.columns), name
        width = len(csv.columns)
        # Streamed sheets may omit trailing empty cells of a row: pad them back.
        body = [list(r) + [None] * (width - len(r)) for r in rows[1:]]
        sheet = pd.DataFrame(body, columns=list(csv.columns), dtype=object)
        assert len(sheet) == len(csv), name
        for column in csv.columns:
            a = [_norm(v) for v in csv[column].tolist()]
            b = [_norm(v) for v in sheet[column].tolist()]
            assert a == b, (name, column)
    summary = {r[0]: (r[1] if len(r) > 1 else None)
               for r in book["summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["items"] == files.summary["items"]


def _norm(value: object) -> str:
    """A cell as comparable text: numbers by value, the CSV's anti-formula apostrophe dropped."""
    if value is None or value == "":
        return ""
    text = str(value).lstrip("'")
    try:
        return f"{float(text):.6g}"
    except ValueError:
        return {"True": "true", "False": "false"}.get(text, text)


def test_json_holds_the_tables(two_periods) -> None:
    files, _ = two_periods
    document = json.loads(files.json.read_text(encoding="utf-8"))
    assert document["format"] == "momentos-report/1"
    assert document["summary"]["items"] == files.summary["items"]
    assert list(document["tables"]) == list(TABLE_NAMES)
    cells = pd.read_csv(files.csv["customer_moment"], keep_default_na=False)
    assert len(document["tables"]["customer_moment"]) == len(cells)
    assert sum(r["items"] for r in document["tables"]["customer_moment"]) == cells["items"].sum()


def test_formula_text_is_inert_in_every_format(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    rows = [_item(1, title='=HYPERLINK("http://evil.test","x")', experience_score=10,
                  experience_level="poor", experience_reasons="SLA breached")]
    files = build_report(pd.DataFrame(rows), tmp_path, now=NOW)
    assert "'=HYPERLINK" in files.at_risk_csv.read_text(encoding="utf-8")
    sheet = load_workbook(files.xlsx)["at_risk"]
    cell = sheet.cell(row=2, column=12)
    assert cell.value.startswith("=HYPERLINK") and cell.data_type == "s"


def test_loader_gives_the_same_report_as_raw_rows(tmp_path: Path) -> None:
    rows = _two_periods() + [
        _item(40, signals={"howto": True, "sla_breached": False, "watermelon": True},
              experience_score=20, experience_level="poor", experience_reasons="x"),
        _item(41, signals='{"chasers": 3}', groups_path='["A", "B", "A"]'),
    ]
    raw = build_report(pd.DataFrame(rows), tmp_path / "raw", now=NOW)
    seen: list[int] = []
    loaded = report_frame(iter(rows), chunk_rows=4, on_progress=seen.append)
    assert sum(seen) == len(rows) and len(seen) == 4
    assert isinstance(loaded["customer"].dtype, pd.CategoricalDtype)
    fast = build_report(loaded, tmp_path / "fast", now=NOW)
    for name in TABLE_NAMES:
        assert raw.csv[name].read_bytes() == fast.csv[name].read_bytes(), name
    assert report_frame(iter([])).empty


def test_spanish_page_has_new_sections(tmp_path: Path) -> None:
    files = build_report(pd.DataFrame(_two_periods()), tmp_path, now=NOW, language="es")
    html = files.html.read_text(encoding="utf-8")
    for words in ("Lo que nos dice cada momento", "Sandías", "Tendencias semanales",
                  "Servicios y grupos", "comparado con los 28 días anteriores"):
        assert words in html


# --- progress ---------------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_logs_periodic_lines_off_terminal(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    logger = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"), progress(
        "backfill", total=1000, logger=logger, interval_s=10, terminal=False, clock=clock
    ) as tracker:
        for _ in range(10):
            clock.now += 4
            tracker.advance(100)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "backfill: started (1,000 items)"
    # 40 s of work with a line every 10 s at most: lines at 12, 24, 36 s.
    middle = lines[1:-1]
    assert len(middle) == 3
    assert middle[0].startswith("backfill: 300/1,000 items (30%), 25/s, about 28 s left")
    assert lines[-1] == "backfill: done, 1,000 items in 40 s"


def test_progress_says_when_a_run_stopped(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.progress.fail")
    with caplog.at_level(logging.INFO, logger="test.progress.fail"), pytest.raises(
        RuntimeError
    ), progress("sync", logger=logger, terminal=False) as tracker:
        tracker(5)
        raise RuntimeError("boom")
    assert caplog.records[-1].getMessage().startswith("sync: stopped, 5 items")


def test_progress_bar_on_a_terminal() -> None:
    stream = io.StringIO()
    with progress("report", total=4, unit="steps", terminal=True, stream=stream) as tracker:
        assert isinstance(tracker, Tracker)
        tracker.advance(4)
    assert "report" in stream.getvalue() and "4/4" in stream.getvalue()
