"""Experience score, levels and reasons."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from momentos.enrichment.score import score_experience
from momentos.enrichment.settings import SIGNALS, ExperienceSettings


def _signals(rows: list[dict[str, Any]]) -> pd.DataFrame:
    defaults: dict[str, Any] = {name: np.nan for name in SIGNALS} | {"_open": False}
    frame = pd.DataFrame([defaults | r for r in rows], columns=list(defaults))
    return frame.astype({name: float for name in SIGNALS})


def _score(rows: list[dict[str, Any]], moment: str = "operation", **settings: Any) -> pd.DataFrame:
    return score_experience(
        _signals(rows), np.array([moment] * len(rows), dtype=object), ExperienceSettings(**settings)
    )


def test_nothing_known_is_good() -> None:
    out = _score([{}])
    assert out.loc[0, "experience_score"] == 100
    assert out.loc[0, "experience_level"] == "good"
    assert out.loc[0, "experience_reasons"] == "no negative signals"


@pytest.mark.parametrize("moment", ["operation", "evolution", "innovation"])
@pytest.mark.parametrize("signal", ["chasers", "reopen_count", "reassignment_count"])
def test_more_of_a_bad_count_never_raises_the_score(moment: str, signal: str) -> None:
    base = {"sentiment": 0.2, "survey_score": 0.75}
    scores = _score([base | {signal: n} for n in range(8)], moment)["experience_score"].tolist()
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[1]


def test_more_chasers_lower_the_score() -> None:
    scores = _score([{"chasers": n} for n in range(5)])["experience_score"].tolist()
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 5
    spanish = [{"chasers": n, "sentiment": -0.3, "sla_breached": 1.0} for n in range(5)]
    assert len(set(_score(spanish, language="es")["experience_score"])) == 5


def test_sentiment_sla_and_survey_move_the_score() -> None:
    scores = _score(
        [
            {"sentiment": -0.8},
            {"sentiment": -0.2},
            {"sla_breached": 1.0},
            {"sla_breached": 0.0},
            {"survey_score": 0.0},
            {"survey_score": 1.0},
        ]
    )["experience_score"].tolist()
    assert scores[0] < scores[1] < 100
    assert scores[2] < scores[3] == 100
    assert scores[4] < scores[5] == 100


def test_good_news_wins_back_at_most_half() -> None:
    rows = [{"chasers": 3}, {"chasers": 3, "sentiment": 0.9, "survey_score": 1.0}]
    bad, mixed = _score(rows)["experience_score"].tolist()
    assert bad < mixed < 100
    assert 100 - mixed >= (100 - bad) / 2


def test_levels_follow_thresholds() -> None:
    rows = [
        {},
        {"chasers": 3, "sla_breached": 1.0},
        {"chasers": 3, "sla_breached": 1.0, "sentiment": -0.6},
        {
            "chasers": 5,
            "sla_breached": 1.0,
            "sentiment": -0.9,
            "survey_score": 0.0,
            "reopen_count": 2,
        },
    ]
    out = _score(rows)
    assert out["experience_level"].tolist() == ["good", "fair", "at_risk", "poor"]
    custom = _score(rows, levels={"good": 95, "fair": 90, "at_risk": 10})
    assert custom["experience_level"].tolist()[:2] == ["good", "at_risk"]


def test_weights_are_per_moment() -> None:
    row = [{"sla_breached": 1.0}]
    operation = _score(row, "operation")["experience_score"][0]
    innovation = _score(row, "innovation")["experience_score"][0]
    assert operation < innovation
    heavier = _score(row, "operation", weights={"operation": {"sla_breached": 60}})
    assert heavier["experience_score"][0] == 40


def test_reasons_top_three_worst_first_in_english() -> None:
    out = _score(
        [
            {
                "chasers": 3,
                "reopen_count": 2,
                "reassignment_count": 4,
                "sla_breached": 1.0,
                "sentiment": -0.6,
                "survey_score": 0.0,
            }
        ]
    )
    assert out.loc[0, "experience_reasons"] == (
        "low survey score (1/5); requester chased 3 times for status; SLA breached"
    )
    everything = _score(
        [{"chasers": 1, "reopen_count": 2, "reassignment_count": 4, "sentiment": -0.6}],
        max_reasons=7,
    )
    assert everything.loc[0, "experience_reasons"] == (
        "negative requester sentiment (-0.6); reopened 2 times; "
        "requester chased 1 time for status; reassigned 4 times"
    )


def test_reasons_in_spanish() -> None:
    out = _score(
        [
            {"chasers": 3, "reopen_count": 1, "sla_breached": 1.0},
            {"reassignment_count": 4, "sentiment": -0.25, "_open": True, "age_days": 20.0},
            {"sentiment": 0.5, "survey_score": 1.0},
        ],
        language="es",
        max_reasons=3,
    )
    assert out["experience_reasons"].tolist() == [
        "el solicitante preguntó 3 veces por el estado; SLA incumplido; reabierto 1 vez",
        (
            "reasignado 4 veces; sentimiento negativo del solicitante (-0,25); "
            "abierto 20 días (objetivo 5)"
        ),
        (
            "sin señales negativas; valoración alta en la encuesta (5/5); "
            "sentimiento positivo del solicitante (0,5)"
        ),
    ]


def test_reasons_in_english_for_age_and_positives() -> None:
    out = _score([{"age_days": 40.0}, {"sentiment": 0.4}], max_reasons=2)
    assert out["experience_reasons"].tolist() == [
        "resolved in 40 days (target 5)",
        "no negative signals; positive requester sentiment (0.4)",
    ]


def test_empty_frame() -> None:
    out = score_experience(_signals([]), np.array([], dtype=object), ExperienceSettings())
    assert len(out) == 0 and list(out.columns) == [
        "experience_score",
        "experience_level",
        "experience_reasons",
    ]
