"""Frames in and out of enrichment: from normalized items, and from/to CSV or JSON Lines files.

Files are read as they are written: CSV cells stay text (an id ``00123`` stays ``00123``) and
JSON Lines values keep their JSON types, so every input column is written back unchanged next
to the enrich output. ``enrich_file`` streams in chunks, so memory stays flat on big exports.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import gc
import io
import itertools
import json
import math
import operator
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from momentos.enrichment.settings import ExperienceSettings, MomentsSettings
from momentos.models import Item

DEFAULT_CHUNK_ROWS = 50_000
#: Rows per worker task when a file is enriched on several processes: a worker holds one
#: chunk with its comments, signals and output (about 20 KB a row at peak), so smaller
#: chunks keep several workers well under 2 GB together.
PARALLEL_CHUNK_ROWS = 20_000
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
                {
                    "author_role": c.author_role,
                    "text": c.text,
                    "created": _iso(c.created),
                    "author": c.author,
                    "internal": c.internal,
                }
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


_scan_json = json.JSONDecoder().scan_once

try:  # a dependency; without it (a trimmed install), ``json`` reads every line
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    _fast_loads = None


def _json_record(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise TableFormatError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    except RecursionError:
        raise TableFormatError(f"{path}:{number}: not valid JSON (nested too deeply)") from None
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


#: ``json.dumps(value, ensure_ascii=False, default=_json_default, allow_nan=False)``, built
#: once: a cell at a time, building the encoder costs as much as encoding a small dict.
_cell_json = json.JSONEncoder(ensure_ascii=False, default=_json_default, allow_nan=False).encode


def to_json_text(value: Any) -> str:
    """Compact JSON text for a cell value (dict, list, …); NaN becomes null."""
    try:
        return _cell_json(value)
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
    workers: int | None = None,
    model: Any = None,
) -> int:
    """Enrich a CSV or JSON Lines file into another (formats by extension), chunk by chunk.

    Every input column is kept; the enrich output columns are added. Returns the number of
    rows written. The output is written to a temporary file and renamed at the end, so a
    failure never leaves a half-written output behind.

    JSON Lines to JSON Lines runs on ``workers`` processes (default: the CPU count, at most
    four) when the file holds more than one chunk: each worker reads its own byte range, so
    no rows travel between processes, and the parts are joined in order. Each input line is
    written back as it was, with the enrich columns appended, unless the input already has a
    column of that name. ``model`` is the learned moment model (default: the shipped one).
    """
    source, target = Path(input_path), Path(output_path)
    kind = _format_of(target)
    _format_of(source)
    partial = target.with_name(target.name + ".partial")
    try:
        if kind == "jsonl" and _format_of(source) == "jsonl" and _peek_file(source) != "[":
            count = workers if workers is not None else min(os.cpu_count() or 1, 4)
            # Ranges are found as the file is read: the workers start on the first ones while
            # the rest of a big file is still being scanned.
            found = _iter_jsonl_ranges(
                source, min(chunk_rows, PARALLEL_CHUNK_ROWS) if count > 1 else chunk_rows
            )
            head = list(itertools.islice(found, 2))
            ranges = itertools.chain(head, found)
            if count > 1 and len(head) > 1:
                rows = _enrich_jsonl_parallel(
                    source, partial, ranges, count, (moments, experience, now, model)
                )
            else:
                rows = 0
                with partial.open("w", encoding="utf-8", newline="") as handle:
                    for start, stop, first_line in ranges:
                        rows += _enrich_jsonl_range(
                            source, start, stop, first_line, handle,
                            (moments, experience, now, model),
                        )
        else:
            rows = _enrich_table(source, partial, kind, moments, experience, now, chunk_rows,
                                 model)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def _enrich_table(
    source: Path,
    partial: Path,
    kind: str,
    moments: MomentsSettings | None,
    experience: ExperienceSettings | None,
    now: datetime,
    chunk_rows: int,
    model: Any,
) -> int:
    """The general path: any readable file, one chunk at a time in this process."""
    from momentos.enrichment import enrich  # the package imports this module

    rows = 0
    with partial.open("w", encoding="utf-8", newline="") as handle:
        header_done = False
        for chunk in iter_table(source, chunk_rows):
            # A file is a population of its own: its items are the reference for "typical"
            # durations (there is no sync page whose neighbours change).
            enriched = enrich(chunk, moments, experience, now, model=model,
                              frame_is_population=True)
            if kind == "csv":
                _write_csv(enriched, handle, header=not header_done)
                header_done = True
            else:
                _write_jsonl(enriched, handle)
            rows += len(chunk)
        if kind == "csv" and not header_done:
            empty = enrich(_header_only(source), moments, experience, now, model=model)
            _write_csv(empty, handle, header=True)
    return rows


def _peek_file(path: Path) -> str:
    with path.open("r", encoding="utf-8-sig") as handle:
        return _peek(handle)


def _jsonl_ranges(path: Path, chunk_rows: int) -> list[tuple[int, int, int]]:
    """(start byte, stop byte, number of the first line) of chunks of ``chunk_rows`` lines."""
    return list(_iter_jsonl_ranges(path, chunk_rows))


def _iter_jsonl_ranges(path: Path, chunk_rows: int) -> Iterator[tuple[int, int, int]]:
    """``_jsonl_ranges``, yielded as the file is read.

    A chunk holds ``chunk_rows`` non-blank lines and ends right after the last of them (blank
    lines before the next one belong to the next chunk). Lines are measured a few megabytes
    at a time with ``map`` and ``accumulate``, without Python code per line: a million-line
    file is scanned in a fraction of a second."""
    chunk_rows = max(chunk_rows, 1)
    start = position = 0  # bytes
    counted = 0  # non-blank lines before the current batch
    numbered = 0  # lines before the current batch
    target = chunk_rows  # non-blank lines at the end of the next chunk
    first_line = 1
    with path.open("rb") as handle:
        while batch := handle.readlines(1 << 22):
            # filled[k] non-blank lines and ends[k] bytes after the batch's first k lines.
            filled = list(itertools.accumulate(
                map(operator.not_, map(bytes.isspace, batch)), initial=counted
            ))
            ends = list(itertools.accumulate(map(len, batch), initial=position))
            while filled[-1] >= target:
                k = bisect.bisect_left(filled, target)  # the line that completes the chunk
                yield start, ends[k], first_line
                start, first_line = ends[k], numbered + k + 1
                target += chunk_rows
            counted, position, numbered = filled[-1], ends[-1], numbered + len(batch)
    if position > start:
        yield start, position, first_line


def _read_jsonl_range(path: Path, start: int, stop: int, first_line: int,
                      raw_bytes: bool = False) -> tuple[pd.DataFrame, list[Any]]:
    """The records of one byte range as a frame, and their raw lines (for passthrough): as
    text, or with ``raw_bytes`` as the UTF-8 bytes they were read as (the same lines encoded,
    which spares the writer encoding them again)."""
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(stop - start)
    if start == 0 and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    # Split first, then decode line by line: decoded whole, one emoji would make the chunk's
    # text four bytes per character, to be scanned again by the split. (A newline byte is
    # never part of a multi-byte UTF-8 character, so the lines are the same.)
    pieces = data.split(b"\n")
    # Parsing builds hundreds of thousands of dicts and lists, none in a reference cycle: the
    # cyclic garbage collector would walk them all again and again for nothing (a quarter of
    # the reading time), so it waits until the chunk is read.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if _fast_loads is not None:
            parsed = _parse_jsonl_bytes(path, pieces, first_line, raw_bytes)
            if parsed is not None:
                return parsed
        try:
            lines = list(map(bytes.decode, pieces))
        except UnicodeDecodeError:
            lines = data.decode("utf-8").split("\n")  # raises, naming the chunk's position
        return _parse_jsonl_lines(path, lines, first_line, pieces if raw_bytes else None)
    finally:
        if was_enabled:
            gc.enable()


#: A run of digits long enough to be an integer beyond 64 bits, which orjson would read as a
#: float where ``json`` keeps it exact: found as nineteen zeros once every digit is a zero
#: (two passes in C; a regex scanning every position cost more than the parse).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def _parse_jsonl_bytes(path: Path, pieces: list[bytes], first_line: int, raw_bytes: bool
                       ) -> tuple[pd.DataFrame, list[Any]] | None:
    """``_parse_jsonl_lines`` with orjson, straight from the UTF-8 bytes: about half the
    reading cost of a chunk. A line orjson refuses or might read differently from ``json``
    (not an object, NaN, a lone surrogate, an integer beyond 64 bits) goes through ``json`` as
    before, so the records, the raw lines and the errors are the same. ``None`` when a line is
    not UTF-8, so that the caller's path names the problem."""
    loads = _fast_loads
    assert loads is not None
    records: list[dict[str, Any]] = []
    raw: list[Any] = []
    zeros, long_digits = _DIGITS_AS_ZERO, _LONG_DIGITS
    for number, piece in enumerate(pieces, first_line):
        record = None
        if long_digits not in piece.translate(zeros):
            try:
                record = loads(piece)
            except ValueError:
                record = None
            else:
                if type(record) is not dict:
                    record = None
        if record is None:
            if not piece.strip():
                continue  # a blank line (orjson refuses empty input)
            try:
                line = piece.decode("utf-8")
            except UnicodeDecodeError:
                return None
            record = _line_record(path, number, line.rstrip("\r"))
        records.append(record)
        if raw_bytes:
            raw.append(piece.rstrip(b"\r").strip())
        else:
            raw.append(piece.decode("utf-8").rstrip("\r").strip())
    return pd.DataFrame(records, dtype=object), raw


def _parse_jsonl_lines(path: Path, lines: list[str], first_line: int,
                       encoded: list[bytes] | None = None) -> tuple[pd.DataFrame, list[Any]]:
    """``_read_jsonl_range`` on the decoded lines; ``first_line`` numbers the first one.

    ``encoded`` (the same lines as bytes) makes the raw lines bytes. Stripped as bytes they are
    the stripped text encoded: a line that parses is a JSON object, and JSON allows only
    spaces, tabs and line breaks around it, which both strips remove alike."""
    raw: list[Any] = []
    blank: list[int] = []
    records = []
    scan = _scan_json
    as_text = encoded is None
    for number, line in enumerate(lines, first_line):
        line = line.rstrip("\r")
        if not line.strip():
            blank.append(number - first_line)
            continue
        records.append(_line_record(path, number, line, scan))
        if as_text:
            raw.append(line.strip())
    if encoded is not None:
        if blank:
            skip = set(blank)
            encoded = [piece for index, piece in enumerate(encoded) if index not in skip]
        raw = [piece.rstrip(b"\r").strip() for piece in encoded]
    return pd.DataFrame(records, dtype=object), raw


def _line_record(path: Path, number: int, line: str, scan: Any = _scan_json) -> dict[str, Any]:
    """The record of one non-blank line (``_json_record`` names a bad one)."""
    # A line that is one JSON object, edge to edge (nearly all): the decoder's scanner reads
    # it as ``json.loads`` would, without its checks around the call.
    if line[0] == "{" and line[-1] == "}":
        try:
            record, end = scan(line, 0)
        except (StopIteration, ValueError, RecursionError):
            pass
        else:
            if end == len(line) and type(record) is dict:
                return record
    return _json_record(path, number, line)


def _enrich_jsonl_range(
    path: Path, start: int, stop: int, first_line: int, handle: IO[str], job: tuple[Any, ...]
) -> int:
    """Read, enrich and write one byte range of a JSON Lines file; returns its row count."""
    from momentos.enrichment import OUTPUT_COLUMNS, enrich  # the package imports this module

    moments, experience, now, model = job
    # A chunk allocates millions of small objects (records, tokens, phrases) and frees them
    # when it is done; the cyclic garbage collector would walk them again and again on the
    # way (about 3% of the chunk's time). Collection resumes after the chunk.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        frame, raw = _read_jsonl_range(path, start, stop, first_line, raw_bytes=True)
        if frame.empty:
            return 0
        enriched = enrich(frame, moments, experience, now, model=model,
                          frame_is_population=True, signals_as_text=True)
        # An input that already carries an output column gets it replaced: rewrite whole
        # records.
        if set(OUTPUT_COLUMNS).isdisjoint(frame.columns) and all(
            line.endswith(b"}") for line in raw
        ):
            _write_jsonl_appended(raw, enriched[list(OUTPUT_COLUMNS)], handle)
        else:
            _write_jsonl(enriched, handle)
        return len(frame)
    finally:
        if was_enabled:
            gc.enable()


def _write_jsonl_appended(raw: list[str] | list[bytes], added: pd.DataFrame,
                          handle: IO[str]) -> None:
    """Each input line as it was, with the new columns appended inside its object: the input
    is neither parsed back nor re-serialised, which halves the cost of writing.

    The appended text is what ``json.dumps`` writes for ``{column: value}``, built a column at
    a time (each value's JSON text, then one template per row) instead of a dict per row.
    ``raw`` lines given as UTF-8 bytes (as read) go to a UTF-8 file as they are: only the
    appended text is encoded, not the whole line again."""
    ready = _file_ready(added, nested_as_text=False)
    names = [str(c) for c in ready.columns]
    columns = [_json_texts(ready[name]) for name in names]
    # '"moment": %s, "moment_confidence": %s, …}': the tail of ``json.dumps`` of the row.
    template = ", ".join(
        json.encoder.encode_basestring(name).replace("%", "%%") + ": %s" for name in names
    ) + "}"
    if raw and type(raw[0]) is bytes:
        buffer = _utf8_buffer(handle)
        if buffer is None:
            raw = [line.decode("utf-8") for line in raw]  # type: ignore[union-attr]
        else:
            after = ", " + template
            encoded = []
            for line, row in zip(raw, zip(*columns)):
                body = line[:-1].rstrip()
                if body.endswith(b"{"):  # type: ignore[arg-type]
                    encoded.append(body + (template % row).encode("utf-8"))
                else:
                    encoded.append(body + (after % row).encode("utf-8"))
            handle.flush()  # what was written as text goes first
            _write_encoded(buffer, encoded)
            return
    out = []
    for line, row in zip(raw, zip(*columns)):
        body = line[:-1].rstrip()
        out.append(body + (", " if not body.endswith("{") else "") + template % row)
    _write_lines(handle, out)


#: Lines per write in ``_write_lines``: a few megabytes at a time.
_LINES_PER_WRITE = 2_000


def _utf8_buffer(handle: IO[str]) -> IO[bytes] | None:
    """The binary buffer under a strict UTF-8 text file that translates no newline (files
    here are opened with ``newline=""``), where UTF-8 bytes may be written as they are; else
    ``None``."""
    buffer = getattr(handle, "buffer", None)
    encoding = (getattr(handle, "encoding", None) or "").lower().replace("-", "")
    if (
        buffer is None
        or encoding != "utf8"
        or getattr(handle, "errors", None) != "strict"
        or os.linesep != "\n"
    ):
        return None
    return buffer


def _write_lines(handle: IO[str], lines: list[str]) -> None:
    """Write each line and a newline, as ``handle.write("\\n".join(lines) + "\\n")`` would.

    A UTF-8 text file gets the lines as UTF-8 bytes, encoded one by one and joined a few
    thousand at a time: one emoji in a chunk would make a joined ``str`` of the whole chunk
    four bytes per character, and building and encoding that cost more than the rest of
    writing."""
    buffer = _utf8_buffer(handle)
    if buffer is None:
        handle.write("\n".join(lines))
        handle.write("\n")
        return
    handle.flush()  # what was written as text goes first
    for start in range(0, len(lines), _LINES_PER_WRITE):
        _write_encoded(buffer, [line.encode("utf-8")
                                for line in lines[start : start + _LINES_PER_WRITE]])


def _write_encoded(buffer: IO[bytes], lines: list[bytes]) -> None:
    """Each UTF-8 line and a newline, joined a few thousand lines at a time."""
    for start in range(0, len(lines), _LINES_PER_WRITE):
        block = lines[start : start + _LINES_PER_WRITE]
        block.append(b"")
        buffer.write(b"\n".join(block))


_value_json = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode


def _json_texts(values: pd.Series) -> list[str]:
    """Each value's JSON text as ``json.dumps(..., ensure_ascii=False)`` writes it inside a
    record, with NaN, ``pd.NA`` and ``NaT`` as null (NaN is not JSON)."""
    dtype = values.dtype
    if dtype == np.float64:
        data = values.to_numpy()
        texts = list(map(float.__repr__, data.tolist()))
        for i in np.flatnonzero(~np.isfinite(data)).tolist():
            texts[i] = "null" if math.isnan(data[i]) else _value_json(float(data[i]))
        return texts
    if dtype == np.int64:
        return list(map(int.__repr__, values.to_numpy().tolist()))
    if dtype == np.bool_:
        return ["true" if v else "false" for v in values.to_numpy().tolist()]
    string = json.encoder.encode_basestring
    return [
        string(v) if type(v) is str else _other_json(v) for v in values.tolist()
    ]


def _other_json(value: Any) -> str:
    """``_json_texts`` of one value that is not a plain string."""
    if value is None or value is pd.NA or value is pd.NaT or (
        type(value) is float and math.isnan(value)
    ):
        return "null"
    return _value_json(value)


#: The settings and model of the file being enriched, set before worker processes are forked
#: so that they inherit them once instead of unpickling the model with every chunk.
_FORKED_JOB: tuple[Any, ...] | None = None


def _worker_init() -> None:
    """Keep freed memory in the worker for the next chunk instead of handing it back.

    glibc serves big blocks (a column of a 20,000-row chunk) with fresh ``mmap`` pages and
    trims freed heap back to the system: every chunk then faults its half a gigabyte in again,
    page by page, which cost about 8 µs of system time per item. A worker's peak is the same
    either way (one chunk's working set); it just keeps it. Other C libraries: unchanged."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, (1 << 31) - 1)


def _worker_job(args: tuple[Any, ...]) -> tuple[int, str | int, int]:
    """One byte range in a worker process, written to its own part: a part file (a path), or
    one of the memory files made before the workers were forked (a slot number).

    Returns the rows, the part, and the part's size in bytes."""
    path, start, stop, first_line, part, job = args
    if job is None:
        job = _FORKED_JOB
    if isinstance(part, int):
        fd = _FORKED_SLOTS[part]
        os.lseek(fd, 0, os.SEEK_SET)  # the slot's earlier contents are overwritten in place
        with os.fdopen(os.dup(fd), "w", encoding="utf-8", newline="") as handle:
            rows = _enrich_jsonl_range(Path(path), start, stop, first_line, handle, job)
        return rows, part, os.lseek(fd, 0, os.SEEK_CUR)
    with Path(part).open("w", encoding="utf-8", newline="") as handle:
        rows = _enrich_jsonl_range(Path(path), start, stop, first_line, handle, job)
    return rows, part, Path(part).stat().st_size


#: Memory files the forked workers write their parts to (``_memory_slots``).
_FORKED_SLOTS: list[int] = []


def _memory_slots(count: int) -> list[int] | None:
    """``count`` anonymous memory files (Linux ``memfd_create``), or ``None`` where there are
    none.

    A part written to a file beside the output is written to disk once as a part and once
    more as the output: for a million items, 4 GB of dirty pages instead of 2, which cost about
    8 s of a 75 s run. A memory file never goes to disk, and the kernel frees it when the last
    process holding it exits, even after a ``kill -9``. Each slot holds one part (a few tens
    of megabytes) and is reused once its part has been appended."""
    create = getattr(os, "memfd_create", None)
    if create is None:
        return None
    slots: list[int] = []
    try:
        for n in range(count):
            slots.append(create(f"momentos-enrich-{n}", getattr(os, "MFD_CLOEXEC", 0)))
    except OSError:
        for fd in slots:
            os.close(fd)
        return None
    return slots


def _enrich_jsonl_parallel(
    source: Path, partial: Path, ranges: Iterator[tuple[int, int, int]], workers: int,
    job: tuple[Any, ...],
) -> int:
    """Byte ranges on a process pool; parts are appended to ``partial`` in input order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from momentos.enrichment.learn import default_model

    if job[3] is None:
        default_model()  # trained once here; forked workers inherit it
    global _FORKED_JOB, _FORKED_SLOTS
    methods = multiprocessing.get_all_start_methods()
    forked = "fork" in methods
    context = multiprocessing.get_context("fork" if forked else "spawn")
    in_flight = 2 * workers  # at most two ranges per worker: memory stays flat on huge files
    slots = _memory_slots(in_flight) if forked else None
    if forked:
        _FORKED_JOB = job
        _FORKED_SLOTS = slots or []
    parts: list[Path] = []
    rows = 0
    # What the workers inherit (modules, the model) lives as long as they do: frozen, the
    # garbage collector neither walks it on every full collection nor writes to its pages
    # (which would copy them into each worker). Fresh objects are collected as before.
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_worker_init) as pool, \
                partial.open("wb", buffering=0) as out:
            pending = []
            queue = iter(ranges)
            more = True
            submitted = 0
            while more or pending:
                # A slot is reused only after its part was appended: at most ``in_flight``
                # ranges are pending, and the oldest is appended before the next is sent.
                while more and len(pending) < in_flight:
                    found = next(queue, None)
                    if found is None:
                        more = False
                        break
                    start, stop, first_line = found
                    part: str | int
                    if slots:
                        part = submitted % in_flight
                    else:
                        path = partial.with_name(f"{partial.name}.{len(parts):05d}")
                        parts.append(path)
                        part = str(path)
                    submitted += 1
                    pending.append(pool.submit(
                        _worker_job,
                        (str(source), start, stop, first_line, part, None if forked else job),
                    ))
                if not pending:
                    break
                count, done, size = pending.pop(0).result()
                rows += count
                if isinstance(done, int):
                    _append_fd(slots[done], size, out)  # type: ignore[index]
                else:
                    _append_file(Path(done), out)
                    Path(done).unlink()
    finally:
        _FORKED_JOB = None
        _FORKED_SLOTS = []
        gc.unfreeze()
        for fd in slots or ():
            os.close(fd)
        for path in parts:
            path.unlink(missing_ok=True)
    return rows


def _append_file(path: Path, out: IO[bytes]) -> None:
    """Append the file at ``path`` to the unbuffered ``out`` (``_append_fd``)."""
    with path.open("rb") as piece:
        _append_fd(piece.fileno(), os.fstat(piece.fileno()).st_size, out)


def _append_fd(fd: int, size: int, out: IO[bytes]) -> None:
    """Append the first ``size`` bytes of the file open as ``fd`` to the unbuffered ``out``,
    in the kernel where it can (``os.sendfile``): the parts of a big output are gigabytes that
    need not pass through Python's buffers."""
    sent = 0
    sendfile = getattr(os, "sendfile", None)
    if sendfile is not None:
        try:
            while sent < size:
                done = sendfile(out.fileno(), fd, sent, size - sent)
                if not done:
                    break
                sent += done
        except OSError:  # not for these files here: the rest goes the plain way
            pass
    while sent < size:
        block = os.pread(fd, min(1 << 20, size - sent), sent)
        if not block:
            raise OSError(f"part ended after {sent} of {size} bytes")
        out.write(block)
        sent += len(block)


def _header_only(path: Path) -> pd.DataFrame:
    if _format_of(path) != "csv":
        return pd.DataFrame()
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    names = next(csv.reader(io.StringIO(header), delimiter=_csv_separator(path)), [])
    return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
