"""`momentos mapping preview`: what a new mapping (moment rules, experience weights) would change,
before it goes live. Read-only: nothing is written to any platform or to the state store.

Which items. The last N items the state store knows (newest ``updated`` first) among the
config's sources. The state keeps only each item's enriched row (no description, comments or
history), which is not enough to enrich it again faithfully, so the raw items are pulled again,
read-only, through the connectors: each stream (table or project) from the oldest selected
item's ``updated`` minus the source's overlap, keeping the selected items only. When the state
store has no items yet, the newest N items are pulled from the platforms (the last 30 days,
else the last year, else everything).

Before and after. "After" enriches those items exactly as a sync does, with the new config.
"Before" is, with ``--against CURRENT.yaml``, the same items enriched with that config (same
raw data, same clock, so only the mapping differs); without it, the moment, level and score
stored in the state store, i.e. what the last sync decided and wrote back. (With no state and
no ``--against``, "before" is the shipped default mapping.)
"""

from __future__ import annotations

import csv
import heapq
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from momentos.config import Config, parse_config
from momentos.connectors.base import Connector, SourceSettings
from momentos.errors import MomentosError
from momentos.models import Item

log = logging.getLogger("momentos.preview")

DEFAULT_ITEMS = 1000
EXAMPLES = 10
#: Look-back windows tried, in days, when the state store has no items (None = everything).
LOOKBACK_DAYS: tuple[int | None, ...] = (30, 365, None)
CSV_COLUMNS = (
    "source", "key", "container", "kind", "title", "moment_before", "moment_after",
    "level_before", "level_after", "score_before", "score_after", "rule_before", "rule_after",
    "reason_after",
)


@dataclass
class RuleUse:
    index: int  # 1-based position among the effective rules
    name: str
    decided: int  # items this rule decided (first match)
    matched: int | None = None  # items it matches on its own; counted only when it decided none
    shipped: bool = False  # one of the shipped default rules


@dataclass
class PreviewResult:
    before_label: str
    items: pd.DataFrame  # one row per item, CSV_COLUMNS
    distribution: pd.DataFrame  # source, container, moment, before, after
    rules: list[RuleUse]
    missing: int = 0  # selected from the state but no longer returned by the platform
    errors: dict[str, str] = field(default_factory=dict)  # source → why its items are absent
    #: Items whose stored level differs from their level scored today with their stored
    #: moment: time, new activity or history moved them, whatever the mapping.
    drift: int = 0
    csv_path: Path | None = None

    @property
    def moment_changes(self) -> pd.DataFrame:
        return self.items[self.items["moment_before"] != self.items["moment_after"]]

    @property
    def level_changes(self) -> pd.DataFrame:
        return self.items[self.items["level_before"] != self.items["level_after"]]

    @property
    def changed(self) -> pd.DataFrame:
        frame = self.items
        return frame[(frame["moment_before"] != frame["moment_after"])
                     | (frame["level_before"] != frame["level_after"])]

    @property
    def unmatched(self) -> pd.DataFrame:
        """Items no rule matched (the learned model or keyword classifier decided them)."""
        return self.items[self.items["rule_after"] == ""]

    @property
    def never_matching(self) -> list[RuleUse]:
        return [r for r in self.rules if r.decided == 0 and not r.matched]

    @property
    def shadowed(self) -> list[RuleUse]:
        """Rules that match items but never decide one: an earlier rule always wins."""
        return [r for r in self.rules if r.decided == 0 and r.matched]


# --- the preview ---------------------------------------------------------------------------------
def run_preview(
    config: Config,
    against: Config | None = None,
    *,
    items: int = DEFAULT_ITEMS,
    now: datetime | None = None,
    connector_factory: Callable[[SourceSettings], Connector] | None = None,
) -> PreviewResult:
    """Compare the mapping of ``config`` with ``against`` (or with what the state store holds)
    over the last ``items`` items. Reads the state store and the platforms; writes nothing."""
    from momentos.state import StateStore
    from momentos.sync import make_connector

    factory = connector_factory or make_connector
    now = now or datetime.now(UTC)
    state = _open_state(config.state_url)
    # Without a state store the engine gets an in-memory one: nothing on disk is created.
    engine_state = state or StateStore("sqlite://")
    try:
        names = [s.name for s in config.sources]
        stored = state.newest_items(names, items) if state else []
        errors: dict[str, str] = {}
        drift = 0
        if stored:
            pulled = _pull_stored(config, stored, factory, now, errors)
        else:
            pulled = _pull_newest(config, items, factory, now, errors)
        after = _enrich(config, engine_state, pulled, now)
        if against is not None:
            before = _enrich(against, engine_state, pulled, now)
            label = str(against.path or "--against")
        elif stored:
            before, drift = _stored_baseline(config, engine_state, stored, pulled, now)
            label = ("the moments stored by the last sync, scored with the same data and weights "
                     "(pass --against to compare weights too)")
        else:
            before = _enrich(parse_config("version: 1\n"), engine_state, pulled, now)
            label = "the shipped default mapping (no state, no --against)"
    finally:
        engine_state.close()
    rows = _compare(before, after)
    missing = len(stored) - len(pulled) if stored else 0
    return PreviewResult(
        before_label=label, items=rows, distribution=_distribution(rows),
        rules=_rule_use(config, pulled, after), missing=max(missing, 0), errors=errors,
        drift=drift,
    )


def _open_state(url: str) -> Any:
    """The state store, or None when it does not exist yet (opening it would create it)."""
    from momentos.state import StateStore

    prefix = "sqlite:///"
    if url.startswith(prefix):
        db = url[len(prefix):]
        if db in ("", ":memory:") or not Path(db).exists():
            log.warning(
                "no state store at %s (a relative path is read from the config file's folder): "
                "previewing freshly pulled items", db or url,
            )
            return None
    return StateStore(url)


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if pd.isna(stamp):
        return None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _pull_stored(
    config: Config, stored: list[dict[str, Any]], factory: Any, now: datetime, errors: dict[str, str]
) -> list[Item]:
    """Pull the stored items again, read-only: each stream from its oldest selected item."""
    wanted: dict[str, dict[str, dict[str, Any]]] = {}
    for row in stored:
        wanted.setdefault(str(row.get("source")), {})[str(row.get("id"))] = row
    found: list[Item] = []
    for settings in config.sources:
        rows = wanted.get(settings.name)
        if not rows:
            continue
        overlap = timedelta(seconds=settings.overlap_seconds)
        source_since = min((_when(r.get("updated")) for r in rows.values() if _when(r.get("updated"))),
                           default=None)
        connector = factory(settings)
        try:
            streams = connector.streams()
            by_stream = {s: [r for r in rows.values() if str(r.get("container")) == s] for s in streams}
            # A connector whose streams are not containers: every stream from the oldest item.
            mapped = any(by_stream.values())
            for stream in streams:
                if mapped and not by_stream[stream]:
                    continue
                times = [t for r in by_stream[stream] if (t := _when(r.get("updated")))] if mapped else []
                since = min(times) if times else source_since
                for page in connector.pull(stream, since - overlap if since else None, now):
                    found += [i for i in page.items if i.id in rows]
        except MomentosError as exc:
            errors[settings.name] = str(exc)
            log.warning("%s: cannot pull the items to preview: %s", settings.name, exc)
        finally:
            connector.close()
    unique: dict[tuple[str, str], Item] = {}
    for item in found:
        unique[(item.source, item.id)] = item  # the overlap may return an item twice
    return list(unique.values())


def _pull_newest(
    config: Config, n: int, factory: Any, now: datetime, errors: dict[str, str]
) -> list[Item]:
    """No state yet: the newest ``n`` items, widening the look-back window until enough."""
    found: dict[tuple[str, str], Item] = {}
    for days in LOOKBACK_DAYS:
        since = now - timedelta(days=days) if days is not None else None
        found.clear()
        for settings in config.sources:
            connector = factory(settings)
            try:
                for stream in connector.streams():
                    for page in connector.pull(stream, since, now):
                        found.update({(i.source, i.id): i for i in page.items})
            except MomentosError as exc:
                errors[settings.name] = str(exc)
                log.warning("%s: cannot pull the items to preview: %s", settings.name, exc)
            finally:
                connector.close()
        if len(found) >= n:
            break
    epoch = datetime.min.replace(tzinfo=UTC)
    return heapq.nlargest(n, found.values(), key=lambda i: (i.updated or epoch, i.source, i.key))


def _enrich(config: Config, state: Any, items: list[Item], now: datetime) -> pd.DataFrame:
    """Enrich as the sync engine does (same function, same settings), without its writes."""
    from momentos.sync import SyncEngine

    if not items:
        return _stored_frame([])
    # The engine's own enrichment step (settings, model, context as a sync uses them); items
    # that fail enrichment are left out, as a sync quarantines them.
    # Read-only (not even a stale model is retrained and saved), and a moment a person set
    # stays theirs, as in a sync.
    engine = SyncEngine(config, state, read_only=True)
    frame, bad = engine.enrich_items(items, now, given=engine.people_moments(items) if state else None)
    for item_id, key, reason in bad:
        log.warning("%s: left out of the preview: %s", key or item_id, reason)
    if not len(frame):
        return _stored_frame([])
    return pd.DataFrame({
        "source": frame["source"].astype(str).to_numpy(),
        "id": frame["id"].astype(str).to_numpy(),
        "key": frame["key"].fillna("").astype(str).to_numpy(),
        "container": frame["container"].fillna("").astype(str).to_numpy(),
        "kind": frame["kind"].fillna("").astype(str).to_numpy(),
        "title": frame["title"].fillna("").astype(str).to_numpy(),
        "moment": frame["moment"].astype(str).to_numpy(),
        "level": frame["experience_level"].astype(str).to_numpy(),
        "score": frame["experience_score"].to_numpy(),
        "rule": frame["moment_rule"].fillna("").astype(str).to_numpy(),
        "reason": frame["moment_reason"].fillna("").astype(str).to_numpy(),
    })


def _stored_baseline(
    config: Config, state: Any, stored: list[dict[str, Any]], items: list[Item], now: datetime
) -> tuple[pd.DataFrame, int]:
    """"Before" without --against: each item keeps the moment the last sync stored, and is
    scored again with the same data, clock, history and weights as "after", so a level change
    is the mapping's doing, not the time's. Returns the frame and how many stored levels differ
    from that re-score (drift a --full sync would write whatever the mapping)."""
    from momentos.config import Config as _Config
    from momentos.enrichment.settings import MomentRule, MomentsSettings

    by_source: dict[str, dict[str, str]] = {}
    for row in stored:
        if row.get("moment") in ("operation", "evolution", "innovation"):
            by_source.setdefault(str(row.get("source")), {})[str(row.get("id"))] = str(row["moment"])
    pinned = MomentsSettings(
        rules=[MomentRule(name=f"stored-{source}", source=source, map_field="id", map=moments)
               for source, moments in by_source.items()],
        include_default_rules=False, model_can_override_below=0.0,
    )
    model = config.model.model_copy(update={"moments": pinned})
    frame = _enrich(_Config(path=config.path, model=model, sources=config.sources), state, items, now)
    kept = _stored_frame(stored).set_index(["source", "id"])
    index = pd.MultiIndex.from_arrays([frame["source"], frame["id"]])
    frame["moment"] = kept["moment"].reindex(index).fillna(frame["moment"]).to_numpy()
    frame["rule"] = kept["rule"].reindex(index).fillna("").to_numpy()
    stored_level = kept["level"].reindex(index).fillna("").to_numpy()
    drift = int((stored_level != frame["level"].to_numpy()).sum())
    return frame, drift


def _stored_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["source", "id", "key", "container", "kind", "title", "moment", "level", "score",
               "rule", "reason"]
    return pd.DataFrame(
        [[str(r.get("source") or ""), str(r.get("id") or ""), str(r.get("key") or ""),
          str(r.get("container") or ""), str(r.get("kind") or ""), str(r.get("title") or ""),
          str(r.get("moment") or ""), str(r.get("experience_level") or ""),
          r.get("experience_score"), str(r.get("moment_rule") or ""), str(r.get("moment_reason") or "")]
         for r in rows],
        columns=columns,
    )


def _compare(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """One row per item enriched after (the before side may lack items pulled for the first
    time; they count as changed from nothing)."""
    if after.empty:
        return pd.DataFrame(columns=list(CSV_COLUMNS))
    merged = after.merge(
        before[["source", "id", "moment", "level", "score", "rule"]],
        on=["source", "id"], how="left", suffixes=("_after", "_before"),
    )
    out = pd.DataFrame({
        "source": merged["source"], "key": merged["key"], "container": merged["container"],
        "kind": merged["kind"], "title": merged["title"],
        "moment_before": merged["moment_before"].fillna(""), "moment_after": merged["moment_after"],
        "level_before": merged["level_before"].fillna(""), "level_after": merged["level_after"],
        "score_before": merged["score_before"], "score_after": merged["score_after"],
        "rule_before": merged["rule_before"].fillna(""), "rule_after": merged["rule_after"],
        "reason_after": merged["reason"],
    })
    return out.sort_values(["source", "container", "key"], kind="stable").reset_index(drop=True)


def _distribution(rows: pd.DataFrame) -> pd.DataFrame:
    """Items per source, container and moment, before and after."""
    columns = ["source", "container", "moment"]
    if rows.empty:
        return pd.DataFrame(columns=[*columns, "before", "after"])
    before = rows.groupby(["source", "container", "moment_before"]).size().rename("before")
    before.index = before.index.set_names(columns)
    after = rows.groupby(["source", "container", "moment_after"]).size().rename("after")
    after.index = after.index.set_names(columns)
    table = pd.concat([before, after], axis=1).fillna(0).astype(int).reset_index()
    return table.sort_values(columns).reset_index(drop=True)


def _rule_use(config: Config, items: list[Item], after: pd.DataFrame) -> list[RuleUse]:
    """How many items each effective rule decides; for those that decide none, whether they
    match anything at all on their own (never matches) or only lose to earlier rules."""
    from momentos.enrichment.frame import items_to_frame
    from momentos.enrichment.moments import assign_moments
    from momentos.enrichment.settings import MomentsSettings, default_rules

    shipped = {r.name for r in default_rules()}
    configured = {r.name for r in config.moments.rules}
    decided = after["rule"].value_counts().to_dict() if len(after) else {}
    uses = [
        RuleUse(index=n, name=rule.name, decided=int(decided.get(rule.name, 0)),
                shipped=rule.name in shipped and rule.name not in configured)
        for n, rule in enumerate(config.moments.effective_rules(), start=1)
    ]
    idle = [u for u in uses if u.decided == 0]
    if idle and items:
        frame = items_to_frame(items)
        rules = {r.name: r for r in config.moments.effective_rules()}
        for use in idle:
            alone = MomentsSettings(rules=[rules[use.name]], include_default_rules=False,
                                    model_can_override_below=0.0)
            tags = assign_moments(frame, alone, _NoModel())
            use.matched = int((tags["moment_rule"] == use.name).sum())
    return uses


class _NoModel:
    """Stands in for the learned model when only rule matching is measured."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"moment": "auto", "confidence": 0.0, "reason": ""}, index=frame.index)


# --- output --------------------------------------------------------------------------------------
def write_csv(result: PreviewResult, path: Path) -> Path:
    """One row per item whose moment or level changes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for row in result.changed.to_dict("records"):
            writer.writerow({k: ("" if _blank(row.get(k)) else row.get(k)) for k in CSV_COLUMNS})
    result.csv_path = path
    return path


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _example(row: dict[str, Any], before: str, after: str) -> str:
    title = str(row.get("title") or "")
    title = title if len(title) <= 60 else title[:59] + "…"
    reason = str(row.get("reason_after") or "")
    reason = reason if len(reason) <= 110 else reason[:109] + "…"
    return (f"    {row['source']}/{row['key']} \"{title}\": {row[before] or '(none)'} → {row[after]}"
            f"  [{row.get('rule_after') or 'no rule'}: {reason}]")


def summary_lines(result: PreviewResult) -> list[str]:
    """The preview as plain text lines for the terminal."""
    rows = result.items
    lines = [f"mapping preview over {len(rows)} items; before = {result.before_label}"]
    if result.missing:
        lines.append(f"  {result.missing} selected items were not returned by the platforms "
                     "(deleted, or hidden from the integration user)")
    for name, why in sorted(result.errors.items()):
        lines.append(f"  {name}: not pulled: {why}")
    if result.drift:
        lines.append(f"  {result.drift} items' stored level differs from a re-score today whatever "
                     "the mapping (time, new activity); not counted as changes below")
    lines.append("")
    lines.append("moment distribution (before → after) per source and table/project:")
    dist = result.distribution
    for (source, container), group in dist.groupby(["source", "container"], sort=True):
        cells = ", ".join(
            f"{g['moment']} {g['before']}→{g['after']}" for g in group.to_dict("records")
        )
        lines.append(f"  {source}/{container}: {cells}")
    for title, frame, before, after in (
        ("change moment", result.moment_changes, "moment_before", "moment_after"),
        ("change level", result.level_changes, "level_before", "level_after"),
    ):
        lines.append("")
        lines.append(f"{len(frame)} items would {title}" + (":" if len(frame) else ""))
        for row in frame.head(EXAMPLES).to_dict("records"):
            lines.append(_example(row, before, after))
    lines.append("")
    never = result.never_matching
    lines.append(f"{len(never)} rules never match" + (":" if never else ""))
    for use in never:
        lines.append(f"    #{use.index} {use.name}" + (" (shipped)" if use.shipped else ""))
    shadowed = result.shadowed
    if shadowed:
        lines.append(f"{len(shadowed)} rules match but never decide (an earlier rule wins):")
        for use in shadowed:
            lines.append(f"    #{use.index} {use.name}: matches {use.matched}"
                         + (" (shipped)" if use.shipped else ""))
    unmatched = result.unmatched
    lines.append("")
    lines.append(f"{len(unmatched)} items match no rule (decided from their text)"
                 + (":" if len(unmatched) else ""))
    for row in unmatched.head(EXAMPLES).to_dict("records"):
        lines.append(_example(row, "moment_before", "moment_after"))
    if result.csv_path is not None:
        lines.append("")
        lines.append(f"{len(result.changed)} changed items written to {result.csv_path}")
    return lines
