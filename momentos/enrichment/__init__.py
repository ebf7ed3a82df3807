"""Enrichment: items in, relationship moment and experience signals out.

Pure functions on pandas DataFrames: no HTTP, no config files, no clock (``now`` is passed in).
``enrich`` adds the output columns of the contract's "enrich columns" section to any frame that
has some of the recognised input columns; ``items_to_frame``, ``read_table`` and ``enrich_file``
(in ``momentos.enrichment.frame``) build such frames from items and files.

Data flows one way: ``columns`` reads cells robustly → ``moments`` tags the moment →
``signals`` (with ``sentiment``) measures how the requester lived the item → ``score`` turns
signals into a score, a level and reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from momentos.enrichment import columns as col
from momentos.enrichment.frame import enrich_file, items_to_frame, read_table, write_table
from momentos.enrichment.learn import MomentModel, default_model
from momentos.enrichment.moments import assign_moments, classify_fallback
from momentos.enrichment.score import score_experience
from momentos.enrichment.settings import (
    ExperienceSettings,
    MomentRule,
    MomentsSettings,
    default_rules,
)
from momentos.enrichment.signals import (
    StoredNeighbours,
    chaser_regex,
    compute_signals,
    signal_dicts,
    signal_json_texts,
)
from momentos.models import MOMENTS

#: Columns ``enrich`` adds, in order. The first eight are fixed by the contract.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "moment",
    "moment_confidence",
    "moment_reason",
    "sentiment",
    "experience_score",
    "experience_level",
    "experience_reasons",
    "signals",
    "moment_rule",
    "needs_review",
)

__all__ = [
    "OUTPUT_COLUMNS",
    "ExperienceSettings",
    "MomentModel",
    "MomentRule",
    "MomentsSettings",
    "classify_fallback",
    "default_model",
    "default_rules",
    "enrich",
    "enrich_file",
    "items_to_frame",
    "read_table",
    "write_table",
]


def enrich(
    frame: pd.DataFrame,
    moments: MomentsSettings | None = None,
    experience: ExperienceSettings | None = None,
    now: datetime | None = None,
    *,
    model: MomentModel | None = None,
    context: pd.DataFrame | None = None,
    frame_is_population: bool = False,
    stored: StoredNeighbours | None = None,
    cross_context: pd.DataFrame | None = None,
    given_moments: Sequence[str | None] | None = None,
    signals_as_text: bool = False,
) -> pd.DataFrame:
    """Return ``frame`` with the enrich output columns added (input columns untouched).

    ``moments`` and ``experience`` default to the shipped settings. ``now`` is the reference
    time for the age of open items; it is required in practice (enrichment never reads the
    clock), and when ``None`` ages are left unknown. Bad cells (None, NaN, wrong types, huge
    texts) never raise: the row still gets a moment, a score and its reasons.

    ``model`` is the learned moment classifier for what no rule decides (``learn.load`` /
    ``learn.model_for`` give the instance's); ``None`` uses the shipped default model.
    Cross-item signals compare an item with others: the typical durations of its kind,
    earlier contacts from the same requester, incidents after a change. They look at
    ``context``, an optional frame of the instance's recent items (same recognised columns,
    e.g. enriched rows from the state store; never enriched nor returned), together with the
    frame. The frame alone counts only when ``frame_is_population`` says it is a whole
    population (a file, a benchmark world): a sync page is not one, its neighbours change from
    one sync to the next and the score would change, and be written again, with them. Without
    either, typical durations are the configured targets and the cross-item counts are
    unknown (null). A sync passes ``stored``, its state store's counts
    (``signals.StoredNeighbours``): repeat contacts and caused incidents then count every
    stored item, plus ``cross_context`` (rows not stored yet), and ``context`` serves the
    typical durations only.

    ``given_moments`` (one entry per row, ``None`` where not given) are moments a person set
    in the platform: they replace the rules and the model for those rows (reason "set by a
    person", confidence 1), and the row is scored with that moment's weights.

    ``signals_as_text`` gives ``signals`` as the JSON text a file holds instead of dicts
    (cheaper when the frame goes straight to a file).
    """
    moments = moments if moments is not None else MomentsSettings()
    experience = experience if experience is not None else ExperienceSettings()
    out = frame.copy(deep=False)
    n = len(frame)
    if n == 0:
        return _empty_output(out)

    comments = col.comments_table(frame)
    history = col.history_table(frame)
    tags = assign_moments(frame, moments, model if model is not None else default_model())
    if given_moments is not None:
        tags = _with_given_moments(tags, given_moments)
    moment = tags["moment"].to_numpy(dtype=object)
    signals = compute_signals(
        frame,
        comments,
        history,
        now,
        chaser_regex(experience.chaser_patterns),
        settings=experience,
        moments=moment,
        context=context,
        frame_is_population=frame_is_population,
        stored=stored,
        cross_context=cross_context,
    )
    scored = score_experience(signals, moment, experience)
    level = scored["experience_level"].to_numpy(dtype=object)
    # Watermelon: green outside (the SLA was met), red inside (the experience is at risk).
    watermelon = (signals["sla_breached"].to_numpy(dtype=float) == 0.0) & np.isin(
        level, ["at_risk", "poor"]
    )

    # Assign positionally: the caller's index may be anything, even non-unique.
    out["moment"] = tags["moment"].to_numpy(dtype=object)
    out["moment_confidence"] = tags["moment_confidence"].to_numpy(dtype=float)
    out["moment_reason"] = tags["moment_reason"].to_numpy(dtype=object)
    out["sentiment"] = signals["sentiment"].to_numpy(dtype=float)
    out["experience_score"] = scored["experience_score"].to_numpy(dtype=np.int64)
    out["experience_level"] = scored["experience_level"].to_numpy(dtype=object)
    out["experience_reasons"] = scored["experience_reasons"].to_numpy(dtype=object)
    texts = signal_json_texts(signals, {"watermelon": watermelon}) if signals_as_text else None
    out["signals"] = pd.Series(
        texts if texts is not None else signal_dicts(signals, {"watermelon": watermelon}),
        index=out.index,
        dtype=object,
    )
    out["moment_rule"] = tags["moment_rule"].to_numpy(dtype=object)
    out["needs_review"] = tags["needs_review"].to_numpy(dtype=bool)
    return out


def _with_given_moments(tags: pd.DataFrame, given: Sequence[str | None]) -> pd.DataFrame:
    values = np.asarray([g if g in MOMENTS else None for g in given], dtype=object)
    if len(values) != len(tags):
        raise ValueError(f"given_moments has {len(values)} entries for {len(tags)} rows")
    rows = np.flatnonzero(values != None)  # noqa: E711 - element-wise on an object array
    if not len(rows):
        return tags
    tags = tags.copy()
    for column, value in (
        ("moment", values[rows]),
        ("moment_confidence", 1.0),
        ("moment_reason", "set by a person in the platform"),
        ("moment_rule", "person"),
        ("needs_review", False),
    ):
        position = tags.columns.get_loc(column)
        tags.iloc[rows, position] = value
    return tags


def _empty_output(out: pd.DataFrame) -> pd.DataFrame:
    dtypes = {
        "moment": object,
        "moment_confidence": float,
        "moment_reason": object,
        "sentiment": float,
        "experience_score": np.int64,
        "experience_level": object,
        "experience_reasons": object,
        "signals": object,
        "moment_rule": object,
        "needs_review": bool,
    }
    for name in OUTPUT_COLUMNS:
        out[name] = pd.Series(dtype=dtypes[name], index=out.index)
    return out
