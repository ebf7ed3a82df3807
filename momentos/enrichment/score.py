"""Experience score 0-100 (higher is better), its level, and the reasons in plain words.

Each signal moves the score by up to its weight for the item's moment (``ExperienceSettings``):

- counts saturate, so the first chaser costs most and none costs more than its weight:
  ``severity = n / (n + k)`` with k = 1 (chasers and reopens), 2.5 (reassignments);
- ``sla_breached`` costs its full weight;
- ``age_days`` costs ``1 - target / age`` of its weight once past the moment's target;
- ``sentiment`` (-1..1) and ``survey_score`` (0..1, 0.5 neutral) move it both ways.

``score = 100 - penalties + min(bonuses, penalties) / 2``, clipped to 0..100: good news can
win back at most half of what the bad news cost, so a kind "thanks" never hides three chasers,
a further negative signal never raises the score, and an item with nothing known scores
100 (momentos reports risk it can see, not risk it imagines).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from momentos.enrichment.settings import SIGNALS, ExperienceSettings
from momentos.models import MOMENTS

_SATURATION = {"chasers": 1.0, "reopen_count": 1.0, "reassignment_count": 2.5}
#: Share of the penalties that positive signals can win back.
_BONUS_SHARE = 0.5
#: Contributions smaller than this many points are noise, not a reason worth reading.
_REASON_MIN_POINTS = 1.0

_TEXTS = {
    "en": {
        "chasers": "requester chased {n} {times} for status",
        "reopen_count": "reopened {n} {times}",
        "reassignment_count": "reassigned {n} {times}",
        "sla_breached": "SLA breached",
        "sentiment-": "negative requester sentiment ({x})",
        "sentiment+": "positive requester sentiment ({x})",
        "survey_score-": "low survey score ({x}/5)",
        "survey_score+": "high survey score ({x}/5)",
        "age_open": "open {n} days (target {t})",
        "age_closed": "resolved in {n} days (target {t})",
        "none": "no negative signals",
        "once": "time",
        "many": "times",
        "decimal": ".",
    },
    "es": {
        "chasers": "el solicitante preguntó {n} {times} por el estado",
        "reopen_count": "reabierto {n} {times}",
        "reassignment_count": "reasignado {n} {times}",
        "sla_breached": "SLA incumplido",
        "sentiment-": "sentimiento negativo del solicitante ({x})",
        "sentiment+": "sentimiento positivo del solicitante ({x})",
        "survey_score-": "valoración baja en la encuesta ({x}/5)",
        "survey_score+": "valoración alta en la encuesta ({x}/5)",
        "age_open": "abierto {n} días (objetivo {t})",
        "age_closed": "resuelto en {n} días (objetivo {t})",
        "none": "sin señales negativas",
        "once": "vez",
        "many": "veces",
        "decimal": ",",
    },
}


def _moment_index(moments: np.ndarray | pd.Series) -> np.ndarray:
    """Position of each row's moment in ``MOMENTS``; anything else is judged as operation."""
    index = pd.Series(np.asarray(moments, dtype=object)).map({m: i for i, m in enumerate(MOMENTS)})
    return index.fillna(0).to_numpy(dtype=np.int64)


def contributions(
    signals: pd.DataFrame, moments: np.ndarray | pd.Series, settings: ExperienceSettings
) -> np.ndarray:
    """Points each signal adds (positive) or takes away (negative): an (n, 7) array whose
    columns follow ``settings.SIGNALS``. Missing signals contribute 0."""
    moment_index = _moment_index(moments)
    table = np.array([[settings.weights[m][s] for s in SIGNALS] for m in MOMENTS])
    weights = table[moment_index]
    targets = np.array([settings.age_target_days[m] for m in MOMENTS])[moment_index]

    def value(name: str) -> np.ndarray:
        return signals[name].to_numpy(dtype=float)

    severity = np.zeros((len(signals), len(SIGNALS)))
    for j, name in enumerate(SIGNALS):
        data = value(name)
        if name in _SATURATION:
            level = -data / (data + _SATURATION[name])
        elif name == "sentiment":
            level = data
        elif name == "survey_score":
            level = 2.0 * data - 1.0
        elif name == "sla_breached":
            level = -data
        else:  # age_days
            with np.errstate(invalid="ignore", divide="ignore"):
                level = -np.maximum(0.0, 1.0 - targets / data)
        severity[:, j] = np.nan_to_num(level, nan=0.0)
    return severity * weights


def _number(value: float, decimal: str) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    text = "0" if text in ("-0", "") else text
    return text.replace(".", decimal)


def _reason_texts(
    signals: pd.DataFrame,
    points: np.ndarray,
    targets: np.ndarray,
    language: str,
) -> np.ndarray:
    """(n, 7) object array: the phrase for each signal where it matters, else ``""``."""
    words = _TEXTS[language]
    dec = words["decimal"]
    texts = np.full(points.shape, "", dtype=object)
    is_open = signals["_open"].to_numpy(dtype=bool) if "_open" in signals else None
    for j, name in enumerate(SIGNALS):
        rows = np.flatnonzero(np.abs(points[:, j]) >= _REASON_MIN_POINTS)
        if not len(rows):
            continue
        data = signals[name].to_numpy(dtype=float)[rows].tolist()
        sign = points[rows, j] > 0
        if name in _SATURATION:
            phrases = [
                words[name].format(n=int(v), times=words["once"] if v == 1 else words["many"])
                for v in data
            ]
        elif name == "sla_breached":
            phrases = [words[name]] * len(rows)
        elif name == "sentiment":
            phrases = [
                words["sentiment+" if up else "sentiment-"].format(x=_number(v, dec))
                for v, up in zip(data, sign)
            ]
        elif name == "survey_score":
            phrases = [
                words["survey_score+" if up else "survey_score-"].format(
                    x=_number(1.0 + 4.0 * v, dec)
                )
                for v, up in zip(data, sign)
            ]
        else:
            still_open = is_open[rows] if is_open is not None else np.zeros(len(rows), bool)
            phrases = [
                words["age_open" if op else "age_closed"].format(n=round(v), t=_number(t, dec))
                for v, t, op in zip(data, targets[rows], still_open)
            ]
        texts[rows, j] = phrases
    return texts


def score_experience(
    signals: pd.DataFrame, moments: np.ndarray | pd.Series, settings: ExperienceSettings
) -> pd.DataFrame:
    """Score, level and reasons per row (positional index).

    ``experience_reasons`` lists the top ``settings.max_reasons`` negative contributors, worst
    first, joined with ``"; "``; when there are none it says so ("no negative signals" /
    "sin señales negativas") and adds the positive ones.
    """
    n = len(signals)
    points = contributions(signals, moments, settings)
    penalties = -np.minimum(points, 0.0).sum(axis=1)
    bonuses = np.maximum(points, 0.0).sum(axis=1)
    raw = 100.0 - penalties + _BONUS_SHARE * np.minimum(bonuses, penalties)
    score = np.clip(np.round(raw), 0, 100).astype(np.int64)
    levels = settings.levels
    level = np.select(
        [score >= levels.good, score >= levels.fair, score >= levels.at_risk],
        ["good", "fair", "at_risk"],
        default="poor",
    ).astype(object)

    targets = np.array([settings.age_target_days[m] for m in MOMENTS])[_moment_index(moments)]
    texts = _reason_texts(signals, points, targets, settings.language)
    rows = np.arange(n)
    k = min(settings.max_reasons, len(SIGNALS))
    worst_first = np.argsort(points, axis=1, kind="stable")[:, :k]
    best_first = np.argsort(-points, axis=1, kind="stable")[:, :k]
    negative = [
        np.where(
            points[rows, worst_first[:, j]] <= -_REASON_MIN_POINTS,
            texts[rows, worst_first[:, j]],
            "",
        )
        for j in range(k)
    ]
    positive = [
        np.where(
            points[rows, best_first[:, j]] >= _REASON_MIN_POINTS, texts[rows, best_first[:, j]], ""
        )
        for j in range(k)
    ]
    none = _TEXTS[settings.language]["none"]
    reasons = (
        [
            "; ".join(p for p in bad if p) or "; ".join([none, *(p for p in good if p)])
            for bad, good in zip(zip(*negative), zip(*positive))
        ]
        if n
        else []
    )
    return pd.DataFrame(
        {
            "experience_score": score,
            "experience_level": level,
            "experience_reasons": pd.Series(reasons, dtype=object),
        }
    )
