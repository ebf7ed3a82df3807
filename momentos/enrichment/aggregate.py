"""Per customer × moment aggregates of enriched items, for the report builder.

What each customer is living with IT right now, in Operation, Evolution and Innovation: how
many items, their mean experience score, the trend against the previous period, how many are
at risk (and how many are watermelons), and the themes of the at-risk items (their frequent,
distinctive terms). Pure pandas over the whole frame; ``now`` is passed in.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from momentos.enrichment import columns as col
from momentos.enrichment import lexicon as lx
from momentos.models import MOMENTS

AGGREGATE_COLUMNS: tuple[str, ...] = (
    "customer",
    "moment",
    "volume",
    "mean_score",
    "previous_volume",
    "previous_mean_score",
    "trend",
    "at_risk",
    "at_risk_share",
    "watermelons",
    "top_themes",
)
AT_RISK_LEVELS = ("at_risk", "poor")
NO_CUSTOMER = "(no customer)"

_WORD = re.compile(r"[a-zñ][a-zñ0-9\-]{2,}")
#: Words that say nothing about a theme, on top of the language-detection stopwords.
_GENERIC = frozenset(
    lx.deaccent(w)
    for w in ["para", "sobre", "tras", "desde", "hasta", "entre", "cuando", "donde", "este", "esta", "estos", "estas", "puede", "pueden", "with", "from", "into", "about", "after", "before", "when", "where", "this", "that", "these", "those", "have", "been", "will", "would", "could", "should", "please", "hola", "hello", "thanks", "gracias", "error", "problema", "problem", "issue", "request", "solicitud", "nuevo", "nueva", "new", "item", "items", "ticket", "incidencia", "team", "equipo", "user", "users", "usuario", "usuarios"]
)


def _reference_time(enriched: pd.DataFrame) -> pd.Series:
    """When each item last lived: ``updated``, else ``created``."""
    updated = col.timestamps(enriched, "updated")
    created = col.timestamps(enriched, "created")
    return updated.where(updated.notna(), created)


def _terms(texts: list[str]) -> list[list[str]]:
    """Distinct content words (and adjacent pairs) of each text, accents removed."""
    stop = lx.STOPWORDS_EN | frozenset(lx.deaccent(w) for w in lx.STOPWORDS_ES) | _GENERIC
    out = []
    for text in texts:
        words = [w for w in _WORD.findall(lx.deaccent(text.lower())) if w not in stop]
        pairs = [f"{a} {b}" for a, b in itertools.pairwise(words)]
        out.append(list(dict.fromkeys(words + pairs)))
    return out


def top_themes(at_risk_texts: list[str], all_texts: list[str], n: int = 5) -> list[str]:
    """The frequent terms of the at-risk texts that are more frequent there than overall.

    A term must appear in at least two at-risk items; terms are ranked by count × lift (its
    share among at-risk texts over its share among all texts), and a word already inside a
    chosen pair is skipped.
    """
    if len(at_risk_texts) < 2:
        return []
    risky = Counter(t for terms in _terms(at_risk_texts) for t in terms)
    overall = Counter(t for terms in _terms(all_texts) for t in terms)
    total_risky, total_all = len(at_risk_texts), max(len(all_texts), 1)
    ranked = sorted(
        (
            (count * (count / total_risky) / max(overall[t] / total_all, 1e-9), t)
            for t, count in risky.items()
            if count >= 2
        ),
        # On a tie the pair wins over its words: "vpn drops" says more than "drops".
        key=lambda pair: (-pair[0], -pair[1].count(" "), pair[1]),
    )
    chosen: list[str] = []
    for _, term in ranked:
        if any(term in other.split() or other in term.split() for other in chosen):
            continue
        chosen.append(term)
        if len(chosen) == n:
            break
    return chosen


def customer_moment_aggregates(
    enriched: pd.DataFrame,
    now: datetime,
    period_days: float | None = 30.0,
    themes: int = 5,
) -> pd.DataFrame:
    """One row per customer × moment (``AGGREGATE_COLUMNS``), every moment for every customer.

    With ``period_days`` the current period is the last ``period_days`` before ``now`` (by
    ``updated``, else ``created``) and the trend compares its mean score with the period
    before (positive = better); ``None`` takes every item as current and leaves the trend
    empty. ``at_risk`` counts items at level at_risk or poor; ``watermelons`` those of them
    whose SLA was met; ``top_themes`` lists distinctive terms of the at-risk items' titles.
    """
    n = len(enriched)
    customer = col.text(enriched, "customer").str.strip()
    customer = customer.where(customer != "", NO_CUSTOMER)
    moment = col.key_text(enriched, "moment")
    score = col.numbers(enriched, "experience_score")
    level = col.key_text(enriched, "experience_level")
    risky = level.isin(AT_RISK_LEVELS).to_numpy()
    sla = col.flags(enriched, "sla_breached")
    # Titles name what the item is about; descriptions add template noise to the themes.
    texts = col.text(enriched, "title", 300)

    current = np.ones(n, dtype=bool)
    previous = np.zeros(n, dtype=bool)
    if period_days is not None:
        reference = pd.Timestamp(now if now.tzinfo else now.replace(tzinfo=UTC))
        when = _reference_time(enriched)
        start = reference - timedelta(days=period_days)
        before = start - timedelta(days=period_days)
        current = ((when > start) & (when <= reference)).to_numpy()
        previous = ((when > before) & (when <= start)).to_numpy()

    data = pd.DataFrame(
        {
            "customer": customer.to_numpy(dtype=object),
            "moment": moment.to_numpy(dtype=object),
            "score": score,
            "risky": risky & current,
            "watermelon": risky & current & (sla == 0.0),
            "current": current,
            "previous": previous,
        }
    )
    now_rows = data[data["current"]]
    cur = now_rows.groupby(["customer", "moment"]).agg(
        volume=("score", "size"),
        mean_score=("score", "mean"),
        at_risk=("risky", "sum"),
        watermelons=("watermelon", "sum"),
    )
    prev = (
        data[data["previous"]]
        .groupby(["customer", "moment"])
        .agg(previous_volume=("score", "size"), previous_mean_score=("score", "mean"))
    )
    customers = sorted(data["customer"].unique().tolist())
    grid = pd.MultiIndex.from_product([customers, list(MOMENTS)], names=["customer", "moment"])
    out = cur.join(prev, how="outer").reindex(grid)
    out[["volume", "at_risk", "watermelons", "previous_volume"]] = (
        out[["volume", "at_risk", "watermelons", "previous_volume"]].fillna(0).astype(int)
    )
    out["trend"] = out["mean_score"] - out["previous_mean_score"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["at_risk_share"] = np.where(
            out["volume"] > 0, out["at_risk"] / out["volume"].clip(lower=1), np.nan
        )
    out["mean_score"] = out["mean_score"].round(1)
    out["previous_mean_score"] = out["previous_mean_score"].round(1)
    out["trend"] = out["trend"].round(1)
    out["at_risk_share"] = out["at_risk_share"].round(3)

    # Themes per cell: the loop runs over cells (customers × 3), not items.
    texts_by_cell = pd.DataFrame(
        {"customer": data["customer"], "moment": data["moment"], "text": texts,
         "risky": data["risky"], "current": data["current"]}
    )
    theme_lists: dict[tuple[str, str], list[str]] = {}
    for (cust, mom), cell in texts_by_cell[texts_by_cell["current"]].groupby(
        ["customer", "moment"]
    ):
        theme_lists[(cust, mom)] = top_themes(
            cell.loc[cell["risky"], "text"].tolist(), cell["text"].tolist(), themes
        )
    out["top_themes"] = [theme_lists.get(key, []) for key in out.index]
    return out.reset_index()[list(AGGREGATE_COLUMNS)]
