"""enrich() end to end on frames, items and files (CSV, JSON Lines)."""

from __future__ import annotations

import csv
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentos.enrichment import OUTPUT_COLUMNS, enrich
from momentos.enrichment.frame import (
    TableFormatError,
    enrich_file,
    items_to_frame,
    read_table,
    write_table,
)
from momentos.enrichment.settings import ExperienceSettings, MomentsSettings
from momentos.models import LEVELS, MOMENTS, Comment, HistoryEvent, Item

NOW = datetime(2025, 3, 1, tzinfo=UTC)
CONTRACT_OUTPUT = [
    "moment",
    "moment_confidence",
    "moment_reason",
    "sentiment",
    "experience_score",
    "experience_level",
    "experience_reasons",
    "signals",
]


def test_output_columns_follow_the_contract_and_inputs_are_kept() -> None:
    frame = pd.DataFrame(
        {
            "id": ["1", "2"],
            "my_column": [{"keep": "me"}, 7],
            "kind": ["incident", "idea"],
            "title": ["VPN caída", "Idea: chatbot"],
            "description": ["No funciona la VPN", "Propuesta de piloto"],
        },
        index=[5, 5],  # odd index: results are assigned by position
    )
    out = enrich(frame, MomentsSettings(), ExperienceSettings(), NOW)
    assert list(out.columns) == [*frame.columns, *OUTPUT_COLUMNS]
    assert set(CONTRACT_OUTPUT) <= set(OUTPUT_COLUMNS)
    assert out["my_column"].tolist() == [{"keep": "me"}, 7]
    assert list(out.index) == [5, 5]
    assert list(frame.columns) == ["id", "my_column", "kind", "title", "description"]
    assert out["moment"].tolist() == ["operation", "innovation"]
    assert out["experience_score"].dtype == np.int64
    assert out["moment_confidence"].between(0, 1).all()
    assert out["sentiment"][5].tolist()[0] < 0
    assert isinstance(out["signals"].iloc[0], dict)


def test_empty_frame() -> None:
    out = enrich(pd.DataFrame({"title": pd.Series(dtype=object)}), now=NOW)
    assert len(out) == 0 and list(out.columns) == ["title", *OUTPUT_COLUMNS]


def test_bad_values_never_crash() -> None:
    huge = "no funciona " * 200_000
    frame = pd.DataFrame(
        {
            "title": [None, 3.5, ["a"], huge, ""],
            "description": [np.nan, {"x": 1}, huge, b"bytes", None],
            "comments": [
                "[not json",
                12,
                [None, "plain", {"text": None}],
                {"author_role": 1},
                "[]",
            ],
            "created": ["yesterday", 5, None, "2025-01-01", pd.NaT],
            "resolved": [None, "x", "2024-12-31", "", None],
            "reopen_count": ["two", -1, 1e300, None, "3"],
            "reassignment_count": [None, "", [1], "4", 2.7],
            "sla_breached": ["maybe", 2, None, "TRUE", np.nan],
            "survey_score": ["bad", -3, 1e9, "", None],
            "language": [None, 3, "klingon", "es", ""],
            "history": ["{", [1, 2], None, [{"field": None}], "[]"],
            "labels": [None, 1, [None], "a,,b", {}],
            "fields": ["x", None, {"a": [None]}, [], {}],
        }
    )
    out = enrich(frame, now=NOW)
    assert set(out["moment"]) <= set(MOMENTS)
    assert set(out["experience_level"]) <= set(LEVELS)
    assert out["experience_score"].between(0, 100).all()
    assert out["experience_reasons"].map(bool).all()
    json.dumps(out["signals"].tolist(), allow_nan=False)


def test_items_to_frame_and_enrich() -> None:
    created = NOW - timedelta(days=12)
    items = [
        Item(
            source="sn-prod",
            platform="servicenow",
            container="incident",
            id="abc",
            key="INC0010001",
            kind="incident",
            title="Outlook no arranca",
            description="Desde esta mañana Outlook no arranca",
            language="es",
            created=created,
            comments=[
                Comment("¿Alguna novedad?", "ana", "requester", created + timedelta(days=1)),
                Comment("Lo estamos revisando", "it.agent", "agent", created + timedelta(days=2)),
                Comment("Seguimos esperando...", "ana", "requester", created + timedelta(days=5)),
            ],
            history=[
                HistoryEvent("assignment_group", None, "Service Desk", created),
                HistoryEvent("assignment_group", "Service Desk", "Messaging", created),
            ],
            sla_breached=True,
            labels=["email"],
            fields={"u_tier": "gold"},
        ),
        Item(
            source="jira-cloud",
            platform="jira",
            container="INNO",
            id="10001",
            key="INNO-1",
            kind="idea",
            title="Chatbot for HR questions",
            created=created,
            resolved=NOW,
            survey_score=1.0,
        ),
    ]
    frame = items_to_frame(items)
    assert frame.loc[0, "comments"][0] == {
        "author_role": "requester",
        "text": "¿Alguna novedad?",
        "created": "2025-02-18T00:00:00Z",
        "author": "ana",
        "internal": False,
    }
    assert frame.loc[0, "history"][1]["old"] == "Service Desk"
    assert str(frame["created"].dtype).startswith("datetime64")

    out = enrich(frame, experience=ExperienceSettings(language="es"), now=NOW)
    assert out["moment"].tolist() == ["operation", "innovation"]
    assert out.loc[1, "moment_reason"] == "rule 'jira-innovation': platform = jira, kind = idea"
    signals = out.loc[0, "signals"]
    assert signals["chasers"] == 2 and signals["reassignment_count"] == 1
    assert signals["sla_breached"] is True and signals["age_days"] == 12.0
    assert signals["wait_hours"] == 7 * 24.0  # "seguimos esperando" on day 5, still open on 12
    assert signals["watermelon"] is False  # SLA breached: red outside too
    reasons = out.loc[0, "experience_reasons"].split("; ")
    assert "el solicitante preguntó 2 veces por el estado" in reasons
    assert out.loc[1, "experience_level"] == "good"
    assert out.loc[1, "experience_reasons"].startswith("sin señales negativas")
    assert items_to_frame([]).columns.tolist() == frame.columns.tolist()


def test_enrich_file_csv_with_only_title_and_description(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "title,description\n"
        '"Nueva funcionalidad: piloto de chatbot","Queremos explorar una prueba de concepto"\n'
        '"VPN not working","still not working after the update, third time I report it"\n'
        "Please install Office,\n",
        encoding="utf-8",
    )
    target = tmp_path / "out.csv"
    assert enrich_file(source, target, now=NOW) == 3
    with target.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["title", "description", *OUTPUT_COLUMNS]
    assert [r["moment"] for r in rows] == ["innovation", "operation", "operation"]
    # The shipped model decides what no rule does, and says which words made it sure.
    assert rows[0]["moment_reason"].startswith("no rule matched; model 0.")
    assert "'piloto'" in rows[0]["moment_reason"]
    assert float(rows[1]["sentiment"]) < -0.6
    assert rows[2]["sentiment"] == ""  # no requester text: empty
    assert json.loads(rows[1]["signals"])["sentiment"] < -0.6
    assert rows[2]["description"] == ""
    assert not (tmp_path / "out.csv.partial").exists()


def test_jsonl_round_trip_with_comments(tmp_path: Path) -> None:
    comments = [
        {"author_role": "requester", "text": "any update?", "created": "2025-02-01T10:00:00Z"},
        {"author_role": "agent", "text": "working on it"},
    ]
    lines = [
        {
            "id": 1,
            "kind": "incident",
            "title": "SAP down",
            "comments": comments,
            "extra": {"a": [1]},
        },
        {"id": 2, "kind": "change", "title": "Upgrade", "comments": json.dumps(comments)},
        {"id": 3, "title": "Note", "comments": "plain text from the requester: still waiting"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    assert enrich_file(source, target, now=NOW, chunk_rows=2) == 3

    back = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in back] == [1, 2, 3]
    assert back[0]["comments"] == comments  # JSON array stays an array
    assert back[1]["comments"] == json.dumps(comments)  # JSON text stays text
    assert back[0]["extra"] == {"a": [1]}
    assert "extra" not in back[2] or back[2]["extra"] is None
    signals = [json.loads(r["signals"]) for r in back]  # signals: a JSON string
    assert [s["chasers"] for s in signals] == [1, 1, 1]
    assert back[0]["moment"] == "operation" and back[1]["moment"] == "evolution"

    frame = read_table(target)
    assert len(frame) == 3 and frame["comments"][0] == comments


def test_chunked_and_whole_file_agree(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "id": [f"{i:05d}" for i in range(7)],
            "title": ["VPN caída", "Upgrade Java", "Idea: IA", "Password reset", "x", "", "Mejora"],
            "comments": ['[{"author_role": "requester", "text": "¿alguna novedad?"}]'] * 7,
            "survey_score": ["1", "5", "", "3", "", "2", "4"],
        }
    )
    source = tmp_path / "in.csv"
    write_table(frame, source)
    enrich_file(source, tmp_path / "one.csv", now=NOW)
    enrich_file(source, tmp_path / "many.csv", now=NOW, chunk_rows=3)
    one = read_table(tmp_path / "one.csv")
    many = read_table(tmp_path / "many.csv")
    pd.testing.assert_frame_equal(one, many)
    assert one["id"].tolist()[0] == "00000"  # CSV text is kept as text


def test_semicolon_csv_and_header_only_csv(tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    source.write_text("\ufefftitle;description\nPassword reset;No puedo entrar\n", encoding="utf-8")
    target = tmp_path / "out.csv"
    enrich_file(source, target, now=NOW)
    out = read_table(target)
    assert out.loc[0, "title"] == "Password reset" and out.loc[0, "moment"] == "operation"

    empty = tmp_path / "empty.csv"
    empty.write_text("title,description\n", encoding="utf-8")
    assert enrich_file(empty, target, now=NOW) == 0
    assert target.read_text(encoding="utf-8").strip().split(",") == [
        "title",
        "description",
        *OUTPUT_COLUMNS,
    ]


def test_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "ok"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(TableFormatError, match=r"bad.jsonl:2"):
        enrich_file(bad, tmp_path / "out.jsonl", now=NOW)
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(TableFormatError, match="unsupported"):
        read_table(tmp_path / "data.xlsx")


def test_json_array_file(tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps([{"title": "Printer jammed"}, {"title": "New product idea"}]))
    out = read_table(source)
    assert enrich(out, now=NOW)["moment"].tolist() == ["operation", "innovation"]


def test_write_table_serializes_nested_and_datetimes(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "created": pd.to_datetime(["2025-01-02T03:04:05Z", None], utc=True),
            "labels": [["a", "b"], []],
            "signals": [{"chasers": 1, "sentiment": math.nan}, {}],
        }
    )
    write_table(frame, tmp_path / "x.csv")
    rows = list(csv.DictReader((tmp_path / "x.csv").open(encoding="utf-8")))
    assert rows[0] == {
        "created": "2025-01-02T03:04:05Z",
        "labels": '["a", "b"]',
        "signals": '{"chasers": 1, "sentiment": null}',
    }
    assert rows[1]["created"] == ""
    write_table(frame, tmp_path / "x.jsonl")
    first = json.loads((tmp_path / "x.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "created": "2025-01-02T03:04:05Z",
        "labels": ["a", "b"],
        "signals": '{"chasers": 1, "sentiment": null}',
    }


def test_jsonl_in_parallel_keeps_lines_order_and_input_text(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": f"{i:03d}", "title": t, "custom": {"a": [1, 2]}, "language": "es"},
                   ensure_ascii=False)
        for i, t in enumerate(["VPN caída", "Upgrade Java", "Idea: IA", "No imprime", "Mejora"])
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n",
                      encoding="utf-8")
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    assert enrich_file(source, one, now=NOW, workers=1) == 5
    assert enrich_file(source, many, now=NOW, chunk_rows=2, workers=2) == 5
    assert one.read_text(encoding="utf-8") == many.read_text(encoding="utf-8")
    out = many.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in out] == ["000", "001", "002", "003", "004"]
    # The input is written back as it was, the enrich columns appended inside the object.
    assert out[0].startswith(lines[0][:-1] + ", \"moment\": ")
    assert list(json.loads(out[0]))[-len(OUTPUT_COLUMNS):] == list(OUTPUT_COLUMNS)
    assert not list(tmp_path.glob("*.partial*"))


def test_jsonl_with_an_output_column_already_in_the_input_is_rewritten(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"title": "VPN down", "moment": "old"}\n', encoding="utf-8")
    target = tmp_path / "out.jsonl"
    enrich_file(source, target, now=NOW)
    record = json.loads(target.read_text(encoding="utf-8"))
    assert record["moment"] == "operation" and record["title"] == "VPN down"


def test_bad_jsonl_line_is_named_in_parallel_too(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"title": "a"}\n{"title": "b"}\n{"title": \n', encoding="utf-8")
    with pytest.raises(TableFormatError, match=r"in\.jsonl:3"):
        enrich_file(source, tmp_path / "out.jsonl", now=NOW, chunk_rows=1, workers=2)
    assert not list(tmp_path.glob("out.jsonl*"))


def test_a_moment_given_by_a_person_replaces_the_rules_and_sets_the_weights() -> None:
    now = datetime(2025, 6, 2, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "kind": ["incident"] * 3,
            "title": ["VPN caída otra vez"] * 3,
            "created": [now - timedelta(days=40)] * 3,
            "comments": [json.dumps([{"author_role": "requester", "text": "¿alguna novedad?",
                                      "created": (now - timedelta(days=30)).isoformat()}])] * 3,
        }
    )
    out = enrich(frame, now=now, given_moments=[None, "innovation", "not-a-moment"])
    assert out["moment"].tolist() == ["operation", "innovation", "operation"]
    assert out["moment_reason"][1] == "set by a person in the platform"
    assert out["moment_rule"][1] == "person" and out["moment_confidence"][1] == 1.0
    assert not out["needs_review"][1]
    # The same item weighed as innovation (long waits matter less there) scores otherwise.
    assert out["experience_score"][1] != out["experience_score"][0]
    assert out["experience_score"][2] == out["experience_score"][0]
    with pytest.raises(ValueError, match="given_moments"):
        enrich(frame, now=now, given_moments=["operation"])
