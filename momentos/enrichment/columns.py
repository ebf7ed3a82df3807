"""Read the recognised enrich columns robustly, whatever shape they arrive in.

Frames come from ``items_to_frame`` (typed values, lists of dicts) or from CSV / JSON Lines files
(strings, JSON strings, numbers, nulls). Every accessor here returns a positional result (numpy
array or a Series with a fresh ``RangeIndex``) of the frame's length, and turns anything it cannot
read (``None``, NaN, wrong types) into the column's empty value instead of raising, so one bad
row never stops a batch.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

#: Texts longer than this are cut before scoring: keeps one pasted log file from stalling a batch.
MAX_TEXT_CHARS = 20_000

_ROLE_SYNONYMS = {
    "requester": "requester",
    "requestor": "requester",
    "customer": "requester",
    "caller": "requester",
    "reporter": "requester",
    "end_user": "requester",
    "agent": "agent",
    "other": "other",
}
_TRUE = frozenset({"true", "t", "yes", "y", "1", "si", "sí", "breached"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "ok", "met"})
_LIST_SPLIT = re.compile(r"[,;|]")
#: Every note momentos posts carries this (``momentos.nudges.marker``).
OWN_NOTE_MARKER = "[momentos-nudge "


def column(frame: pd.DataFrame, name: str) -> pd.Series | None:
    """The column ``name`` as a positional Series, or ``None`` when the frame lacks it.

    Duplicate column names (possible in hand-made CSVs) resolve to the first one.
    """
    if name not in frame.columns:
        return None
    values = frame[name]
    if isinstance(values, pd.DataFrame):
        values = values.iloc[:, 0]
    return values.reset_index(drop=True)


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN, NaT and ``pd.NA``; never raises on lists or dicts."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(value))
    return False


def as_text(value: Any) -> str:
    """Any cell as text: missing → ``""``, strings unchanged, everything else ``str()``."""
    if isinstance(value, str):
        return value
    if is_missing(value):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def text(frame: pd.DataFrame, name: str, limit: int = MAX_TEXT_CHARS) -> pd.Series:
    """A text column as a ``str`` Series (missing → ``""``), each value cut to ``limit`` chars."""
    values = column(frame, name)
    if values is None:
        return pd.Series([""] * len(frame), dtype=object)
    # tolist() first: iterating a pandas string (extension) array boxes every cell, ten
    # times slower than walking a list.
    return pd.Series(
        [v[:limit] if type(v) is str else as_text(v)[:limit] for v in values.tolist()],
        dtype=object,
    )


def key_text(frame: pd.DataFrame, name: str, limit: int = MAX_TEXT_CHARS) -> pd.Series:
    """``text(frame, name, limit).str.strip().str.lower()``: a column's values to compare
    (kinds, states, ids), built in one pass over the column."""
    values = column(frame, name)
    if values is None:
        return pd.Series([""] * len(frame), dtype=object)
    return pd.Series(
        [
            (v[:limit] if type(v) is str else as_text(v)[:limit]).strip().lower()
            for v in values.tolist()
        ],
        dtype=object,
    )


def numbers(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float64 (unreadable or missing → NaN)."""
    values = column(frame, name)
    if values is None:
        return np.full(len(frame), np.nan)
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return np.array(values.astype("float64"), dtype=float)  # writable copy
    # Plain ints and floats (JSON numbers) are their own cell value: no call for them.
    cells = [
        v if type(v) is int or type(v) is float else _number_cell(v) for v in values.tolist()
    ]
    parsed = pd.to_numeric(pd.Series(cells, index=values.index, dtype=object), errors="coerce")
    return np.array(parsed, dtype=float)  # writable copy: callers clean values in place


def _number_cell(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().replace(",", ".") or None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value
    return None


def counts(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A non-negative count column as float64 (negative, fractional junk or missing → NaN)."""
    values = numbers(frame, name)
    values[(values < 0) | ~np.isfinite(values)] = np.nan
    return np.floor(values)


def flags(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A yes/no column as float64: 1.0, 0.0 or NaN (accepts bools, 0/1, true/false, sí/no)."""
    values = column(frame, name)
    if values is None:
        return np.full(len(frame), np.nan)
    return np.fromiter((_flag_cell(v) for v in values), dtype=float, count=len(values))


def _flag_cell(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and not is_missing(value):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return 1.0
        if word in _FALSE:
            return 0.0
    return math.nan


def timestamps(frame: pd.DataFrame, name: str) -> pd.Series:
    """A timestamp column as ``datetime64[UTC]`` (naive values are taken as UTC)."""
    values = column(frame, name)
    if values is None:
        return pd.Series(pd.NaT, index=range(len(frame)), dtype="datetime64[us, UTC]")
    return parse_timestamps(values)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse ISO 8601 / ServiceNow / Jira timestamps or datetimes to UTC; junk → NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    # Strings (nearly all cells) inline ``_timestamp_cell``: no call per cell.
    cleaned = pd.Series(
        [(v.strip() or None) if type(v) is str else _timestamp_cell(v) for v in values.tolist()],
        index=values.index,
        dtype=object,
    )
    parsed = pd.to_datetime(cleaned, utc=True, errors="coerce", format="ISO8601")
    return parsed.reset_index(drop=True)


def _timestamp_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip() or None
    return None


def survey_scores(frame: pd.DataFrame) -> np.ndarray:
    """``survey_score`` normalized to 0..1.

    Items carry 0..1 already; files often carry the raw answer. When any value in the frame is
    above 1 the column is read on the smallest common scale that fits: 1-5, 0-10 or 0-100.
    """
    values = numbers(frame, "survey_score")
    values[values < 0] = np.nan
    top = np.nanmax(values) if np.isfinite(values).any() else 0.0
    if top > 10:
        values = values / 100.0
    elif top > 5:
        values = values / 10.0
    elif top > 1:
        values = (values - 1.0) / 4.0
    return np.clip(values, 0.0, 1.0)


def parse_json_cell(value: Any) -> Any:
    """A cell that may hold a JSON document as text: parsed when it looks like JSON."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                return json.loads(stripped)
            except ValueError:
                return value
    return value


_ROLES = frozenset({"requester", "agent", "other"})


def _role(value: Any) -> str:
    return _ROLE_SYNONYMS.get(as_text(value).strip().lower(), "other")


def comment_list(cell: Any) -> list[tuple[str, str, Any]]:
    """One ``comments`` cell as ``(author_role, text, created)`` tuples.

    Accepts a list of dicts (or ``Comment`` objects), a JSON list or object as text, or plain
    text; plain text and bare strings are the requester's, per the contract. A comment without
    a known role is ``other``: only what the requester surely wrote counts as their voice.
    """
    return [entry[:3] for entry in _comment_entries(cell)]


def comments_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every comment of every row, exploded once: ``row``, ``seq``, ``role``, ``text``,
    ``author``, ``internal`` and ``when``.

    ``row`` is the row's position; ``seq`` numbers each row's comments from 1 in time order
    (by ``created`` when every comment of the row has one, else in list order). ``author`` is
    the author's name or login when given (``""`` otherwise), ``internal`` marks work notes the
    requester never sees, and ``when`` is the UTC timestamp (NaT when unknown).
    """
    values = column(frame, "comments")
    rows: list[int] = []
    roles: list[str] = []
    texts: list[str] = []
    created: list[Any] = []
    authors: list[str] = []
    internal: list[bool] = []
    channels: list[str] = []
    cells = values.tolist() if values is not None else []
    if all(isinstance(cell, list) and all(type(c) is dict for c in cell) for cell in cells):
        # Frames from items_to_frame and JSON Lines: well-formed lists of dicts, read a field
        # at a time over every comment (list comprehensions, not appends per comment).
        entries = [entry for cell in cells for entry in cell]
        rows = np.repeat(np.arange(len(cells), dtype=np.int64),
                         [len(cell) for cell in cells]).tolist()
        roles = [role if role in _ROLES else _role(role)
                 for role in [entry.get("author_role") for entry in entries]]
        texts = [body[:MAX_TEXT_CHARS] if type(body) is str else as_text(body)
                 for body in [entry.get("text") for entry in entries]]
        created = [entry.get("created") for entry in entries]
        authors = [author if type(author) is str else "" if author is None else as_text(author)
                   for author in [entry.get("author") for entry in entries]]
        internal = [entry.get("internal") is True for entry in entries]
        channels = [channel.strip().lower() if type(channel) is str else ""
                    for channel in [entry.get("channel") for entry in entries]]
    else:
        for position, cell in enumerate(cells):
            if isinstance(cell, list) and all(type(c) is dict for c in cell):
                # Fast path for frames from items_to_frame: well-formed lists of dicts.
                for entry in cell:
                    rows.append(position)
                    role = entry.get("author_role")
                    roles.append(role if role in _ROLES else _role(role))
                    body = entry.get("text")
                    texts.append(body[:MAX_TEXT_CHARS] if type(body) is str else as_text(body))
                    created.append(entry.get("created"))
                    author = entry.get("author")
                    authors.append(author if type(author) is str else as_text(author))
                    internal.append(entry.get("internal") is True)
                    channel = entry.get("channel")
                    channels.append(channel.strip().lower() if type(channel) is str else "")
                continue
            for role, body, when, author, note, channel in _comment_entries(cell):
                rows.append(position)
                roles.append(role)
                texts.append(body[:MAX_TEXT_CHARS])
                created.append(when)
                authors.append(author)
                internal.append(note)
                channels.append(channel)
    table = pd.DataFrame(
        {
            "row": np.asarray(rows, dtype=np.int64),
            "role": pd.Series(roles, dtype=object),
            "text": pd.Series(texts, dtype=object),
            "author": pd.Series([author.strip().lower() for author in authors], dtype=object),
            "internal": np.asarray(internal, dtype=bool),
            "channel": pd.Series(channels, dtype=object),
        }
    )
    when = parse_timestamps(pd.Series(created, dtype=object))
    # momentos' own notes (at-risk nudges) are not part of the conversation: reading them
    # back would make the next sync see "IT replied" and "IT is worried" where IT did nothing.
    own = np.fromiter((OWN_NOTE_MARKER in text for text in texts), dtype=bool, count=len(texts))
    if own.any():
        table = table[~own].reset_index(drop=True)
        when = when[~own].reset_index(drop=True)
    if table.empty:
        table["seq"] = np.zeros(0, dtype=np.int64)
        table["when"] = pd.Series(pd.NaT, index=table.index, dtype="datetime64[us, UTC]")
        return table
    table["pos"] = np.arange(len(table))
    table["when"] = when.array
    dated = when.notna().groupby(table["row"]).transform("all").to_numpy()
    # Order by time only where the whole row is dated; mixing dated and undated comments
    # would invent an order, so those rows keep the order they were given in.
    seconds = (when - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    key = np.where(dated, seconds, table["pos"].to_numpy(dtype=float))
    table = table.assign(key=key).sort_values(["row", "key", "pos"], kind="stable")
    table["seq"] = table.groupby("row").cumcount().to_numpy() + 1
    return table.drop(columns=["key", "pos"]).reset_index(drop=True)


def _comment_entries(cell: Any) -> list[tuple[str, str, Any, str, bool, str]]:
    """One ``comments`` cell as ``(author_role, text, created, author, internal, channel)``
    tuples, read as ``comment_list`` describes (the slow path of ``comments_table``)."""
    cell = parse_json_cell(cell)
    if isinstance(cell, str):
        return [("requester", cell, None, "", False, "")] if cell.strip() else []
    if isinstance(cell, dict):
        cell = [cell]
    if isinstance(cell, (list, tuple, np.ndarray)):
        out = []
        for entry in cell:
            if isinstance(entry, dict):
                out.append(
                    (
                        _role(entry.get("author_role")),
                        as_text(entry.get("text")),
                        entry.get("created"),
                        as_text(entry.get("author")),
                        _flag_cell(entry.get("internal")) == 1.0,
                        as_text(entry.get("channel")).strip().lower(),
                    )
                )
            elif isinstance(entry, str):
                out.append(("requester", entry, None, "", False, ""))
            elif hasattr(entry, "text") and hasattr(entry, "author_role"):
                out.append(
                    (
                        _role(entry.author_role),
                        as_text(entry.text),
                        getattr(entry, "created", None),
                        as_text(getattr(entry, "author", "")),
                        bool(getattr(entry, "internal", False)),
                        as_text(getattr(entry, "channel", "")).strip().lower(),
                    )
                )
        return out
    if is_missing(cell):
        return []
    return [("requester", as_text(cell), None, "", False, "")]


def history_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every history event of every row: ``row``, ``field``, ``old``, ``new`` (lower-case text),
    ``shown`` (the new value as written, for reasons), ``at`` (UTC timestamp, NaT when unknown) and ``seq`` (order within the row, by time when
    every event of the row is dated, else as given)."""
    values = column(frame, "history")
    rows: list[int] = []
    fields: list[str] = []
    olds: list[str] = []
    news: list[str] = []
    shown: list[str] = []
    ats: list[Any] = []
    if values is not None:
        for position, cell in enumerate(values):
            cell = parse_json_cell(cell)
            if isinstance(cell, dict):
                cell = [cell]
            if not isinstance(cell, (list, tuple, np.ndarray)):
                continue
            for event in cell:
                if isinstance(event, dict):
                    field, old, new = event.get("field"), event.get("old"), event.get("new")
                    at = event.get("at")
                elif hasattr(event, "field"):
                    field, old, new = event.field, event.old, event.new
                    at = getattr(event, "at", None)
                else:
                    continue
                rows.append(position)
                fields.append(field.lower() if type(field) is str else as_text(field).lower())
                olds.append(old.strip().lower() if type(old) is str else as_text(old).lower())
                display = new.strip() if type(new) is str else as_text(new).strip()
                news.append(display.lower())
                shown.append(display)
                ats.append(at)
    table = pd.DataFrame(
        {
            "row": np.asarray(rows, dtype=np.int64),
            "field": pd.Series(fields, dtype=object),
            "old": pd.Series(olds, dtype=object),
            "new": pd.Series(news, dtype=object),
            "shown": pd.Series(shown, dtype=object),
        }
    )
    when = parse_timestamps(pd.Series(ats, dtype=object))
    table["at"] = when.array
    if table.empty:
        table["seq"] = np.zeros(0, dtype=np.int64)
        return table
    # Platforms list history oldest first, but files may not: sort by time where known.
    position = np.arange(len(table), dtype=float)
    dated = when.notna().groupby(table["row"]).transform("all").to_numpy()
    seconds = (when - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    table = table.assign(key=np.where(dated, seconds, position), pos=position)
    table = table.sort_values(["row", "key", "pos"], kind="stable")
    table["seq"] = table.groupby("row").cumcount().to_numpy() + 1
    return table.drop(columns=["key", "pos"]).reset_index(drop=True)


def text_list(cell: Any) -> list[str]:
    """A list-like cell (labels, multi-select) as lower-case strings.

    Accepts lists, JSON lists as text and ``"a, b; c"`` strings.
    """
    cell = parse_json_cell(cell)
    if isinstance(cell, str):
        return [part.strip().lower() for part in _LIST_SPLIT.split(cell) if part.strip()]
    if isinstance(cell, (list, tuple, set, np.ndarray)):
        out: list[str] = []
        for entry in cell:
            out.extend(field_values(entry))
        return out
    return field_values(cell)


def field_values(value: Any) -> list[str]:
    """A platform field value as lower-case strings to compare against rule values.

    Jira returns options as ``{"value": ...}`` or ``{"name": ...}``, ServiceNow reference
    fields as ``{"display_value": ..., "value": ...}``; lists hold several of them.
    """
    if isinstance(value, dict):
        out: list[str] = []
        for key in ("value", "name", "display_value", "key", "id"):
            if key in value and not isinstance(value[key], (dict, list)):
                word = as_text(value[key]).strip().lower()
                if word and word not in out:
                    out.append(word)
        return out
    if isinstance(value, (list, tuple, set, np.ndarray)):
        out = []
        for entry in value:
            out.extend(field_values(entry))
        return out
    if is_missing(value):
        return []
    if isinstance(value, bool):
        return [str(value).lower()]
    word = as_text(value).strip().lower()
    return [word] if word else []
