"""The state store: where momentos is, what it wrote, and what it still owes.

SQLite by default, any SQLAlchemy URL (PostgreSQL) for shared deployments. It keeps:
- watermarks per source and stream, committed only after a page's items are processed;
- every processed item with its enrichment (what reports read);
- the values last written per item and field;
- pending writes that failed and are retried by later runs;
- quarantined items with the reason;
- run history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

log = logging.getLogger(__name__)

metadata = MetaData()


class UTCDateTime(TypeDecorator):
    """Stores naive UTC in the database and hands back aware UTC datetimes, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; use aware UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


watermarks = Table(
    "watermarks",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("stream", String(200), primary_key=True),
    Column("updated", UTCDateTime, nullable=False),
    Column("last_id", String(100), nullable=False),
    Column("committed_at", UTCDateTime, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(100), primary_key=True),
    Column("key", String(100), nullable=False, index=True),
    Column("platform", String(50), nullable=False),
    Column("container", String(100), nullable=False),
    #: platform ``updated`` of the version processed (or of our own write, when known)
    Column("updated", UTCDateTime),
    Column("processed_at", UTCDateTime, nullable=False),
    Column("moment", String(20)),
    Column("score", Integer),
    Column("level", String(20)),
    Column("customer", String(300)),
    #: indexed: each sync reads the recent history (``recent_items``) by these
    Column("created", UTCDateTime, index=True),
    Column("resolved", UTCDateTime, index=True),
    #: the enriched row (report columns) as JSON
    Column("data", Text, nullable=False),
    #: what cross-item signals find the item by (``signals.stored_keys``; None where empty)
    Column("requester_key", Text),
    Column("about_key", Text),
    Column("service_key", Text),
    Column("kind_key", Text),
    Column("caused_by_key", Text),
    # Each ``StoredNeighbours`` count reads one of these alone (source and item_id included,
    # to leave the batch's own items out without reading the table).
    Index("ix_items_contact", "requester_key", "about_key", "created", "source", "item_id"),
    Index("ix_items_service", "service_key", "kind_key", "created", "source", "item_id"),
    Index("ix_items_caused_by", "caused_by_key", "kind_key", "source", "item_id"),
    Index("ix_items_linking", "source", "caused_by_key", "kind_key"),
)

#: The columns of ``items`` that ``signals.stored_keys`` fills.
KEY_COLUMNS = ("requester_key", "about_key", "service_key", "kind_key", "caused_by_key")


def _in_history(since: datetime) -> Any:
    """The items the history may hold: created or resolved at or after ``since``."""
    return or_(items.c.created >= since, items.c.resolved >= since)


#: The history keeps the newest items by creation (``recent_items``, ``history_extent``).
_NEWEST_FIRST = items.c.created.desc().nulls_last()

written = Table(
    "written",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(100), primary_key=True),
    Column("field", String(50), primary_key=True),
    Column("value", Text),
    Column("written_at", UTCDateTime, nullable=False),
)

pending_writes = Table(
    "pending_writes",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(100), primary_key=True),
    Column("field", String(50), primary_key=True),
    Column("key", String(100), nullable=False),
    Column("container", String(100), nullable=False),
    Column("value", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("permanent", Integer, nullable=False, default=0),
)

#: A person changed a field momentos writes: their value stands, momentos stops writing it.
overrides = Table(
    "overrides",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(100), primary_key=True),
    Column("field", String(50), primary_key=True),
    Column("key", String(100), nullable=False),
    Column("value", Text),
    Column("ours", Text),  # what momentos had written before
    Column("by", String(200)),
    Column("at", UTCDateTime, nullable=False),
)

#: At-risk episodes and their nudge notes. A note's intent is recorded before it is sent and
#: marked sent after, so a crash in between is reconciled by looking for the note's marker.
episodes = Table(
    "episodes",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(100), primary_key=True),
    Column("episode", Integer, primary_key=True),
    Column("key", String(100), nullable=False),
    Column("container", String(100), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("note", String(10), nullable=False),  # intent | sent | off
    Column("marker", String(200), nullable=False),
    Column("text", Text),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(100), primary_key=True),
    Column("key", String(100)),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(20), nullable=False),
    Column("duration_s", Float),
    Column("summary", Text),
)

#: Learned models (the moment classifier), by name: the pickled estimator and what it is.
models = Table(
    "models",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("blob", LargeBinary, nullable=False),
    Column("trained_at", UTCDateTime, nullable=False),
    Column("meta", Text, nullable=False),  # JSON: library versions, labels, classes, scores
)

#: Training labels for the moment classifier: what a confident rule decided ("rule") and
#: every human correction made in the platform ("human"), with the text it was decided on.
labels = Table(
    "labels",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(100), primary_key=True),
    Column("origin", String(10), primary_key=True),  # "rule" | "human"
    Column("moment", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

#: Small per-source notes a later run reads, by name (the stream a request budget stopped in).
marks = Table(
    "marks",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Watermark:
    updated: datetime
    last_id: str


@dataclass(frozen=True)
class PendingWrite:
    source: str
    item_id: str
    key: str
    container: str
    field: str
    value: str | None
    attempts: int


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def item_keys(rows: list[dict[str, Any]]) -> list[dict[str, str | None]]:
    """``KEY_COLUMNS`` of each stored row (the enriched report rows sync stores as ``data``)."""
    if not rows:
        return []
    import pandas as pd

    from momentos.enrichment.signals import stored_keys

    names = ("requester", "service", "category", "kind", "caused_by")
    frame = pd.DataFrame.from_records(
        [{name: row.get(name) for name in names} for row in rows], columns=list(names)
    )
    return stored_keys(frame).to_dict("records")


class StateStore:
    """All state access goes through here; every method is one short transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        self._add_item_keys()
        # Indexes added after a store was created (create_all only makes missing tables).
        for index in items.indexes:
            index.create(self.engine, checkfirst=True)

    def _add_item_keys(self) -> None:
        """A store made before ``KEY_COLUMNS`` existed gets them, filled from each item's
        stored row, once, in one transaction (an interrupted start leaves the store as it
        was, and the next start does it again)."""
        missing = self._missing_key_columns()
        if not missing:
            return
        try:
            self._fill_item_keys(missing)
        except DBAPIError:
            # Another process (``serve`` beside ``status``) upgraded the store meanwhile.
            if self._missing_key_columns():
                raise

    def _missing_key_columns(self) -> list[str]:
        have = {c["name"] for c in inspect(self.engine).get_columns("items")}
        return [name for name in KEY_COLUMNS if name not in have]

    def _fill_item_keys(self, missing: list[str]) -> None:
        with self.engine.begin() as conn:
            for name in missing:
                conn.exec_driver_sql(f"ALTER TABLE items ADD COLUMN {name} TEXT")
            total = conn.execute(select(func.count()).select_from(items)).scalar_one()
            if total:
                log.info("state store: adding the keys of cross-item signals to %d stored "
                         "items (once)", total)
            statement = (
                update(items)
                .where(items.c.source == bindparam("b_source"),
                       items.c.item_id == bindparam("b_id"))
                .values({name: bindparam(f"b_{name}") for name in KEY_COLUMNS})
            )
            after: tuple[str, str] = ("", "")
            while True:
                page = conn.execute(
                    select(items.c.source, items.c.item_id, items.c.data)
                    .where(tuple_(items.c.source, items.c.item_id) > after)
                    .order_by(items.c.source, items.c.item_id).limit(5000)
                ).all()
                if not page:
                    break
                after = (page[-1].source, page[-1].item_id)
                keys = item_keys([json.loads(row.data) for row in page])
                conn.execute(statement, [
                    {"b_source": row.source, "b_id": row.item_id,
                     **{f"b_{name}": value for name, value in key.items()}}
                    for row, key in zip(page, keys)
                ])

    def close(self) -> None:
        self.engine.dispose()

    # --- watermarks ---------------------------------------------------------------------------
    def watermark(self, source: str, stream: str) -> Watermark | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(watermarks.c.updated, watermarks.c.last_id).where(
                    watermarks.c.source == source, watermarks.c.stream == stream
                )
            ).first()
        return Watermark(row.updated, row.last_id) if row else None

    def mark(self, source: str, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(marks.c.value).where(marks.c.source == source, marks.c.name == name)
            ).scalar()

    def marks_named(self, name: str) -> dict[str, str]:
        """Every source's mark of that name: ``{source: value}``."""
        with self.engine.connect() as conn:
            return dict(conn.execute(
                select(marks.c.source, marks.c.value).where(marks.c.name == name)
            ).all())

    def set_mark(self, source: str, name: str, value: str | None) -> None:
        """Set a source's mark (None removes it)."""
        with self.engine.begin() as conn:
            conn.execute(delete(marks).where(marks.c.source == source, marks.c.name == name))
            if value is not None:
                conn.execute(insert(marks).values(source=source, name=name, value=value, at=_utcnow()))

    def reset_watermarks(self, source: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(watermarks).where(watermarks.c.source == source))

    # --- items -------------------------------------------------------------------------------
    def processed_versions(self, source: str, item_ids: Iterable[str]) -> dict[str, datetime | None]:
        """``updated`` of the last processed version of each given item."""
        ids = list(item_ids)
        found: dict[str, datetime | None] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                rows = conn.execute(
                    select(items.c.item_id, items.c.updated).where(
                        items.c.source == source, items.c.item_id.in_(chunk)
                    )
                )
                found.update({r.item_id: r.updated for r in rows})
        return found

    def last_written(self, source: str, item_ids: Iterable[str]) -> dict[tuple[str, str], str | None]:
        ids = list(item_ids)
        found: dict[tuple[str, str], str | None] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                rows = conn.execute(
                    select(written.c.item_id, written.c.field, written.c.value).where(
                        written.c.source == source, written.c.item_id.in_(chunk)
                    )
                )
                found.update({(r.item_id, r.field): r.value for r in rows})
        return found

    def commit_page(
        self,
        source: str,
        stream: str,
        rows: list[dict[str, Any]],
        writes_ok: list[tuple[str, str, str | None]],
        writes_failed: list[PendingWrite],
        failed_errors: dict[tuple[str, str], tuple[str, bool]],
        cursor: Watermark | None,
        quarantined: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    ) -> None:
        """Record a processed page atomically: items, written values, pending writes, and the
        watermark last, in the same transaction, so a crash leaves either all or none."""
        now = _utcnow()
        with self.engine.begin() as conn:
            if rows:
                ids = [r["item_id"] for r in rows]
                for chunk in _chunks(ids, 500):
                    conn.execute(
                        delete(items).where(items.c.source == source, items.c.item_id.in_(chunk))
                    )
                conn.execute(insert(items), [{**r, "source": source, "processed_at": now} for r in rows])
            if writes_ok:
                self._upsert_written(conn, source, writes_ok, now)
                self._delete_keys(conn, pending_writes, source, [(i, f) for i, f, _ in writes_ok])
            for pw in writes_failed:
                error, retriable = failed_errors.get((pw.item_id, pw.field), ("", True))
                self._upsert_pending(conn, pw, error, retriable, now)
            for item_id, key, reason in quarantined:
                conn.execute(
                    delete(quarantine).where(
                        quarantine.c.source == source, quarantine.c.item_id == item_id
                    )
                )
                conn.execute(
                    insert(quarantine).values(
                        source=source, item_id=item_id, key=key, reason=reason, at=now
                    )
                )
            if cursor is not None:
                self._set_watermark(conn, source, stream, cursor, now)

    def _set_watermark(self, conn: Any, source: str, stream: str, wm: Watermark, now: datetime) -> None:
        current = conn.execute(
            select(watermarks.c.updated, watermarks.c.last_id).where(
                watermarks.c.source == source, watermarks.c.stream == stream
            )
        ).first()
        if current is None:
            conn.execute(
                insert(watermarks).values(
                    source=source, stream=stream, updated=wm.updated, last_id=wm.last_id,
                    committed_at=now,
                )
            )
        elif (wm.updated, wm.last_id) > (current.updated, current.last_id):
            # A watermark only moves forward.
            conn.execute(
                update(watermarks)
                .where(watermarks.c.source == source, watermarks.c.stream == stream)
                .values(updated=wm.updated, last_id=wm.last_id, committed_at=now)
            )

    def _upsert_written(
        self, conn: Any, source: str, values: list[tuple[str, str, str | None]], now: datetime
    ) -> None:
        """Record the values written (item id, field, value), the last one per item and field
        winning: a delete of the keys per field, then one multi-row insert per chunk (a first
        sync writes three fields on every item; one statement per value cost more than the
        enrichment)."""
        latest = {(item_id, field): value for item_id, field, value in values}
        self._delete_keys(conn, written, source, list(latest))
        rows = [
            {"source": source, "item_id": item_id, "field": field, "value": value, "written_at": now}
            for (item_id, field), value in latest.items()
        ]
        for chunk in _chunks(rows, 500):
            conn.execute(insert(written), chunk)

    @staticmethod
    def _delete_keys(conn: Any, table: Table, source: str, keys: list[tuple[str, str]]) -> None:
        """Delete the rows of ``table`` (keyed by source, item_id, field) for the given
        (item id, field) pairs: one statement per field and chunk of ids."""
        by_field: dict[str, list[str]] = {}
        for item_id, field in dict.fromkeys(keys):
            by_field.setdefault(field, []).append(item_id)
        for field, ids in by_field.items():
            for chunk in _chunks(ids, 500):
                conn.execute(
                    delete(table).where(
                        table.c.source == source, table.c.field == field, table.c.item_id.in_(chunk)
                    )
                )

    def _upsert_pending(self, conn: Any, pw: PendingWrite, error: str, retriable: bool, now: datetime) -> None:
        attempts = pw.attempts + 1
        permanent = (not retriable) or attempts >= MAX_ATTEMPTS
        # The next run retries a first failure at once (most are transient); after that, later
        # runs back off exponentially: 1, 2, 4 ... 60 minutes.
        next_at = now if attempts == 1 else now + timedelta(minutes=min(60, 2 ** (attempts - 2)))
        where = and_(
            pending_writes.c.source == pw.source,
            pending_writes.c.item_id == pw.item_id,
            pending_writes.c.field == pw.field,
        )
        values = dict(
            key=pw.key, container=pw.container, value=pw.value, attempts=attempts,
            next_attempt_at=next_at, last_error=error[:1000], permanent=int(permanent),
        )
        if conn.execute(update(pending_writes).where(where).values(**values)).rowcount == 0:
            conn.execute(
                insert(pending_writes).values(
                    source=pw.source, item_id=pw.item_id, field=pw.field, **values
                )
            )

    def due_pending_writes(self, source: str, now: datetime | None = None) -> list[PendingWrite]:
        now = now or _utcnow()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(pending_writes).where(
                    pending_writes.c.source == source,
                    pending_writes.c.permanent == 0,
                    pending_writes.c.next_attempt_at <= now,
                )
            ).all()
        return [
            PendingWrite(r.source, r.item_id, r.key, r.container, r.field, r.value, r.attempts)
            for r in rows
        ]

    def pending_summary(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(pending_writes)).all()
        return [
            {
                "source": r.source, "key": r.key, "field": r.field, "attempts": r.attempts,
                "next_attempt_at": r.next_attempt_at.isoformat(), "error": r.last_error,
                "permanent": bool(r.permanent),
            }
            for r in rows
        ]

    def drop_pending(self, source: str, keys: Iterable[tuple[str, str]]) -> None:
        keys = list(keys)
        with self.engine.begin() as conn:
            self._delete_keys(conn, pending_writes, source, keys)

    def record_written(self, source: str, values: list[tuple[str, str, str | None]]) -> None:
        now = _utcnow()
        if not values:
            return
        with self.engine.begin() as conn:
            self._upsert_written(conn, source, values, now)

    def mark_versions(self, source: str, versions: dict[str, datetime]) -> None:
        """Remember the platform ``updated`` after our own write, so the next pull knows that
        version was ours and skips it."""
        if not versions:
            return
        statement = (
            update(items)
            .where(items.c.source == bindparam("b_source"), items.c.item_id == bindparam("b_id"))
            .values(updated=bindparam("b_updated"))
        )
        with self.engine.begin() as conn:
            conn.execute(
                statement,
                [{"b_source": source, "b_id": i, "b_updated": u} for i, u in versions.items()],
            )

    def iter_items(self, sources: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every processed item's enriched row (for reports), streamed."""
        query = select(items.c.source, items.c.data)
        if sources:
            query = query.where(items.c.source.in_(sources))
        with self.engine.connect() as conn:
            for row in conn.execution_options(stream_results=True, yield_per=5000).execute(query):
                yield json.loads(row.data)

    def recent_items(self, since: datetime, limit: int) -> list[dict[str, Any]]:
        """The enriched rows of the newest ``limit`` items created or resolved at or after
        ``since``: the history enrichment compares new items with."""
        return list(self.iter_recent_items(since, limit))

    def iter_recent_items(self, since: datetime, limit: int) -> Iterator[dict[str, Any]]:
        """``recent_items`` one row at a time, newest first, read from the database as the
        caller goes: a caller that keeps a few fields of each row never holds every whole row
        (73,000 of them took 600 MB at once)."""
        if limit <= 0:
            return
        query = select(items.c.data).where(_in_history(since)).order_by(_NEWEST_FIRST).limit(limit)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=1000).execute(query)
            for row in result:
                yield json.loads(row.data)

    def history_extent(self, since: datetime, limit: int) -> tuple[int, datetime | None]:
        """How many items ``recent_items(since, limit)`` chooses from, and, when there are more
        than ``limit``, the creation time of the oldest one it keeps (None when it keeps all,
        or none)."""
        window = _in_history(since)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(items).where(window)).scalar_one()
            oldest = None
            if 0 < limit < total:
                oldest = conn.execute(
                    select(items.c.created).where(window)
                    .order_by(_NEWEST_FIRST).offset(limit - 1).limit(1)
                ).scalar()
        return int(total), oldest

    def neighbours(self, skip: Iterable[tuple[str, str]]) -> ItemNeighbours:
        """Counts over the stored items for cross-item signals (``signals.StoredNeighbours``),
        without the items ``skip`` names (source, item id)."""
        return ItemNeighbours(self.engine, skip)

    def newest_items(self, sources: list[str] | None, limit: int) -> list[dict[str, Any]]:
        """The enriched rows of the ``limit`` items with the newest platform ``updated``
        (ordered in SQL: only those rows are read and parsed)."""
        query = select(items.c.data).order_by(
            items.c.updated.desc().nulls_last(), items.c.source, items.c.key
        ).limit(max(limit, 0))
        if sources:
            query = query.where(items.c.source.in_(sources))
        with self.engine.connect() as conn:
            return [json.loads(row.data) for row in conn.execute(query)]

    def count_items(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(items.c.source, func.count()).group_by(items.c.source))
            return {r[0]: r[1] for r in rows}

    def record_overrides(self, source: str, rows: list[dict[str, Any]]) -> None:
        """Remember human overrides: dicts with item_id, field, key, value, ours, by."""
        if not rows:
            return
        now = _utcnow()
        with self.engine.begin() as conn:
            for row in rows:
                conn.execute(
                    delete(overrides).where(
                        overrides.c.source == source,
                        overrides.c.item_id == row["item_id"],
                        overrides.c.field == row["field"],
                    )
                )
                conn.execute(insert(overrides).values(source=source, at=now, **row))

    def overrides_for(self, source: str, item_ids: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
        ids = list(item_ids)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                rows = conn.execute(
                    select(overrides).where(overrides.c.source == source, overrides.c.item_id.in_(chunk))
                )
                for r in rows:
                    found[(r.item_id, r.field)] = {
                        "value": r.value, "ours": r.ours, "by": r.by, "at": r.at, "key": r.key,
                    }
        return found

    def all_overrides(self, field: str | None = None) -> list[dict[str, Any]]:
        query = select(overrides)
        if field:
            query = query.where(overrides.c.field == field)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def quarantined(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(quarantine)).all()
        return [{"source": r.source, "key": r.key, "reason": r.reason} for r in rows]

    # --- runs ----------------------------------------------------------------------------------
    def start_run(self, job: str) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(runs).values(job=job, started_at=_utcnow(), status="running")
            )
            return int(result.inserted_primary_key[0])

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        now = _utcnow()
        with self.engine.begin() as conn:
            started = conn.execute(select(runs.c.started_at).where(runs.c.id == run_id)).scalar_one()
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    finished_at=now, status=status,
                    duration_s=(now - started).total_seconds(), summary=json.dumps(summary),
                )
            )

    # --- episodes and nudges -----------------------------------------------------------------
    def open_episodes(self, source: str, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The open episode of each given item, if any."""
        ids = list(item_ids)
        found: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                rows = conn.execute(
                    select(episodes).where(
                        episodes.c.source == source,
                        episodes.c.item_id.in_(chunk),
                        episodes.c.closed_at.is_(None),
                    )
                )
                found.update({r.item_id: dict(r._mapping) for r in rows})
        return found

    def last_episode_numbers(self, source: str, item_ids: Iterable[str]) -> dict[str, int]:
        ids = list(item_ids)
        found: dict[str, int] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                rows = conn.execute(
                    select(episodes.c.item_id, func.max(episodes.c.episode))
                    .where(episodes.c.source == source, episodes.c.item_id.in_(chunk))
                    .group_by(episodes.c.item_id)
                )
                found.update({r[0]: r[1] for r in rows})
        return found

    def open_episode(self, source: str, row: dict[str, Any]) -> None:
        """Record a new episode; with ``note='intent'`` this is the intent to post its note."""
        with self.engine.begin() as conn:
            conn.execute(insert(episodes).values(source=source, opened_at=_utcnow(), **row))

    def close_episodes(self, source: str, item_ids: Iterable[str]) -> None:
        now = _utcnow()
        with self.engine.begin() as conn:
            for chunk in _chunks(list(item_ids), 500):
                conn.execute(
                    update(episodes)
                    .where(
                        episodes.c.source == source,
                        episodes.c.item_id.in_(chunk),
                        episodes.c.closed_at.is_(None),
                    )
                    .values(closed_at=now)
                )

    def mark_notes_sent(self, source: str, keys: Iterable[tuple[str, int]]) -> None:
        with self.engine.begin() as conn:
            for item_id, episode in keys:
                conn.execute(
                    update(episodes)
                    .where(
                        episodes.c.source == source,
                        episodes.c.item_id == item_id,
                        episodes.c.episode == episode,
                    )
                    .values(note="sent")
                )

    def note_intents(self, source: str) -> list[dict[str, Any]]:
        """Notes whose sending was decided but not confirmed (a crash, or a failed post)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(episodes).where(episodes.c.source == source, episodes.c.note == "intent")
            )
            return [dict(r._mapping) for r in rows]

    def run_history(self, job: str) -> list[dict[str, Any]]:
        """Every run of one job, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).where(runs.c.job == job).order_by(runs.c.id)).all()
        return [
            {"started_at": r.started_at, "finished_at": r.finished_at, "status": r.status}
            for r in rows
        ]

    def last_runs(self) -> dict[str, dict[str, Any]]:
        """The latest finished run of each job."""
        with self.engine.connect() as conn:
            latest = (
                select(runs.c.job, func.max(runs.c.id).label("id")).group_by(runs.c.job).subquery()
            )
            rows = conn.execute(select(runs).where(runs.c.id.in_(select(latest.c.id)))).all()
        return {
            r.job: {
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "status": r.status,
                "duration_s": r.duration_s,
                "summary": json.loads(r.summary) if r.summary else None,
            }
            for r in rows
        }

    # --- learned models and their labels (enrichment.learn) -----------------------------------
    def save_model(self, name: str, blob: bytes, meta: dict[str, Any], trained_at: datetime | None = None) -> None:
        """Store (or replace) a trained model by name."""
        row = {
            "blob": blob,
            "trained_at": trained_at or _utcnow(),
            "meta": json.dumps(meta, ensure_ascii=False, default=str),
        }
        with self.engine.begin() as conn:
            done = conn.execute(update(models).where(models.c.name == name).values(**row))
            if not done.rowcount:
                conn.execute(insert(models).values(name=name, **row))

    def load_model(self, name: str) -> tuple[bytes, datetime, dict[str, Any]] | None:
        """(blob, trained_at, meta) of a stored model, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(models).where(models.c.name == name)).first()
        if row is None:
            return None
        return bytes(row.blob), row.trained_at, json.loads(row.meta)

    def add_labels(self, rows: Iterable[dict[str, Any]]) -> int:
        """Upsert labels: dicts with source, item_id, moment, origin ("rule"|"human"), text and
        optionally at. One label per item and origin; the newest wins. Returns the count.

        Written in bulk (a delete of the keys, then one multi-row insert per chunk): a sync
        adds the rule labels of every page it processes."""
        now = _utcnow()
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in rows:
            if r.get("origin") not in ("rule", "human"):
                raise ValueError(f"label origin must be 'rule' or 'human', not {r.get('origin')!r}")
            key = (str(r["source"]), str(r["origin"]), str(r["item_id"]))
            latest[key] = {
                "source": key[0], "origin": key[1], "item_id": key[2],
                "moment": str(r["moment"]), "text": str(r.get("text") or ""), "at": r.get("at") or now,
            }
        if not latest:
            return 0
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for (source, origin, _), value in latest.items():
            groups.setdefault((source, origin), []).append(value)
        with self.engine.begin() as conn:
            for (source, origin), values in groups.items():
                for chunk in _chunks(values, 500):
                    conn.execute(
                        delete(labels).where(
                            labels.c.source == source,
                            labels.c.origin == origin,
                            labels.c.item_id.in_([v["item_id"] for v in chunk]),
                        )
                    )
                    conn.execute(insert(labels), chunk)
        return len(latest)

    def count_labels(self) -> dict[str, int]:
        """Labels stored, by origin ("rule", "human")."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(labels.c.origin, func.count()).group_by(labels.c.origin))
            return {r[0]: r[1] for r in rows}

    def training_labels(self, max_rule_labels: int = 100_000) -> list[dict[str, Any]]:
        """Every item's label for training: a human correction wins over the rule's decision.

        Every human label, and the newest ``max_rule_labels`` of the rules' (an instance of
        millions of items would otherwise train on, and load, all of them)."""
        human = select(labels).where(labels.c.origin == "human")
        rule = (
            select(labels).where(labels.c.origin == "rule")
            .order_by(labels.c.at.desc()).limit(max_rule_labels)
        )
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(human)]
            rows += [dict(r._mapping) for r in conn.execute(rule)]
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            key = (r["source"], r["item_id"])
            if key not in best or r["origin"] == "human":
                best[key] = r
        return list(best.values())

    # --- one item, read-only (`momentos explain`) ------------------------------------------------
    def item_by_key(self, key: str, source: str | None = None) -> dict[str, Any] | None:
        """The stored row of the item with this human key (INC0010001, OPS-12): ``source``,
        ``item_id``, ``key``, ``platform``, ``container``, ``processed_at`` and ``data`` (the
        enriched row); None when no sync processed it. Keys are matched as given, then in
        upper case; the most recently processed wins if two sources share a key."""
        query = select(items).order_by(items.c.processed_at.desc())
        if source:
            query = query.where(items.c.source == source)
        with self.engine.connect() as conn:
            for wanted in dict.fromkeys((key, key.upper())):
                row = conn.execute(query.where(items.c.key == wanted)).first()
                if row is not None:
                    found = dict(row._mapping)
                    found["data"] = json.loads(found["data"])
                    return found
        return None

    def written_for(self, source: str, item_id: str) -> list[dict[str, Any]]:
        """What momentos last wrote on one item: ``field``, ``value`` and ``written_at``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(written.c.field, written.c.value, written.c.written_at)
                .where(written.c.source == source, written.c.item_id == item_id)
                .order_by(written.c.field)
            )
            return [dict(r._mapping) for r in rows]


#: Scratch tables of ``ItemNeighbours``, private to a connection: created when missing,
#: emptied and filled for each count, and their rows rolled back after it.
_scratch = MetaData()
_want = Table(
    "momentos_want", _scratch,
    Column("i", Integer, primary_key=True),
    Column("a", Text),
    Column("b", Text),
    Column("lo", UTCDateTime),
    Column("hi", UTCDateTime),
    prefixes=["TEMPORARY"],
)
_skip = Table(
    "momentos_skip", _scratch,
    Column("source", Text, primary_key=True),
    Column("item_id", Text, primary_key=True),
    prefixes=["TEMPORARY"],
)


class ItemNeighbours:
    """``signals.StoredNeighbours`` over a state store's items, leaving out ``skip`` (the
    (source, item id) of the batch being enriched, whose current versions it holds).

    Each count joins a scratch table of the wanted keys and windows with one of the
    ``items`` indexes: a batch's repeat contacts and caused incidents cost a few index range
    reads, whatever the store's size, and count every stored item, not only those that fit
    in memory."""

    def __init__(self, engine: Engine, skip: Iterable[tuple[str, str]]) -> None:
        self._engine = engine
        self._skip = [{"source": s, "item_id": i} for s, i in dict.fromkeys(skip)]

    def _scratch(self, conn: Any, wants: list[dict[str, Any]]) -> None:
        for table in (_want, _skip):
            conn.execute(CreateTable(table, if_not_exists=True))
            conn.execute(delete(table))
        for chunk in _chunks(self._skip, 5000):
            conn.execute(insert(_skip), chunk)
        for chunk in _chunks(wants, 5000):
            conn.execute(insert(_want), chunk)

    def _not_skipped(self) -> Any:
        return ~exists().where(_skip.c.source == items.c.source,
                               _skip.c.item_id == items.c.item_id)

    def _per_want(self, wants: list[dict[str, Any]], on: Any, *where: Any) -> np.ndarray:
        out = np.zeros(len(wants))
        if not wants:
            return out
        query = (
            select(_want.c.i, func.count())
            .select_from(_want.join(items, on))
            .where(self._not_skipped(), *where)
            .group_by(_want.c.i)
        )
        with self._engine.connect() as conn:
            self._scratch(conn, wants)
            for i, count in conn.execute(query):
                out[i] = count
            conn.rollback()
        return out

    def contacts(self, requester: Any, about: Any, start: Any, end: Any) -> np.ndarray:
        wants = [{"i": i, "a": r, "b": a, "lo": lo, "hi": hi}
                 for i, (r, a, lo, hi) in enumerate(zip(requester, about, start, end))]
        on = and_(items.c.requester_key == _want.c.a, items.c.about_key == _want.c.b,
                  items.c.created >= _want.c.lo, items.c.created < _want.c.hi)
        return self._per_want(wants, on)

    def incidents(self, service: Any, start: Any, end: Any, kinds: Any) -> np.ndarray:
        wants = [{"i": i, "a": s, "b": None, "lo": lo, "hi": hi}
                 for i, (s, lo, hi) in enumerate(zip(service, start, end))]
        if not kinds:
            return np.zeros(len(wants))
        on = and_(items.c.service_key == _want.c.a, items.c.kind_key.in_(list(kinds)),
                  items.c.created >= _want.c.lo, items.c.created <= _want.c.hi)
        return self._per_want(wants, on)

    def links(self, changes: Any, kinds: Any) -> dict[str, int]:
        found: dict[str, int] = {}
        changes = [c for c in dict.fromkeys(changes) if c]
        if not changes or not kinds:
            return found
        with self._engine.connect() as conn:
            self._scratch(conn, [])
            for chunk in _chunks(changes, 500):
                query = (
                    select(items.c.caused_by_key, func.count())
                    .where(items.c.caused_by_key.in_(chunk), items.c.kind_key.in_(list(kinds)),
                           self._not_skipped())
                    .group_by(items.c.caused_by_key)
                )
                found.update({key: int(count) for key, count in conn.execute(query)})
            conn.rollback()
        return found

    def linking_sources(self, sources: Any, kinds: Any) -> set[str]:
        out: set[str] = set()
        if not kinds:
            return out
        with self._engine.connect() as conn:
            for source in dict.fromkeys(sources):
                query = select(items.c.source).where(
                    items.c.source == source, items.c.caused_by_key.is_not(None),
                    items.c.kind_key.in_(list(kinds)),
                ).limit(1)
                if conn.execute(query).first() is not None:
                    out.add(source)
        return out


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets `status` and `report` read while a sync writes; NORMAL sync is durable in WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


__all__ = ["ItemNeighbours", "StateStore", "Watermark", "PendingWrite"]
