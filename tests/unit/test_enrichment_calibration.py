"""Survey calibration (monotone map, Spearman, watermelons) and customer × moment aggregates."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from momentos.enrichment.aggregate import (
    AGGREGATE_COLUMNS,
    customer_moment_aggregates,
    top_themes,
)
from momentos.enrichment.calibration import MIN_SURVEYS, calibrate, isotonic, spearman

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def test_spearman_is_rank_correlation() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == 1.0
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert math.isnan(spearman([1, 2], [1, 2]))  # too few pairs
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))  # constant
    assert spearman([1, np.nan, 3, 4], [1, 9, 3, 4]) == 1.0  # NaN pairs dropped


def test_isotonic_is_monotone_and_pools_violators() -> None:
    xs, fitted = isotonic(np.array([1, 2, 3, 4, 4]), np.array([0.2, 0.6, 0.4, 0.9, 0.7]))
    assert xs.tolist() == [1, 2, 3, 4]
    assert fitted.tolist() == [0.2, 0.5, 0.5, 0.8]
    assert np.all(np.diff(fitted) >= 0)


def _enriched(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    score = rng.integers(0, 101, n)
    survey = np.clip(score / 100 + rng.normal(0, 0.15, n), 0, 1)
    level = np.select([score >= 75, score >= 55, score >= 35], ["good", "fair", "at_risk"],
                      "poor")
    sla = np.where(np.arange(n) % 2 == 0, False, True)
    return pd.DataFrame(
        {
            "experience_score": score,
            "experience_level": level,
            "survey_score": survey,
            "sla_breached": sla,
            "signals": [
                json.dumps({"watermelon": bool((not b) and lv in ("at_risk", "poor"))})
                for b, lv in zip(sla, level)
            ],
        }
    )


def test_calibrate_reports_spearman_a_monotone_map_and_watermelons() -> None:
    frame = _enriched(200)
    result = calibrate(frame)
    assert result.surveyed == 200 and result.usable
    assert result.spearman > 0.8
    expected = result.expected_survey(np.array([0, 50, 100]))
    assert expected[0] < expected[1] < expected[2]
    assert np.all(np.diff(result.expected) >= 0)
    risky = frame["experience_level"].isin(["at_risk", "poor"]) & ~frame["sla_breached"]
    assert result.watermelons == int(risky.sum()) and result.sla_met == 100
    assert set(result.survey_by_level) == {"good", "fair", "at_risk", "poor"}
    assert result.survey_by_level["good"] > result.survey_by_level["poor"]
    json.dumps(result.to_dict())


def test_calibrate_without_enough_surveys_says_so() -> None:
    frame = _enriched(MIN_SURVEYS - 1)
    result = calibrate(frame)
    assert not result.usable and result.scores == []
    assert np.isnan(result.expected_survey(np.array([50.0]))).all()
    # No signals column: the watermelon count comes from SLA met and the level.
    plain = calibrate(frame.drop(columns=["signals"]))
    assert plain.watermelons == result.watermelons


def _items() -> pd.DataFrame:
    rows = []
    # Marketing lives evolution badly this month, and better the month before.
    for i in range(6):
        rows.append(("Marketing", "evolution", 20 if i < 4 else 80, NOW - timedelta(days=3 + i),
                     False, "Upgrade SAP pricing module"))
    for i in range(3):
        rows.append(("Marketing", "evolution", 90, NOW - timedelta(days=40 + i), False,
                     "Report filter"))
    rows.append(("Finanzas", "operation", 95, NOW - timedelta(days=1), True, "VPN down"))
    rows.append(("", "innovation", 30, NOW - timedelta(days=2), None, "Pilot chatbot"))
    customer, moment, score, updated, sla, title = zip(*rows)
    level = ["good" if s >= 75 else "fair" if s >= 55 else "at_risk" if s >= 35 else "poor"
             for s in score]
    return pd.DataFrame(
        {
            "customer": customer,
            "moment": moment,
            "experience_score": score,
            "experience_level": level,
            "updated": pd.to_datetime(list(updated), utc=True),
            "sla_breached": pd.array(sla, dtype="boolean"),
            "title": title,
        }
    )


def test_customer_moment_aggregates_volume_trend_risk_and_themes() -> None:
    out = customer_moment_aggregates(_items(), NOW, period_days=30)
    assert list(out.columns) == list(AGGREGATE_COLUMNS)
    # Every moment for every customer, even where nothing happened.
    assert len(out) == 3 * 3
    cell = out[(out["customer"] == "Marketing") & (out["moment"] == "evolution")].iloc[0]
    assert cell["volume"] == 6 and cell["mean_score"] == 40.0
    assert cell["previous_volume"] == 3 and cell["previous_mean_score"] == 90.0
    assert cell["trend"] == -50.0
    assert cell["at_risk"] == 4 and cell["at_risk_share"] == round(4 / 6, 3)
    assert cell["watermelons"] == 4  # SLA met (False = not breached), experience poor
    assert cell["top_themes"][0] in {"upgrade sap", "sap pricing", "pricing module"}
    empty = out[(out["customer"] == "Finanzas") & (out["moment"] == "innovation")].iloc[0]
    assert empty["volume"] == 0 and math.isnan(empty["mean_score"])
    assert "(no customer)" in set(out["customer"])
    everything = customer_moment_aggregates(_items(), NOW, period_days=None)
    marketing = everything[(everything["customer"] == "Marketing")
                           & (everything["moment"] == "evolution")].iloc[0]
    assert marketing["volume"] == 9 and math.isnan(marketing["trend"])


def test_top_themes_prefers_distinctive_repeated_terms() -> None:
    risky = ["VPN drops at home", "VPN drops in the office", "Printer jam"]
    everything = risky + ["Printer toner", "Printer paper", "Laptop slow"]
    assert top_themes(risky, everything, 2) == ["vpn drops"]
    assert top_themes(["only one"], everything) == []
