"""The state store on SQLite: watermarks, items, written values, pending writes, runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from momentos.state import MAX_ATTEMPTS, PendingWrite, StateStore, Watermark, item_keys

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


# --- counts over the stored items for cross-item signals (StateStore.neighbours) --------------

DAY = timedelta(days=1)


def _stored(item_id: str, created: datetime, **data: str) -> dict:
    """A stored item whose enriched row holds ``data``, with the keys sync stores beside it."""
    row_data = {"key": f"K-{item_id}", "created": created.isoformat(), **data}
    return {**_row(item_id, created), "created": created, "data": json.dumps(row_data),
            **item_keys([row_data])[0]}


def test_contacts_count_the_stored_items_of_a_requester_and_service_within_each_window(store):
    store.commit_page("s", "t", [
        _stored("1", T0 - 14 * DAY, requester="Ana", service="Email"),  # the window's start: in
        _stored("2", T0 - DAY, requester=" ana ", service="EMAIL"),  # the same, normalised
        _stored("3", T0, requester="Ana", service="Email"),  # the window's end: not earlier
        _stored("4", T0 - DAY, requester="Ana", service="VPN"),  # another service
        _stored("5", T0 - 15 * DAY, requester="Ana", service="Email"),  # before the window
        _stored("6", T0 - DAY, requester="Ana", category="Access"),  # no service: its category
        _stored("7", T0 - 2 * DAY, requester="Ana", service="Email"),  # in the batch: skipped
        _stored("8", T0 - DAY, service="Email"),  # nobody asked
    ], [], [], {}, None)
    store.commit_page("other", "t", [_stored("7", T0 - 2 * DAY, requester="Ana", service="Email")],
                      [], [], {}, None)  # same id, another source: counted
    near = store.neighbours([("s", "7"), ("s", "7")])
    counts = near.contacts(
        ["ana", "ana", "bob", "ana"], ["email", "c:access", "email", "email"],
        [T0 - 14 * DAY] * 3 + [T0 - DAY], [T0] * 3 + [T0 + DAY],
    )
    assert counts.tolist() == [3, 1, 0, 2]
    assert store.neighbours([]).contacts([], [], [], []).tolist() == []


def test_incidents_count_the_stored_incidents_on_a_service_after_each_change(store):
    store.commit_page("s", "t", [
        _stored("i1", T0, kind="Incident", service="Email"),  # implemented then: in
        _stored("i2", T0 + 7 * DAY, kind="incident", service="email"),  # the window's end: in
        _stored("i3", T0 + 7 * DAY + timedelta(seconds=1), kind="incident", service="Email"),
        _stored("i4", T0 - timedelta(seconds=1), kind="incident", service="Email"),
        _stored("i5", T0 + DAY, kind="request", service="Email"),  # not an incident kind
        _stored("i6", T0 + DAY, kind="incident", service="VPN"),
        _stored("i7", T0 + DAY, kind="incident", service="Email"),  # in the batch: skipped
    ], [], [], {}, None)
    near = store.neighbours([("s", "i7")])
    counts = near.incidents(["email", "vpn", "crm"], [T0] * 3, [T0 + 7 * DAY] * 3, ["incident"])
    assert counts.tolist() == [2, 1, 0]
    assert near.incidents(["email"], [T0], [T0 + 7 * DAY], []).tolist() == [0]


def test_links_count_the_stored_incidents_that_name_a_change(store):
    store.commit_page("s", "t", [
        _stored("i1", T0, kind="incident", caused_by="CHG001"),
        _stored("i2", T0, kind="incident", caused_by="chg001"),
        _stored("i3", T0, kind="request", caused_by="CHG001"),  # not an incident kind
        _stored("i4", T0, kind="incident", caused_by="CHG001"),  # in the batch: skipped
        _stored("i5", T0, kind="incident", caused_by="CHG002"),
    ], [], [], {}, None)
    store.commit_page("jira", "t", [_stored("j1", T0, kind="incident")], [], [], {}, None)
    near = store.neighbours([("s", "i4")])
    assert near.links(["chg001", "chg002", "chg003", ""], ["incident"]) == {"chg001": 2, "chg002": 1}
    assert near.linking_sources(["s", "jira", "none"], ["incident"]) == {"s"}
    assert near.linking_sources(["s"], ["problem"]) == set()


def test_a_store_made_before_the_key_columns_gets_them_from_its_rows(tmp_path):
    """Stores from before the keys existed: opening one adds the columns and fills them from
    each item's stored row, once; the counts then find the old items."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE TABLE items (source VARCHAR(100) NOT NULL, item_id VARCHAR(100) NOT NULL, "
            "key VARCHAR(100) NOT NULL, platform VARCHAR(50) NOT NULL, container VARCHAR(100) "
            "NOT NULL, updated DATETIME, processed_at DATETIME NOT NULL, moment VARCHAR(20), "
            "score INTEGER, level VARCHAR(20), customer VARCHAR(300), created DATETIME, "
            "resolved DATETIME, data TEXT NOT NULL, PRIMARY KEY (source, item_id))"
        ))
        for i in range(7):
            data = {"requester": "Ana", "service": "Email", "kind": "incident",
                    "caused_by": "CHG9" if i % 2 else None}
            conn.execute(text(
                "INSERT INTO items VALUES ('s', :id, :id, 'servicenow', 'incident', NULL, "
                "'2026-03-01 12:00:00.000000', NULL, NULL, NULL, NULL, :created, NULL, :data)"
            ), {"id": f"i{i}", "created": f"2026-02-2{i} 12:00:00.000000", "data": json.dumps(data)})
    engine.dispose()
    for _ in range(2):  # the second open finds the columns there
        store = StateStore(url)
        try:
            near = store.neighbours([("s", "i0")])
            assert near.contacts(["ana"], ["email"], [T0 - 30 * DAY], [T0]).tolist() == [6]
            assert near.incidents(["email"], [T0 - 30 * DAY], [T0], ["incident"]).tolist() == [6]
            assert near.links(["chg9"], ["incident"]) == {"chg9": 3}
        finally:
            store.close()


def test_keys_with_what_no_database_stores_are_stored_and_found(store):
    """A NUL (PostgreSQL refuses it) or a lone surrogate (no encoding holds it) in a requester
    or service: the keys replace them alike on both sides, so the item is stored and found."""
    import pandas as pd

    from momentos.enrichment.signals import _contact_keys, _stored_key

    odd = "Ana\x00 \ud800López " + "x" * 500
    store.commit_page("s", "t", [_stored("1", T0 - DAY, requester=odd, service="Mail\x00")],
                      [], [], {}, None)
    requester, about = _contact_keys(pd.DataFrame({"requester": [odd], "service": ["Mail\x00"]}))
    counts = store.neighbours([]).contacts(
        [_stored_key(requester[0])], [_stored_key(about[0])], [T0 - 2 * DAY], [T0])
    assert counts.tolist() == [1]


def test_an_upgrade_another_process_made_meanwhile_is_not_an_error(tmp_path, monkeypatch):
    """Two commands opening an old store at once (`serve` and `status`): the second sees the
    columns missing, then finds them added when it adds them; it goes on."""
    from momentos.state import KEY_COLUMNS

    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url).close()
    seen = []
    real = StateStore._missing_key_columns

    def stale_then_real(self):
        seen.append(1)
        return list(KEY_COLUMNS) if len(seen) == 1 else real(self)

    monkeypatch.setattr(StateStore, "_missing_key_columns", stale_then_real)
    store = StateStore(url)  # its ALTER TABLE fails: the columns are there
    store.close()
    assert len(seen) == 2
