"""End to end: the sync engine quarantines a bad item with its reason and processes the rest.

Two paths lead to quarantine: a record the connector cannot normalize (``Page.rejected``) and
an item enrichment cannot handle (the engine retries the page item by item). The first runs
against the sandbox platforms over real HTTP, with hostile items planted in the world before
it is served; the second through a scripted connector, with hypothesis choosing which items
of a page are bad. tests/unit/test_state.py::test_quarantine_keeps_the_reason covers the store
alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momentos.config import parse_config
from momentos.connectors.base import (
    Connector,
    FieldChange,
    Page,
    SourceSettings,
    WriteResult,
)
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config
from momentos.models import Comment, Item
from momentos.sandbox import start_sandbox
from momentos.sandbox.world import generate_world
from momentos.state import StateStore
from momentos.sync import SyncEngine

NOW = datetime(2026, 11, 2, tzinfo=UTC)
HOSTILE_TITLES = [
    "<script>alert('x')</script> printer down",
    '"><img src=x onerror=alert(1)> VPN caída',
    "{{ config }} {% include '/etc/passwd' %}",
    "</style><b>bold</b> 😡🔥 no funciona",
    "\u202etxt.exe مرحبا שלום",
    "ctrl \x01\x07\x1b[2J chars",
    "CafÃ© mojibake and caf\xe9",
]
MEGABYTE = "la impresora sigue sin funcionar. " * 30_000  # ~1 MB


@pytest.fixture(scope="module")
def hostile_box() -> Iterator[Any]:
    """A small sandbox whose world holds hostile text on both platforms and three Jira
    requests whose satisfaction rating is not a number (they cannot be normalized)."""
    world = generate_world(seed=3, items=150, now=datetime(2026, 11, 1, tzinfo=UTC))
    sn = [i for i in world.items if i.platform == "servicenow"]
    jira = [i for i in world.items if i.platform == "jira"]
    for k, (a, b) in enumerate(zip(sn, jira)):
        if k >= len(HOSTILE_TITLES):
            break
        a.title = b.title = HOSTILE_TITLES[k]
        for comment in a.comments[:1] + b.comments[:1]:
            comment.text = HOSTILE_TITLES[-1 - k]
    sn[len(HOSTILE_TITLES)].description = MEGABYTE
    planted = sn[:len(HOSTILE_TITLES) + 1] + jira[:len(HOSTILE_TITLES) + 1]
    bad = [i for i in jira[len(HOSTILE_TITLES) + 1:]
           if i.container == "SD" and i.survey_score and i.resolved][:3]
    assert len(bad) == 3
    for item in bad:
        item.survey_score = "five stars"  # type: ignore[assignment]
    with start_sandbox(world=world, seed=3) as box:
        box.bad_keys = {i.number for i in bad}  # type: ignore[attr-defined]
        box.hostile = {i.number for i in planted}  # type: ignore[attr-defined]
        yield box


def test_sandbox_sync_quarantines_unreadable_records_and_writes_the_rest(
    hostile_box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = hostile_box
    monkeypatch.setenv(SANDBOX_PASSWORD_ENV, box.password)
    raw = sandbox_config(box, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                         report_out=str(tmp_path / "report"))
    raw["nudges"] = {"enabled": False}
    config = parse_config(yaml.safe_dump(raw))
    state = StateStore(config.state_url)
    try:
        result = SyncEngine(config, state).run(now=NOW)
        quarantined = state.quarantined()
        processed = {r["key"] for r in _state_rows(state)}
    finally:
        state.close()

    jira_summary = result.sources["jira"]
    assert jira_summary.quarantined == len(box.bad_keys)
    assert {q["key"] for q in quarantined} == box.bad_keys
    for q in quarantined:
        assert q["source"] == "jira"
        assert "cannot normalize" in q["reason"] and "five stars" in q["reason"], q
    # Every other item, hostile text included, was enriched, recorded and written back.
    sn_values = {r["number"]: r.get("u_relationship_moment") for r in box.servicenow.rows("task")}
    jira_values = {i.key: i.values.get("moment") for i in box.jira.issues.values()}
    world_keys = set(sn_values) | set(jira_values)
    assert processed == world_keys - box.bad_keys
    assert box.hostile <= processed
    assert result.sources["servicenow"].quarantined == 0
    assert not result.sources["servicenow"].error and not jira_summary.error
    for key in world_keys - box.bad_keys:
        value = sn_values.get(key) or jira_values.get(key)
        assert value in ("operation", "evolution", "innovation"), key
    for key in box.bad_keys:
        assert jira_values[key] is None, "a quarantined item is never written"


def _state_rows(state: StateStore) -> list[dict[str, Any]]:
    from sqlalchemy import text

    with state.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT key FROM items"))]


# --- enrichment failures, through a scripted connector -----------------------------------------


class _Settings(SourceSettings):
    type: str = "scripted"


class ScriptedConnector(Connector):
    """One stream, pages handed in by the test; writes are recorded, never sent anywhere."""

    platform = "scripted"
    Settings = _Settings
    pages: ClassVar[list[Page]] = []
    written: ClassVar[list[FieldChange]] = []

    def streams(self) -> list[str]:
        return ["main"]

    def pull(self, stream: str, since: datetime | None, until: datetime) -> Iterator[Page]:
        yield from ScriptedConnector.pages

    def write(self, changes: list[FieldChange]) -> list[WriteResult]:
        for change in changes:
            self.allowed_field(change.field)
        ScriptedConnector.written.extend(changes)
        ids = dict.fromkeys(c.item.id for c in changes)
        return [WriteResult(i, ok=True, fields=[c.field for c in changes if c.item.id == i]) for i in ids]

    def check(self) -> list[Any]:
        return []


def _item(n: int, bad: bool) -> Item:
    title = f"{'POISON ' if bad else ''}{HOSTILE_TITLES[n % len(HOSTILE_TITLES)]} #{n}"
    return Item(
        source="scripted", platform="scripted", container="main", id=f"id{n}", key=f"K-{n}",
        kind="incident", title=title, description="mojibake CafÃ©",
        created=NOW - timedelta(days=n + 1), updated=NOW - timedelta(hours=n + 1),
        comments=[Comment(text="😡 sigue igual!!!", author_role="requester")],
        reopen_count=n % 3, reassignment_count=None, sla_breached=bool(n % 2),
    )


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(bad=st.lists(st.booleans(), min_size=1, max_size=8),
       rejected=st.integers(min_value=0, max_value=2))
def test_bad_items_are_quarantined_with_a_reason_and_good_ones_written(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    bad: list[bool], rejected: int,
) -> None:
    from momentos.enrichment import enrich as real_enrich

    def poisoned(frame: pd.DataFrame, *args: Any, **kwargs: Any) -> pd.DataFrame:
        # Stands for any defect an unusual item could trigger in enrichment.
        if frame["title"].astype(str).str.startswith("POISON").any():
            raise ValueError("poisoned item")
        return real_enrich(frame, *args, **kwargs)

    monkeypatch.setattr("momentos.sync.enrich", poisoned)
    monkeypatch.setenv("MOMENTOS_SCRIPTED_PW", "scripted-password")
    tmp = tmp_path_factory.mktemp("scripted")
    items = [_item(n, is_bad) for n, is_bad in enumerate(bad)]
    unreadable = [(f"raw{k}", f"RAW-{k}", f"cannot normalize: TypeError: record {k}") for k in range(rejected)]
    ScriptedConnector.pages = [Page(items=items, cursor=(NOW - timedelta(minutes=1), "id-last"),
                                    rejected=unreadable)]
    ScriptedConnector.written = []
    config = parse_config(yaml.safe_dump({
        "version": 1,
        "sources": [],
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
    }))
    config.sources = [_Settings.model_validate({
        "name": "scripted", "type": "scripted", "url": "https://scripted.example.test",
        "auth": {"username": "u", "password_env": "MOMENTOS_SCRIPTED_PW"},
        "writeback": {"fields": {"moment": "m", "score": "s", "signals": "g"}},
    })]
    state = StateStore(config.state_url)
    try:
        result = SyncEngine(config, state, connector_factory=ScriptedConnector).run(now=NOW)
        quarantined = {q["key"]: q["reason"] for q in state.quarantined()}
        watermark = state.watermark("scripted", "main")
    finally:
        state.close()

    bad_keys = {i.key for i, is_bad in zip(items, bad) if is_bad}
    good_keys = {i.key for i, is_bad in zip(items, bad) if not is_bad}
    summary = result.sources["scripted"]
    assert not summary.error
    assert summary.quarantined == len(bad_keys) + rejected
    assert set(quarantined) == bad_keys | {r[1] for r in unreadable}
    for key in bad_keys:
        assert "enrichment failed" in quarantined[key] and "poisoned item" in quarantined[key]
    for _, key, reason in unreadable:
        assert quarantined[key] == reason
    assert {c.item.key for c in ScriptedConnector.written} == good_keys
    assert summary.enriched == len(good_keys)
    # The page was committed and the whole window read, weeks after its records were stamped:
    # the next run starts at this run's start (the mark less the overlap), after the page, bad
    # items included.
    overlap = timedelta(seconds=config.sources[0].overlap_seconds)
    assert watermark is not None and watermark.updated - overlap == NOW
    json.dumps(quarantined)


def test_lone_surrogate_text_does_not_stop_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON may carry ``"\\ud800"`` escapes, which decode to a lone surrogate: such an item is
    enriched and written like any other (or quarantined with a reason), and the run goes on."""
    monkeypatch.setenv("MOMENTOS_SCRIPTED_PW", "scripted-password")
    items = [_item(0, False), _item(1, False)]
    items[0].title = "impresora \ud800 rota"
    items[0].description = "texto \udfff con sustituto suelto"
    items[0].comments = [Comment(text="sigue igual \ud83d", author_role="requester")]
    items[0].customer = "Área \udcc3 Finanzas"  # latin-1 bytes decoded with surrogateescape
    ScriptedConnector.pages = [Page(items=items, cursor=(NOW - timedelta(minutes=1), "id1"))]
    ScriptedConnector.written = []
    config = parse_config(yaml.safe_dump({"version": 1, "state": {"url": f"sqlite:///{tmp_path / 's.db'}"}}))
    config.sources = [_Settings.model_validate({
        "name": "scripted", "type": "scripted", "url": "https://scripted.example.test",
        "auth": {"username": "u", "password_env": "MOMENTOS_SCRIPTED_PW"},
        "writeback": {"fields": {"moment": "m", "score": "s", "signals": "g"}},
    })]
    state = StateStore(config.state_url)
    try:
        result = SyncEngine(config, state, connector_factory=ScriptedConnector).run(now=NOW)
        quarantined = {q["key"]: q["reason"] for q in state.quarantined()}
    finally:
        state.close()
    summary = result.sources["scripted"]
    assert not summary.error
    assert "K-1" in {c.item.key for c in ScriptedConnector.written}
    assert "K-0" in {c.item.key for c in ScriptedConnector.written} or quarantined.get("K-0")
