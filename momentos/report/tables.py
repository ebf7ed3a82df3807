"""Pure aggregations behind the report: enriched items in, small tables out.

Everything here is vectorised pandas over the whole frame (groupby, explode, value counts) so the
same code serves a 20-row test and a million-row tenant; the only Python loops run over the
already-aggregated tables (customers x moments), which stay small. No clock reads: ``now`` is
passed in, as for enrichment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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

CUSTOMER_MOMENT_COLUMNS: tuple[str, ...] = (
    "customer", "moment", "items", "mean_score", "at_risk", "top_reasons",
)
AT_RISK_COLUMNS: tuple[str, ...] = (
    "key", "url", "source", "customer", "moment", "experience_score", "experience_level",
    "experience_reasons", "assignee", "assignment_group", "age_days", "title",
)
#: Columns that group items: few distinct values, normalised once per value (see _category).
_GROUP_COLUMNS: tuple[str, ...] = (
    "source", "platform", "customer", "assignment_group", "service", "moment",
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


def prepare(frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """A normalised copy holding only what the report reads.

    Missing columns become empty, text is stripped, the customer is never blank, moment and
    level are lower-case codes, the score is numeric, and ``age_days`` is computed against
    ``now``. Grouping columns become categoricals with sorted categories; ``moment`` keeps the
    canonical order (operation, evolution, innovation) followed by any unexpected value, so no
    item silently drops out of the figures.

    The detail columns (key, url, title, assignee) are only ever shown for at-risk items, so
    they are normalised for those rows only and left empty elsewhere: on a million-row frame
    that halves the cost of this function.
    """
    # A fresh RangeIndex: callers may pass any index (duplicates included).
    frame = frame.reset_index(drop=True)
    index = frame.index
    out = pd.DataFrame(index=index)
    for name in _GROUP_COLUMNS:
        out[name] = _category(
            frame.get(name),
            len(frame),
            lower=name in ("moment", "experience_level"),
            empty={"customer": NO_CUSTOMER, "moment": NO_MOMENT}.get(name, ""),
            first=MOMENTS if name == "moment" else (),
        )
    out["at_risk"] = out["experience_level"].isin(AT_RISK_LEVELS)

    risky = out["at_risk"].to_numpy()
    for name in _DETAIL_COLUMNS:
        column = pd.Series("", index=index, dtype=object)
        if name in frame.columns and risky.any():
            column[risky] = frame.loc[risky, name].astype("string").fillna("").str.strip()
        out[name] = column

    if "experience_score" in frame.columns:
        out["score"] = pd.to_numeric(frame["experience_score"], errors="coerce").astype(float)
    else:
        out["score"] = np.nan

    now_ts = pd.Timestamp(now if now.tzinfo else now.replace(tzinfo=UTC)).tz_convert("UTC")
    created = _utc(frame, "created")
    end = _utc(frame, "resolved").fillna(now_ts)
    days = (end - created).dt.total_seconds() / 86400.0
    # Whole days, never negative (clock skew between platforms can put resolved before created).
    out["age_days"] = np.floor(days.clip(lower=0)).astype("Int64")
    return out


def _category(
    values: pd.Series | None,
    length: int,
    *,
    lower: bool = False,
    empty: str = "",
    first: tuple[str, ...] = (),
) -> pd.Categorical:
    """Stripped text as a categorical, normalising each *distinct* value once.

    Customers, groups, moments and reason texts repeat across thousands of items; factorising
    first means the string work runs over a few hundred values instead of every row. Missing
    and blank values become ``empty``. Categories are ``first`` (kept even when unused, in that
    order) and then the other values sorted, so sorting by the column is alphabetical.
    """
    if values is None:  # column absent: every item is "missing"
        values = pd.Series(np.full(length, None, dtype=object))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques, dtype=object).astype("string").fillna("").str.strip()
    if lower:
        text = text.str.lower()
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
    # ISO8601 accepts both ServiceNow's "YYYY-MM-DD HH:MM:SS" and Jira's offsets, and lets
    # datetime objects through untouched.
    return pd.to_datetime(frame[name], utc=True, errors="coerce", format="ISO8601")


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
    merged = per_text.merge(pairs, on="experience_reasons")
    table = (
        merged.groupby([*by, "reason"], observed=True)["n"].sum().rename("count").reset_index()
    )
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


def customer_moment(items: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """One row per non-empty customer x moment cell, in the ``customer_moment.csv`` layout.

    ``counts`` is :func:`reason_counts` by ``["customer", "moment"]``.
    """
    if items.empty:
        return pd.DataFrame(columns=list(CUSTOMER_MOMENT_COLUMNS))
    grouped = items.groupby(["customer", "moment"], observed=True, sort=False)
    cells = grouped.agg(
        items=("at_risk", "size"), mean_score=("score", "mean"), at_risk=("at_risk", "sum")
    )
    cells["mean_score"] = cells["mean_score"].round(1)
    cells["at_risk"] = cells["at_risk"].astype(int)
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
    """Per customer across all moments: items, mean score, at-risk count and top reasons.

    ``counts`` is :func:`reason_counts` by ``["customer", "moment"]``; it is summed over moments
    here rather than exploding the reasons a second time.
    """
    grouped = items.groupby("customer", observed=True, sort=False)
    totals = grouped.agg(
        items=("at_risk", "size"), mean_score=("score", "mean"), at_risk=("at_risk", "sum")
    )
    per_customer = (
        counts.groupby(["customer", "reason"], observed=True).agg(count=("count", "sum"))
        .reset_index()
        .sort_values(["customer", "count", "reason"], ascending=[True, False, True],
                     kind="mergesort")
    )
    totals = totals.join(top_reasons(per_customer, ["customer"]))
    totals.index = totals.index.astype("string")
    totals["top_reasons"] = totals["top_reasons"].fillna("")
    totals["at_risk"] = totals["at_risk"].astype(int)
    return totals


def group_attention(items: pd.DataFrame, column: str, limit: int = 8) -> pd.DataFrame:
    """The ``limit`` values of ``column`` (group, service) with most at-risk items.

    Returns ``[column, items, at_risk, share, mean_score, top_reasons]``; values without at-risk
    items are left out because they need no action.
    """
    grouped = items.groupby(column, observed=True, sort=False)
    table = grouped.agg(
        items=("at_risk", "size"), at_risk=("at_risk", "sum"), mean_score=("score", "mean")
    )
    table = table.loc[table["at_risk"] > 0]
    if table.empty:
        return pd.DataFrame(columns=[column, "items", "at_risk", "share", "mean_score",
                                     "top_reasons"])
    table["share"] = table["at_risk"] / table["items"]
    table = table.reset_index().sort_values(
        ["at_risk", "share", column], ascending=[False, False, True], kind="mergesort"
    ).head(limit)
    chosen = items.loc[items[column].isin(table[column])]
    reasons = top_reasons(reason_counts(chosen, [column]), [column]).reset_index()
    # Merge on plain strings: the two sides' categoricals have different category sets.
    table[column] = table[column].astype("string")
    reasons[column] = reasons[column].astype("string")
    table = table.merge(reasons, on=column, how="left")
    table["top_reasons"] = table["top_reasons"].fillna("")
    return table


def at_risk_items(items: pd.DataFrame) -> pd.DataFrame:
    """At-risk and poor items in the ``at_risk.csv`` layout, lowest score first.

    Ties go to the oldest item first (it has waited longest), then by key, so the order is
    stable between runs.
    """
    risky = items.loc[items["at_risk"]]
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
    """The figures at the top of the report."""

    items: int
    mean_score: float | None
    at_risk: int
    at_risk_share: float | None
    #: Rows of ``source, platform, items, at_risk, share`` (most items first).
    sources: list[dict[str, object]]


def headline(items: pd.DataFrame) -> Headline:
    """Item count, mean score, at-risk share and per-source counts."""
    total = len(items)
    if total == 0:
        return Headline(0, None, 0, None, [])
    at_risk = int(items["at_risk"].sum())
    mean = items["score"].mean()
    by_source = items.groupby(["source", "platform"], observed=True, sort=False).agg(
        items=("at_risk", "size"), at_risk=("at_risk", "sum")
    ).reset_index()
    by_source["share"] = by_source["at_risk"] / by_source["items"]
    by_source = by_source.sort_values(["items", "source"], ascending=[False, True])
    return Headline(
        items=total,
        mean_score=None if pd.isna(mean) else float(mean),
        at_risk=at_risk,
        at_risk_share=at_risk / total,
        sources=by_source.to_dict("records"),
    )


def level_distribution(items: pd.DataFrame) -> pd.DataFrame:
    """Item counts per moment (rows, canonical order) x level (columns, good..poor)."""
    known = items.loc[items["experience_level"].isin(LEVELS)]
    table = pd.crosstab(known["moment"], known["experience_level"])
    present = [m for m in items["moment"].cat.categories if m in set(items["moment"].unique())]
    return table.reindex(index=present, columns=list(LEVELS), fill_value=0)
