"""``batch_pages``: pages are joined into batches before they are enriched and committed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from momentos.connectors.base import Page
from momentos.models import Item
from momentos.sync import batch_pages

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _item(item_id: str, title: str = "t") -> Item:
    return Item(source="s", platform="jira", container="K", id=item_id, key=f"K-{item_id}", title=title)


def _page(ids: list[str], n: int, rejected=()) -> Page:
    return Page(items=[_item(i) for i in ids], cursor=(T0 + timedelta(seconds=n), ids[-1] if ids else ""),
                total=1000 + n, rejected=list(rejected))


def test_pages_join_until_the_batch_holds_enough_records():
    pages = [_page([f"{p}-{i}" for i in range(100)], p) for p in range(25)]
    batches = list(batch_pages(iter(pages), 1000))
    assert [len(b.items) for b in batches] == [1000, 1000, 500]
    # Each batch commits the cursor of its last page: never beyond a record not in it.
    assert [b.cursor for b in batches] == [pages[9].cursor, pages[19].cursor, pages[24].cursor]
    assert batches[0].total == pages[9].total
    assert [i.id for b in batches for i in b.items] == [i.id for p in pages for i in p.items]


def test_big_pages_pass_through_unchanged():
    pages = [_page([str(i) for i in range(500 * p, 500 * p + 500)], p) for p in range(3)]
    assert [b is p for b, p in zip(batch_pages(iter(pages), 500), pages)] == [True] * 3


def test_a_record_pulled_twice_in_a_batch_keeps_its_later_pull():
    first = Page(items=[_item("1", "old"), _item("2")], cursor=(T0, "2"))
    second = Page(items=[_item("3"), _item("1", "new")], cursor=(T0 + timedelta(seconds=1), "1"),
                  rejected=[("2", "K-2", "bad date"), ("", "", "no id"), ("", "", "no id either")])
    (batch,) = batch_pages(iter([first, second]), 1000)
    assert [(i.id, i.title) for i in batch.items] == [("3", "t"), ("1", "new")]
    # Item 2's later pull was rejected: it is quarantined, not processed from its older pull;
    # rejected records without an id are each kept.
    assert batch.rejected == [("2", "K-2", "bad date"), ("", "", "no id"), ("", "", "no id either")]
    assert batch.cursor == second.cursor


def test_a_stop_request_ends_the_batch_at_the_page_being_read():
    stop = {"now": False}
    pages = [_page([f"{p}-{i}" for i in range(100)], p) for p in range(5)]

    def pull():
        for n, page in enumerate(pages):
            if n == 2:
                stop["now"] = True
            yield page

    batches = list(batch_pages(pull(), 1000, lambda: stop["now"]))
    assert [len(b.items) for b in batches[:1]] == [300]
    assert batches[0].cursor == pages[2].cursor
