"""`momentos explain` pieces: score contributions, requester texts, the assembled explanation
with a fake connector and a real (SQLite) state store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from momentos.config import parse_config
from momentos.connectors.base import Connector
from momentos.enrichment import columns as col
from momentos.enrichment import enrich
from momentos.enrichment.frame import items_to_frame
from momentos.enrichment.score import (
    BASE_SCORE,
    combine,
    contributions,
    score_contributions,
    score_experience,
)
from momentos.enrichment.settings import SIGNALS, ExperienceSettings
from momentos.enrichment.signals import chaser_regex, compute_signals
from momentos.explain import (
    ItemNotFound,
    _decided_by,
    explain_item,
    open_state,
    render,
    requester_texts,
)
from momentos.models import Comment, Item
from momentos.state import StateStore

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _random_signals(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {}
    for name in SIGNALS:
        values = rng.gamma(1.0, 3.0, n)
        values[rng.random(n) < 0.4] = np.nan
        data[name] = values
    for name in ("sentiment", "participants_sentiment"):
        data[name] = rng.uniform(-1, 1, n)
    data["survey_score"] = rng.uniform(0, 1, n)
    data["sla_breached"] = rng.integers(0, 2, n).astype(float)
    data["_typical_hours"] = rng.uniform(1, 100, n)
    data["_typical_response_hours"] = rng.uniform(0.5, 10, n)
    moments = rng.choice(["operation", "evolution", "innovation"], n)
    return pd.DataFrame(data), moments


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contributions_sum_to_the_scores_distance_from_the_base(seed):
    signals, moments = _random_signals(200, seed)
    settings = ExperienceSettings()
    counted = score_contributions(signals, moments, settings)
    assert list(counted.columns) == list(SIGNALS)
    raw = combine(contributions(signals, moments, settings))
    np.testing.assert_allclose(BASE_SCORE + counted.sum(axis=1).to_numpy(), raw, atol=1e-9)
    scored = score_experience(signals, moments, settings)
    rebuilt = np.clip(np.round(BASE_SCORE + counted.sum(axis=1).to_numpy()), 0, 100)
    np.testing.assert_array_equal(scored["experience_score"].to_numpy(), rebuilt)


def test_penalties_count_in_full_and_good_news_only_as_far_as_the_score_credits_it():
    signals = pd.DataFrame({"chasers": [1.0, np.nan], "sentiment": [0.8, 0.8]})
    moments = np.array(["operation", "operation"])
    settings = ExperienceSettings()
    full = contributions(signals, moments, settings)
    counted = score_contributions(signals, moments, settings)
    chasers, sentiment = SIGNALS.index("chasers"), SIGNALS.index("sentiment")
    assert counted.iloc[0]["chasers"] == pytest.approx(full[0, chasers])
    assert 0 < counted.iloc[0]["sentiment"] <= -full[0, chasers] / 2
    assert counted.iloc[0]["sentiment"] <= full[0, sentiment]
    # Nothing bad: good news cannot lift a score that is already 100.
    assert counted.iloc[1].sum() == 0.0


def _item(**overrides) -> Item:
    base: dict[str, object] = {
        "source": "sn", "platform": "servicenow", "container": "incident", "id": "abc123",
        "key": "INC0010001", "kind": "incident", "title": "Outlook no abre", "language": "es",
        "description": "Hola, Outlook no funciona desde ayer. Es urgente.",
        "created": NOW - timedelta(days=3), "updated": NOW - timedelta(hours=1),
        "comments": [
            Comment("¿Alguna novedad?", "ana", "requester", NOW - timedelta(days=2)),
            Comment("Estamos en ello", "it.agent", "agent", NOW - timedelta(days=2, hours=-1)),
            Comment("Nota interna: cliente molesto", "it.agent", "agent", NOW - timedelta(days=1),
                    internal=True),
            Comment("Sigue sin funcionar, esto es inaceptable", "ana", "requester",
                    NOW - timedelta(days=1)),
            Comment("Gracias, ya funciona", "ana", "requester", NOW - timedelta(hours=2)),
        ],
        "current": {"moment": "evolution", "score": "40"},
    }
    base.update(overrides)
    return Item(**base)


def test_requester_texts_rebuild_the_sentiment_enrichment_computes():
    frame = items_to_frame([_item()])
    texts = requester_texts(frame, NOW - timedelta(days=3))
    assert [t["kind"] for t in texts] == ["description", "comment", "comment", "comment"]
    assert all(t["author_role"] == "requester" for t in texts)
    assert "Nota interna" not in " ".join(t["text"] for t in texts)
    # The description weighs 1, the k-th requester comment k + 1, a text without sentiment a
    # quarter of that.
    for text, weight in zip(texts, (1.0, 2.0, 3.0, 4.0)):
        assert text["weight"] == (weight / 4 if text["score"] == 0 else weight)
    signals = compute_signals(frame, col.comments_table(frame), col.history_table(frame), NOW,
                              chaser_regex())
    scored = [t for t in texts if t["score"] is not None]
    mean = sum(t["score"] * t["weight"] for t in scored) / sum(t["weight"] for t in scored)
    assert mean == pytest.approx(signals["sentiment"].iloc[0], abs=0.002)


@pytest.mark.parametrize(
    ("rule", "reason", "expected"),
    [
        ("servicenow-operation", "rule 'servicenow-operation': table = incident", "rule"),
        ("", "no rule matched; model 0.83: 'nueva funcionalidad', 'upgrade'", "model"),
        ("demands", "rule 'demands': table = dmn_demand → auto; model 0.7: 'x'", "model"),
        ("demands", ("rule 'demands': kind = demand → innovation (0.75); overruled by model "
                     "0.85: 'upgrade'"), "model"),
        ("", "no rule matched; keywords: 'error'", "keywords"),
    ],
)
def test_who_decided_the_moment(rule, reason, expected):
    assert _decided_by(rule, reason) == expected


class FakeConnector(Connector):
    """Reads one item from memory; any write fails the test."""

    platform = "servicenow"
    Settings = None  # type: ignore[assignment]
    items: ClassVar[dict[str, Item]] = {}
    fetched: ClassVar[list[str]] = []

    def streams(self):
        return []

    def pull(self, stream, since, until):
        raise AssertionError("explain must not pull")

    def write(self, changes):
        raise AssertionError("explain must not write")

    def check(self):
        return []

    def fetch(self, key):
        self.fetched.append(key)
        return self.items.get(key)


def _config(tmp_path: Path, language: str = "en"):
    text = f"""
version: 1
sources:
  - name: sn
    type: servicenow
    url: https://example.service-now.com
    auth: {{username: svc, password_env: MOMENTOS_TEST_PW}}
state: {{url: "sqlite:///{tmp_path / 'state.db'}"}}
report: {{out: {tmp_path / 'report'}, language: {language}}}
"""
    return parse_config(text)


@pytest.fixture
def synced(tmp_path):
    """A state store as a sync leaves it: the item's row, what was written, an override (the
    person's moment, evolution, is the item's moment; sync scores the item with it)."""
    config = _config(tmp_path)
    item = _item()
    enriched = enrich(items_to_frame([item]), config.moments, config.experience, now=NOW,
                      given_moments=["evolution"])
    row = enriched.iloc[0].to_dict()
    from momentos.sync import _report_row

    data = _report_row(row)
    state = StateStore(config.state_url)
    state.commit_page(
        "sn", "incident",
        [{"item_id": item.id, "key": item.key, "platform": "servicenow", "container": "incident",
          "updated": item.updated, "moment": data["moment"], "score": data["experience_score"],
          "level": data["experience_level"], "customer": "", "created": item.created,
          "resolved": None, "data": json.dumps(data, default=str)}],
        [(item.id, "moment", "operation"), (item.id, "score", "40")], [], {}, None,
    )
    state.record_overrides("sn", [{"item_id": item.id, "field": "moment", "key": item.key,
                                   "value": "evolution", "ours": "operation", "by": "it.agent"}])
    state.close()
    FakeConnector.items = {item.key: item}
    FakeConnector.fetched = []
    return config, item, data


def test_explain_item_with_a_fake_connector(synced):
    config, item, data = synced
    result = explain_item(config, item.key, now=NOW, connector_factory=FakeConnector)
    assert FakeConnector.fetched == [item.key]
    assert {"key", "source", "moment", "score", "signals", "sentiment", "override",
            "written"} <= set(result)
    assert result["key"] == item.key and result["source"] == "sn" and result["live"]
    assert result["override"]["value"] == "evolution" and result["override"]["ours"] == "operation"
    assert result["override"]["by"] == "it.agent"
    assert {w["field"]: w["value"] for w in result["written"]} == {"moment": "operation",
                                                                    "score": "40"}
    assert result["score"]["value"] == data["experience_score"]
    assert result["moment"]["value"] == "evolution" and result["moment"]["decided_by"] == "person"
    points = sum(s["contribution"] for s in result["signals"])
    assert min(100, max(0, round(100 + points))) == result["score"]["value"]
    assert result["sentiment"]["texts"]
    json.dumps(result)  # JSON-able as is

    console = Console(width=120, record=True)
    render(result, console)
    text = console.export_text()
    assert "overridden by a person: moment evolution (momentos had written operation)" in text


def test_explain_in_spanish_translates_labels_and_reasons(synced):
    config, item, _ = synced
    result = explain_item(config, item.key, lang="es", now=NOW, connector_factory=FakeConnector)
    console = Console(width=120, record=True)
    render(result, console)
    text = console.export_text()
    assert "Momento de la relación" in text and "Puntuación de experiencia" in text
    assert "cambiado por una persona: momento evolución (momentos había escrito operación)" in text
    assert "Relationship moment" not in text


def test_unknown_key_names_the_sources_tried(synced):
    config, _, _ = synced
    with pytest.raises(ItemNotFound, match="no item INC0099999 in source sn"):
        explain_item(config, "INC0099999", now=NOW, connector_factory=FakeConnector)


def test_an_item_no_sync_has_seen_is_explained_live(tmp_path):
    config = _config(tmp_path)
    item = _item()
    FakeConnector.items = {item.key: item}
    result = explain_item(config, item.key, now=NOW, connector_factory=FakeConnector)
    assert result["live"] and not result["synced"]
    assert result["override"] is None and result["written"] == []
    # No state store existed: none was created.
    assert not (tmp_path / "state.db").exists()


def test_open_state_never_creates_a_missing_sqlite_file(tmp_path):
    assert open_state(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert not (tmp_path / "missing.db").exists()


def test_explain_counts_repeat_contacts_over_the_stored_items(synced):
    """The requester's earlier item about the same service, stored by an earlier sync: explain
    counts it as sync does, over the state store (the history in memory holds one item here,
    the newest), and not the item's own stored row."""
    from momentos.state import item_keys

    config, _, data = synced
    config.model.experience = config.model.experience.model_copy(update={"context_items": 1})
    item = _item(requester="Ana", service="Email")
    FakeConnector.items = {item.key: item}
    earlier = {**data, "id": "e1", "key": "INC0000001", "requester": "ana", "service": "email",
               "created": (item.created - timedelta(days=2)).isoformat()}
    own = {**data, "requester": "Ana", "service": "Email"}
    state = StateStore(config.state_url)
    try:
        state.commit_page("sn", "incident", [
            {"item_id": row["id"], "key": row["key"], "platform": "servicenow",
             "container": "incident", "updated": item.updated, "moment": "operation", "score": 50,
             "level": "fair", "customer": "", "created": created, "resolved": None,
             "data": json.dumps(row, default=str), **item_keys([row])[0]}
            for row, created in ((earlier, item.created - timedelta(days=2)),
                                 (own, item.created - timedelta(days=1)))
        ], [], [], {}, None)
    finally:
        state.close()
    result = explain_item(config, item.key, now=NOW, connector_factory=FakeConnector)
    repeat = next(s for s in result["signals"] if s["name"] == "repeat_contact")
    assert repeat["value"] == 1
