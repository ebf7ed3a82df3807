"""One sync cycle: pull what changed since the watermark, enrich, write back, remember.

Follow one item: ``connector.pull`` yields it in a page → ``items_to_frame`` + ``enrich`` tag it
→ ``plan_changes`` compares the desired field values with what the platform holds and what we
last wrote → ``connector.write`` sends only the changed fields → ``StateStore.commit_page``
records the item, the written values and, last, the watermark, in one transaction.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentos.config import Config
from momentos.connectors.base import (
    Connector,
    FieldChange,
    Page,
    SourceSettings,
    WriteResult,
    registered_connectors,
)
from momentos.enrichment import enrich, learn
from momentos.enrichment.frame import items_to_frame
from momentos.errors import BudgetExhausted, MomentosError
from momentos.models import MOMENTS, Item
from momentos.nudges import plan_episodes
from momentos.sandbox.world import INTEGRATION_USER
from momentos.state import PendingWrite, StateStore, Watermark, item_keys

log = logging.getLogger("momentos.sync")

#: Columns of an enriched row kept in the state store for reports and `explain`.
REPORT_COLUMNS = (
    "id", "key", "url", "title", "source", "platform", "container", "kind", "customer",
    "assignment_group", "assignee", "service", "state", "priority", "created", "resolved",
    "updated", "moment", "moment_confidence", "moment_reason", "moment_rule", "needs_review",
    "sentiment", "experience_score", "experience_level", "experience_reasons", "signals",
    "sla_breached", "survey_score", "language", "requester", "category", "caused_by",
)
#: Pages are joined into batches of at least this many records before they are enriched,
#: written and committed (see ``batch_pages``).
BATCH_ITEMS = 1000

#: The state mark naming the stream where the last run's request budget ran out.
BUDGET_MARK = "budget_stream"

#: The state mark of a source whose first sync took several batches and that no full sync has
#: settled since (``momentos status`` shows it; the value is when the first sync ran).
SETTLE_MARK = "settle_pending"

#: What enrichment reads of the instance history (``enrich(context=...)``): enough for the
#: cross-item signals (typical durations, repeat contact, incidents caused by a change).
CONTEXT_COLUMNS = (
    "id", "key", "source", "kind", "priority", "moment", "created", "resolved", "requester",
    "service", "category", "caused_by", "first_response_hours",
)


@dataclass
class SourceSummary:
    pulled: int = 0
    enriched: int = 0
    written: int = 0
    unchanged: int = 0
    skipped_manual: int = 0
    failed: int = 0
    quarantined: int = 0
    notes: int = 0
    requests: dict[str, int] = field(default_factory=lambda: {"read": 0, "write": 0})
    error: str = ""

    def contract(self) -> dict[str, Any]:
        """The fields the contract's ``sync --json`` summary names, in its order."""
        return {
            "pulled": self.pulled,
            "enriched": self.enriched,
            "written": self.written,
            "unchanged": self.unchanged,
            "skipped_manual": self.skipped_manual,
            "failed": self.failed,
            "requests": dict(self.requests),
        }


@dataclass
class SyncResult:
    sources: dict[str, SourceSummary]
    duration_s: float
    diff: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would change

    @property
    def ok(self) -> bool:
        return all(not s.error and s.failed == 0 for s in self.sources.values())

    def contract(self) -> dict[str, Any]:
        return {
            "sources": {name: s.contract() for name, s in self.sources.items()},
            "duration_s": round(self.duration_s, 3),
        }


def make_connector(settings: SourceSettings) -> Connector:
    cls = registered_connectors()[settings.type]
    return cls(settings)


def desired_values(row: pd.Series | dict[str, Any]) -> dict[str, str]:
    """The three writeback values for one enriched row, as the strings we write."""
    return {
        "moment": str(row["moment"]),
        "score": str(int(row["experience_score"])),
        "signals": format_signals(row),
    }


def format_signals(row: pd.Series | dict[str, Any]) -> str:
    """A compact, human-readable summary for the signals field: level, reasons, then values.

    Deterministic (sorted keys, fixed decimals), so an unchanged item yields the same text and
    is never rewritten.
    """
    signals = row.get("signals") or {}
    if isinstance(signals, str):
        try:
            signals = json.loads(signals)
        except ValueError:
            signals = {}
    parts = []
    for name in sorted(signals):
        value = signals[name]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, float):
            value = f"{value:.2f}"
        parts.append(f"{name}={value}")
    reasons = str(row.get("experience_reasons") or "")
    text = f"{row.get('experience_level', '')}: {reasons} | {' '.join(parts)}"
    return text[:2000]


def _norm(field_name: str, value: Any) -> str:
    """Platform values come back as strings (ServiceNow), numbers or option objects (Jira)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        value = value.get("value", value.get("name", ""))
    if field_name == "score":
        try:
            return str(int(round(float(value))))
        except (TypeError, ValueError):
            return str(value).strip()
    return str(value).strip()


@dataclass
class _Plan:
    changes: list[FieldChange]
    manual: set[str]  # item ids with a human override on some field
    unchanged: set[str]
    new_overrides: list[dict[str, Any]] = field(default_factory=list)


def plan_changes(
    items: list[Item],
    enriched: pd.DataFrame,
    allowed: list[str],
    last_written: dict[tuple[str, str], str | None],
    integration_user: str,
    overrides: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> _Plan:
    """Which fields to write on which items.

    A field is written only when its platform value differs from the desired one. When the
    platform value also differs from what we last wrote, and the change was made by someone
    other than the integration user, it is a human's decision: it is kept, recorded as an
    override, and that field of that item is never written again.
    """
    overrides = overrides or {}
    plan = _Plan([], set(), set())
    by_id = {item.id: item for item in items}
    for row in enriched.to_dict("records"):
        item = by_id[row["id"]]
        desired = desired_values(row)
        item_changes = []
        for logical in allowed:
            current = _norm(logical, item.current.get(logical))
            if (item.id, logical) in overrides:
                if current != desired[logical]:
                    plan.manual.add(item.id)  # a person's value stands
                continue
            if current == desired[logical]:
                continue
            previous = last_written.get((item.id, logical))
            moved = current != _norm(logical, previous) if previous is not None else bool(current)
            if moved:
                by = _changed_by_someone_else(item, logical, integration_user)
                if by is not None:
                    plan.manual.add(item.id)
                    plan.new_overrides.append(
                        {
                            "item_id": item.id, "field": logical, "key": item.key,
                            "value": current, "ours": previous, "by": by,
                        }
                    )
                    continue
            item_changes.append(FieldChange(item, logical, item.current.get(logical), desired[logical]))
        if item_changes:
            plan.changes.extend(item_changes)
        elif item.id not in plan.manual:
            plan.unchanged.add(item.id)
    return plan


def person_moment(item: Item, overrides: dict[tuple[str, str], dict[str, Any]]) -> str | None:
    """The moment a person set on ``item``: a moment override is recorded for it (``overrides``
    as ``StateStore.overrides_for`` returns them) and the platform holds a moment; else None."""
    value = _norm("moment", item.current.get("moment"))
    return value if (item.id, "moment") in overrides and value in MOMENTS else None


def _changed_by_someone_else(item: Item, logical: str, integration_user: str) -> str | None:
    """Who last changed the field, when it was not the integration user; None when it was us.

    The item's history (ServiceNow sys_audit, Jira changelog) tells who changed it.
    """
    events = [h for h in item.history if h.field == logical]
    if not events:
        # No history of the field: the value is there and we did not put it there.
        return "unknown (no history)"
    last = max(events, key=lambda h: h.at or datetime.min.replace(tzinfo=timezone.utc))
    if last.by and last.by.lower() == integration_user.lower():
        return None
    return last.by or "unknown"


def _report_row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in REPORT_COLUMNS:
        value = row.get(col)
        if col == "caused_by" and value is None:
            value = _caused_by(row.get("fields"))
        if value is pd.NaT:
            value = None
        elif isinstance(value, pd.Timestamp):
            value = None if pd.isna(value) else value.isoformat()
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, float) and math.isnan(value):
            value = None
        elif hasattr(value, "item") and not isinstance(value, (list, dict, str)):
            value = value.item()  # numpy scalar
        elif isinstance(value, str):
            value = storable(value)
        out[col] = value
    return out


def storable(text: str) -> str:
    """``text`` without lone surrogates (JSON's ``"\\ud800"`` escapes decode to them), which
    no database, file or HTTP body can encode: each becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def _caused_by(fields: Any) -> str | None:
    """The change an incident was caused by, from its platform fields (ServiceNow
    ``caused_by``), as the change's number."""
    if not isinstance(fields, dict):
        return None
    value = fields.get("caused_by") or fields.get("caused_by_change")
    if isinstance(value, dict):  # a reference as {"value", "display_value"}
        value = value.get("display_value") or value.get("value")
    return str(value) if value else None


def context_frame(rows: Iterable[dict[str, Any]], reverse: bool = False) -> pd.DataFrame:
    """Stored enriched rows reduced to what enrichment compares new items with, one row at a
    time (``reverse``: in the opposite order of ``rows``)."""
    lean = []
    for row in rows:
        signals = row.get("signals")
        if isinstance(signals, str):
            try:
                signals = json.loads(signals)
            except ValueError:
                signals = None
        entry = {name: row.get(name) for name in CONTEXT_COLUMNS[:-1]}
        entry["first_response_hours"] = (
            signals.get("first_response_hours") if isinstance(signals, dict) else None
        )
        lean.append(entry)
    if reverse:
        lean.reverse()
    frame = pd.DataFrame.from_records(lean, columns=list(CONTEXT_COLUMNS))
    for name in ("created", "resolved"):
        frame[name] = pd.to_datetime(frame[name], utc=True, errors="coerce", format="ISO8601")
    frame["first_response_hours"] = pd.to_numeric(frame["first_response_hours"], errors="coerce")
    # Plain strings ("" for none): every page reads these columns again, and enrichment's
    # text columns take their fast path on str cells.
    for name in CONTEXT_COLUMNS:
        if name not in ("created", "resolved", "first_response_hours"):
            frame[name] = [v if type(v) is str else ("" if v is None else str(v))
                           for v in frame[name].tolist()]
    return frame


def _merged(history: pd.DataFrame | None, page: pd.DataFrame, limit: int) -> pd.DataFrame:
    """``history`` (a ``context_frame``, oldest first) with ``page``'s rows replacing their
    items' older versions, trimmed to the newest ``limit`` by creation."""
    if history is not None and len(history):
        keys = history["source"].astype(str) + "\x1f" + history["id"].astype(str)
        fresh = set(page["source"].astype(str) + "\x1f" + page["id"].astype(str))
        history = history[~keys.isin(fresh).to_numpy()]
        history = pd.concat([history, page], ignore_index=True)
    else:
        history = page
    if len(history) > limit:
        history = history.sort_values("created", kind="stable", na_position="first")
        history = history.iloc[len(history) - limit:] if limit else history.iloc[0:0]
    return history.reset_index(drop=True)


def stored_history(state: StateStore, settings: Any, now: datetime) -> pd.DataFrame:
    """The stored part of the history a sync compares items with (``ExperienceSettings``
    ``context_days`` and ``context_items``), oldest first, so the newest are kept when the
    history is trimmed. ``explain`` reads it too."""
    rows = state.iter_recent_items(now - timedelta(days=settings.context_days), settings.context_items)
    return context_frame(rows, reverse=True)


#: (context_items, context_days) already warned about by this process: ``serve`` runs a sync
#: every few minutes, and the history stays capped until the admin raises the limit.
_HISTORY_WARNED: set[tuple[int, float]] = set()


def history_capped_advice(oldest: Any, settings: Any, now: datetime) -> str:
    """In words, for a history that ``history_is_capped``: the newest ``context_items`` items,
    created since ``oldest``, a shorter span than ``context_days``, and what that does."""
    since = pd.Timestamp(oldest)
    days = max(0.0, (pd.Timestamp(now) - since).total_seconds() / 86400)
    return (
        f"the history that typical durations are read from holds only the newest "
        f"{settings.context_items:,} items, created since {since:%Y-%m-%d %H:%M} UTC "
        f"({days:.1f} days, where experience.context_days is {settings.context_days:g}). "
        "Repeat contacts and caused incidents count every stored item, but the typical "
        "resolution and response times are medians over that span only: they follow the "
        "newest items, and an older item synced again may score a little differently. Raise "
        "experience.context_items to the items of context_days for medians over the whole "
        "span (what it costs: docs/DEPLOYMENT.md)"
    )


def history_is_capped(oldest: Any, settings: Any, now: datetime) -> bool:
    """Whether the kept history, oldest item created at ``oldest``, spans less than
    ``context_days``: then ``context_items`` cut it short."""
    if oldest is None or pd.isna(oldest):
        return False
    return bool(pd.Timestamp(oldest) > pd.Timestamp(now) - pd.Timedelta(days=settings.context_days))


def warn_history_capped(oldest: Any, settings: Any, now: datetime) -> None:
    """Log ``history_capped_advice`` once per process and limit, when the history is capped
    (as information: only the typical durations depend on it)."""
    key = (settings.context_items, settings.context_days)
    if key in _HISTORY_WARNED or not history_is_capped(oldest, settings, now):
        return
    _HISTORY_WARNED.add(key)
    text = history_capped_advice(oldest, settings, now)
    log.info("%s", text[0].upper() + text[1:])


def _db_time(value: Any) -> datetime | None:
    # pd.NaT is an instance of datetime, so the missing check comes first.
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, datetime):
        return value
    return None


class SyncEngine:
    """Runs sync cycles for the configured sources against one state store."""

    def __init__(
        self,
        config: Config,
        state: StateStore | None = None,
        *,
        connector_factory: Callable[[SourceSettings], Connector] = make_connector,
        integration_user: str | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
        read_only: bool = False,
    ) -> None:
        self.config = config
        self.state = state or StateStore(config.state_url)
        self.connector_factory = connector_factory
        self.integration_user = integration_user
        self.stop_requested = stop_requested
        self._model: learn.MomentModel | None = None
        self._context: pd.DataFrame | None = None
        #: Rows this run processed but did not store (a dry run): cross-item counts see them
        #: here, and not their older stored versions.
        self._unsaved: pd.DataFrame | None = None
        self._stream: str | None = None  # the stream being pulled (where a budget stops)
        #: Commands that write nothing (``mapping preview``) build a read-only engine; a dry
        #: run is read-only for its run. Read-only, nothing is saved, not even a retrained model.
        self.read_only = read_only
        self._writes_state = not read_only

    def run(
        self,
        *,
        source: str | None = None,
        full: bool = False,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> SyncResult:
        started = time.monotonic()
        # Each run reads the model and the history afresh: a retrain or another process's
        # sync may have changed them since the last run.
        self._model, self._context, self._unsaved = None, None, None
        self._writes_state = not (dry_run or self.read_only)
        sources = [self.config.source(source)] if source else list(self.config.sources)
        result = SyncResult(sources={}, duration_s=0.0)
        run_id = None if dry_run else self.state.start_run(f"sync:{source or 'all'}")
        for settings in sources:
            summary = SourceSummary()
            result.sources[settings.name] = summary
            connector = self.connector_factory(settings)
            try:
                self._stream = None
                self._sync_source(connector, settings, summary, result, full, dry_run, now)
                if settings.max_requests and self._writes_state:
                    self.state.set_mark(settings.name, BUDGET_MARK, None)
            except BudgetExhausted as exc:
                log.warning("%s: %s; the watermark is consistent, the next run continues", settings.name, exc)
                if self._stream is not None and self._writes_state:
                    self.state.set_mark(settings.name, BUDGET_MARK, self._stream)
            except MomentosError as exc:
                summary.error = str(exc)
                log.error("%s: %s", settings.name, exc)
            finally:
                summary.requests = connector.counter.as_dict()
                connector.close()
        result.duration_s = time.monotonic() - started
        if run_id is not None:
            status = "ok" if result.ok else "failed"
            payload = result.contract()
            payload["errors"] = {n: s.error for n, s in result.sources.items() if s.error}
            self.state.finish_run(run_id, status, payload)
        for name, s in result.sources.items():
            log.info(
                "sync %s: pulled=%d enriched=%d written=%d unchanged=%d skipped_manual=%d "
                "failed=%d quarantined=%d requests=%s%s",
                name, s.pulled, s.enriched, s.written, s.unchanged, s.skipped_manual, s.failed,
                s.quarantined, s.requests, f" error={s.error}" if s.error else "",
            )
        return result

    # --- one source ------------------------------------------------------------------------------
    def _sync_source(
        self,
        connector: Connector,
        settings: SourceSettings,
        summary: SourceSummary,
        result: SyncResult,
        full: bool,
        dry_run: bool,
        now: datetime | None,
    ) -> None:
        start = now or datetime.now(timezone.utc)
        integration_user = self.integration_user or settings.auth.username or INTEGRATION_USER
        allowed = [f for f in settings.writeback.fields if settings.writeback.enabled]
        if not dry_run and allowed:
            self._retry_pending(connector, settings, summary)
        if not dry_run and self.config.model.nudges.enabled:
            self._reconcile_notes(connector, settings, summary)

        skipped = [0]  # records the connector dropped as already processed, for the count check
        connector.known = None if full else self._known_lookup(settings.name, skipped)
        streams = connector.streams()
        resume = self.state.mark(settings.name, BUDGET_MARK) if settings.max_requests else None
        if resume in streams:
            # The last run's request budget ran out in this stream: start there, so the
            # streams already caught up do not spend the budget before it every run.
            at = streams.index(resume)
            streams = streams[at:] + streams[:at]
        # Each stream's watermark, read once: only this run moves it, in the stream's turn.
        watermarks = {s: None if full else self.state.watermark(settings.name, s) for s in streams}
        # A first sync of more than one batch compares its early items with the part of the
        # history read before them: say how to settle them once it is done.
        first = not full and all(wm is None for wm in watermarks.values())
        batches = 0  # batches that held items, over every stream
        whole = True  # every stream read to the end of its window
        for stream in streams:
            if self.stop_requested():
                whole = False
                break
            self._stream = stream
            wm = watermarks[stream]
            since = wm.updated - timedelta(seconds=settings.overlap_seconds) if wm else None
            processed = 0
            skipped[0] = 0
            total: int | None = None
            # With a request budget, each page commits on its own: a batch that needs more
            # requests than the budget allows would never commit, and no run would progress.
            batch = BATCH_ITEMS if settings.max_requests is None else 0
            pages = 0
            # When each batch was asked for, to tell how far the next run must look back (see
            # ``_window_read``). Connectors read lazily, so a batch's pages are read after it.
            overlap = timedelta(seconds=settings.overlap_seconds)
            asked = datetime.now(timezone.utc)
            read_through = start + overlap
            for page in batch_pages(connector.pull(stream, since, start), batch, self.stop_requested):
                pages += 1
                if page.cursor is not None and page.cursor[0] > asked - overlap:
                    read_through = min(read_through, asked)  # may hold what was not visible yet
                batches += bool(page.items)
                total = page.total if page.total is not None else total
                processed += len(page.items) + len(page.rejected)
                self._process_page(
                    connector, settings, stream, page, summary, result, allowed,
                    integration_user, full, dry_run, start,
                )
                if self.stop_requested():
                    log.info("%s: stop requested; committed through page", settings.name)
                    whole = False
                    break
                last_asked, asked = asked, datetime.now(timezone.utc)
            else:
                if pages and self._writes_state:
                    self._window_read(settings, stream, min(read_through, last_asked))
            processed += skipped[0]
            if total is not None and processed < total:
                log.warning(
                    "%s/%s: the server counted %d records in the window but %d were processed "
                    "(ACLs can hide records from the integration user)",
                    settings.name, stream, total, processed,
                )
        if not self._writes_state:
            return
        if full and whole:
            self.state.set_mark(settings.name, SETTLE_MARK, None)
        elif first and batches > 1:
            # Also when stopped: the rest of the first sync, in later runs, is no better off.
            self.state.set_mark(settings.name, SETTLE_MARK, start.isoformat(timespec="seconds"))
        if first and batches > 1 and whole:
            from momentos.scheduler import settle_advice

            log.info(
                "%s: first sync done (%d items in %d batches). The items of its early batches "
                "were compared with the part of the history read before them (typical "
                "durations, repeat contacts, caused incidents): %s (docs/DEPLOYMENT.md)",
                settings.name, summary.enriched, batches, settle_advice(self.config, settings.name),
            )

    def _window_read(self, settings: SourceSettings, stream: str, read_through: datetime) -> None:
        """The stream's whole window up to the run's start was read and processed: the next run
        starts ``overlap_seconds`` before ``read_through``, not before the last record it met.

        The overlap is for records that became visible late, or carry a platform clock that is
        behind this host's by up to ``overlap_seconds``. Either way, a record stamped ``t`` can
        be missed only by a read made before ``t + overlap_seconds``. Every read of the window
        came after the run's start, so the next run need not look back past
        ``start - overlap_seconds``. It need not look back at all past the start when the
        window's newest records were read at least ``overlap_seconds`` after their stamps.
        The caller passes the earliest time at which that could have failed: when the first
        batch that held such recent records was asked for, or else when the last batch was,
        capped at ``start + overlap_seconds`` so the next run never starts after ``start``.

        This matters after a big write: its burst of our own writes ends just before the
        start of the run that pages over it, and that run lasts minutes. Resuming from the
        last record, or from ``start`` less the overlap, the next run paged over the burst's
        last minutes again (on a million items, about 200 Jira pages). The watermark only
        moves forward."""
        self.state.commit_page(settings.name, stream, [], [], [], {}, Watermark(read_through, ""))

    def _known_lookup(
        self, source: str, skipped: list[int]
    ) -> Callable[[list[tuple[str, datetime | None]]], set[str]]:
        def known(pairs: list[tuple[str, datetime | None]]) -> set[str]:
            versions = self.state.processed_versions(source, [item_id for item_id, _ in pairs])
            found = {
                item_id
                for item_id, updated in pairs
                if updated is not None and versions.get(item_id) == updated
            }
            skipped[0] += len(found)
            return found

        return known

    def _process_page(
        self,
        connector: Connector,
        settings: SourceSettings,
        stream: str,
        page: Page,
        summary: SourceSummary,
        result: SyncResult,
        allowed: list[str],
        integration_user: str,
        full: bool,
        dry_run: bool,
        start: datetime,
    ) -> None:
        source = settings.name
        versions = self.state.processed_versions(source, [i.id for i in page.items])
        fresh: list[Item] = []
        for item in page.items:
            seen = versions.get(item.id)
            if not full and seen is not None and item.updated is not None and item.updated <= seen:
                continue  # this version (or a newer one) was processed already
            fresh.append(item)
        summary.pulled += len(fresh)
        quarantined = list(page.rejected)
        enriched, bad = self.enrich_items(fresh, start)
        quarantined += bad
        bad_ids = {b[0] for b in bad}
        fresh = [i for i in fresh if i.id not in bad_ids]
        summary.enriched += len(enriched)
        summary.quarantined += len(quarantined)
        for item_id, key, reason in quarantined:
            log.warning("%s: item %s quarantined: %s", source, key or item_id, reason)

        ids = [i.id for i in fresh]
        last_written = self.state.last_written(source, ids) if fresh else {}
        overrides = self.state.overrides_for(source, ids) if fresh else {}
        plan = plan_changes(fresh, enriched, allowed, last_written, integration_user, overrides)
        enriched, plan, people, changed = self._honour_people(
            fresh, enriched, plan, allowed, last_written, integration_user, overrides, start
        )
        summary.unchanged += len(plan.unchanged)
        summary.skipped_manual += len(plan.manual)
        cursor = None
        if page.cursor is not None:
            updated, last_id = page.cursor
            # Never past the sync's start: records changed during the run are picked up next time.
            cursor = Watermark(start, "") if updated > start else Watermark(updated, last_id)

        if dry_run:
            for change in plan.changes:
                result.diff.append(
                    {
                        "source": source, "key": change.item.key, "field": change.field,
                        "current": _norm(change.field, change.old), "new": change.new,
                    }
                )
            summary.written += len({c.item.id for c in plan.changes})
            self._remember([_report_row(r) for r in enriched.to_dict("records")], start,
                           stored=False)
            return

        if plan.new_overrides:
            for o in plan.new_overrides:
                log.info(
                    "%s: %s changed %s on %s to %r; keeping it, momentos will not write that field there",
                    source, o["by"], o["field"], o["key"], o["value"],
                )
            self.state.record_overrides(source, plan.new_overrides)
        if changed:
            for o in changed:
                log.info("%s: %s changed the moment of %s again, to %r", source, o["by"], o["key"], o["value"])
            self.state.record_overrides(source, changed)
        if people:
            # A person's moment is a label for the learned moment model, with the text the
            # model reads; the latest correction wins.
            texts = dict(zip(enriched["id"].astype(str), learn.item_texts(enriched)))
            self.state.add_labels(
                {"source": source, "item_id": item_id, "moment": moment, "origin": "human",
                 "text": storable(texts.get(item_id, ""))}
                for item_id, moment in people.items()
            )
        write_results = connector.write(plan.changes) if plan.changes else []
        writes_ok, failed, errors, new_versions = _settle(source, plan.changes, write_results, summary)

        rows, processed = [], []
        records = enriched.to_dict("records")
        processed = [_report_row(row) for row in records]
        for row, data, keys in zip(records, processed, item_keys(processed)):
            updated = new_versions.get(row["id"]) or _db_time(row.get("updated"))
            rows.append(
                {
                    "item_id": row["id"], "key": str(data["key"] or ""),
                    "platform": str(data["platform"] or ""),
                    "container": str(data["container"] or ""),
                    "updated": updated, "moment": data["moment"],
                    "score": data["experience_score"], "level": data["experience_level"],
                    "customer": data["customer"], "created": _db_time(row.get("created")),
                    "resolved": _db_time(row.get("resolved")), "data": json.dumps(data, default=str),
                    **keys,
                }
            )
        self.state.commit_page(
            source, stream, rows, writes_ok, failed, errors, cursor,
            [(i, k, r) for i, k, r in quarantined],
        )
        # What rules decided with confidence trains the instance's moment model (retrain job).
        decided = (
            enriched[(enriched["moment_rule"] != "person").to_numpy()]
            if "moment_rule" in enriched.columns else enriched
        )
        self.state.add_labels(
            {**label, "text": storable(label["text"])} for label in learn.rule_labels(decided)
        )
        self._remember(processed, start)
        if self.config.model.nudges.enabled and fresh:
            self._nudge(connector, settings, fresh, enriched, summary)

    # --- at-risk nudges --------------------------------------------------------------------------
    def _nudge(
        self, connector: Connector, settings: SourceSettings, items: list[Item],
        enriched: pd.DataFrame, summary: SourceSummary,
    ) -> None:
        source = settings.name
        ids = [i.id for i in items]
        to_open, to_close = plan_episodes(
            source, items, enriched, self.state.open_episodes(source, ids),
            self.state.last_episode_numbers(source, ids), self.config.model.nudges,
        )
        if to_close:
            self.state.close_episodes(source, to_close)
        by_id = {i.id: i for i in items}
        for episode in to_open:
            # The intent is committed before the note leaves: a crash after sending is
            # reconciled by the marker, never by posting twice.
            self.state.open_episode(source, episode)
            self._post(connector, source, by_id[episode["item_id"]], episode, summary)

    def _post(
        self, connector: Connector, source: str, item: Item, episode: dict[str, Any],
        summary: SourceSummary,
    ) -> None:
        try:
            version = connector.post_note(item, episode["text"])
        except NotImplementedError as exc:
            log.warning("%s: %s; nudges stay pending", source, exc)
            return
        except MomentosError as exc:
            log.warning("%s: note on %s not posted (%s); the next run retries", source, item.key, exc)
            return
        self.state.mark_notes_sent(source, [(episode["item_id"], episode["episode"])])
        if version is not None:
            # The note made a new version of the item; it is ours, like a field write.
            self.state.mark_versions(source, {episode["item_id"]: version})
        summary.notes += 1

    def _reconcile_notes(self, connector: Connector, settings: SourceSettings, summary: SourceSummary) -> None:
        intents = self.state.note_intents(settings.name)
        if not intents:
            return
        items = {
            e["item_id"]: Item(
                source=settings.name, platform=connector.platform, container=e["container"],
                id=e["item_id"], key=e["key"],
            )
            for e in intents
        }
        try:
            posted = connector.find_notes(list(items.values()), {e["item_id"]: e["marker"] for e in intents})
        except NotImplementedError:
            return
        except MomentosError as exc:
            log.warning("%s: cannot check pending notes yet (%s)", settings.name, exc)
            return
        self.state.mark_notes_sent(
            settings.name, [(e["item_id"], e["episode"]) for e in intents if e["item_id"] in posted]
        )
        for episode in intents:
            if episode["item_id"] not in posted:
                self._post(connector, settings.name, items[episode["item_id"]], episode, summary)

    def _honour_people(
        self,
        fresh: list[Item],
        enriched: pd.DataFrame,
        plan: _Plan,
        allowed: list[str],
        last_written: dict[tuple[str, str], str | None],
        integration_user: str,
        overrides: dict[tuple[str, str], dict[str, Any]],
        now: datetime,
    ) -> tuple[pd.DataFrame, _Plan, dict[str, str], list[dict[str, Any]]]:
        """Items whose moment a person set are scored as that moment.

        The first plan (on momentos' own moments) is what detects and records the override;
        then those items are enriched again with the person's moment given, so their score,
        signals text, stored row and report place follow the person's decision, and their
        score and signals writes are planned again from that. Returns the enriched rows, the
        plan, the person's moment by item id, and the recorded overrides whose value the person
        has changed again since (to record anew)."""
        by_id = {item.id: item for item in fresh}
        people: dict[str, str] = {}
        changed: list[dict[str, Any]] = []
        for item_id, item in by_id.items():
            value = person_moment(item, overrides)
            if value is not None:
                people[item_id] = value
                known = overrides[(item_id, "moment")]
                if value != known.get("value"):
                    by = _changed_by_someone_else(item, "moment", integration_user)
                    changed.append({
                        "item_id": item_id, "field": "moment", "key": item.key, "value": value,
                        "ours": known.get("ours"), "by": by or known.get("by") or "unknown",
                    })
        for override in plan.new_overrides:
            if override["field"] == "moment" and override["value"] in MOMENTS:
                people[override["item_id"]] = override["value"]
        if not people:
            return enriched, plan, people, changed
        ids = enriched["id"].astype(str).to_numpy()
        mask = np.isin(ids, list(people))
        items = [by_id[i] for i in ids[mask]]
        try:
            again = enrich(
                items_to_frame(items), self.config.moments, self.config.experience, now=now,
                model=self._moment_model(), context=self._history(now),
                given_moments=[people[i.id] for i in items], **self._neighbours(items),
            )
        except Exception as exc:  # noqa: BLE001 - keep momentos' own scoring for the page
            log.warning("re-scoring items with a person's moment failed (%s)", exc)
            return enriched, plan, people, changed
        decided = {**overrides, **{(o["item_id"], o["field"]): o for o in plan.new_overrides}}
        replan = plan_changes(items, again, allowed, last_written, integration_user, decided)
        merged = _Plan(
            [c for c in plan.changes if c.item.id not in people] + replan.changes,
            plan.manual,
            (plan.unchanged - set(people)) | (replan.unchanged - plan.manual),
            plan.new_overrides,
        )
        rows = pd.concat([enriched[~mask], again], ignore_index=True)
        return rows, merged, people, changed

    def people_moments(self, items: list[Item]) -> dict[str, str]:
        """The moment a person set, by item id: items with a recorded moment override whose
        platform value is a moment (what a sync scores them with)."""
        found: dict[str, str] = {}
        by_source: dict[str, list[Item]] = {}
        for item in items:
            by_source.setdefault(item.source, []).append(item)
        for source, group in by_source.items():
            known = self.state.overrides_for(source, [i.id for i in group])
            for item in group:
                value = person_moment(item, known)
                if value is not None:
                    found[item.id] = value
        return found

    def enrich_items(
        self, items: list[Item], now: datetime, given: dict[str, str] | None = None
    ) -> tuple[pd.DataFrame, list[tuple[str, str, str]]]:
        """Enrich items as a sync does (the run's moment model and instance history; ``given``
        moments by item id, see ``people_moments``); if the batch as a whole fails, isolate
        the bad items: returns (enriched frame, quarantined (id, key, reason) triples).
        ``mapping preview`` uses it too."""
        if not items:
            return items_to_frame([]), []
        try:
            return self._enrich_frame(items, now, given), []
        except Exception as exc:  # noqa: BLE001 - a bad item must not stop the run
            log.warning("enrichment failed on a page (%s); retrying item by item", exc)
        good: list[pd.DataFrame] = []
        bad: list[tuple[str, str, str]] = []
        for item in items:
            try:
                good.append(self._enrich_frame([item], now, given))
            except Exception as exc:  # noqa: BLE001
                bad.append((item.id, item.key, f"enrichment failed: {type(exc).__name__}: {exc}"[:500]))
        frame = pd.concat(good, ignore_index=True) if good else items_to_frame([])
        return frame, bad

    def _enrich_frame(
        self, items: list[Item], now: datetime, given: dict[str, str] | None = None
    ) -> pd.DataFrame:
        frame = items_to_frame(items)
        return enrich(
            frame, self.config.moments, self.config.experience, now=now,
            model=self._moment_model(), context=self._history(now),
            given_moments=[given.get(i.id) for i in items] if given else None,
            **self._neighbours(items),
        )

    def _neighbours(self, items: list[Item]) -> dict[str, Any]:
        """What ``enrich`` counts repeat contacts and caused incidents over: every stored item
        (``StateStore.neighbours``) but the batch's own and this run's unsaved ones, plus
        those unsaved rows."""
        if not self.config.experience.context_items:
            return {}  # no history: items compare only with their batch
        skip = [(i.source, i.id) for i in items]
        if self._unsaved is not None:
            skip += zip(self._unsaved["source"].tolist(), self._unsaved["id"].tolist())
        return {"stored": self.state.neighbours(skip), "cross_context": self._unsaved}

    def _moment_model(self) -> learn.MomentModel:
        """The instance's learned moment model (the shipped one until it has its own), loaded
        once per run: a retrain job's new model is picked up by the next run."""
        if self._model is None:
            self._model = (
                learn.model_for(self.state) if self._writes_state
                else learn.stored_or_default(self.state)
            )
        return self._model

    def _history(self, now: datetime) -> pd.DataFrame:
        """The instance history new items are compared with: the stored rows of recent items,
        loaded once per run, plus what this run has processed so far (so the first sync of an
        instance compares its later pages with the earlier ones)."""
        if self._context is None:
            settings = self.config.experience
            self._context = stored_history(self.state, settings, now)
            if settings.context_items and len(self._context) >= settings.context_items:
                warn_history_capped(self._context["created"].min(), settings, now)
        return self._context

    def _remember(self, rows: list[dict[str, Any]], now: datetime, stored: bool = True) -> None:
        """Add a processed page to the run's history (replacing older versions of its items),
        and, when the page was not ``stored``, to the run's unsaved rows.

        The same window and limit as the stored history loaded by the next run (created or
        resolved within ``context_days``, the newest ``context_items`` by creation), so a
        resumed run, or runs split by source, meet the history one uninterrupted run meets."""
        if not rows:
            return
        history = self._history(now)
        settings = self.config.experience
        page = context_frame(rows)
        if not stored:
            self._unsaved = _merged(self._unsaved, page, settings.context_items)
        since = pd.Timestamp(now - timedelta(days=settings.context_days))
        page = page[((page["created"] >= since) | (page["resolved"] >= since)).to_numpy()]
        if len(page):
            self._context = _merged(history, page, settings.context_items)

    def _retry_pending(self, connector: Connector, settings: SourceSettings, summary: SourceSummary) -> None:
        pending = self.state.due_pending_writes(settings.name)
        if not pending:
            return
        items: dict[str, Item] = {}
        changes: list[FieldChange] = []
        for pw in pending:
            item = items.setdefault(
                pw.item_id,
                Item(source=settings.name, platform=connector.platform, container=pw.container, id=pw.item_id, key=pw.key),
            )
            changes.append(FieldChange(item, pw.field, None, pw.value))
        log.info("%s: retrying %d pending field writes on %d items", settings.name, len(changes), len(items))
        results = connector.write(changes)
        ok, failed, errors, _ = _settle(
            settings.name, changes, results, summary,
            {(p.item_id, p.field): p for p in pending},
        )
        self.state.commit_page(settings.name, "", [], ok, failed, errors, None)


def batch_pages(
    pages: Iterable[Page], min_items: int, stop_requested: Callable[[], bool] = lambda: False
) -> Iterator[Page]:
    """Join consecutive pages until they hold at least ``min_items`` records, so each batch is
    enriched, written and committed once.

    The history comparison costs the same per batch whatever its size, so a Jira source
    paging 100 issues at a time paid it ten times per thousand items. A batch commits the
    cursor of its last page, so a crash re-pulls at most one batch and never moves the
    watermark past an item that was not processed. An item pulled twice within a batch (a
    record updated while the run pages) keeps its latest pull. A stop request ends the batch
    at the page being read."""
    batch: list[Page] = []
    count = 0
    for page in pages:
        batch.append(page)
        count += len(page.items) + len(page.rejected)
        if count >= min_items or stop_requested():
            yield _join(batch)
            batch, count = [], 0
    if batch:
        yield _join(batch)


def _join(pages: list[Page]) -> Page:
    """One page of several; a record seen twice keeps its later pull (good or rejected)."""
    if len(pages) == 1:
        return pages[0]
    latest: dict[str, Item] = {}
    rejected: dict[str, tuple[str, str, str]] = {}
    for page in pages:
        for item in page.items:
            rejected.pop(item.id, None)
            latest.pop(item.id, None)  # re-inserted, so the batch keeps the later pull's order
            latest[item.id] = item
        for record in page.rejected:
            if record[0]:
                latest.pop(record[0], None)
            rejected[record[0] or f"\x00{len(rejected)}"] = record  # no id: keep each
    cursor = next((p.cursor for p in reversed(pages) if p.cursor is not None), None)
    total = next((p.total for p in reversed(pages) if p.total is not None), None)
    return Page(items=list(latest.values()), cursor=cursor, total=total,
                rejected=list(rejected.values()))


def _settle(
    source: str,
    changes: list[FieldChange],
    results: list[WriteResult],
    summary: SourceSummary,
    pending: dict[tuple[str, str], PendingWrite] | None = None,
) -> tuple[
    list[tuple[str, str, str | None]],
    list[PendingWrite],
    dict[tuple[str, str], tuple[str, bool]],
    dict[str, datetime],
]:
    """Sort write results into written values, writes still owed (keeping the attempt count of
    ``pending`` ones being retried) with their errors, and post-write versions; count them."""
    by_item: dict[str, list[FieldChange]] = {}
    for change in changes:
        by_item.setdefault(change.item.id, []).append(change)
    ok: list[tuple[str, str, str | None]] = []
    failed: list[PendingWrite] = []
    errors: dict[tuple[str, str], tuple[str, bool]] = {}
    versions: dict[str, datetime] = {}
    for res in results:
        item_changes = by_item.get(res.item_id, [])
        if res.ok:
            summary.written += 1
            ok += [(c.item.id, c.field, str(c.new)) for c in item_changes]
            if res.updated is not None:
                versions[res.item_id] = res.updated
            continue
        summary.failed += 1
        key = item_changes[0].item.key if item_changes else res.item_id
        log.warning("%s: write to %s failed: %s", source, key, res.error)
        for c in item_changes:
            owed = (pending or {}).get((c.item.id, c.field)) or PendingWrite(
                source, c.item.id, c.item.key, c.item.container, c.field, str(c.new), 0
            )
            failed.append(owed)
            errors[(c.item.id, c.field)] = (res.error, res.retriable)
    return ok, failed, errors, versions


def write_diff_csv(diff: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["source", "key", "field", "current", "new"])
        writer.writeheader()
        writer.writerows(diff)
    return path
