"""Stored item rows → the compact frame the report reads, in bounded memory.

The state store hands back one dict per processed item (the enriched row, with its ``signals``
dict). A million such dicts held at once, each with a thirty-key ``signals`` dict, would take
several gigabytes; the report needs a dozen signals, the grouping columns and, only for the few
items it lists, their key, link, title and owner. So rows are consumed in chunks, each chunk is
reduced to exactly that (categoricals for repeated text, float columns for the signals), and the
chunks are joined at the end. The result is a valid input for
:func:`momentos.report.build_report` (see :func:`momentos.report.tables.prepare`).
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from momentos.report.tables import AT_RISK_LEVELS, REPORT_SIGNALS, group_path

#: Rows converted at a time: large enough for vectorised conversion to pay off, small enough
#: that the chunk's dicts are a few tens of megabytes.
CHUNK_ROWS = 50_000

#: Repeated text: stored as categoricals (a few bytes a row whatever the text length).
_GROUPS: tuple[str, ...] = (
    "source", "platform", "customer", "assignment_group", "service", "moment", "kind",
    "experience_level", "experience_reasons",
)
#: Shown only for listed items (at risk, or how-to questions mined for themes).
_DETAILS: tuple[str, ...] = ("key", "url", "title", "assignee")
_TIMES: tuple[str, ...] = ("created", "resolved")
#: Top-level row fields that stand in for a signal missing from the ``signals`` dict.
_TOP_LEVEL = ("sla_breached", "survey_score")


def report_frame(
    rows: Iterable[Mapping[str, Any]],
    *,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The report's frame from stored rows (dicts as ``StateStore.iter_items`` yields them).

    ``on_progress`` is called with the number of rows converted after each chunk (a
    :class:`momentos.progress.Tracker` fits). Missing keys and odd values never raise.
    """
    iterator = iter(rows)
    parts: list[pd.DataFrame] = []
    # Millions of short-lived dicts would trigger the cyclic garbage collector over and over
    # (each pass walks every live object); rows hold no cycles, reference counting frees them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        while True:
            chunk = list(islice(iterator, chunk_rows))
            if not chunk:
                break
            parts.append(_convert(chunk))
            if on_progress is not None:
                on_progress(len(chunk))
            del chunk  # let the dicts go before the next chunk is read
    finally:
        if collecting:
            gc.enable()
    if not parts:
        return pd.DataFrame()
    return _concat(parts)


def _convert(chunk: list[Mapping[str, Any]]) -> pd.DataFrame:
    """One chunk of row dicts as a compact frame."""
    columns: dict[str, Any] = {}
    for name in _GROUPS:
        columns[name] = pd.Categorical([_text(row.get(name)) for row in chunk])
    columns["experience_score"] = _numbers([row.get("experience_score") for row in chunk])
    for name in _TIMES:
        columns[name] = pd.to_datetime(
            pd.Series([row.get(name) for row in chunk], dtype=object),
            utc=True, errors="coerce", format="ISO8601",
        )
    signals = [_signals(row.get("signals")) for row in chunk]
    for name in REPORT_SIGNALS:
        values = _numbers([s.get(name) for s in signals])
        if name in _TOP_LEVEL:
            top = _numbers([row.get(name) for row in chunk])
            values = np.where(np.isnan(values), top, values)
        columns[f"signals.{name}"] = values
    # Details only where the report can show them; None elsewhere costs one pointer a row.
    levels = columns["experience_level"]
    shown = np.asarray(levels.isin(AT_RISK_LEVELS)) | (columns["signals.howto"] == 1.0)
    for name in _DETAILS:
        columns[name] = np.array(
            [_text(row.get(name)) if keep else None for row, keep in zip(chunk, shown)],
            dtype=object,
        )
    if any("groups_path" in row for row in chunk):
        paths = [group_path(row.get("groups_path")) for row in chunk]
        columns["groups_path"] = np.array(paths + [None], dtype=object)[:-1]
    return pd.DataFrame(columns)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Join the chunks, merging each categorical's categories instead of falling to text."""
    if len(parts) == 1:
        return parts[0]
    merged: dict[str, Any] = {}
    names = list(dict.fromkeys(name for part in parts for name in part.columns))
    for name in names:
        if name in _GROUPS:
            merged[name] = union_categoricals([part[name] for part in parts])
        elif name == "groups_path":
            merged[name] = np.concatenate([
                part[name].to_numpy(dtype=object) if name in part
                else np.full(len(part), None, dtype=object)
                for part in parts
            ])
        else:
            merged[name] = pd.concat([part[name] for part in parts], ignore_index=True)
    return pd.DataFrame(merged)


def _text(value: Any) -> str:
    """Any cell as text; missing → ``""``."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _numbers(values: list[Any]) -> np.ndarray:
    """Numbers and booleans as float64 (None → NaN); anything odd coerced or NaN."""
    try:
        return np.array([np.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
            dtype=float, na_value=np.nan
        )


def _signals(value: Any) -> Mapping[str, Any]:
    """The signals dict of a row (a JSON text is parsed); ``{}`` when there is none."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}
