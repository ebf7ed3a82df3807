"""Frames in and out of enrichment: from normalized items, and from/to CSV or JSON Lines files.

Files are read as they are written: CSV cells stay text (an id ``00123`` stays ``00123``) and
JSON Lines values keep their JSON types, so every input column is written back unchanged next
to the enrich output. ``enrich_file`` streams in chunks, so memory stays flat on big exports.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from momentos.enrichment.settings import ExperienceSettings, MomentsSettings
from momentos.models import Item

DEFAULT_CHUNK_ROWS = 50_000
_CSV_SUFFIXES = frozenset({".csv"})
_JSONL_SUFFIXES = frozenset({".jsonl", ".json", ".ndjson"})


class TableFormatError(ValueError):
    """A file enrichment cannot read: unknown extension, or a line that is not a JSON object."""


#: ``items_to_frame`` column order: the contract's enrich inputs first, then the rest.
ITEM_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "kind",
    "title",
    "description",
    "comments",
    "created",
    "resolved",
    "priority",
    "reopen_count",
    "reassignment_count",
    "sla_breached",
    "survey_score",
    "customer",
    "language",
    "key",
    "url",
    "platform",
    "container",
    "category",
    "labels",
    "request_type",
    "requester",
    "assignment_group",
    "assignee",
    "service",
    "state",
    "updated",
    "history",
    "fields",
)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def items_to_frame(items: list[Item]) -> pd.DataFrame:
    """One row per item with the enrich input columns (and the item's other fields).

    ``comments`` and ``history`` are lists of dicts (timestamps as ISO 8601 UTC strings),
    ``labels`` a list, ``fields`` a dict; ``created``/``resolved``/``updated`` are UTC
    datetimes; counts are nullable integers, ``sla_breached`` a nullable boolean.
    """
    records = [
        {
            "id": item.id,
            "source": item.source,
            "kind": item.kind,
            "title": item.title,
            "description": item.description,
            "comments": [
                {"author_role": c.author_role, "text": c.text, "created": _iso(c.created)}
                for c in item.comments
            ],
            "created": item.created,
            "resolved": item.resolved,
            "priority": item.priority,
            "reopen_count": item.reopen_count,
            "reassignment_count": item.reassignment_count,
            "sla_breached": item.sla_breached,
            "survey_score": item.survey_score,
            "customer": item.customer,
            "language": item.language,
            "key": item.key,
            "url": item.url,
            "platform": item.platform,
            "container": item.container,
            "category": item.category,
            "labels": list(item.labels),
            "request_type": item.request_type,
            "requester": item.requester,
            "assignment_group": item.assignment_group,
            "assignee": item.assignee,
            "service": item.service,
            "state": item.state,
            "updated": item.updated,
            "history": [
                {"field": h.field, "old": h.old, "new": h.new, "at": _iso(h.at), "by": h.by}
                for h in item.history
            ],
            "fields": dict(item.fields),
        }
        for item in items
    ]
    frame = pd.DataFrame.from_records(records, columns=list(ITEM_COLUMNS))
    for name in ("created", "resolved", "updated"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    for name in ("reopen_count", "reassignment_count"):
        frame[name] = frame[name].astype("Int64")
    frame["sla_breached"] = frame["sla_breached"].astype("boolean")
    frame["survey_score"] = frame["survey_score"].astype("float64")
    return frame


# ------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    raise TableFormatError(f"{path}: unsupported file type {suffix!r}; use .csv, .jsonl or .json")


def _csv_separator(path: Path) -> str:
    """Comma unless the header clearly uses semicolons (Excel in Spanish locales does)."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    return ";" if header.count(";") > header.count(",") else ","


def iter_table(path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Read a CSV or JSON Lines file in chunks of at most ``chunk_rows`` rows.

    CSV cells are read as text (empty cell → ``""``). JSON Lines keep their JSON values; a
    ``.json`` file holding one JSON array is accepted too (read at once). Raises
    ``TableFormatError`` (a ``ValueError``) naming the line when a line is not a JSON object.
    """
    path = Path(path)
    if _format_of(path) == "csv":
        reader = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            sep=_csv_separator(path),
            chunksize=chunk_rows,
        )
        with reader:
            yield from reader
        return
    with path.open("r", encoding="utf-8-sig") as handle:
        first = _peek(handle)
        if first == "[":
            records = json.load(handle)
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise TableFormatError(f"{path}: a JSON array must hold objects")
            for start in range(0, len(records), chunk_rows):
                yield pd.DataFrame(records[start : start + chunk_rows], dtype=object)
            return
        numbered = ((number, line) for number, line in enumerate(handle, 1) if line.strip())
        while batch := list(itertools.islice(numbered, chunk_rows)):
            yield pd.DataFrame([_json_record(path, n, line) for n, line in batch], dtype=object)


def _peek(handle: IO[str]) -> str:
    position = handle.tell()
    while True:
        char = handle.read(1)
        if not char or not char.isspace():
            handle.seek(position)
            return char


def _json_record(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise TableFormatError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    if not isinstance(record, dict):
        raise TableFormatError(f"{path}:{number}: each line must be a JSON object")
    return record


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a whole CSV or JSON Lines file (format by extension) into one frame."""
    chunks = list(iter_table(path))
    if not chunks:
        return pd.DataFrame()
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, pd.Timestamp)):
        return _iso(value.to_pydatetime() if isinstance(value, pd.Timestamp) else value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def _clean_json(value: Any) -> Any:
    """NaN is not JSON: turn it into null inside nested values."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def to_json_text(value: Any) -> str:
    """Compact JSON text for a cell value (dict, list, …); NaN becomes null."""
    try:
        return json.dumps(value, ensure_ascii=False, default=_json_default, allow_nan=False)
    except ValueError:
        return json.dumps(
            _clean_json(value), ensure_ascii=False, default=_json_default, allow_nan=False
        )


def _file_ready(frame: pd.DataFrame, nested_as_text: bool) -> pd.DataFrame:
    """Datetimes → ISO 8601 UTC text; ``signals`` (and, for CSV, every list/dict) → JSON text."""
    out = frame.copy(deep=False)
    for name in out.columns:
        values = out[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
            values.dtype
        ):
            utc = values.dt.tz_convert("UTC") if values.dt.tz else values.dt.tz_localize("UTC")
            out[name] = utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype(object)
        elif values.dtype == object and (nested_as_text or name == "signals"):
            out[name] = [
                to_json_text(v) if isinstance(v, (dict, list, tuple, np.ndarray)) else v
                for v in values
            ]
    return out


def _write_jsonl(frame: pd.DataFrame, handle: IO[str]) -> None:
    ready = _file_ready(frame, nested_as_text=False)
    names = [str(c) for c in ready.columns]
    for row in ready.itertuples(index=False, name=None):
        record = {}
        for name, value in zip(names, row):
            if isinstance(value, (pd.Timestamp, datetime)):
                value = _json_default(value)
            elif value is pd.NA or value is pd.NaT:
                value = None
            record[name] = value
        handle.write(to_json_text(record))
        handle.write("\n")


def _write_csv(frame: pd.DataFrame, handle: IO[str], header: bool) -> None:
    ready = _file_ready(frame, nested_as_text=True)
    ready.to_csv(handle, index=False, header=header, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a frame as CSV or JSON Lines (format by extension; ``.json`` is JSON Lines).

    ``signals`` is written as a JSON string in both formats; in CSV every other list or dict
    cell (comments, history, labels, fields) is JSON text too. Datetimes are ISO 8601 UTC.
    """
    path = Path(path)
    kind = _format_of(path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        if kind == "csv":
            _write_csv(frame, handle, header=True)
        else:
            _write_jsonl(frame, handle)


def enrich_file(
    input_path: str | Path,
    output_path: str | Path,
    moments: MomentsSettings | None = None,
    experience: ExperienceSettings | None = None,
    *,
    now: datetime,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """Enrich a CSV or JSON Lines file into another (formats by extension), chunk by chunk.

    Every input column is kept; the enrich output columns are added. Returns the number of
    rows written. The output is written to a temporary file and renamed at the end, so a
    failure never leaves a half-written output behind.
    """
    from momentos.enrichment import enrich  # the package imports this module

    source, target = Path(input_path), Path(output_path)
    kind = _format_of(target)
    _format_of(source)
    partial = target.with_name(target.name + ".partial")
    rows = 0
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            header_done = False
            for chunk in iter_table(source, chunk_rows):
                enriched = enrich(chunk, moments, experience, now)
                if kind == "csv":
                    _write_csv(enriched, handle, header=not header_done)
                    header_done = True
                else:
                    _write_jsonl(enriched, handle)
                rows += len(chunk)
            if kind == "csv" and not header_done:
                empty = enrich(_header_only(source), moments, experience, now)
                _write_csv(empty, handle, header=True)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def _header_only(path: Path) -> pd.DataFrame:
    if _format_of(path) != "csv":
        return pd.DataFrame()
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    names = next(csv.reader(io.StringIO(header), delimiter=_csv_separator(path)), [])
    return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
