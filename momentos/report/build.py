"""Write the report files: two CSV tables and one self-contained HTML page.

The flow is one way: :mod:`momentos.report.tables` turns the enriched frame into small tables,
:mod:`momentos.report.chart` draws two of them as SVG, and this module writes the CSV files and
renders the Jinja2 template. The page loads nothing from anywhere (no CSS, script, font or image
URL): it must open from a mail attachment or a file share, print well, and never leak that a
report was opened. Ticket text reaches the page only through autoescaped template variables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from momentos.report import chart, tables
from momentos.report.labels import Words, words_for

log = logging.getLogger(__name__)

HTML_NAME = "report.html"
CUSTOMER_MOMENT_NAME = "customer_moment.csv"
AT_RISK_NAME = "at_risk.csv"

#: Rows of the at-risk list on the page; the CSV has them all.
AT_RISK_ROWS = 200
#: Customers in the matrix; beyond this the page gets too long to scan, the CSV has them all.
MATRIX_ROWS = 100
#: Customers in the score chart: more bars than this are unreadable on a laptop screen.
CHART_CUSTOMERS = 12
#: Cells highlighted as needing attention first.
WORST_CELLS = 3

_SAFE_SCHEMES = frozenset({"http", "https"})
#: Leading characters that make a spreadsheet evaluate a CSV cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: CSV columns holding free text typed by people (ticket fields), neutralised against formulas.
_FREE_TEXT = (
    "customer", "title", "assignee", "assignment_group", "experience_reasons", "top_reasons",
)

_ENV = Environment(
    loader=PackageLoader("momentos.report", "templates"),
    autoescape=True,  # every variable is escaped unless explicitly wrapped in Markup
    undefined=StrictUndefined,  # a typo in the template fails the build instead of blanking
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Paths of the files one report run wrote."""

    html: Path
    customer_moment_csv: Path
    at_risk_csv: Path


def build_report(
    frame: pd.DataFrame,
    out_dir: Path,
    *,
    now: datetime,
    language: str = "en",
    title: str = "momentos report",
    levels: Mapping[str, float] | None = None,
) -> ReportFiles:
    """Write ``report.html``, ``customer_moment.csv`` and ``at_risk.csv`` into ``out_dir``.

    ``frame`` holds one enriched item per row (see :func:`momentos.report.tables.prepare` for
    the columns read; missing ones are treated as empty). ``now`` dates the report and ages open
    items. ``language`` is ``"en"`` or ``"es"`` and only changes the page's words: the CSV files
    keep English codes and headers so scripts can read them in any locale. An empty frame still
    produces all three files, the page saying there is no data. ``levels`` are the level
    thresholds enrichment used (``good``/``fair``/``at_risk`` lower bounds; default: its
    defaults), used to colour mean scores consistently with the items' own levels.
    """
    words = words_for(language)
    bands = tables.score_bands(levels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)

    items = tables.prepare(frame, now)
    cell_counts = tables.reason_counts(items, ["customer", "moment"])
    cells = tables.customer_moment(items, cell_counts)
    risky = tables.at_risk_items(items)

    files = ReportFiles(
        html=out_dir / HTML_NAME,
        customer_moment_csv=out_dir / CUSTOMER_MOMENT_NAME,
        at_risk_csv=out_dir / AT_RISK_NAME,
    )
    _write_csv(cells, files.customer_moment_csv)
    _write_csv(risky, files.at_risk_csv)

    context = _context(
        items, cells, cell_counts, risky, words, bands=bands, now=now, title=title
    )
    html = _ENV.get_template("report.html.j2").render(**context)
    files.html.write_text(html, encoding="utf-8")
    log.info("report written", extra={"out_dir": str(out_dir), "items": len(items)})
    return files


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` as UTF-8 CSV with free-text cells made inert for spreadsheets."""
    safe = table.copy()
    for column in _FREE_TEXT:
        if column in safe.columns:
            safe[column] = _inert(safe[column])
    safe.to_csv(path, index=False, float_format="%.1f", lineterminator="\n", encoding="utf-8")


def _inert(column: pd.Series) -> pd.Series:
    """Text that a spreadsheet will not evaluate: a leading ``'`` before formula characters."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories.astype("string")
        if not categories.str.startswith(_FORMULA_START).any():
            return column  # the usual case, decided on the distinct values only
    text = column.astype("string").fillna("")
    # A leading apostrophe is how spreadsheets mark "text, not a formula".
    return text.mask(text.str.startswith(_FORMULA_START), "'" + text)


def safe_href(url: str) -> str:
    """``url`` when it is an absolute http(s) link, else ``""`` (the key is shown as text).

    Anything else (``javascript:``, ``data:``, relative paths) could run code or point inside
    the reader's machine, so it never reaches an ``href``.
    """
    text = (url or "").strip()
    if not text or any(ch.isspace() or ord(ch) < 32 for ch in text):
        return ""
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    return text if parts.scheme.lower() in _SAFE_SCHEMES and parts.netloc else ""


def _context(
    items: pd.DataFrame,
    cells: pd.DataFrame,
    cell_counts: pd.DataFrame,
    risky: pd.DataFrame,
    words: Words,
    *,
    bands: dict[str, float],
    now: datetime,
    title: str,
) -> dict[str, Any]:
    """Everything the template shows, as plain Python values (no pandas in the template)."""
    context: dict[str, Any] = {
        "w": words,
        "t": words.text,
        "lang": words.language,
        "title": title,
        "generated": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "empty": items.empty,
        "headline": tables.headline(items),
        "bands": bands,
        "bands_level": lambda score: tables.level_for_score(score, bands),
        "files": [CUSTOMER_MOMENT_NAME, AT_RISK_NAME],
        "csv_cells": CUSTOMER_MOMENT_NAME,
        "csv_risk": AT_RISK_NAME,
    }
    if items.empty:
        return context

    # Keep all three moments as columns even if one has no items: an empty Innovation column
    # is itself a finding (nobody is co-creating with this customer base). prepare() only
    # adds categories for values that occur, so extras are never empty columns.
    moments = list(items["moment"].cat.categories)

    totals = tables.customer_totals(items, cell_counts)
    totals = totals.assign(
        _last=totals.index == tables.NO_CUSTOMER, _name=totals.index
    ).sort_values(
        ["at_risk", "mean_score", "_last", "_name"],
        ascending=[False, True, True, True], kind="mergesort",
    )
    customers = list(totals.index)
    shown = customers[:MATRIX_ROWS]

    worst = _worst_cells(cells)
    lookup = {(r["customer"], r["moment"]): r for r in cells.to_dict("records")}
    rows = []
    for customer in shown:
        total = totals.loc[customer]
        rows.append({
            "customer": _customer_label(customer, words),
            "total": _cell(total.to_dict(), bands, worst=False),
            "cells": {
                m: _cell(lookup[(customer, m)], bands, worst=(customer, m) in worst)
                if (customer, m) in lookup else None
                for m in moments
            },
        })

    attention = []
    for customer, moment in worst:
        record = lookup[(customer, moment)]
        attention.append({
            "customer": _customer_label(customer, words),
            "moment": moment,
            **_cell(record, bands, worst=True),
        })

    # The chart draws display names, so the "(no customer)" bucket is translated first.
    chart_customers = customers[:CHART_CUSTOMERS]
    chart_cells = cells.loc[cells["customer"].isin(chart_customers)]
    chart_cells = chart_cells.assign(
        customer=[_customer_label(c, words) for c in chart_cells["customer"]]
    )
    scores_svg = chart.scores_chart(
        chart_cells,
        [_customer_label(c, words) for c in chart_customers],
        [m for m in moments if m in set(cells["moment"])],
        words,
        bands,
    )
    levels_svg = chart.levels_chart(tables.level_distribution(items), words)

    context.update({
        "moments": moments,
        "matrix": rows,
        "matrix_total": len(customers),
        "attention": attention,
        "chart_scores": Markup(scores_svg),  # generated by matplotlib, text drawn as paths
        "chart_levels": Markup(levels_svg),
        "chart_capped": len(customers) > CHART_CUSTOMERS,
        "chart_customers": len(chart_customers),
        "groups": _attention_rows(
            tables.group_attention(items, "assignment_group"), "assignment_group", words, bands
        ),
        "services": _attention_rows(
            tables.group_attention(items, "service"), "service", words, bands
        ),
        "at_risk": _risk_rows(risky.head(AT_RISK_ROWS), words),
        "at_risk_total": len(risky),
    })
    return context


def _customer_label(customer: str, words: Words) -> str:
    """The display name of a customer, translating the "(no customer)" bucket."""
    return words.text["no_customer"] if customer == tables.NO_CUSTOMER else customer


def _worst_cells(cells: pd.DataFrame) -> list[tuple[str, str]]:
    """The cells to act on first: most items at risk, then lowest mean score.

    Ranking by at-risk *count* rather than by mean alone keeps a single unlucky ticket from
    outranking a customer with dozens of items going wrong.
    """
    candidates = cells.loc[cells["at_risk"] > 0].sort_values(
        ["at_risk", "mean_score", "customer"], ascending=[False, True, True], kind="mergesort"
    )
    return [(r.customer, r.moment) for r in candidates.head(WORST_CELLS).itertuples()]


def _cell(record: dict[str, Any], bands: dict[str, float], *, worst: bool) -> dict[str, Any]:
    """One matrix cell: figures, the level its mean falls in, and its first reason."""
    mean = record.get("mean_score")
    mean = None if mean is None or pd.isna(mean) else float(mean)
    reasons = [r for r in str(record.get("top_reasons") or "").split("; ") if r]
    return {
        "items": int(record["items"]),
        "mean": mean,
        "level": tables.level_for_score(mean, bands),
        "at_risk": int(record["at_risk"]),
        "reasons": reasons,
        "worst": worst,
    }


def _attention_rows(
    table: pd.DataFrame, column: str, words: Words, bands: dict[str, float]
) -> list[dict[str, Any]]:
    """Rows of the "where to act" tables (assignment groups, services)."""
    rows = []
    for record in table.to_dict("records"):
        mean = record["mean_score"]
        rows.append({
            "name": record[column] or words.text["unassigned"],
            "items": int(record["items"]),
            "at_risk": int(record["at_risk"]),
            "share": float(record["share"]),
            "mean": None if pd.isna(mean) else float(mean),
            "level": tables.level_for_score(None if pd.isna(mean) else float(mean), bands),
            "reasons": [r for r in str(record["top_reasons"]).split("; ") if r],
        })
    return rows


def _risk_rows(risky: pd.DataFrame, words: Words) -> list[dict[str, Any]]:
    """Rows of the at-risk list; each link is checked by :func:`safe_href`."""
    rows = []
    for record in risky.to_dict("records"):
        score = record["experience_score"]
        age = record["age_days"]
        rows.append({
            "key": record["key"],
            "href": safe_href(record["url"]),
            "source": record["source"],
            "customer": _customer_label(record["customer"], words),
            "moment": record["moment"],
            "score": None if pd.isna(score) else int(score),
            "level": record["experience_level"],
            "reasons": [r.strip() for r in record["experience_reasons"].split(";") if r.strip()],
            "age": None if pd.isna(age) else int(age),
            "assignee": record["assignee"],
            "group": record["assignment_group"],
            "title": record["title"],
        })
    return rows
