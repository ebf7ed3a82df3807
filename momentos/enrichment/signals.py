"""Experience signals: how the requester lived an item, one column per signal.

- ``sentiment``: requester sentiment -1..1 (``sentiment.requester_sentiment``), NaN if silent.
- ``chasers``: requester comments that ask for status ("any update?", "¿alguna novedad?").
- ``reopen_count``: from the column, else counted from state changes out of resolved/closed.
- ``reassignment_count``: from the column, else counted from ``assignment_group`` changes.
- ``sla_breached``: 1.0 / 0.0 / NaN.
- ``survey_score``: 0..1 (raw 1-5, 0-10 or 0-100 answers are rescaled), NaN when unanswered.
- ``age_days``: resolved - created, or now - created while open; NaN without a ``resolved``
  column (a file that cannot tell open from closed) or without ``created``.

All work is done column-wise: comments and history are exploded once and grouped back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from momentos.enrichment import columns as col
from momentos.enrichment import lexicon as lx
from momentos.enrichment import sentiment as sent

#: States after which a move back to anything else is a reopen (ServiceNow numbers included).
_CLOSED_STATES = frozenset(
    {"resolved", "closed", "done", "cancelled", "canceled", "complete", "completed", "6", "7"}
)
_CLOSED_STATE_LIST = sorted(_CLOSED_STATES)


def chaser_regex(extra_patterns: list[str] | tuple[str, ...] = ()) -> re.Pattern[str]:
    """The built-in English/Spanish status-chasing patterns plus ``extra_patterns``, as one
    case-insensitive regex meant for de-accented lower-case text."""
    patterns = [*lx.CHASER_PATTERNS, *(lx.deaccent(p) for p in extra_patterns)]
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def count_chasers(comments: pd.DataFrame, n: int, pattern: re.Pattern[str]) -> np.ndarray:
    """Per row: how many of the requester's comments chase status (a comment counts once)."""
    requester = comments[comments["role"] == "requester"]
    if requester.empty:
        return np.zeros(n)
    # Chasing comments are short and repeat ("any update?"): test each distinct text once.
    seen: dict[str, bool] = {}
    chasing = np.zeros(len(requester), dtype=bool)
    for i, text in enumerate(requester["text"].tolist()):
        found = seen.get(text)
        if found is None:
            plain = text if text.isascii() else text.translate(lx.DEACCENT)
            found = seen[text] = pattern.search(plain) is not None
        chasing[i] = found
    return np.bincount(requester["row"].to_numpy()[chasing], minlength=n).astype(float)


def _history_counts(history: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reassignments, reopens, rows that have any history) counted from history events."""
    has_history = np.zeros(n, dtype=bool)
    if history.empty:
        return np.zeros(n), np.zeros(n), has_history
    has_history[history["row"].to_numpy()] = True
    # The first assignment (no previous group) is routing, not a reassignment.
    moved = (history["field"] == "assignment_group") & (history["old"] != "")
    reopened = (
        (history["field"] == "state")
        & history["old"].isin(_CLOSED_STATE_LIST)
        & ~history["new"].isin(_CLOSED_STATE_LIST)
        & (history["new"] != "")
    )
    rows = history["row"].to_numpy()
    reassignments = np.bincount(rows[moved.to_numpy()], minlength=n).astype(float)
    reopens = np.bincount(rows[reopened.to_numpy()], minlength=n).astype(float)
    return reassignments, reopens, has_history


def _age_days(frame: pd.DataFrame, now: datetime | None) -> tuple[np.ndarray, np.ndarray]:
    """(age in days, open flag). Open items age until ``now``; resolved ones stop at resolved.

    Without ``now`` open items have no age; without a ``resolved`` column nothing has one.
    """
    n = len(frame)
    if col.column(frame, "resolved") is None:
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    created = col.timestamps(frame, "created")
    resolved = col.timestamps(frame, "resolved")
    is_open = resolved.isna().to_numpy()
    if now is None:
        end = resolved
    else:
        reference = pd.Timestamp(now if now.tzinfo else now.replace(tzinfo=UTC))
        end = resolved.where(resolved.notna(), reference)
    days = np.array((end - created).dt.total_seconds() / 86_400.0, dtype=float)
    days[days < 0] = np.nan  # resolved before created: bad data, not a fast resolution
    return days, is_open & ~np.isnan(days)


def compute_signals(
    frame: pd.DataFrame,
    comments: pd.DataFrame,
    history: pd.DataFrame,
    now: datetime | None,
    chasers: re.Pattern[str] | None = None,
) -> pd.DataFrame:
    """One row of signals per frame row (positional ``RangeIndex``).

    ``comments`` and ``history`` are ``columns.comments_table(frame)`` and
    ``columns.history_table(frame)``; ``chasers`` is ``chaser_regex(...)`` (built-ins when
    ``None``). Columns: the seven signals, plus ``_open`` (item still open, used for reasons).
    """
    n = len(frame)
    languages = col.text(frame, "language").map(sent.normalize_language)
    sentiment = sent.requester_sentiment(col.text(frame, "description"), comments, languages)

    history_reassign, history_reopen, has_history = _history_counts(history, n)
    reassignments = col.counts(frame, "reassignment_count")
    reassignments = np.where(np.isnan(reassignments) & has_history, history_reassign, reassignments)
    reopens = col.counts(frame, "reopen_count")
    reopens = np.where(np.isnan(reopens) & has_history, history_reopen, reopens)

    age, is_open = _age_days(frame, now)
    return pd.DataFrame(
        {
            "sentiment": np.round(sentiment, 3),
            "chasers": count_chasers(comments, n, chasers or chaser_regex()),
            "reopen_count": reopens,
            "reassignment_count": reassignments,
            "sla_breached": col.flags(frame, "sla_breached"),
            "survey_score": np.round(col.survey_scores(frame), 3),
            "age_days": np.round(age, 1),
            "_open": is_open,
        }
    )


def signal_dicts(signals: pd.DataFrame) -> list[dict[str, object]]:
    """The per-row JSON-able ``signals`` objects: counts as ints, flags as bools, NaN as null."""
    n = len(signals)

    def values(name: str, kind: type) -> list[object]:
        data = signals[name].to_numpy(dtype=float)
        present = ~np.isnan(data)
        if kind is int:
            return [int(v) if ok else None for v, ok in zip(data.tolist(), present.tolist())]
        if kind is bool:
            return [bool(v) if ok else None for v, ok in zip(data.tolist(), present.tolist())]
        return [v if ok else None for v, ok in zip(data.tolist(), present.tolist())]

    columns = {
        "sentiment": values("sentiment", float),
        "chasers": values("chasers", int),
        "reopen_count": values("reopen_count", int),
        "reassignment_count": values("reassignment_count", int),
        "sla_breached": values("sla_breached", bool),
        "survey_score": values("survey_score", float),
        "age_days": values("age_days", float),
    }
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())] if n else []
