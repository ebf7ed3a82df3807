"""Enrichment quality against the sandbox generator's ground truth, with baselines.

Run by hand (never in the test suite)::

    /tmp/venv/bin/python benchmarks/enrichment_quality.py            # evaluation seeds 7 11 13
    /tmp/venv/bin/python benchmarks/enrichment_quality.py --fit      # refit weights on 1 2 3

What it prints:

1. At-risk detection (level at_risk or poor vs the generator's ``bad_experience``), per true
   moment and overall, enriching the whole world at once and page by page as the sync does;
   baseline: the technical-KPI view (SLA breached, or a survey of 2/5 or less).
2. Survey calibration: Spearman correlation between score and survey answers, watermelons.
3. Moment macro-F1 with the rules, without them (the learned model alone on every item), and
   on the items no rule decides (Jira Task/Story: the learned model alone); baselines:
   majority class and the v1 keyword classifier.
4. Sentiment macro-F1 (negative / neutral / positive) on the labelled comments in
   ``benchmarks/data/sentiment_labelled.csv``, train and test splits, against VADER run in its
   own throw-away virtual environment on the same texts (skipped with ``--no-vader``).

The worlds are pulled over HTTP through the real connectors (``enrichment_common``), so what
is measured is what the sync engine would see. Enrichment never reads the truth.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from enrichment_common import (
    BENCH_NOW,
    EVAL_SEEDS,
    TUNE_SEEDS,
    pull_world,
    records_to_items,
    vader_scores,
)

from momentos.enrichment import enrich, items_to_frame
from momentos.enrichment.calibration import calibrate
from momentos.enrichment.columns import comments_table, history_table
from momentos.enrichment.moments import assign_moments
from momentos.enrichment.score import combine, severities
from momentos.enrichment.settings import (
    DEFAULT_WEIGHTS,
    SIGNALS,
    ExperienceSettings,
    MomentsSettings,
)
from momentos.enrichment.signals import chaser_regex, compute_signals
from momentos.models import MOMENTS

DATA = Path(__file__).resolve().parent / "data"
AT_RISK = ("at_risk", "poor")
SJ_PAGE = {"servicenow": 500, "jira": 100}  # the demo config's page sizes


# ---------------------------------------------------------------------------------------------
# Worlds
# ---------------------------------------------------------------------------------------------


def world_frame(seed: int, items: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items frame as the sync builds it, truth frame aligned with it)."""
    records = pull_world(seed, items)
    frame = items_to_frame(records_to_items(records))
    truth = pd.DataFrame(
        {
            "moment": [r["_truth"]["moment"] for r in records],
            "bad": [bool(r["_truth"]["bad_experience"]) for r in records],
            "company": [r["_truth"]["company"] for r in records],
        }
    )
    return frame, truth


def sync_pages(frame: pd.DataFrame) -> list[np.ndarray]:
    """Row positions of each page the sync would enrich: ServiceNow one table at a time in
    pages of 500, Jira one search in pages of 100, both ascending by (updated, id)."""
    data = pd.DataFrame(
        {
            "platform": frame["platform"].to_numpy(),
            "stream": np.where(frame["platform"] == "jira", "jira", frame["container"]),
            "updated": frame["updated"].to_numpy(),
            "id": frame["id"].to_numpy(),
        }
    )
    pages = []
    for (plat, _), group in data.groupby(["platform", "stream"], sort=True):
        ordered = group.sort_values(["updated", "id"]).index.to_numpy()
        size = SJ_PAGE[plat]
        pages.extend(ordered[i : i + size] for i in range(0, len(ordered), size))
    return pages


def enrich_pages(frame: pd.DataFrame, context: pd.DataFrame | None = None) -> pd.DataFrame:
    """Enrich page by page, as the sync engine does, and put the rows back in frame order."""
    parts = [
        enrich(frame.iloc[rows].reset_index(drop=True), now=BENCH_NOW, context=context)
        for rows in sync_pages(frame)
    ]
    order = np.concatenate(sync_pages(frame))
    out = pd.concat(parts, ignore_index=True)
    out.index = order
    return out.sort_index()


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, int]:
    tp = int((pred & truth).sum())
    return tp / max(int(pred.sum()), 1), tp / max(int(truth.sum()), 1), int(truth.sum())


def macro_f1(truth: list[str] | np.ndarray, pred: list[str] | np.ndarray, labels: list[str]
             ) -> float:
    truth, pred = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    scores = []
    for label in labels:
        tp = np.sum((pred == label) & (truth == label))
        p = tp / max(np.sum(pred == label), 1)
        r = tp / max(np.sum(truth == label), 1)
        scores.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
    return float(np.mean(scores))


def risk_table(outs: list[pd.DataFrame], truths: list[pd.DataFrame]) -> dict[str, Any]:
    """Precision/recall of at-risk per true moment (and overall), pooled over the worlds."""
    level = np.concatenate([o["experience_level"].to_numpy(dtype=object) for o in outs])
    pred = np.isin(level, AT_RISK)
    bad = np.concatenate([t["bad"].to_numpy(dtype=bool) for t in truths])
    moment = np.concatenate([t["moment"].to_numpy(dtype=object) for t in truths])
    table = {}
    for name in (*MOMENTS, "all"):
        sel = moment == name if name != "all" else np.ones(len(moment), dtype=bool)
        p, r, n = precision_recall(pred & sel, bad & sel)
        table[name] = {"precision": round(p, 3), "recall": round(r, 3), "bad": n,
                       "items": int(sel.sum())}
    return table


def kpi_baseline(frames: list[pd.DataFrame], truths: list[pd.DataFrame]) -> dict[str, Any]:
    """What a technical dashboard flags: SLA breached, or a survey answer of 2/5 or less."""
    outs = []
    for frame in frames:
        sla = frame["sla_breached"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        survey = frame["survey_score"].to_numpy(dtype=float)
        flagged = sla | (survey <= 0.25)
        outs.append(pd.DataFrame({"experience_level": np.where(flagged, "poor", "good")}))
    return risk_table(outs, truths)


# ---------------------------------------------------------------------------------------------
# Weight fit (tuning seeds only)
# ---------------------------------------------------------------------------------------------

#: Signals the fit leaves at their documented defaults: no sandbox data for them, or kept for
#: the report rather than the level (lost time and age repeat the resolution time).
FIT_FIXED = frozenset(
    {"lost_hours", "age_days", "howto", "caused_incidents", "failed_change", "rework",
     "channel_switches", "business_participants", "business_share"}
)
#: What the requester says (and surveys, and IT's own worried notes) may decide a level on its
#: own; no single process counter may: it needs a second signal to reach "at risk".
FIT_VOICE = frozenset({"sentiment", "participants_sentiment", "complaints", "agent_concern",
                       "survey_score"})
FIT_CAP_VOICE, FIT_CAP_PROCESS = 60.0, 35.0
#: Floors from ITSM practice, whatever the sandbox says: a 1/5 survey alone puts an item at
#: risk; a reopen, a breached SLA or a chaser always cost something.
FIT_FLOORS = {"survey_score": 50.0, "reopen_count": 15.0, "sla_breached": 10.0, "chasers": 10.0,
              "sentiment": 15.0, "repeat_contact": 5.0}


def fit_weights(seeds: tuple[int, ...], items: int, pos_weight: float = 4.0
                ) -> dict[str, dict[str, float]]:
    """Per-moment weights that make ``score < levels.fair`` predict the generator's bad
    experiences on ``seeds``: a logistic loss on the real score formula, bounded weights."""
    from scipy.optimize import minimize

    settings = ExperienceSettings()
    threshold = settings.levels.fair
    sev_parts, moment_parts, bad_parts = [], [], []
    for seed in seeds:
        frame, truth = world_frame(seed, items)
        tags = assign_moments(frame, MomentsSettings())
        moments = tags["moment"].to_numpy(dtype=object)
        signals = compute_signals(frame, comments_table(frame), history_table(frame), BENCH_NOW,
                                  chaser_regex(), settings=settings, moments=moments,
                                  frame_is_population=True)
        sev_parts.append(severities(signals, moments, settings))
        moment_parts.append(moments)
        bad_parts.append(truth["bad"].to_numpy(dtype=float))
    sev, moments, bad = np.vstack(sev_parts), np.concatenate(moment_parts), np.concatenate(
        bad_parts)
    fitted: dict[str, dict[str, float]] = {}
    for moment in MOMENTS:
        sel = moments == moment
        x, y = sev[sel], bad[sel]
        prior = np.array([DEFAULT_WEIGHTS[moment][s] for s in SIGNALS], dtype=float)
        free = [j for j, s in enumerate(SIGNALS) if s not in FIT_FIXED and np.any(x[:, j] != 0)]
        bounds = [(FIT_FLOORS.get(SIGNALS[j], 0.0),
                   FIT_CAP_VOICE if SIGNALS[j] in FIT_VOICE else FIT_CAP_PROCESS) for j in free]

        def loss(values: np.ndarray, x: np.ndarray = x, y: np.ndarray = y,
                 prior: np.ndarray = prior, free: list[int] = free) -> float:
            w = prior.copy()
            w[free] = values
            z = (threshold - combine(x * w)) / 6.0
            p = 1.0 / (1.0 + np.exp(-z))
            return float(-(pos_weight * y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9))
                         .mean() + 1e-6 * np.sum(values ** 2))

        start = np.clip(prior[free], [b[0] for b in bounds], [b[1] for b in bounds])
        result = minimize(loss, start, method="L-BFGS-B", bounds=bounds)
        # Signals the sandbox has no data for keep their prior, raised to the floor.
        weights = np.maximum(prior, [FIT_FLOORS.get(s, 0.0) if j not in free and s not in
                                     FIT_FIXED else 0.0 for j, s in enumerate(SIGNALS)])
        weights[free] = result.x
        fitted[moment] = {s: float(round(w)) for s, w in zip(SIGNALS, weights)}
    return fitted


# ---------------------------------------------------------------------------------------------
# Moments
# ---------------------------------------------------------------------------------------------


def moments_section(seeds: tuple[int, ...], items: int) -> dict[str, Any]:
    """Moment macro-F1: with the rules, without them, and the model alone where no rule
    decides; baselines: majority class and the v1 keyword classifier."""
    from momentos.enrichment import learn
    from momentos.enrichment.moments import classify_fallback

    labels = list(MOMENTS)
    rows: dict[str, list[float]] = {}

    def add(name: str, truth: np.ndarray, pred: np.ndarray) -> None:
        rows.setdefault(name, []).append(macro_f1(truth, pred, labels))

    counts = {"auto_items": 0, "labels": 0}
    for seed in seeds:
        frame, truth = world_frame(seed, items)
        moment = truth["moment"].to_numpy(dtype=object)
        shipped = enrich(frame, now=BENCH_NOW, frame_is_population=True)
        auto = (shipped["moment_rule"].isin(["jira-auto", ""])).to_numpy() | shipped[
            "moment_reason"].str.contains("→ auto", regex=False).to_numpy()
        labels_rows = learn.rule_labels(shipped)
        instance = learn.train([r["text"] for r in labels_rows], [r["moment"] for r in labels_rows])
        counts["auto_items"] += int(auto.sum())
        counts["labels"] += len(labels_rows)
        no_rules = MomentsSettings(include_default_rules=False)
        add("rules + shipped model (first sync)", moment, shipped["moment"].to_numpy(object))
        add("rules + instance model (after retrain)", moment,
            enrich(frame, now=BENCH_NOW, model=instance)["moment"].to_numpy(object))
        add("no rules: shipped model alone, all items", moment,
            assign_moments(frame, no_rules, learn.default_model())["moment"].to_numpy(object))
        add("no rules: instance model alone, all items", moment,
            assign_moments(frame, no_rules, instance)["moment"].to_numpy(object))
        rest = frame.iloc[np.flatnonzero(auto)]
        add("items no rule decided: instance model alone", moment[auto],
            instance.predict(rest)["moment"].to_numpy(object))
        add("items no rule decided: shipped model alone", moment[auto],
            learn.default_model().predict(rest)["moment"].to_numpy(object))
        add("baseline, items no rule decided: v1 keywords", moment[auto],
            classify_fallback(rest)["moment"].to_numpy(object))
        add("baseline, all items: v1 keywords alone", moment,
            classify_fallback(frame)["moment"].to_numpy(object))
        majority = Counter(moment.tolist()).most_common(1)[0][0]
        add("baseline, all items: majority class", moment, np.full(len(moment), majority))
        add("baseline, items no rule decided: majority class", moment[auto],
            np.full(int(auto.sum()), Counter(moment[auto].tolist()).most_common(1)[0][0]))
    result = {name: round(float(np.mean(v)), 3) for name, v in rows.items()}
    print(f"\n## Moments: macro-F1 (mean over seeds {', '.join(map(str, seeds))}; "
          f"{counts['auto_items']} items no rule decided, {counts['labels']} rule labels)")
    for name, value in result.items():
        print(f"  {name:<48} {value:.3f}")
    return result | counts


# ---------------------------------------------------------------------------------------------
# Sentiment
# ---------------------------------------------------------------------------------------------


def labelled_comments() -> pd.DataFrame:
    """The hand-labelled comments (``benchmarks/data/sentiment_labelled.csv``)."""
    path = DATA / "sentiment_labelled.csv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    return pd.DataFrame(rows)


def polarity(scores: np.ndarray | list[float]) -> np.ndarray:
    """VADER's convention for both scorers: >= 0.05 positive, <= -0.05 negative."""
    values = np.nan_to_num(np.asarray(scores, dtype=float))
    return np.select([values >= 0.05, values <= -0.05], ["positive", "negative"], "neutral")


def sentiment_section(use_vader: bool) -> dict[str, Any]:
    from momentos.enrichment.sentiment import score_texts

    data = labelled_comments()
    texts = data["text"].tolist()
    ours = polarity(score_texts(texts, data["language"].tolist()))
    detected = polarity(score_texts(texts))
    vader = polarity(vader_scores(texts)[0]) if use_vader else None
    labels = ["negative", "neutral", "positive"]
    result: dict[str, Any] = {"comments": len(data),
                              "by_split": data["split"].value_counts().to_dict()}
    print(f"\n## Sentiment: macro-F1 on {len(data)} labelled comments "
          f"({result['by_split'].get('train', 0)} train, {result['by_split'].get('test', 0)} test)")
    print(f"  {'split':<12}{'momentos':>10}{'(detected)':>12}{'VADER':>8}{'gap':>8}")
    for split in ("train", "test"):
        for language in ("all", "en", "es"):
            sel = (data["split"] == split).to_numpy().copy()
            if language != "all":
                sel &= (data["language"] == language).to_numpy()
            truth = data["label"].to_numpy(dtype=object)[sel]
            f_ours = macro_f1(truth, ours[sel], labels)
            f_det = macro_f1(truth, detected[sel], labels)
            f_vader = macro_f1(truth, vader[sel], labels) if vader is not None else float("nan")
            name = f"{split}/{language}"
            result[name] = {"momentos": round(f_ours, 3), "momentos_detected": round(f_det, 3),
                            "vader": round(f_vader, 3)}
            print(f"  {name:<12}{f_ours:>10.3f}{f_det:>12.3f}{f_vader:>8.3f}"
                  f"{f_ours - f_vader:>+8.3f}")
    return result


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _print_risk(title: str, table: dict[str, Any]) -> None:
    print(f"  {title}")
    for name, row in table.items():
        print(f"    {name:<11} precision {row['precision']:.3f}  recall {row['recall']:.3f}"
              f"  (bad {row['bad']} of {row['items']})")


def risk_section(seeds: tuple[int, ...], items: int) -> dict[str, Any]:
    frames, truths, whole, paged, history = [], [], [], [], []
    for seed in seeds:
        frame, truth = world_frame(seed, items)
        frames.append(frame)
        truths.append(truth)
        whole.append(enrich(frame, now=BENCH_NOW, frame_is_population=True))
        # Steady state: the state store holds the enriched history and the engine passes it.
        paged.append(enrich_pages(frame, context=whole[-1]))
        history.append(enrich_pages(frame))
    result = {
        "whole_frame": risk_table(whole, truths),
        "sync_pages_with_context": risk_table(paged, truths),
        "sync_pages_without_context": risk_table(history, truths),
        "baseline_kpi": kpi_baseline(frames, truths),
    }
    print(f"\n## At-risk detection (seeds {', '.join(map(str, seeds))}, {items} items each)")
    _print_risk("momentos, whole world as one frame (its own reference for durations)",
                result["whole_frame"])
    _print_risk("momentos, sync pages with the history as context (steady state)",
                result["sync_pages_with_context"])
    _print_risk("momentos, sync pages without context (configured duration targets only)",
                result["sync_pages_without_context"])
    _print_risk("baseline: SLA breached or survey <= 2/5", result["baseline_kpi"])

    calibration = [calibrate(out) for out in whole]
    result["calibration"] = [c.to_dict() for c in calibration]
    print("\n## Survey calibration")
    for seed, c in zip(seeds, calibration):
        print(f"  seed {seed}: {c.surveyed} surveyed items, Spearman(score, survey) = "
              f"{c.spearman:.3f}; watermelons (SLA met, experience at risk) = {c.watermelons}"
              f" of {c.sla_met} with SLA met")
    return result


def engine_risk(seed: int, items: int) -> dict[str, Any]:
    """At-risk detection as `momentos sync` really does it: the sync engine against a sandbox
    of the world, over HTTP, with a SQLite state store; the first sync of an empty instance
    (each page compared with the pages before it), then a full resync (each item compared
    with the whole stored history, as in steady state). Writeback is off: levels are read
    from the state store."""
    import os
    import tempfile

    import yaml

    from momentos.config import parse_config
    from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config
    from momentos.sandbox import start_sandbox
    from momentos.sandbox.world import generate_world
    from momentos.state import StateStore
    from momentos.sync import SyncEngine

    world = generate_world(seed=seed, items=items, now=BENCH_NOW)
    truth = {(w.platform, w.id): w.truth for w in world.items}
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, start_sandbox(world=world, seed=seed) as box:
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        raw = sandbox_config(box, state_url=f"sqlite:///{tmp}/s.db", report_out=tmp)
        raw["nudges"] = {"enabled": False}
        # Read-only: the records keep the world's timestamps, so the resync (pinned to the
        # world's clock, like the first sync) pulls them all again.
        for source in raw["sources"]:
            source["writeback"] = {**source.get("writeback", {}), "enabled": False}
        config = parse_config(yaml.safe_dump(raw), Path(tmp) / "c.yaml")
        state = StateStore(config.state_url)
        engine = SyncEngine(config, state)
        for phase, full in (("first_sync", False), ("full_resync", True)):
            engine.run(full=full, now=BENCH_NOW)
            rows = [r for r in state.iter_items() if (r["platform"], r["id"]) in truth]
            level = pd.DataFrame({"experience_level": [r["experience_level"] for r in rows]})
            facts = pd.DataFrame({
                "moment": [truth[(r["platform"], r["id"])]["moment"] for r in rows],
                "bad": [bool(truth[(r["platform"], r["id"])]["bad_experience"]) for r in rows],
            })
            result[phase] = (level, facts)
        state.close()
    return result


def engine_section(seeds: tuple[int, ...], items: int) -> dict[str, Any]:
    phases: dict[str, tuple[list[pd.DataFrame], list[pd.DataFrame]]] = {}
    for seed in seeds:
        for phase, (level, facts) in engine_risk(seed, items).items():
            outs, truths = phases.setdefault(phase, ([], []))
            outs.append(level)
            truths.append(facts)
    result = {phase: risk_table(outs, truths) for phase, (outs, truths) in phases.items()}
    print(f"\n## At-risk detection through the sync engine (seeds {', '.join(map(str, seeds))},"
          f" {items} items each)")
    _print_risk("first sync of an empty instance", result["first_sync"])
    _print_risk("full resync (the whole history stored)", result["full_resync"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(EVAL_SEEDS))
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--fit", action="store_true", help="fit weights on the tuning seeds")
    parser.add_argument("--no-vader", action="store_true", help="skip the VADER baseline")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--engine-only", action="store_true",
                        help="only the at-risk detection through the sync engine")
    args = parser.parse_args(argv)
    seeds = tuple(args.seeds)
    if args.fit:
        if set(seeds) & set(EVAL_SEEDS) and seeds != TUNE_SEEDS:
            print("refusing to fit on evaluation seeds", file=sys.stderr)
            return 2
        fitted = fit_weights(TUNE_SEEDS, args.items)
        print(json.dumps(fitted, indent=1))
        return 0

    print(f"# Enrichment quality — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})")
    figures: dict[str, Any] = {"seeds": list(seeds), "items": args.items}
    figures["engine"] = engine_section(seeds, args.items)
    if args.engine_only:
        return 0
    figures["risk"] = risk_section(seeds, args.items)
    figures["moments"] = moments_section(seeds, args.items)
    figures["sentiment"] = sentiment_section(not args.no_vader)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
