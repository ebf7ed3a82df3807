"""One test per experience signal, on small hand-made frames."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from momentos.enrichment.columns import comments_table, history_table
from momentos.enrichment.signals import chaser_regex, compute_signals, signal_dicts

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)


def _signals(frame: pd.DataFrame, extra_chasers: list[str] | None = None) -> pd.DataFrame:
    return compute_signals(
        frame,
        comments_table(frame),
        history_table(frame),
        NOW,
        chaser_regex(extra_chasers or []),
    )


def _requester(*texts: str) -> list[dict[str, str]]:
    return [{"author_role": "requester", "text": t} for t in texts]


def test_chasers_count_requester_status_questions_in_both_languages() -> None:
    frame = pd.DataFrame(
        {
            "comments": [
                _requester(
                    "¿Alguna novedad?", "any update?", "¿Cómo va lo mío?", "Seguimos esperando"
                ),
                _requester("Any news? Still waiting."),  # one comment counts once
                [{"author_role": "agent", "text": "any update from the vendor?"}],
                _requester("Thanks, it works", "I attach the log"),
                "como va lo mio",  # plain text is the requester's comment
                None,
            ]
        }
    )
    assert _signals(frame)["chasers"].tolist() == [4, 1, 0, 0, 1, 0]


def test_chaser_patterns_are_extendable() -> None:
    frame = pd.DataFrame({"comments": [_requester("ping"), _requester("¿Qué hay de lo mío?")]})
    assert _signals(frame)["chasers"].tolist() == [0, 0]
    extended = _signals(frame, [r"^ping$", r"qu[eé] hay de lo m[ií]o"])
    assert extended["chasers"].tolist() == [1, 1]


def test_reassignments_from_column_else_from_history() -> None:
    moves = [
        {"field": "assignment_group", "old": None, "new": "Service Desk"},  # routing, not a move
        {"field": "assignment_group", "old": "Service Desk", "new": "Network"},
        {"field": "assignment_group", "old": "Network", "new": "Security"},
        {"field": "assigned_to", "old": "ana", "new": "luis"},
    ]
    frame = pd.DataFrame(
        {
            "reassignment_count": [5, None, "", "n/a"],
            "history": [moves, moves, json.dumps(moves), None],
        }
    )
    assert _signals(frame)["reassignment_count"].tolist()[:3] == [5, 2, 2]
    assert math.isnan(_signals(frame)["reassignment_count"][3])


def test_reopens_from_column_else_from_state_history() -> None:
    history = [
        {"field": "state", "old": "In Progress", "new": "Resolved"},
        {"field": "state", "old": "Resolved", "new": "In Progress"},
        {"field": "state", "old": "6", "new": "2"},  # ServiceNow raw values
        {"field": "state", "old": "Closed", "new": "Resolved"},  # still closed
    ]
    frame = pd.DataFrame({"reopen_count": [1, np.nan], "history": [history, history]})
    assert _signals(frame)["reopen_count"].tolist() == [1, 2]


def test_sla_breached_reads_bools_numbers_and_words() -> None:
    frame = pd.DataFrame({"sla_breached": [True, "false", "1", 0, "sí", "", None, "maybe"]})
    values = _signals(frame)["sla_breached"].tolist()
    assert values[:5] == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert all(math.isnan(v) for v in values[5:])


def test_survey_score_is_normalized() -> None:
    unit = _signals(pd.DataFrame({"survey_score": [0.0, 0.75, None]}))["survey_score"]
    assert unit.tolist()[:2] == [0.0, 0.75] and math.isnan(unit[2])
    five = _signals(pd.DataFrame({"survey_score": ["1", "3", "5", ""]}))["survey_score"]
    assert five.tolist()[:3] == [0.0, 0.5, 1.0] and math.isnan(five[3])
    ten = _signals(pd.DataFrame({"survey_score": [2, 10]}))["survey_score"]
    assert ten.tolist() == [0.2, 1.0]


def test_age_days_for_open_and_resolved_items() -> None:
    frame = pd.DataFrame(
        {
            "created": ["2025-02-19 12:00:00", "2025-01-01T12:00:00Z", "garbage", "2025-02-01"],
            "resolved": ["", "2025-01-11T00:00:00.000+0000", "", "2025-01-01"],
        }
    )
    signals = _signals(frame)
    assert signals["age_days"].tolist()[:2] == [10.0, 9.5]
    assert signals["_open"].tolist()[:2] == [True, False]
    assert math.isnan(signals["age_days"][2]) and math.isnan(signals["age_days"][3])
    # Without a resolved column nobody can tell open from closed: no age at all.
    assert math.isnan(_signals(frame.drop(columns=["resolved"]))["age_days"][0])


def test_sentiment_signal_is_the_requester_sentiment() -> None:
    frame = pd.DataFrame(
        {
            "description": [
                "still not working, third time I report it",
                "",
                "Please install Office",
            ],
            "comments": [None, [{"author_role": "agent", "text": "terrible"}], None],
        }
    )
    sentiment = _signals(frame)["sentiment"]
    assert sentiment[0] < -0.6 and math.isnan(sentiment[1]) and sentiment[2] == 0.0


def test_signal_dicts_are_json_ready() -> None:
    frame = pd.DataFrame(
        {
            "description": ["broken", ""],
            "comments": [_requester("any update?"), None],
            "reopen_count": [2, None],
            "sla_breached": [True, None],
            "survey_score": [0.5, None],
        }
    )
    dicts = signal_dicts(_signals(frame))
    assert dicts[0]["chasers"] == 1 and isinstance(dicts[0]["chasers"], int)
    assert dicts[0]["reopen_count"] == 2 and dicts[0]["sla_breached"] is True
    assert dicts[1] == {
        "sentiment": None,
        "chasers": 0,
        "reopen_count": None,
        "reassignment_count": None,
        "sla_breached": None,
        "survey_score": None,
        "age_days": None,
    }
    json.dumps(dicts, allow_nan=False)
