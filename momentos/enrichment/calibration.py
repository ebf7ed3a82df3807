"""Does the experience score predict what requesters answer in surveys?

Surveys reach only a small share of items; the score is computed for all of them. Where both
exist, ``calibrate`` measures the rank (Spearman) correlation between score and survey answer,
fits a monotone (isotonic) map from score to the expected survey answer, and counts the
"watermelons": items green outside (SLA met) but red inside (experience at risk or poor).

A monotone map keeps the score's order (a higher score never predicts a worse survey), so it
can be shown next to the score ("a score of 40 usually gets 2.1/5 here") without re-ranking
anything. It is fitted per instance, from that instance's own surveys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from momentos.enrichment import columns as col

#: Fewer surveyed items than this and the calibration says it cannot tell.
MIN_SURVEYS = 20


def spearman(a: np.ndarray | pd.Series, b: np.ndarray | pd.Series) -> float:
    """Spearman rank correlation of two aligned arrays (pairs with a NaN are dropped); NaN
    when fewer than three pairs or either side is constant."""
    x = pd.Series(np.asarray(a, dtype=float))
    y = pd.Series(np.asarray(b, dtype=float))
    both = x.notna() & y.notna()
    if both.sum() < 3 or x[both].nunique() < 2 or y[both].nunique() < 2:
        return float("nan")
    return float(x[both].rank().corr(y[both].rank()))


def isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators fit of a non-decreasing step function of ``x`` to ``y``.

    Returns the breakpoints (distinct x, ascending) and the fitted value at each. Plain numpy:
    the fit runs once per report on at most a few thousand surveys.
    """
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    # Average y over equal x first: ties must get one value.
    ux, start = np.unique(xs, return_index=True)
    sums = np.add.reduceat(ys, start)
    counts = np.diff(np.append(start, len(xs))).astype(float)
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for total, count in zip((sums / counts).tolist(), counts.tolist()):
        values.append(total)
        weights.append(count)
        sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            v = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            size = sizes[-2] + sizes[-1]
            del values[-1], weights[-1], sizes[-1]
            values[-1], weights[-1], sizes[-1] = v, w, size
    fitted = np.repeat(np.asarray(values), np.asarray(sizes))
    return ux, fitted


@dataclass
class Calibration:
    """The score → survey relationship measured on one instance's surveyed items."""

    surveyed: int
    spearman: float
    #: Isotonic map: breakpoints on the score and the expected survey (0..1) at each.
    scores: list[float] = field(default_factory=list)
    expected: list[float] = field(default_factory=list)
    watermelons: int = 0
    sla_met: int = 0
    #: Mean survey answer (0..1) per experience level, where there are answers.
    survey_by_level: dict[str, float] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Enough surveys to trust the map."""
        return self.surveyed >= MIN_SURVEYS and len(self.scores) > 0

    def expected_survey(self, scores: np.ndarray | pd.Series) -> np.ndarray:
        """Expected survey answer (0..1) for each score; NaN when the calibration is unusable.

        Between breakpoints the map is interpolated linearly; outside them it is flat.
        """
        values = np.asarray(scores, dtype=float)
        if not self.usable:
            return np.full(values.shape, np.nan)
        return np.interp(values, np.asarray(self.scores), np.asarray(self.expected))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (for the report and the state store)."""
        return {
            "surveyed": self.surveyed,
            "spearman": None if np.isnan(self.spearman) else round(self.spearman, 3),
            "scores": self.scores,
            "expected": [round(v, 3) for v in self.expected],
            "watermelons": self.watermelons,
            "sla_met": self.sla_met,
            "survey_by_level": {k: round(v, 3) for k, v in self.survey_by_level.items()},
        }


def _signal(enriched: pd.DataFrame, name: str) -> np.ndarray:
    """One signal of every row, read from the ``signals`` column (dicts or JSON text)."""
    cells = col.column(enriched, "signals")
    if cells is None:
        return np.full(len(enriched), np.nan)
    out = np.full(len(enriched), np.nan)
    for i, cell in enumerate(cells):
        if isinstance(cell, str):
            try:
                cell = json.loads(cell)
            except ValueError:
                continue
        if isinstance(cell, dict):
            value = cell.get(name)
            if isinstance(value, (bool, int, float)):
                out[i] = float(value)
    return out


def calibrate(enriched: pd.DataFrame) -> Calibration:
    """Measure and fit the score → survey relationship on an enriched frame.

    Reads ``experience_score``, ``experience_level``, ``survey_score`` (any scale; normalized
    to 0..1 as enrichment does) and ``sla_breached``; the watermelon count comes from the
    ``signals`` flag when present, else from SLA met + level at_risk/poor.
    """
    score = col.numbers(enriched, "experience_score")
    survey = col.survey_scores(enriched)
    level = col.key_text(enriched, "experience_level")
    both = ~np.isnan(score) & ~np.isnan(survey)
    rho = spearman(score[both], survey[both])
    breakpoints: list[float] = []
    expected: list[float] = []
    if both.sum() >= MIN_SURVEYS:
        xs, fitted = isotonic(score[both], survey[both])
        # Keep only where the step function changes (each block's first and last score).
        change = np.flatnonzero(np.diff(fitted) != 0)
        keep = np.unique(np.concatenate([[0, len(xs) - 1], change, change + 1]))
        breakpoints, expected = xs[keep].tolist(), fitted[keep].tolist()
    flagged = _signal(enriched, "watermelon")
    sla = col.flags(enriched, "sla_breached")
    at_risk = level.isin(["at_risk", "poor"]).to_numpy()
    if np.isnan(flagged).all():
        flagged = ((sla == 0.0) & at_risk).astype(float)
    by_level = (
        pd.DataFrame({"level": level[both], "survey": survey[both]})
        .groupby("level")["survey"]
        .mean()
        .to_dict()
        if both.any()
        else {}
    )
    return Calibration(
        surveyed=int(both.sum()),
        spearman=rho,
        scores=breakpoints,
        expected=expected,
        watermelons=int(np.nansum(flagged)),
        sla_met=int((sla == 0.0).sum()),
        survey_by_level={str(k): float(v) for k, v in by_level.items()},
    )
