"""The state store on SQLite: watermarks, items, written values, pending writes, runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from momentos.state import MAX_ATTEMPTS, PendingWrite, StateStore, Watermark

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same behaviour on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        from sqlalchemy import create_engine

        url = request.getfixturevalue("pg_url")
        engine = create_engine(url)
        from momentos.state import metadata

        metadata.drop_all(engine)  # each test starts from an empty store
        engine.dispose()
    s = StateStore(url)
    yield s
    s.close()


def _row(item_id: str, updated: datetime) -> dict:
    return {
        "item_id": item_id, "key": f"K-{item_id}", "platform": "jira", "container": "K",
        "updated": updated, "moment": "operation", "score": 70, "level": "fair",
        "customer": "Ventas", "created": T0, "resolved": None, "data": '{"key": "K"}',
    }


def test_watermark_only_moves_forward(store):
    store.commit_page("s", "t", [], [], [], {}, Watermark(T0, "b"))
    store.commit_page("s", "t", [], [], [], {}, Watermark(T0, "a"))  # older tiebreak: ignored
    assert store.watermark("s", "t") == Watermark(T0, "b")
    later = T0 + timedelta(seconds=1)
    store.commit_page("s", "t", [], [], [], {}, Watermark(later, "a"))
    wm = store.watermark("s", "t")
    assert wm == Watermark(later, "a") and wm.updated.tzinfo is not None
    assert store.watermark("s", "other") is None


def test_items_written_and_versions_round_trip(store):
    store.commit_page(
        "s", "t", [_row("1", T0), _row("2", T0)], [("1", "moment", "operation")], [], {}, None
    )
    assert store.processed_versions("s", ["1", "2", "3"]) == {"1": T0, "2": T0}
    assert store.last_written("s", ["1"]) == {("1", "moment"): "operation"}
    # Re-processing an item replaces its row rather than duplicating it.
    store.commit_page("s", "t", [_row("1", T0 + timedelta(minutes=1))], [], [], {}, None)
    assert store.count_items() == {"s": 2}
    store.mark_versions("s", {"2": T0 + timedelta(hours=1)})
    assert store.processed_versions("s", ["2"])["2"] == T0 + timedelta(hours=1)


def test_pending_write_backoff_then_success_clears_it(store):
    pw = PendingWrite("s", "1", "K-1", "K", "score", "40", 0)
    store.commit_page("s", "t", [], [], [pw], {("1", "score"): ("HTTP 503", True)}, None)
    due = store.due_pending_writes("s")  # a first failure is retried by the very next run
    assert [(p.item_id, p.field, p.attempts) for p in due] == [("1", "score", 1)]
    store.commit_page("s", "", [], [], due, {("1", "score"): ("HTTP 503", True)}, None)
    assert store.due_pending_writes("s") == []  # a second failure backs off
    later = store.due_pending_writes("s", now=datetime.now(timezone.utc) + timedelta(minutes=2))
    assert [p.attempts for p in later] == [2]
    assert store.pending_summary()[0]["error"] == "HTTP 503"
    store.commit_page("s", "", [], [("1", "score", "40")], [], {}, None)
    assert store.pending_summary() == []
    assert store.last_written("s", ["1"]) == {("1", "score"): "40"}


def test_non_retriable_or_exhausted_writes_become_permanent(store):
    pw = PendingWrite("s", "1", "K-1", "K", "moment", "operation", 0)
    store.commit_page("s", "t", [], [], [pw], {("1", "moment"): ("not on screen", False)}, None)
    assert store.pending_summary()[0]["permanent"] is True
    far = datetime.now(timezone.utc) + timedelta(days=1)
    assert store.due_pending_writes("s", now=far) == []
    pw2 = PendingWrite("s", "2", "K-2", "K", "moment", "operation", MAX_ATTEMPTS - 1)
    store.commit_page("s", "t", [], [], [pw2], {}, None)
    assert [p["permanent"] for p in store.pending_summary() if p["key"] == "K-2"] == [True]


def test_runs_are_recorded(store):
    run = store.start_run("sync:all")
    store.finish_run(run, "ok", {"sources": {}})
    last = store.last_runs()["sync:all"]
    assert last["status"] == "ok" and last["duration_s"] >= 0


def test_quarantine_keeps_the_reason(store):
    store.commit_page("s", "t", [], [], [], {}, None, [("9", "K-9", "bad date")])
    assert store.quarantined() == [{"source": "s", "key": "K-9", "reason": "bad date"}]


def test_written_values_are_upserted_in_bulk_per_item_and_field(store):
    """Many values in one page: the last value per (item, field) wins, other fields and other
    items keep theirs, and only the pending writes that succeeded are cleared."""
    store.commit_page("s", "t", [], [("1", "moment", "operation"), ("1", "score", "40")], [], {}, None)
    owed = [PendingWrite("s", i, f"K-{i}", "K", "score", "10", 0) for i in ("1", "2", "3")]
    store.commit_page("s", "t", [], [], owed, {}, None)
    ok = [(str(i), "score", str(i)) for i in range(1, 1201)] + [("1", "score", "99")]
    store.commit_page("s", "t", [], ok, [], {}, None)
    found = store.last_written("s", ["1", "2", "1200"])
    assert found == {("1", "moment"): "operation", ("1", "score"): "99", ("2", "score"): "2",
                     ("1200", "score"): "1200"}
    assert store.pending_summary() == []
    store.record_written("s", [("1", "moment", "evolution"), ("7", "signals", "x")])
    assert store.last_written("s", ["1", "7"])[("1", "moment")] == "evolution"
    assert store.last_written("s", ["7"]) == {("7", "score"): "7", ("7", "signals"): "x"}
    # Other sources are left alone.
    store.commit_page("other", "t", [], [("1", "score", "5")], [], {}, None)
    assert store.last_written("s", ["1"])[("1", "score")] == "99"


def test_drop_pending_removes_only_the_given_fields(store):
    owed = [PendingWrite("s", "1", "K-1", "K", f, "v", 0) for f in ("moment", "score")]
    store.commit_page("s", "t", [], [], owed, {}, None)
    store.drop_pending("s", [("1", "score")])
    assert [p["field"] for p in store.pending_summary()] == ["moment"]


def test_mark_versions_in_bulk(store):
    store.commit_page("s", "t", [_row(str(i), T0) for i in range(30)], [], [], {}, None)
    later = T0 + timedelta(minutes=5)
    store.mark_versions("s", {str(i): later for i in range(0, 30, 2)})
    versions = store.processed_versions("s", [str(i) for i in range(30)])
    assert [i for i, v in sorted(versions.items(), key=lambda kv: int(kv[0])) if v == later] == [
        str(i) for i in range(0, 30, 2)
    ]
