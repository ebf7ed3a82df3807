"""The report's tables as files: one CSV per table, one XLSX workbook, one JSON document.

Three formats for three kinds of readers: CSV for scripts and quick looks, the workbook (a sheet
per table, same rows and figures as the CSV files) for people who live in Excel, JSON for other
tools. Column names and codes stay in English in all three (they are the data contract; only the
HTML page is translated).

Ticket text in a spreadsheet is an attack surface: a title such as ``=HYPERLINK(...)`` would be a
live formula. CSV cells starting with a formula character get a leading apostrophe (the
spreadsheet convention for "text"); workbook cells are written as typed text cells, which no
spreadsheet evaluates, and characters XML cannot hold are dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Leading characters that make a spreadsheet evaluate a CSV cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Columns holding free text typed by people (ticket fields), neutralised against formulas.
FREE_TEXT = frozenset({
    "customer", "title", "assignee", "assignment_group", "experience_reasons", "top_reasons",
    "name", "service", "group_a", "group_b", "themes", "key", "example",
})
#: Widest column in the workbook, in characters: titles and reasons wrap beyond this.
_MAX_WIDTH = 60


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` as UTF-8 CSV with free-text cells made inert for spreadsheets.

    Figures are written as they are in the table (already rounded by the builder), so the
    CSV, the workbook and the JSON hold the same numbers.
    """
    safe = table.copy()
    for column in FREE_TEXT & set(safe.columns):
        safe[column] = inert(safe[column])
    safe.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def inert(column: pd.Series) -> pd.Series:
    """Text that a spreadsheet will not evaluate: a leading ``'`` before formula characters."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories.astype("string")
        if not categories.str.startswith(FORMULA_START).any():
            return column  # the usual case, decided on the distinct values only
    text = column.astype("string").fillna("")
    # A leading apostrophe is how spreadsheets mark "text, not a formula".
    return text.mask(text.str.startswith(FORMULA_START), "'" + text)


def write_xlsx(
    tables: Mapping[str, pd.DataFrame], summary: Mapping[str, Any], path: Path
) -> None:
    """One workbook: a ``summary`` sheet, then one sheet per table, named as the CSV files.

    Written in openpyxl's streaming (write-only) mode so memory stays flat however long the
    lists are. Text cells are typed as strings, never formulas.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    bold = Font(bold=True)

    def add(name: str, table: pd.DataFrame) -> None:
        sheet = workbook.create_sheet(title=name[:31])  # Excel's limit on sheet names
        sheet.freeze_panes = "A2"
        columns = [_cell_values(table[c]) for c in table.columns]
        for i, (name_, values) in enumerate(zip(table.columns, columns), start=1):
            longest = max([len(str(name_))] + [len(str(v)) for v in values[:200] if v is not None])
            sheet.column_dimensions[get_column_letter(i)].width = min(longest + 2, _MAX_WIDTH)
        header = []
        for column in table.columns:
            cell = WriteOnlyCell(sheet, value=str(column))
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in zip(*columns):
            sheet.append([_typed(sheet, WriteOnlyCell, v) for v in row])

    add("summary", pd.DataFrame({"figure": list(summary), "value": [
        _scalar(v) for v in summary.values()
    ]}))
    for name, table in tables.items():
        add(name, table)
    workbook.save(path)


def _typed(sheet: Any, cell_type: Any, value: Any) -> Any:
    """``value``, or a text-typed cell when openpyxl would otherwise read it as a formula."""
    if isinstance(value, str) and value.startswith("="):
        cell = cell_type(sheet, value=value)
        cell.data_type = "s"  # a typed string cell is shown, never evaluated
        return cell
    return value


def _cell_values(column: pd.Series) -> list[Any]:
    """A column as workbook values: numbers stay numbers, missing → empty, text cleaned."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if isinstance(column.dtype, np.dtype):  # plain numpy columns: no pd.NA inside
        if column.dtype.kind in "biu":
            return column.tolist()
        if column.dtype.kind == "f":
            return [None if math.isnan(v) else v for v in column.tolist()]
    values = column.astype(object).tolist()
    out: list[Any] = []
    for value in values:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            out.append(None)
        elif isinstance(value, str):
            out.append(ILLEGAL_CHARACTERS_RE.sub("", value) if value else None)
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            out.append(value.item())
        else:
            out.append(value)
    return out


def _scalar(value: Any) -> Any:
    """A summary value as one cell: lists and dicts as JSON text."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def write_json(
    tables: Mapping[str, pd.DataFrame], summary: Mapping[str, Any], meta: Mapping[str, Any],
    path: Path,
) -> None:
    """One JSON document: ``meta`` fields, ``summary`` and ``tables`` (lists of records).

    Tables are serialised by pandas (fast on long lists) and spliced into the document, so a
    large at-risk list does not go through a Python dict per row.
    """
    head = json.dumps({**meta, "summary": summary}, ensure_ascii=False, indent=1,
                      default=_json_default)
    parts = [head[:-2].rstrip(), ',\n "tables": {']
    for i, (name, table) in enumerate(tables.items()):
        records = table.to_json(orient="records", force_ascii=False, double_precision=4)
        parts.append(("," if i else "") + f"\n  {json.dumps(name)}: {records}")
    parts.append("\n }\n}\n")
    path.write_text("".join(parts), encoding="utf-8")


def _json_default(value: Any) -> Any:
    """numpy scalars and timestamps in the summary, as plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
