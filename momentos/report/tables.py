"""Pure aggregations behind the report: enriched items in, small tables out.

Everything here is vectorised pandas over the whole frame (groupby, explode, value counts) so the
same code serves a 20-row test and a million-row tenant; the only Python loops run over the
already-aggregated tables (customers x moments), which stay small. No clock reads: ``now`` is
passed in, as for enrichment.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

import numpy as np
import pandas as pd

from momentos.models import LEVELS, MOMENTS

#: Shown (and written to the CSV files) for items whose customer is missing or blank.
NO_CUSTOMER = "(no customer)"
#: Moment of items that enrichment left without one (should not happen; shown, not dropped).
NO_MOMENT = "(no moment)"
#: Items at these levels count as "at risk" in every figure of the report.
AT_RISK_LEVELS: tuple[str, ...] = ("at_risk", "poor")
#: Lowest score of each level, as enrichment's defaults (``experience.levels`` in the config).
#: Items carry the level enrichment gave them; the bands only colour aggregates such as a
#: cell's *mean* score, which has no level of its own.
SCORE_BANDS: Mapping[str, float] = MappingProxyType({"good": 75.0, "fair": 55.0, "at_risk": 35.0})

#: Days in a report period unless the config says otherwise (four weeks: long enough to hold
#: a few items per customer and moment, short enough to show what is happening now).
DEFAULT_PERIOD_DAYS = 28
#: A mean score moving by at least this many points between periods gets an up/down arrow;
#: smaller moves are noise at the volumes of one customer and moment.
TREND_STEP = 2.0

CUSTOMER_MOMENT_COLUMNS: tuple[str, ...] = (
    "customer", "moment", "items", "mean_score", "at_risk", "top_reasons",
    "previous_items", "previous_mean_score", "trend", "watermelons",
)
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer", "items", "mean_score", "at_risk", "top_reasons",
    "previous_items", "previous_mean_score", "trend", "watermelons",
)
RANKING_COLUMNS: tuple[str, ...] = (
    "rank", "name", "items", "mean_score", "previous_mean_score", "trend", "at_risk",
    "at_risk_share", "top_reasons",
)
#: Fewer items than this in the period and a group or service is ranked after the others:
#: a mean over two tickets says more about those tickets than about the group.
MIN_RANKED_ITEMS = 5
#: Signals the report reads from each item's ``signals``; others are ignored.
REPORT_SIGNALS: tuple[str, ...] = (
    "chasers", "lost_hours", "howto", "caused_incidents", "failed_change",
    "business_participants", "business_share", "stalled_days", "sla_breached",
    "survey_score", "watermelon", "pingpong", "reassignment_count",
)
#: Signals that stored rows also carry as top-level columns (used when the dict lacks them).
_TOP_LEVEL_SIGNALS = frozenset({"sla_breached", "survey_score"})
#: Figures inside a reason phrase (counts, hours, ratios), masked to group its variants.
_FIGURES = r"\d+(?:[.,]\d+)?"
#: Fewer items than this in either period and no trend is shown: the mean of two items moves
#: by tens of points on its own.
MIN_TREND_ITEMS = 3
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "si", "sí", "breached"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "ok", "met"})
AT_RISK_COLUMNS: tuple[str, ...] = (
    "key", "url", "source", "customer", "moment", "experience_score", "experience_level",
    "experience_reasons", "assignee", "assignment_group", "age_days", "title",
)
#: Columns that group items: few distinct values, normalised once per value (see _category).
_GROUP_COLUMNS: tuple[str, ...] = (
    "source", "platform", "customer", "assignment_group", "service", "moment", "kind",
    "experience_level", "experience_reasons",
)
#: Columns shown only for at-risk items (CSV and list), normalised for those rows only.
_DETAIL_COLUMNS: tuple[str, ...] = ("key", "url", "title", "assignee")


def score_bands(levels: Mapping[str, float] | None = None) -> dict[str, float]:
    """The bands to colour with: :data:`SCORE_BANDS` overridden by ``levels``.

    ``levels`` is what enrichment scored with (``good``, ``fair``, ``at_risk`` lower bounds),
    so a tenant that moved its thresholds sees cells coloured the way its items were levelled.
    A ``ValueError`` says what is wrong when the bands do not descend.
    """
    bands = {**SCORE_BANDS, **{k: float(v) for k, v in (levels or {}).items()}}
    unknown = set(bands) - set(SCORE_BANDS)
    if unknown:
        raise ValueError(f"unknown experience levels {sorted(unknown)}; use good, fair, at_risk")
    if not 100.0 >= bands["good"] > bands["fair"] > bands["at_risk"] >= 0.0:
        raise ValueError(
            "experience levels must descend within 0..100: good > fair > at_risk "
            f"(got {bands['good']:g}, {bands['fair']:g}, {bands['at_risk']:g})"
        )
    return bands


def level_for_score(score: float | None, bands: Mapping[str, float] = SCORE_BANDS) -> str:
    """The level band a (mean) score falls in; empty when the score is missing."""
    if score is None or math.isnan(score):
        return ""
    for level in ("good", "fair", "at_risk"):
        if score >= bands[level]:
            return level
    return "poor"


@dataclass(frozen=True, slots=True)
class Period:
    """The reporting window and the one before it, both ``days`` long, ending at ``until``.

    An item belongs to the period in which it was resolved; an item still open at ``until``
    belongs to the current period, because that is what the customer is living right now.
    """

    until: pd.Timestamp
    days: float

    @property
    def start(self) -> pd.Timestamp:
        """First instant after which items are current (exclusive)."""
        return self.until - pd.Timedelta(days=self.days)

    @property
    def previous_start(self) -> pd.Timestamp:
        """First instant after which items fall in the previous period (exclusive)."""
        return self.until - pd.Timedelta(days=2 * self.days)


def make_period(until: datetime, days: float) -> Period:
    """A :class:`Period` ending at ``until`` (naive values are UTC); ``days`` must be > 0."""
    if not days > 0:
        raise ValueError(f"report period must be longer than 0 days (got {days!r})")
    stamp = pd.Timestamp(until if until.tzinfo else until.replace(tzinfo=UTC)).tz_convert("UTC")
    return Period(until=stamp, days=float(days))


#: ``period`` codes in the prepared frame.
CURRENT, PREVIOUS, OUTSIDE = 1, 0, -1


def customer_aliases(customers: Mapping[str, Iterable[str]] | None) -> dict[str, str]:
    """Lower-case alias → canonical customer name, from ``{"ACME Retail": ["Retail"]}``.

    The canonical name is an alias of itself, so "acme retail" written in another case on one
    platform lands in the same row. A ``ValueError`` names an alias claimed by two customers.
    """
    table: dict[str, str] = {}
    for canonical, aliases in (customers or {}).items():
        name = str(canonical).strip()
        for alias in [name, *aliases]:
            key = str(alias).strip().casefold()
            if not key:
                continue
            if table.get(key, name) != name:
                raise ValueError(
                    f"customer alias {alias!r} is listed under both {table[key]!r} and {name!r}"
                )
            table[key] = name
    return table


def prepare(
    frame: pd.DataFrame,
    now: datetime,
    *,
    period: Period | None = None,
    customers: Mapping[str, Iterable[str]] | None = None,
) -> pd.DataFrame:
    """A normalised copy of every item holding only what the report reads.

    Missing columns become empty, text is stripped, the customer is never blank (and is mapped
    to its canonical name through ``customers`` aliases, so one business area seen under two
    names on two platforms is one row), moment and level are lower-case codes, the score is
    numeric. Grouping columns become categoricals with sorted categories; ``moment`` keeps the
    canonical order (operation, evolution, innovation) followed by any unexpected value, so no
    item silently drops out of the figures.

    ``period`` (default: 28 days ending at ``now``) sets the ``period`` column (:data:`CURRENT`,
    :data:`PREVIOUS` or :data:`OUTSIDE`) and the reference for ``age_days``: days from
    creation to resolution, or to the period's end for items still open then.

    The signals the report reads become float columns ``sig_<name>`` (NaN where an item lacks
    the signal), from the ``signals`` dicts or from ``signals.<name>`` columns written by
    :func:`momentos.report.load.report_frame`.

    The detail columns (key, url, title, assignee) are only ever shown for at-risk items (and
    titles of how-to questions feed their themes), so they are normalised for those rows only
    and left empty elsewhere: on a million-row frame that halves the cost of this function.
    """
    period = period or make_period(now, DEFAULT_PERIOD_DAYS)
    # A fresh RangeIndex: callers may pass any index (duplicates included).
    frame = frame.reset_index(drop=True)
    index = frame.index
    n = len(frame)
    aliases = customer_aliases(customers)
    out = pd.DataFrame(index=index)
    for name in _GROUP_COLUMNS:
        out[name] = _category(
            frame.get(name),
            n,
            lower=name in ("moment", "experience_level", "kind"),
            empty={"customer": NO_CUSTOMER, "moment": NO_MOMENT}.get(name, ""),
            first=MOMENTS if name == "moment" else (),
            aliases=aliases if name == "customer" else None,
        )
    out["at_risk"] = out["experience_level"].isin(AT_RISK_LEVELS)

    if "experience_score" in frame.columns:
        out["score"] = pd.to_numeric(frame["experience_score"], errors="coerce").astype(float)
    else:
        out["score"] = np.nan

    for name in REPORT_SIGNALS:
        out[f"sig_{name}"] = _signal(frame, name)
    if "sig_watermelon" in out and out["sig_watermelon"].isna().all():
        out["sig_watermelon"] = np.nan
    # Enrichment flags watermelons itself; older rows without the flag get it recomputed from
    # the same rule: SLA met and experience at risk or poor.
    sla = out["sig_sla_breached"].to_numpy()
    derived = np.where(np.isnan(sla), np.nan, (sla == 0.0) & out["at_risk"].to_numpy())
    flagged = out["sig_watermelon"].to_numpy()
    out["sig_watermelon"] = np.where(np.isnan(flagged), derived, flagged)

    created = _utc(frame, "created")
    resolved = _utc(frame, "resolved")
    until = period.until
    # Resolved after the period's end means "still open at the end" for this report.
    done = resolved.notna() & (resolved <= until)
    out["created"] = created
    out["resolved"] = resolved.where(done)
    out["open"] = ~done.to_numpy()
    reference = resolved.where(done, until)
    future = (created > until).fillna(False).to_numpy()
    after_start = (reference > period.start).to_numpy()
    after_previous = (reference > period.previous_start).to_numpy()
    codes = np.full(n, OUTSIDE, dtype=np.int8)
    codes[after_previous & ~after_start & ~future] = PREVIOUS
    codes[after_start & ~future] = CURRENT
    out["period"] = codes
    days = (reference - created).dt.total_seconds() / 86400.0
    # Whole days, never negative (clock skew between platforms can put resolved before created).
    out["age_days"] = np.floor(days.clip(lower=0)).astype("Int64")

    shown = out["at_risk"].to_numpy() | (out["sig_howto"].to_numpy() == 1.0)
    for name in _DETAIL_COLUMNS:
        column = pd.Series("", index=index, dtype=object)
        if name in frame.columns and shown.any():
            column[shown] = frame.loc[shown, name].astype("string").fillna("").str.strip()
        out[name] = column
    out["groups_path"] = (
        np.array([group_path(v) for v in frame["groups_path"].tolist()] + [None],
                 dtype=object)[:-1]  # the extra None keeps numpy from nesting the lists
        if "groups_path" in frame.columns else np.full(n, None, dtype=object)
    )
    return out


def group_path(value: object) -> list[str] | None:
    """An item's ``groups_path`` (assignment groups in the order it went through them) as a
    list of names; a JSON list text is parsed; anything else is ``None`` (no history)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return ["" if v is None else str(v) for v in value]
    return None


def _signal(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Signal ``name`` of every item as float (NaN when absent), robust to any cell shape.

    Read from the ``signals.<name>`` column when the loader flattened it, else from the
    ``signals`` dicts (or JSON text), else from a top-level column of the same name (rows
    carry ``sla_breached`` and ``survey_score`` there too).
    """
    n = len(frame)
    flat = f"signals.{name}"
    if flat in frame.columns:
        return _floats(frame[flat])
    values = np.full(n, np.nan)
    if "signals" in frame.columns:
        values = _floats(pd.Series(
            [_dict_get(cell, name) for cell in frame["signals"].tolist()], dtype=object
        ))
    if name in _TOP_LEVEL_SIGNALS and name in frame.columns:
        top = _floats(frame[name])
        values = np.where(np.isnan(values), top, values)
    return values


def _dict_get(cell: object, name: str) -> object:
    """``cell[name]`` for a dict or a JSON object text; ``None`` otherwise."""
    if isinstance(cell, dict):
        return cell.get(name)
    if isinstance(cell, str) and cell.lstrip().startswith("{"):
        try:
            parsed = json.loads(cell)
        except ValueError:
            return None
        return parsed.get(name) if isinstance(parsed, dict) else None
    return None


def _floats(values: pd.Series) -> np.ndarray:
    """Numbers, booleans and yes/no words as float64; anything else NaN."""
    if values.dtype == bool:
        return values.to_numpy(dtype=float)
    if values.dtype.kind in "if":
        return values.to_numpy(dtype=float, na_value=np.nan)
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    numeric = numeric.copy()  # to_numpy may hand back a read-only view
    if np.isnan(numeric).all() and len(values):
        # Booleans in an object column (True/False/None) and words such as "true".
        words = values.map(
            lambda v: 1.0 if v is True or str(v).strip().lower() in _TRUE_WORDS
            else 0.0 if v is False or str(v).strip().lower() in _FALSE_WORDS else np.nan
        )
        return words.to_numpy(dtype=float)
    bools = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    if bools.any():
        numeric[bools] = values[bools].astype(bool).to_numpy(dtype=float)
    return numeric


def _category(
    values: pd.Series | None,
    length: int,
    *,
    lower: bool = False,
    empty: str = "",
    first: tuple[str, ...] = (),
    aliases: Mapping[str, str] | None = None,
) -> pd.Categorical:
    """Stripped text as a categorical, normalising each *distinct* value once.

    Customers, groups, moments and reason texts repeat across thousands of items; factorising
    first means the string work runs over a few hundred values instead of every row. Missing
    and blank values become ``empty``. ``aliases`` (lower-case name → canonical name) renames
    values. Categories are ``first`` (kept even when unused, in that order) and then the other
    values sorted, so sorting by the column is alphabetical.
    """
    if values is None:  # column absent: every item is "missing"
        values = pd.Series(np.full(length, None, dtype=object))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).astype("string")
    text = text.fillna("").str.strip()
    if lower:
        text = text.str.lower()
    if aliases:
        text = pd.Series([aliases.get(t.casefold(), t) for t in text.tolist()], dtype="string")
    text = text.mask(text == "", empty).tolist()
    seen = set(text) | ({empty} if (codes < 0).any() else set())
    categories = [*first, *sorted(seen - set(first))]
    position = {category: i for i, category in enumerate(categories)}
    # The extra last entry serves code -1 (missing): numpy reads index -1 as the last element.
    remap = np.array([position[t] for t in text] + [position.get(empty, 0)], dtype=np.int64)
    return pd.Categorical.from_codes(remap[codes], categories)


def _utc(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` as aware UTC timestamps (NaT when missing or unparseable)."""
    if name not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    values = frame[name]
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    # ISO8601 accepts both ServiceNow's "YYYY-MM-DD HH:MM:SS" and Jira's offsets, and lets
    # datetime objects through untouched.
    return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")


def current(items: pd.DataFrame) -> pd.DataFrame:
    """The items of the current period."""
    return items.loc[items["period"].to_numpy() == CURRENT]


def previous(items: pd.DataFrame) -> pd.DataFrame:
    """The items of the previous period."""
    return items.loc[items["period"].to_numpy() == PREVIOUS]


def _customer_order(customers: pd.Series) -> pd.Series:
    """Sort key that keeps the "(no customer)" bucket after every real customer."""
    return customers == NO_CUSTOMER


def reason_counts(items: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """How often each reason phrase appears among at-risk items, per group of ``by``.

    Reasons are the "; "-joined phrases of ``experience_reasons``; one item counts once per
    phrase. Returns ``by + [reason, count]`` sorted by group, then most frequent first, then
    alphabetically so ties always resolve the same way.
    """
    risky = items.loc[items["at_risk"], [*by, "experience_reasons"]]
    # Count items per distinct reasons text first, then split only the distinct texts: the
    # same few combinations of phrases repeat over most at-risk items.
    per_text = (
        risky.groupby([*by, "experience_reasons"], observed=True).size().rename("n")
        .reset_index()
    )
    per_text["experience_reasons"] = per_text["experience_reasons"].astype("string")
    texts = pd.Series(per_text["experience_reasons"].unique(), dtype="string")
    pairs = pd.DataFrame({"experience_reasons": texts, "reason": texts.str.split(";")})
    pairs = pairs.explode("reason")
    pairs["reason"] = pairs["reason"].astype("string").fillna("").str.strip()
    # A text repeating a phrase still counts its item once.
    pairs = pairs.loc[pairs["reason"] != ""].drop_duplicates()
    # Phrases that differ only in their figures ("first answer after 1 h" / "after 2 h") are
    # one reason: counted together, shown as their most frequent wording.
    pairs["kind"] = pairs["reason"].str.replace(_FIGURES, "#", regex=True)
    merged = per_text.merge(pairs, on="experience_reasons")
    if merged.empty:
        return pd.DataFrame(columns=[*by, "reason", "count"])
    wording = (
        merged.groupby([*by, "kind", "reason"], observed=True)["n"].sum().rename("w")
        .reset_index()
        .sort_values([*by, "kind", "w", "reason"],
                     ascending=[*([True] * (len(by) + 1)), False, True], kind="mergesort")
        .drop_duplicates([*by, "kind"])
    )
    counts = merged.groupby([*by, "kind"], observed=True)["n"].sum().rename("count")
    table = wording.merge(counts.reset_index(), on=[*by, "kind"])[[*by, "reason", "count"]]
    return table.sort_values(
        [*by, "count", "reason"], ascending=[*([True] * len(by)), False, True], kind="mergesort"
    ).reset_index(drop=True)


def top_reasons(counts: pd.DataFrame, by: list[str], n: int = 3) -> pd.Series:
    """The ``n`` most frequent reasons per group, "; "-joined, indexed by ``by``."""
    if counts.empty:
        index = pd.MultiIndex.from_arrays([[] for _ in by], names=by)
        return pd.Series([], index=index if len(by) > 1 else pd.Index([], name=by[0]),
                         dtype="string", name="top_reasons")
    top = counts.groupby(by, observed=True, sort=False).head(n)
    return top.groupby(by, observed=True, sort=False)["reason"].agg("; ".join).rename(
        "top_reasons"
    )


def _period_figures(items: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by``: current items, mean, at risk, watermelons, previous items and mean.

    One groupby over both periods, split by the ``period`` column, instead of two passes.
    """
    data = items.loc[items["period"].to_numpy() != OUTSIDE, [*by, "period", "score", "at_risk",
                                                              "sig_watermelon"]]
    is_current = data["period"].to_numpy() == CURRENT
    data = data.assign(
        cur_score=data["score"].where(is_current),
        prev_score=data["score"].where(~is_current),
        cur=is_current,
        prev=~is_current,
        risky=data["at_risk"].to_numpy() & is_current,
        melon=(data["sig_watermelon"].to_numpy() == 1.0) & is_current,
    )
    grouped = data.groupby(by, observed=True, sort=False)
    table = grouped.agg(
        items=("cur", "sum"),
        mean_score=("cur_score", "mean"),
        at_risk=("risky", "sum"),
        watermelons=("melon", "sum"),
        previous_items=("prev", "sum"),
        previous_mean_score=("prev_score", "mean"),
    )
    for name in ("items", "at_risk", "watermelons", "previous_items"):
        table[name] = table[name].astype(int)
    table["mean_score"] = table["mean_score"].round(1)
    table["previous_mean_score"] = table["previous_mean_score"].round(1)
    trend = (table["mean_score"] - table["previous_mean_score"]).round(1)
    enough = (table["items"] >= MIN_TREND_ITEMS) & (table["previous_items"] >= MIN_TREND_ITEMS)
    table["trend"] = trend.where(enough)
    return table


def trend_direction(delta: float | None) -> str:
    """``up``, ``down``, ``flat`` for a change in mean score; ``""`` when there is none."""
    if delta is None or math.isnan(delta):
        return ""
    if delta >= TREND_STEP:
        return "up"
    if delta <= -TREND_STEP:
        return "down"
    return "flat"


def customer_moment(items: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """One row per customer x moment cell with items now, in the ``customer_moment.csv`` layout.

    ``counts`` is :func:`reason_counts` of the current items by ``["customer", "moment"]``.
    ``trend`` is the mean score now minus the previous period's (positive = better).
    """
    if items.empty:
        return pd.DataFrame(columns=list(CUSTOMER_MOMENT_COLUMNS))
    cells = _period_figures(items, ["customer", "moment"])
    cells = cells.loc[cells["items"] > 0]
    cells = cells.join(top_reasons(counts, ["customer", "moment"]))
    cells["top_reasons"] = cells["top_reasons"].fillna("")
    cells = cells.reset_index()
    cells = cells.assign(_last=_customer_order(cells["customer"])).sort_values(
        ["_last", "customer", "moment"], kind="mergesort"
    )
    # Plain strings outward: callers compare and look up these values, not category codes.
    cells["customer"] = cells["customer"].astype("string")
    cells["moment"] = cells["moment"].astype("string")
    return cells[list(CUSTOMER_MOMENT_COLUMNS)].reset_index(drop=True)


def customer_totals(items: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Per customer with items now, across all moments, in the ``customers.csv`` layout.

    ``counts`` is :func:`reason_counts` by ``["customer", "moment"]``; it is summed over moments
    here rather than exploding the reasons a second time. Indexed by customer.
    """
    totals = _period_figures(items, ["customer"])
    totals = totals.loc[totals["items"] > 0]
    per_customer = (
        counts.groupby(["customer", "reason"], observed=True).agg(count=("count", "sum"))
        .reset_index()
        .sort_values(["customer", "count", "reason"], ascending=[True, False, True],
                     kind="mergesort")
    )
    totals = totals.join(top_reasons(per_customer, ["customer"]))
    totals.index = totals.index.astype("string")
    totals["top_reasons"] = totals["top_reasons"].fillna("")
    return totals[[c for c in CUSTOMER_COLUMNS if c != "customer"]]


def ranked(items: pd.DataFrame, column: str) -> pd.DataFrame:
    """Every value of ``column`` (service, assignment group) with items now, worst first.

    Ranked by mean experience score (lowest first), then most items at risk; values with
    fewer than :data:`MIN_RANKED_ITEMS` items now come after the others, still listed.
    Returns :data:`RANKING_COLUMNS`; ``name`` is blank for items without a value.
    """
    table = _period_figures(items, [column])
    table = table.loc[table["items"] > 0]
    if table.empty:
        return pd.DataFrame(columns=list(RANKING_COLUMNS))
    table["at_risk_share"] = (table["at_risk"] / table["items"]).round(3)
    table = table.reset_index().rename(columns={column: "name"})
    table["name"] = table["name"].astype("string")
    table = table.assign(_few=table["items"] < MIN_RANKED_ITEMS).sort_values(
        ["_few", "mean_score", "at_risk", "name"], ascending=[True, True, False, True],
        na_position="last", kind="mergesort",
    )
    now = current(items)
    chosen = now.loc[now[column].isin(table["name"])].assign(
        name=lambda f: f[column].astype("string")
    )
    reasons = top_reasons(reason_counts(chosen, ["name"]), ["name"]).reset_index()
    reasons["name"] = reasons["name"].astype("string")
    table = table.merge(reasons, on="name", how="left")
    table["top_reasons"] = table["top_reasons"].fillna("")
    table["rank"] = np.arange(1, len(table) + 1)
    return table[list(RANKING_COLUMNS)].reset_index(drop=True)


def at_risk_items(items: pd.DataFrame) -> pd.DataFrame:
    """At-risk and poor items of the current period in the ``at_risk.csv`` layout.

    Lowest score first; ties go to the oldest item first (it has waited longest), then by key,
    so the order is stable between runs.
    """
    risky = items.loc[items["at_risk"].to_numpy() & (items["period"].to_numpy() == CURRENT)]
    risky = risky.sort_values(
        ["score", "age_days", "key"], ascending=[True, False, True],
        na_position="last", kind="mergesort",
    )
    out = risky.assign(
        experience_score=risky["score"].round().astype("Int64"),
        moment=risky["moment"].astype("string"),
    )
    return out[list(AT_RISK_COLUMNS)].reset_index(drop=True)


@dataclass(frozen=True, slots=True)
class Headline:
    """The figures at the top of the report: the current period against the previous one."""

    items: int
    mean_score: float | None
    at_risk: int
    at_risk_share: float | None
    previous_items: int
    previous_mean_score: float | None
    previous_at_risk_share: float | None
    watermelons: int
    #: Rows of ``source, platform, items, at_risk, share`` (most items first).
    sources: list[dict[str, object]]

    @property
    def trend(self) -> float | None:
        """Mean score now minus the previous period's; ``None`` when either is missing or
        rests on fewer than :data:`MIN_TREND_ITEMS` items."""
        if self.mean_score is None or self.previous_mean_score is None:
            return None
        if min(self.items, self.previous_items) < MIN_TREND_ITEMS:
            return None
        return round(self.mean_score - self.previous_mean_score, 1)


def headline(items: pd.DataFrame) -> Headline:
    """Item count, mean score, at-risk share and per-source counts, now and before."""
    now, before = current(items), previous(items)
    total = len(now)
    if total == 0 and before.empty:
        return Headline(0, None, 0, None, 0, None, None, 0, [])
    at_risk = int(now["at_risk"].sum())
    mean = now["score"].mean()
    prev_mean = before["score"].mean()
    by_source = now.groupby(["source", "platform"], observed=True, sort=False).agg(
        items=("at_risk", "size"), at_risk=("at_risk", "sum")
    ).reset_index()
    by_source["share"] = by_source["at_risk"] / by_source["items"]
    by_source = by_source.sort_values(["items", "source"], ascending=[False, True])
    return Headline(
        items=total,
        mean_score=None if pd.isna(mean) else float(mean),
        at_risk=at_risk,
        at_risk_share=at_risk / total if total else None,
        previous_items=len(before),
        previous_mean_score=None if pd.isna(prev_mean) else float(prev_mean),
        previous_at_risk_share=float(before["at_risk"].mean()) if len(before) else None,
        watermelons=int((now["sig_watermelon"].to_numpy() == 1.0).sum()),
        sources=by_source.to_dict("records"),
    )


def level_distribution(items: pd.DataFrame) -> pd.DataFrame:
    """Item counts per moment (rows, canonical order) x level (columns, good..poor)."""
    known = items.loc[items["experience_level"].isin(LEVELS)]
    table = pd.crosstab(known["moment"], known["experience_level"])
    present = [m for m in items["moment"].cat.categories if m in set(items["moment"].unique())]
    return table.reindex(index=present, columns=list(LEVELS), fill_value=0)
