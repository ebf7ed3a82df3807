"""Write the report: one self-contained HTML page, CSV files, an XLSX workbook and JSON.

The flow is one way: :mod:`momentos.report.tables` and :mod:`momentos.report.insights` turn the
enriched items into small tables, :mod:`momentos.report.chart` draws some of them as SVG,
:mod:`momentos.report.export` writes every table as CSV, as a workbook sheet and into the JSON
document, and this module renders the Jinja2 template. The page loads nothing from anywhere (no
CSS, script, font or image URL): it must open from a mail attachment or a file share, print
well, and never leak that a report was opened. Ticket text reaches the page only through
autoescaped template variables; the page has no script at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from momentos.progress import Tracker, progress
from momentos.report import chart, export, insights, tables
from momentos.report.labels import Words, words_for

log = logging.getLogger(__name__)

HTML_NAME = "report.html"
XLSX_NAME = "report.xlsx"
JSON_NAME = "report.json"
CUSTOMER_MOMENT_NAME = "customer_moment.csv"
AT_RISK_NAME = "at_risk.csv"
#: Every table, in the order of the workbook's sheets and the JSON's ``tables``; each is also
#: written as ``<name>.csv``.
TABLE_NAMES: tuple[str, ...] = (
    "customer_moment", "customers", "moment_indicators", "howto_themes", "services", "groups",
    "pingpong", "at_risk", "watermelons", "survey_agreement", "weekly",
)

#: Rows of the at-risk list on the page; the CSV has them all.
AT_RISK_ROWS = 200
#: Watermelons listed on the page.
WATERMELON_ROWS = 25
#: Customers in the matrix; beyond this the page gets too long to scan, the CSV has them all.
MATRIX_ROWS = 100
#: Customers in the score chart: more bars than this are unreadable on a laptop screen.
CHART_CUSTOMERS = 12
#: Cells highlighted as needing attention first.
WORST_CELLS = 3
#: Services and groups shown in each ranking, and ping-pong pairs listed.
RANKED_ROWS = 10
PINGPONG_ROWS = 10
#: Build steps reported to the progress tracker.
_STEPS = 6

_SAFE_SCHEMES = frozenset({"http", "https"})

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
    """Paths of the files one report run wrote, and its headline figures."""

    html: Path
    customer_moment_csv: Path
    at_risk_csv: Path
    xlsx: Path
    json: Path
    #: Every table's CSV file, by table name (:data:`TABLE_NAMES`).
    csv: dict[str, Path]
    #: The headline figures (period, items, mean score, trend, at risk, watermelons, survey
    #: agreement), as in the JSON's ``summary``; used for the comment when publishing.
    summary: dict[str, Any]


def build_report(
    frame: pd.DataFrame,
    out_dir: Path,
    *,
    now: datetime,
    language: str = "en",
    title: str = "momentos report",
    levels: Mapping[str, float] | None = None,
    period_days: float = tables.DEFAULT_PERIOD_DAYS,
    until: datetime | None = None,
    customers: Mapping[str, Iterable[str]] | None = None,
    stall_days: Mapping[str, float] | None = None,
    tracker: Tracker | None = None,
) -> ReportFiles:
    """Write the report files into ``out_dir`` and return their paths.

    ``frame`` holds one enriched item per row (see :func:`momentos.report.tables.prepare` for
    the columns read; missing ones are treated as empty). The report covers the ``period_days``
    ending at ``until`` (default ``now``) and compares them with the same span before. ``now``
    dates the report. ``language`` is ``"en"`` or ``"es"`` and only changes the page's words:
    CSV, XLSX and JSON keep English codes and headers so scripts read them in any locale.
    ``levels`` are the level thresholds enrichment used (``good``/``fair``/``at_risk`` lower
    bounds), used to colour mean scores consistently with the items' own levels. ``customers``
    maps a canonical customer name to the names it has on the platforms. ``stall_days`` is
    enrichment's per-moment threshold for stalled work. An empty frame still produces every
    file, the page saying there is no data. ``tracker`` receives one step per build stage;
    without one, progress is shown by :func:`momentos.progress.progress`.
    """
    words = words_for(language)
    bands = tables.score_bands(levels)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    period = tables.make_period(until or now, period_days)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tracker is None:
        with progress("report", total=_STEPS, unit="steps") as own:
            return _build(frame, out_dir, now, period, words, bands, title, customers,
                          stall_days, own)
    tracker.update(total=(tracker.total or 0) + _STEPS)
    return _build(frame, out_dir, now, period, words, bands, title, customers, stall_days,
                  tracker)


def _build(
    frame: pd.DataFrame,
    out_dir: Path,
    now: datetime,
    period: tables.Period,
    words: Words,
    bands: dict[str, float],
    title: str,
    customers: Mapping[str, Iterable[str]] | None,
    stall_days: Mapping[str, float] | None,
    tracker: Tracker,
) -> ReportFiles:
    """The build itself, one tracker step per stage."""
    items = tables.prepare(frame, now, period=period, customers=customers)
    tracker.advance()

    now_items = tables.current(items)
    cell_counts = tables.reason_counts(now_items, ["customer", "moment"])
    melons, melon_summary = insights.watermelons(items)
    built: dict[str, pd.DataFrame] = {
        "customer_moment": tables.customer_moment(items, cell_counts),
        "customers": tables.customer_totals(items, cell_counts).rename_axis("customer")
        .reset_index(),
        "moment_indicators": insights.moment_indicators(items, stall_days),
        "howto_themes": insights.howto_themes(items),
        "services": tables.ranked(items, "service"),
        "groups": tables.ranked(items, "assignment_group"),
        "pingpong": insights.pingpong_pairs(items),
        "at_risk": tables.at_risk_items(items),
        "watermelons": melons,
        "survey_agreement": insights.survey_agreement(items),
        "weekly": insights.weekly_trends(items, period),
    }
    head = tables.headline(items)
    summary = _summary(head, melon_summary, built["survey_agreement"], period, now)
    tracker.advance()

    files = ReportFiles(
        html=out_dir / HTML_NAME,
        customer_moment_csv=out_dir / CUSTOMER_MOMENT_NAME,
        at_risk_csv=out_dir / AT_RISK_NAME,
        xlsx=out_dir / XLSX_NAME,
        json=out_dir / JSON_NAME,
        csv={name: out_dir / f"{name}.csv" for name in TABLE_NAMES},
        summary=summary,
    )
    for name in TABLE_NAMES:
        export.write_csv(built[name], files.csv[name])
    tracker.advance()
    export.write_xlsx(built, summary, files.xlsx)
    tracker.advance()
    meta = {"format": "momentos-report/1", "title": title, "language": words.language}
    export.write_json(built, summary, meta, files.json)
    tracker.advance()

    context = _context(items, now_items, built, cell_counts, head, summary, words,
                       bands=bands, now=now, period=period, title=title)
    html = _ENV.get_template("report.html.j2").render(**context)
    files.html.write_text(html, encoding="utf-8")
    tracker.advance()
    log.info("report written", extra={"out_dir": str(out_dir), "items": len(now_items)})
    return files


def _clean(value: Any) -> Any:
    """NaN → None so the summary is valid JSON and reads as "unknown"."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _summary(
    head: tables.Headline,
    melons: Mapping[str, Any],
    survey: pd.DataFrame,
    period: tables.Period,
    now: datetime,
) -> dict[str, Any]:
    """The headline figures, in English codes: the JSON ``summary`` and the workbook's sheet."""
    overall = survey.loc[survey["moment"] == "all"].set_index("scope")

    def rho(scope: str) -> float | None:
        return _clean(float(overall.loc[scope, "spearman"])) if scope in overall.index else None

    return {
        "generated": now.astimezone(UTC).isoformat(timespec="seconds"),
        "period_start": period.start.isoformat(),
        "period_end": period.until.isoformat(),
        "period_days": period.days,
        "items": head.items,
        "mean_score": _clean(None if head.mean_score is None else round(head.mean_score, 1)),
        "at_risk": head.at_risk,
        "at_risk_share": None if head.at_risk_share is None else round(head.at_risk_share, 3),
        "previous_items": head.previous_items,
        "previous_mean_score": (None if head.previous_mean_score is None
                                else round(head.previous_mean_score, 1)),
        "previous_at_risk_share": (None if head.previous_at_risk_share is None
                                   else round(head.previous_at_risk_share, 3)),
        "trend": head.trend,
        "watermelons": head.watermelons,
        "sla_met": melons["sla_met"],
        "watermelon_share": melons["share"],
        "survey_pairs": int(overall.loc["period", "pairs"]) if "period" in overall.index else 0,
        "survey_spearman": rho("period"),
        "survey_pairs_all": int(overall.loc["all", "pairs"]) if "all" in overall.index else 0,
        "survey_spearman_all": rho("all"),
    }


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
    now_items: pd.DataFrame,
    built: dict[str, pd.DataFrame],
    cell_counts: pd.DataFrame,
    head: tables.Headline,
    summary: dict[str, Any],
    words: Words,
    *,
    bands: dict[str, float],
    now: datetime,
    period: tables.Period,
    title: str,
) -> dict[str, Any]:
    """Everything the template shows, as plain Python values (no pandas in the template)."""
    cells = built["customer_moment"]
    end_day = (period.until - pd.Timedelta(microseconds=1)).date()
    context: dict[str, Any] = {
        "w": words,
        "t": words.text,
        "lang": words.language,
        "title": title,
        "generated": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "period_text": words.text["period_line"].format(
            start=words.day((period.start + pd.Timedelta(microseconds=1)).date()),
            end=words.day(end_day), days=words.num(period.days),
        ),
        "empty": now_items.empty,
        "headline": head,
        "summary": summary,
        "trend": _trend(head.trend, words),
        "bands": bands,
        "bands_level": lambda score: tables.level_for_score(score, bands),
        "files": [HTML_NAME, XLSX_NAME, JSON_NAME, *(f"{n}.csv" for n in TABLE_NAMES)],
        "csv_cells": CUSTOMER_MOMENT_NAME,
        "csv_risk": AT_RISK_NAME,
    }
    if now_items.empty:
        return context

    # Keep all three moments as columns even if one has no items: an empty Innovation column
    # is itself a finding (nobody is co-creating with this customer base). prepare() only
    # adds categories for values that occur, so extras are never empty columns.
    moments = list(items["moment"].cat.categories)

    totals = built["customers"].set_index("customer")
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
            "total": _cell(total.to_dict(), bands, words, worst=False),
            "cells": {
                m: _cell(lookup[(customer, m)], bands, words, worst=(customer, m) in worst)
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
            **_cell(record, bands, words, worst=True),
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
    levels_svg = chart.levels_chart(tables.level_distribution(now_items), words)
    weekly_svg = chart.weekly_chart(built["weekly"], words, bands)

    melon_summary = summary
    pingpong = built["pingpong"]
    context.update({
        "moments": moments,
        "matrix": rows,
        "matrix_total": len(customers),
        "attention": attention,
        # Generated by matplotlib from our own figures; text is drawn as paths, so no ticket
        # text is ever markup inside them.
        "chart_scores": Markup(scores_svg),
        "chart_levels": Markup(levels_svg),
        "chart_weekly": Markup(weekly_svg),
        "chart_capped": len(customers) > CHART_CUSTOMERS,
        "chart_customers": len(chart_customers),
        "indicators": _indicator_rows(built["moment_indicators"], words),
        "howto": [
            {"service": r["service"] or words.text["unassigned"], "items": int(r["howto_items"]),
             "share": float(r["share"]), "themes": [t for t in r["themes"].split("; ") if t],
             "example": r["example"]}
            for r in built["howto_themes"].to_dict("records")
        ],
        "services": _ranked_rows(built["services"].head(RANKED_ROWS), words, bands),
        "groups": _ranked_rows(built["groups"].head(RANKED_ROWS), words, bands),
        "services_total": len(built["services"]),
        "groups_total": len(built["groups"]),
        "min_ranked": tables.MIN_RANKED_ITEMS,
        "pingpong": [
            {"a": r["group_a"], "b": r["group_b"], "items": int(r["items"]),
             "mean": _clean(r["mean_score"]),
             "level": tables.level_for_score(_clean(r["mean_score"]), bands)}
            for r in pingpong.head(PINGPONG_ROWS).to_dict("records")
        ],
        "pingpong_from_reasons": bool(len(pingpong)) and bool(
            (pingpong["basis"] == "reasons").any()
        ),
        "melons": _risk_rows(built["watermelons"].head(WATERMELON_ROWS), words),
        "melon": melon_summary,
        "melon_sla_known": int(now_items["sig_sla_breached"].notna().sum()),
        "survey": _survey_lines(built["survey_agreement"], words),
        "at_risk": _risk_rows(built["at_risk"].head(AT_RISK_ROWS), words),
        "at_risk_total": len(built["at_risk"]),
    })
    return context


def _trend(delta: float | None, words: Words) -> dict[str, str]:
    """Arrow, signed change and its meaning in words, for a change in mean score."""
    direction = tables.trend_direction(delta)
    arrow = {"up": "\u25b2", "down": "\u25bc", "flat": "\u25b6"}.get(direction, "")
    return {
        "dir": direction,
        "arrow": arrow,
        "delta": words.signed(delta),
        "meaning": words.text[f"trend_{direction}"] if direction else words.text["new_in_period"],
    }


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


def _cell(
    record: dict[str, Any], bands: dict[str, float], words: Words, *, worst: bool
) -> dict[str, Any]:
    """One matrix cell: figures, the level its mean falls in, trend and its first reasons."""
    mean = _clean(record.get("mean_score"))
    mean = None if mean is None else float(mean)
    trend = _clean(record.get("trend"))
    reasons = [r for r in str(record.get("top_reasons") or "").split("; ") if r]
    return {
        "items": int(record["items"]),
        "mean": mean,
        "level": tables.level_for_score(mean, bands),
        "at_risk": int(record["at_risk"]),
        "reasons": reasons,
        "worst": worst,
        "previous_items": int(record.get("previous_items") or 0),
        "trend": _trend(None if trend is None else float(trend), words),
    }


def _format(value: float | None, unit: str, words: Words) -> str:
    """An indicator value in its unit, in the page's language."""
    if value is None or math.isnan(value):
        return ""
    if unit == "share":
        return words.pct(value)
    if unit == "count":
        return words.num(value)
    if unit == "hours":
        return words.text["unit_hours"].format(v=words.num(value) if value >= 100
                                               else words.dec(value))
    if unit == "days":
        return words.text["unit_days"].format(v=words.dec(value))
    return words.text["unit_people"].format(v=words.dec(value))


def _indicator_rows(table: pd.DataFrame, words: Words) -> dict[str, list[dict[str, Any]]]:
    """The per-moment indicators for the page, grouped by moment."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in table.to_dict("records"):
        value, previous = _clean(r["value"]), _clean(r["previous_value"])
        detail = ""
        if r["unit"] in ("share", "count") and r["measured"]:
            detail = words.text["of_items"].format(count=words.num(r["count"]),
                                                   measured=words.num(r["measured"]))
        out.setdefault(r["moment"], []).append({
            "label": words.text[f"ind_{r['indicator']}"],
            "available": bool(r["available"]),
            "value": _format(value, r["unit"], words) if value is not None else "\u2013",
            "previous": _format(previous, r["unit"], words),
            "detail": detail,
        })
    return out


def _ranked_rows(
    table: pd.DataFrame, words: Words, bands: dict[str, float]
) -> list[dict[str, Any]]:
    """Rows of the service and group rankings."""
    rows = []
    for record in table.to_dict("records"):
        mean = _clean(record["mean_score"])
        trend = _clean(record["trend"])
        rows.append({
            "rank": int(record["rank"]),
            "name": record["name"] or words.text["unassigned"],
            "items": int(record["items"]),
            "few": int(record["items"]) < tables.MIN_RANKED_ITEMS,
            "at_risk": int(record["at_risk"]),
            "share": float(record["at_risk_share"]),
            "mean": None if mean is None else float(mean),
            "level": tables.level_for_score(None if mean is None else float(mean), bands),
            "trend": _trend(None if trend is None else float(trend), words),
            "reasons": [r for r in str(record["top_reasons"]).split("; ") if r],
        })
    return rows


def _survey_lines(table: pd.DataFrame, words: Words) -> list[dict[str, str]]:
    """One sentence per scope (this period, all items) on score/survey agreement."""
    lines = []
    for scope in ("period", "all"):
        row = table.loc[(table["scope"] == scope) & (table["moment"] == "all")]
        if row.empty:
            continue
        pairs = int(row["pairs"].iloc[0])
        rho = _clean(float(row["spearman"].iloc[0]))
        scope_words = words.text[f"survey_scope_{scope}"]
        if rho is None:
            lines.append({"text": words.text["survey_few"].format(
                n=words.num(pairs), min=words.num(insights.MIN_SURVEY_PAIRS), scope=scope_words
            ), "verdict": "", "level": ""})
            continue
        verdict, level = (
            ("survey_good", "good") if rho >= 0.5 else
            ("survey_fair", "fair") if rho >= 0.2 else ("survey_poor", "poor")
        )
        lines.append({
            "text": words.text["survey_line"].format(
                rho=words.dec(rho, 2), n=words.num(pairs), scope=scope_words
            ),
            "verdict": words.text[verdict],
            "level": level,
        })
    return lines


def _risk_rows(risky: pd.DataFrame, words: Words) -> list[dict[str, Any]]:
    """Rows of the at-risk and watermelon lists; each link is checked by :func:`safe_href`."""
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
