"""Experience score, levels and reasons."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from momentos.enrichment.score import score_experience, severities
from momentos.enrichment.settings import DEFAULT_WEIGHTS, SIGNALS, ExperienceSettings

_EXTRA = {"_open": False, "_typical_hours": np.nan, "_typical_response_hours": np.nan,
          "_kind": "", "_pingpong_groups": "", "_answered": True, "_waiting_now": False}


def _signals(rows: list[dict[str, Any]]) -> pd.DataFrame:
    defaults: dict[str, Any] = {name: np.nan for name in SIGNALS} | _EXTRA
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
@pytest.mark.parametrize(
    "signal",
    ["chasers", "reopen_count", "reassignment_count", "complaints", "unanswered_questions",
     "wait_hours", "stalled_days", "priority_raised"],
)
def test_more_of_a_bad_count_never_raises_the_score(moment: str, signal: str) -> None:
    base = {"sentiment": 0.2, "survey_score": 0.75}
    scores = _score([base | {signal: n * 10.0} for n in range(8)], moment)[
        "experience_score"
    ].tolist()
    assert scores == sorted(scores, reverse=True)


def test_more_chasers_lower_the_score() -> None:
    # Chasers weighing 30 cost n / (n + 1) of it.
    scores = _score([{"chasers": n} for n in range(5)], weights={"operation": {"chasers": 30}})[
        "experience_score"
    ].tolist()
    assert scores == [100, 85, 80, 78, 76]
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
    weights = DEFAULT_WEIGHTS["operation"]
    assert scores[0] == round(100 - 0.8 * weights["sentiment"])
    assert scores[0] < scores[1] < 100
    assert scores[2] == 100 - weights["sla_breached"] and scores[3] == 100
    # A 1/5 survey alone puts an item at risk; a 5/5 has nothing to win back.
    assert scores[4] == 50 and scores[5] == 100


def test_good_news_wins_back_at_most_half() -> None:
    out = _score([{"chasers": 1, "survey_score": 1.0}, {"chasers": 1}],
                 weights={"operation": {"chasers": 30}})
    assert out["experience_score"].tolist() == [92, 85]  # 100 - 15 + min(50, 15) / 2


def test_levels_follow_thresholds() -> None:
    rows = [
        {},
        {"survey_score": 0.3},  # 100 - 20 = 80 ... good
        {"survey_score": 0.0},  # 50: at risk
        {"survey_score": 0.0, "sla_breached": 1.0, "chasers": 3},  # poor
    ]
    out = _score(rows)
    assert out["experience_level"].tolist() == ["good", "good", "at_risk", "poor"]
    custom = _score(rows, levels={"good": 95, "fair": 70, "at_risk": 10})
    assert custom["experience_level"].tolist()[:3] == ["good", "fair", "at_risk"]


def test_weights_are_per_moment() -> None:
    row = [{"chasers": 1.0}]
    operation = _score(row, "operation")["experience_score"][0]
    evolution = _score(row, "evolution")["experience_score"][0]
    assert operation < evolution  # chasing hurts most where people wait for a fix
    heavier = _score([{"sla_breached": 1.0}], "operation",
                     weights={"operation": {"sla_breached": 60}})
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
        "low survey score (1/5); requester chased 3 times for status; reassigned 4 times"
    )


def test_reasons_in_spanish() -> None:
    out = _score(
        [
            {"chasers": 3, "reopen_count": 1, "sla_breached": 1.0},
            {"reassignment_count": 4, "sentiment": -0.25},
            {"sentiment": 0.5, "survey_score": 1.0},
        ],
        language="es",
        max_reasons=3,
        weights={"operation": {"chasers": 30, "reopen_count": 25, "sla_breached": 10}},
    )
    assert out["experience_reasons"].tolist() == [
        "el solicitante preguntó 3 veces por el estado; reabierto 1 vez; SLA incumplido",
        "reasignado 4 veces; sentimiento negativo del solicitante (-0,25)",
        (
            "sin señales negativas; valoración alta en la encuesta (5/5); "
            "sentimiento positivo del solicitante (0,5)"
        ),
    ]


def test_pingpong_is_told_inside_the_reassignment_reason() -> None:
    out = _score(
        [{"reassignment_count": 4, "pingpong": 2, "_pingpong_groups": ["Network", "Desktop"]}],
        max_reasons=2,
    )
    assert out.loc[0, "experience_reasons"] == (
        "reassigned 4 times (ping-pong between Network and Desktop)"
    )
    es = _score(
        [{"reassignment_count": 2, "pingpong": 1, "_pingpong_groups": ["Red", "Puesto"]}],
        language="es",
    )
    assert es.loc[0, "experience_reasons"] == "reasignado 2 veces (ping-pong entre Red y Puesto)"


# Each signal's reason, in both languages (weight 50 so that every one of them shows).
_PHRASES: list[tuple[dict[str, Any], str, str]] = [
    ({"participants_sentiment": -0.5}, "business participants sound negative (-0.5)",
     "los participantes de negocio se muestran negativos (-0,5)"),
    ({"complaints": 2}, "2 complaints from the business", "2 quejas del negocio"),
    ({"agent_concern": 1}, "IT's own notes flag an unhappy customer",
     "las notas de IT avisan de un cliente descontento"),
    ({"unanswered_questions": 1}, "1 question from the business left unanswered",
     "1 pregunta del negocio sin respuesta"),
    ({"wait_hours": 72.0, "_waiting_now": True}, "requester waiting 3 days for an answer from IT",
     "el solicitante lleva 3 días esperando respuesta de IT"),
    ({"wait_hours": 5.5}, "requester waited 5.5 h for an answer from IT",
     "el solicitante esperó 5,5 h una respuesta de IT"),
    ({"first_response_hours": 2.0, "_typical_response_hours": 0.25},
     "IT took 2 h to pick it up (usual: 15 min)", "IT tardó 2 h en atenderlo (lo habitual: 15 min)"),
    ({"first_response_hours": 30.0, "_typical_response_hours": 4.0, "_open": True,
      "_answered": False}, "nobody in IT has picked it up after 30 h",
     "nadie de IT lo ha atendido tras 30 h"),
    ({"resolution_hours": 96.0, "_typical_hours": 24.0, "_kind": "incident"},
     "resolved in 4 days, 4× the usual for incidents",
     "resuelto en 4 días, 4 veces lo habitual para incidencias"),
    ({"resolution_hours": 60.0, "_typical_hours": 20.0, "_open": True, "_kind": "demand"},
     "open 2 days, 3× the usual for demands", "abierto 2 días, 3 veces lo habitual para demandas"),
    ({"priority_raised": 1}, "priority raised 1 time", "prioridad subida 1 vez"),
    ({"on_hold_hours": 40.0}, "on hold waiting for the requester 40 h",
     "en espera del solicitante 40 h"),
    ({"repeat_contact": 2}, "2 earlier contacts about the same service in 14 days",
     "2 contactos previos por el mismo servicio en 14 días"),
    ({"requester_interactions": 7}, "7 messages from the requester", "7 mensajes del solicitante"),
    ({"channel_switches": 3}, "requester changed channel 3 times",
     "el solicitante cambió de canal 3 veces"),
    ({"lost_hours": 12.4}, "about 12 working hours lost", "unas 12 horas de trabajo perdidas"),
    ({"age_days": 20.0, "_open": True}, "open 20 days (target 5)", "abierto 20 días (objetivo 5)"),
    ({"caused_incidents": 1}, "1 incident on the same service after the change",
     "1 incidencia en el mismo servicio tras el cambio"),
    ({"failed_change": 1.0}, "change failed or was backed out", "cambio fallido o revertido"),
    ({"rework": 2}, "work went back 2 times to an earlier stage",
     "el trabajo volvió 2 veces a una fase anterior"),
    ({"business_participants": 1}, "little business participation (1 person)",
     "poca participación de negocio (1 persona)"),
    ({"business_share": 0.2}, "the business wrote only 20% of the comments",
     "el negocio escribió solo el 20% de los comentarios"),
    ({"stalled_days": 30.0, "_open": True}, "no activity for 30 days",
     "sin actividad desde hace 30 días"),
]


@pytest.mark.parametrize(("row", "english", "spanish"), _PHRASES)
def test_every_signal_has_a_plain_words_reason(row: dict[str, Any], english: str,
                                               spanish: str) -> None:
    name = next(k for k in row if not k.startswith("_"))
    weights = {"operation": {name: 50}}
    en = _score([row], weights=weights, max_reasons=1)
    es = _score([row], weights=weights, max_reasons=1, language="es")
    assert en.loc[0, "experience_reasons"] == english
    assert es.loc[0, "experience_reasons"] == spanish


def test_severities_are_bounded_and_signed() -> None:
    signals = _signals([{name: 1e6 for name in SIGNALS} | {"_typical_hours": 1.0,
                                                           "_typical_response_hours": 1.0}])
    sev = severities(signals, np.array(["operation"], dtype=object), ExperienceSettings())
    assert np.all(sev >= -1.0) and np.all(sev <= 1.0)
    assert sev[0, SIGNALS.index("howto")] == 0.0  # what IT learns is not a harm


def test_empty_frame() -> None:
    out = score_experience(_signals([]), np.array([], dtype=object), ExperienceSettings())
    assert len(out) == 0 and list(out.columns) == [
        "experience_score",
        "experience_level",
        "experience_reasons",
    ]
