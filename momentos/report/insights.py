"""The seeds' "new view" of each moment, and the cross-checks of the experience score.

Operation is about learning how users really use the systems (how-to questions by service,
people chasing for status, working time lost); Evolution about simple, adopted change (changes
followed by incidents, failed changes, lead time); Innovation about co-creation (how much the
business takes part, initiatives that stalled). Each indicator is computed from the signals
enrichment stored on the items; when no item carries a signal the indicator says so instead of
showing a made-up zero.

The cross-checks: watermelons (SLA met, experience poor), how well the score agrees with what
people answered in surveys (Spearman's rank correlation), reassignment ping-pong between groups
as pairs, and weekly trends of score and volume per moment. Pure pandas over the prepared frame
of :func:`momentos.report.tables.prepare`; ``now`` never read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from momentos.enrichment.aggregate import top_themes
from momentos.models import MOMENTS
from momentos.report.tables import (
    AT_RISK_COLUMNS,
    CURRENT,
    PREVIOUS,
    Period,
    current,
)

INDICATOR_COLUMNS: tuple[str, ...] = (
    "moment", "indicator", "unit", "value", "previous_value", "count", "measured",
    "available",
)
HOWTO_COLUMNS: tuple[str, ...] = (
    "service", "howto_items", "operation_items", "share", "themes", "example",
)
PINGPONG_COLUMNS: tuple[str, ...] = ("group_a", "group_b", "items", "mean_score", "basis")
SURVEY_COLUMNS: tuple[str, ...] = ("scope", "moment", "pairs", "spearman")
WEEKLY_COLUMNS: tuple[str, ...] = ("week_start", "moment", "items", "mean_score", "at_risk")

#: Fewer (score, survey) pairs than this and no correlation is computed: with a handful of
#: answers a rank correlation swings from -1 to 1 on one survey.
MIN_SURVEY_PAIRS = 8
#: How-to questions of one service whose titles are mined for themes (most recent first),
#: and the sample of the service's other titles they are contrasted with: bounded so a
#: million-item tenant costs the same as a small one.
THEME_TEXTS = 3000
THEME_BACKGROUND = 3000
#: Words of the question itself, never a theme (accents already removed by the tokenizer).
_QUESTION_WORDS = frozenset({
    "how", "what", "where", "which", "when", "can", "could", "should", "would", "use", "using",
    "usar", "uso", "como", "donde", "cual", "puedo", "puede", "hacer", "hago",
})
#: Services listed with their how-to themes.
HOWTO_SERVICES = 10
#: Weeks in the weekly trend, at least; a longer period shows both periods' weeks.
MIN_WEEKS = 8


@dataclass(frozen=True, slots=True)
class Indicator:
    """How one "new view" indicator is computed: from a signal, over a moment's items."""

    moment: str
    code: str
    unit: str  # share | count | hours | days | people
    signal: str  # the sig_ column it needs ("" for ones computed from dates)
    how: str  # share_positive | count_positive | sum | mean | median | lead_time | stalled


INDICATORS: tuple[Indicator, ...] = (
    Indicator("operation", "howto_share", "share", "howto", "share_positive"),
    Indicator("operation", "chased_share", "share", "chasers", "share_positive"),
    Indicator("operation", "lost_hours", "hours", "lost_hours", "sum"),
    Indicator("operation", "lost_hours_per_item", "hours", "lost_hours", "mean"),
    Indicator("evolution", "changes_with_incidents", "share", "caused_incidents",
              "share_positive"),
    Indicator("evolution", "failed_changes", "share", "failed_change", "share_positive"),
    Indicator("evolution", "lead_time_days", "days", "", "lead_time"),
    Indicator("innovation", "business_participants", "people", "business_participants",
              "median"),
    Indicator("innovation", "business_share", "share", "business_share", "mean"),
    Indicator("innovation", "stalled", "count", "stalled_days", "stalled"),
)


def moment_indicators(
    items: pd.DataFrame, stall_days: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Every indicator of :data:`INDICATORS` for the current and previous period.

    ``value``/``previous_value`` are in ``unit`` (shares in 0..1); ``count`` is the number of
    items meeting the condition now (e.g. chased at least once), ``measured`` how many items
    of the moment carry the signal now. ``available`` is false when no item of the moment
    carries the signal in either period: the page then says "not available" rather than 0.
    ``stall_days`` is enrichment's per-moment stall threshold (open work without activity for
    that long is stalled).
    """
    stall = {"operation": 5.0, "evolution": 14.0, "innovation": 21.0, **(stall_days or {})}
    rows = []
    periods = items["period"].to_numpy()
    moments = items["moment"].astype("string").to_numpy(dtype=object)
    for spec in INDICATORS:
        mine = moments == spec.moment
        figures = {}
        for code in (CURRENT, PREVIOUS):
            subset = items.loc[mine & (periods == code)]
            figures[code] = _indicator(subset, spec, stall[spec.moment])
        value, count, measured = figures[CURRENT]
        previous_value, _, previous_measured = figures[PREVIOUS]
        rows.append({
            "moment": spec.moment,
            "indicator": spec.code,
            "unit": spec.unit,
            "value": value,
            "previous_value": previous_value,
            "count": count,
            "measured": measured,
            "available": bool(measured or previous_measured),
        })
    table = pd.DataFrame(rows, columns=list(INDICATOR_COLUMNS))
    table["value"] = table["value"].astype(float).round(3)
    table["previous_value"] = table["previous_value"].astype(float).round(3)
    return table


def _indicator(
    subset: pd.DataFrame, spec: Indicator, stall_days: float
) -> tuple[float, int, int]:
    """(value, items meeting the condition, items measured) of one indicator on ``subset``."""
    if spec.how == "lead_time":
        done = subset.loc[subset["resolved"].notna() & subset["created"].notna()]
        if done.empty:
            return np.nan, 0, 0
        days = (done["resolved"] - done["created"]).dt.total_seconds() / 86400.0
        return float(days.clip(lower=0).median()), len(done), len(done)
    values = subset[f"sig_{spec.signal}"].to_numpy(dtype=float)
    present = values[~np.isnan(values)]
    if not len(present):
        return np.nan, 0, 0
    if spec.how == "share_positive":
        hits = int((present > 0).sum())
        return hits / len(present), hits, len(present)
    if spec.how == "sum":
        return float(present.sum()), int((present > 0).sum()), len(present)
    if spec.how == "mean":
        return float(present.mean()), int((present > 0).sum()), len(present)
    if spec.how == "median":
        return float(np.median(present)), int((present > 0).sum()), len(present)
    if spec.how == "stalled":
        # Only open work can be stalled; stalled_days is empty for resolved items anyway.
        is_open = subset["open"].to_numpy()[~np.isnan(values)]
        hits = int(((present >= stall_days) & is_open).sum())
        return float(hits), hits, len(present)
    raise ValueError(f"unknown indicator rule {spec.how!r}")


def howto_themes(items: pd.DataFrame, limit: int = HOWTO_SERVICES) -> pd.DataFrame:
    """What users struggle to use: how-to questions per service now, with their themes.

    Services with most how-to questions first; ``share`` is of the service's operation items
    that carry the how-to signal. Themes are the distinctive terms of those questions' titles
    (:func:`momentos.enrichment.aggregate.top_themes`) against the service's other titles.
    Empty when no item carries the how-to signal.
    """
    now = current(items)
    ops = now.loc[(now["moment"] == "operation").to_numpy()
                  & ~np.isnan(now["sig_howto"].to_numpy(dtype=float))]
    if ops.empty:
        return pd.DataFrame(columns=list(HOWTO_COLUMNS))
    ops = ops.assign(_howto=ops["sig_howto"].to_numpy() == 1.0)
    per = ops.groupby("service", observed=True).agg(
        howto_items=("_howto", "sum"), operation_items=("_howto", "size")
    )
    per = per.loc[per["howto_items"] > 0].reset_index()
    if per.empty:
        return pd.DataFrame(columns=list(HOWTO_COLUMNS))
    per["service"] = per["service"].astype("string")
    per["howto_items"] = per["howto_items"].astype(int)
    per["share"] = (per["howto_items"] / per["operation_items"]).round(3)
    per = per.sort_values(["howto_items", "service"], ascending=[False, True],
                          kind="mergesort").head(limit)
    themes, examples = [], []
    for service in per["service"].tolist():
        mine = ops.loc[(ops["service"] == service).to_numpy()]
        recent = mine.sort_values("created", ascending=False, kind="mergesort")
        asked = recent.loc[recent["_howto"], "title"].head(THEME_TEXTS).tolist()
        # The latest question in the user's own words: with one or two questions there are
        # no themes yet, and the words themselves are what IT should read.
        examples.append(next((t for t in asked if t), ""))
        # The background: the service's questions and a bounded sample of everything else,
        # taken by position so the result is the same on every run.
        other = recent.loc[~recent["_howto"], "title"]
        step = max(len(other) // THEME_BACKGROUND, 1)
        background = asked + other.iloc[::step].head(THEME_BACKGROUND).tolist()
        found = top_themes([t for t in asked if t], background, 8)
        # "how", "where", "cómo": every how-to question has them; they are not a theme.
        themes.append("; ".join([t for t in found if not set(t.split()) & _QUESTION_WORDS][:4]))
    per["themes"] = themes
    per["example"] = examples
    return per[list(HOWTO_COLUMNS)].reset_index(drop=True)


_PINGPONG_RE = re.compile(r"ping-pong (?:between|entre) (.+?)(?:\)|;|$)")
_LIST_SPLIT = re.compile(r",\s+|\s+(?:and|y)\s+")


def pingpong_pairs(items: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """Pairs of assignment groups that bounced items between them now, most items first.

    From each item's ``groups_path`` (the groups it went through, in order) when the rows
    carry it: a pair counts when the item went A → B and later B → A. Otherwise, from the
    reasons enrichment wrote ("ping-pong between A and B"), which name the groups involved
    but not their order (``basis`` says which). ``mean_score`` is of the bounced items.
    """
    now = current(items)
    paths = now["groups_path"].to_numpy(dtype=object)
    has_path = np.fromiter((isinstance(p, (list, tuple)) for p in paths), bool, len(paths))
    pairs: list[tuple[int, str, str, str]] = []
    for row in np.flatnonzero(has_path):
        for a, b in _bounces([str(g) for g in paths[row] if g]):
            pairs.append((row, a, b, "history"))
    # Rows without a path: parse the distinct reason texts once, then map them to rows.
    rest = now.loc[~has_path]
    texts = rest["experience_reasons"]
    parsed = {}
    for text in texts.cat.categories if len(texts) else []:
        found = _PINGPONG_RE.search(text)
        if found:
            groups = [g.strip() for g in _LIST_SPLIT.split(found.group(1)) if g.strip()]
            parsed[text] = list(pairwise(groups))
    if parsed:
        position = {index: i for i, index in enumerate(now.index)}
        hit = rest.loc[texts.isin(list(parsed))]
        for index, text in zip(hit.index, hit["experience_reasons"].tolist()):
            for a, b in parsed[text]:
                pairs.append((position[index], a, b, "reasons"))
    if not pairs:
        return pd.DataFrame(columns=list(PINGPONG_COLUMNS))
    table = pd.DataFrame(pairs, columns=["row", "a", "b", "basis"])
    # Unordered pairs: A↔B and B↔A are the same ping-pong.
    swap = table["a"] > table["b"]
    table.loc[swap, ["a", "b"]] = table.loc[swap, ["b", "a"]].to_numpy()
    table = table.drop_duplicates(["row", "a", "b"])
    table["score"] = now["score"].to_numpy()[table["row"].to_numpy()]
    out = table.groupby(["a", "b"], sort=False).agg(
        items=("row", "size"), mean_score=("score", "mean"), basis=("basis", "first")
    ).reset_index().rename(columns={"a": "group_a", "b": "group_b"})
    out["mean_score"] = out["mean_score"].round(1)
    out = out.sort_values(["items", "group_a", "group_b"], ascending=[False, True, True],
                          kind="mergesort")
    if limit is not None:
        out = out.head(limit)
    return out[list(PINGPONG_COLUMNS)].reset_index(drop=True)


def _bounces(path: list[str]) -> list[tuple[str, str]]:
    """Pairs (A, B) where the path went A → B and later came back B → A (or A again)."""
    steps = [g for i, g in enumerate(path) if i == 0 or g != path[i - 1]]
    found: list[tuple[str, str]] = []
    for i in range(1, len(steps)):
        a, b = steps[i - 1], steps[i]
        if b in steps[:i]:  # coming back into a group already visited
            pair = (a, b)
            if pair not in found and (b, a) not in found:
                found.append(pair)
    return found


def watermelons(items: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int | float | None]]:
    """Watermelon items now (SLA met, experience at risk or poor), worst first, and a summary.

    The summary: ``sla_met`` items now with a known SLA that was met, ``watermelons``, and
    ``share`` of SLA-met items that are watermelons (None when no item has SLA data).
    """
    now = current(items)
    sla = now["sig_sla_breached"].to_numpy(dtype=float)
    melon = now["sig_watermelon"].to_numpy(dtype=float) == 1.0
    met = int((sla == 0.0).sum())
    table = now.loc[melon].sort_values(
        ["score", "age_days", "key"], ascending=[True, False, True], na_position="last",
        kind="mergesort",
    )
    table = table.assign(
        experience_score=table["score"].round().astype("Int64"),
        moment=table["moment"].astype("string"),
    )[list(AT_RISK_COLUMNS)].reset_index(drop=True)
    summary: dict[str, int | float | None] = {
        "sla_met": met,
        "sla_known": int((~np.isnan(sla)).sum()),
        "watermelons": int(melon.sum()),
        "share": round(float(melon.sum()) / met, 3) if met else None,
    }
    return table, summary


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when undefined."""
    if len(x) < 2:
        return None
    rx = pd.Series(x).rank(method="average").to_numpy()
    ry = pd.Series(y).rank(method="average").to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return None  # every score (or every answer) the same: no ranking to agree with
    return float(np.corrcoef(rx, ry)[0, 1])


def survey_agreement(items: pd.DataFrame) -> pd.DataFrame:
    """How well the experience score agrees with survey answers: Spearman's rho.

    For the current period and for every item in the data (surveys are sparse, so the
    longer view is often the only one with enough answers), overall and per moment.
    ``spearman`` is empty when there are fewer than :data:`MIN_SURVEY_PAIRS` pairs.
    """
    rows = []
    scopes = {"period": items["period"].to_numpy() == CURRENT,
              "all": np.ones(len(items), dtype=bool)}
    survey = items["sig_survey_score"].to_numpy(dtype=float)
    score = items["score"].to_numpy(dtype=float)
    paired = ~np.isnan(survey) & ~np.isnan(score)
    moments = items["moment"].astype("string").to_numpy(dtype=object)
    for scope, mask in scopes.items():
        for moment in ("all", *MOMENTS):
            chosen = paired & mask & ((moments == moment) if moment != "all" else True)
            pairs = int(chosen.sum())
            rho = (_spearman(score[chosen], survey[chosen])
                   if pairs >= MIN_SURVEY_PAIRS else None)
            rows.append({"scope": scope, "moment": moment, "pairs": pairs,
                         "spearman": None if rho is None else round(rho, 3)})
    table = pd.DataFrame(rows, columns=list(SURVEY_COLUMNS))
    table["spearman"] = table["spearman"].astype(float)
    return table


def weekly_trends(items: pd.DataFrame, period: Period) -> pd.DataFrame:
    """Items opened per 7-day week and moment, with their mean score and at-risk count.

    Weeks are counted back from the period's end (so the last week is never partial), over
    both periods and at least :data:`MIN_WEEKS` weeks. ``week_start`` is the first day.
    """
    weeks = max(MIN_WEEKS, int(np.ceil(2 * period.days / 7)))
    created = items["created"]
    age = (period.until - created).dt.total_seconds().to_numpy() / (7 * 86400.0)
    week = np.floor(np.nan_to_num(age, nan=-1.0))
    # age in (0, weeks]: created inside the window (creation at the very end counts as week 0).
    inside = (age >= 0) & (week < weeks)
    known = items["moment"].isin(MOMENTS).to_numpy()
    data = pd.DataFrame({
        "week": week[inside & known].astype(int),
        "moment": items["moment"].astype(str).to_numpy()[inside & known],
        "score": items["score"].to_numpy()[inside & known],
        "at_risk": items["at_risk"].to_numpy()[inside & known],
    })
    grid = pd.MultiIndex.from_product([range(weeks - 1, -1, -1), list(MOMENTS)],
                                      names=["week", "moment"])
    table = data.groupby(["week", "moment"], observed=True).agg(
        items=("score", "size"), mean_score=("score", "mean"), at_risk=("at_risk", "sum")
    )
    table = table.reindex(grid)
    table["items"] = table["items"].fillna(0).astype(int)
    table["at_risk"] = table["at_risk"].fillna(0).astype(int)
    table["mean_score"] = table["mean_score"].round(1)
    table = table.reset_index()
    starts = period.until - pd.to_timedelta((table["week"] + 1) * 7, unit="D")
    table["week_start"] = starts.dt.strftime("%Y-%m-%d")
    return table[list(WEEKLY_COLUMNS)]
