"""One test per experience signal, on small hand-made frames."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from momentos.enrichment.columns import comments_table, history_table
from momentos.enrichment.settings import SIGNALS, ExperienceSettings
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
    dicts = signal_dicts(_signals(frame), {"watermelon": np.array([False, True])})
    assert dicts[0]["chasers"] == 1 and isinstance(dicts[0]["chasers"], int)
    assert dicts[0]["reopen_count"] == 2 and dicts[0]["sla_breached"] is True
    assert list(dicts[1]) == [*SIGNALS, "watermelon"]
    assert dicts[1]["sentiment"] is None and dicts[1]["chasers"] == 0
    assert dicts[1]["watermelon"] is True and dicts[0]["watermelon"] is False
    assert all(dicts[1][name] is None for name in ("reopen_count", "survey_score", "age_days"))
    json.dumps(dicts, allow_nan=False)


# --- conversation ----------------------------------------------------------------------------


def _comment(role: str, text: str, hours: float, **extra: object) -> dict[str, object]:
    when = (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
    return {"author_role": role, "text": text, "created": when, **extra}


T0 = datetime(2025, 2, 1, 9, tzinfo=UTC)


def test_participants_sentiment_complaints_and_agent_concern() -> None:
    frame = pd.DataFrame(
        {
            "comments": [
                [
                    _comment("requester", "Great, thanks!", 1),
                    _comment("other", "Nobody from IT came to the last two meetings.", 2),
                    _comment("other", "El alcance no refleja lo que pedimos.", 3),
                    _comment("agent", "User is very upset, handle with care.", 4, internal=True),
                ],
                [_comment("agent", "Escalated to the network team.", 1)],
            ]
        }
    )
    signals = _signals(frame)
    # Requester sentiment reads the requester only; participants have their own signal.
    assert signals["sentiment"][0] > 0.5
    assert signals["participants_sentiment"][0] < -0.4
    assert math.isnan(signals["participants_sentiment"][1])
    assert signals["complaints"].tolist() == [2, 0]
    # Routing ("escalated to") is not concern; "very upset" in a work note is.
    assert signals["agent_concern"].tolist() == [1, 0]


def test_wait_and_unanswered_questions() -> None:
    frame = pd.DataFrame(
        {
            "created": [T0, T0, T0],
            "resolved": [T0 + timedelta(hours=100), None, T0 + timedelta(hours=10)],
            "comments": [
                [
                    _comment("requester", "When will we have the estimate?", 10),
                    _comment("requester", "Any update?", 30),  # same wait, second question
                    _comment("agent", "Estimate by Friday.", 58),
                    _comment("requester", "Thanks!", 60),  # needs no answer
                ],
                [
                    _comment("agent", "Looking into it", 1),
                    _comment("requester", "¿Quién es nuestro contacto?", 4),
                ],
                [_comment("requester", "ok?", 20)],  # after the resolution: not waiting
            ],
        }
    )
    signals = compute_signals(frame, comments_table(frame), history_table(frame),
                              T0 + timedelta(hours=52))
    # Item 0: asked at 10 h, answered at 58 h → 48 h; the "thanks" at 60 h waits 40 h to the
    # end (resolved at 100 h), so the longest wait is 48 h.
    assert signals["wait_hours"].tolist()[:2] == [48.0, 48.0]
    assert signals["_waiting_now"].tolist() == [False, True, False]
    assert signals["wait_hours"][2] == 0.0
    assert signals["unanswered_questions"].tolist() == [1, 1, 0]
    assert signals["requester_interactions"].tolist() == [3, 1, 1]


def test_first_response_from_reply_or_assignment() -> None:
    frame = pd.DataFrame(
        {
            "created": [T0, T0, T0, T0],
            "resolved": [T0 + timedelta(days=1), T0 + timedelta(days=1), None, None],
            "comments": [
                [_comment("agent", "On it", 3)],
                [_comment("agent", "Internal", 0.5, internal=True), _comment("agent", "Hi", 5)],
                None,
                None,
            ],
            "history": [
                [{"field": "assigned_to", "old": None, "new": "Ana", "at": T0 + timedelta(hours=2)}],
                None,
                None,
                [{"field": "assigned_to", "old": None, "new": "Luis", "at": T0 + timedelta(hours=1)}],
            ],
        }
    )
    signals = compute_signals(frame, comments_table(frame), history_table(frame),
                              T0 + timedelta(hours=30))
    # Taking the item counts as responding; work notes do not; nobody yet: the wait so far.
    assert signals["first_response_hours"].tolist() == [2.0, 5.0, 30.0, 1.0]
    assert signals["_answered"].tolist() == [True, True, False, True]


def test_resolution_against_the_category_median() -> None:
    n = 12
    frame = pd.DataFrame(
        {
            "kind": ["incident"] * n + ["change"],
            "priority": ["3 - Moderate"] * n + [""],
            "created": [T0] * (n + 1),
            "resolved": [T0 + timedelta(hours=h) for h in [10] * (n - 1) + [40]]
            + [T0 + timedelta(hours=5)],
        }
    )
    settings = ExperienceSettings(min_group_size=10, resolution_target_hours={"change": 24})
    signals = compute_signals(frame, comments_table(frame), history_table(frame), NOW,
                              settings=settings, moments=np.array(["operation"] * n
                                                                   + ["evolution"]),
                              frame_is_population=True)
    assert signals["resolution_hours"].tolist()[-3:] == [10.0, 40.0, 5.0]
    # Twelve incidents of one kind and priority: their median (10 h) is "usual".
    assert signals["_typical_hours"].tolist()[:n] == [10.0] * n
    # The change has a configured target.
    assert signals["_typical_hours"].iloc[-1] == 24.0
    small = frame.iloc[:3]
    fallback = compute_signals(small, comments_table(small), history_table(small), NOW,
                               settings=settings, moments=np.array(["operation"] * 3),
                               frame_is_population=True)
    assert fallback["_typical_hours"].tolist() == [5 * 24.0] * 3  # age_target_days
    # A sync page is not a reference: without context, the configured targets, however big.
    page = compute_signals(frame, comments_table(frame), history_table(frame), NOW,
                           settings=settings, moments=np.array(["operation"] * (n + 1)))
    assert page["_typical_hours"].tolist()[:n] == [5 * 24.0] * n
    # The history passed as context is.
    history = frame.iloc[:n].assign(moment="operation")
    with_history = compute_signals(small, comments_table(small), history_table(small), NOW,
                                   settings=settings, moments=np.array(["operation"] * 3),
                                   context=history)
    assert with_history["_typical_hours"].tolist() == [10.0] * 3
    # A page holding every item of its kind (their stored versions are the whole history)
    # still has the history as its reference, whatever page its items arrive in.
    ids = [f"i{i}" for i in range(n)]
    stored = frame.iloc[:n].assign(id=ids, moment="operation")
    whole_page = frame.iloc[:n].assign(id=ids)
    repulled = compute_signals(whole_page, comments_table(whole_page), history_table(whole_page),
                               NOW, settings=settings, moments=np.array(["operation"] * n),
                               context=stored)
    assert repulled["_typical_hours"].tolist() == [10.0] * n


def test_pingpong_priority_raised_hold_and_rework() -> None:
    at = [T0 + timedelta(hours=h) for h in range(10)]
    history = [
        {"field": "assignment_group", "old": None, "new": "Service Desk", "at": at[0]},
        {"field": "assignment_group", "old": "Service Desk", "new": "Network", "at": at[1]},
        {"field": "assignment_group", "old": "Network", "new": "Service Desk", "at": at[2]},
        {"field": "assignment_group", "old": "Service Desk", "new": "Network", "at": at[3]},
        {"field": "priority", "old": "3 - Moderate", "new": "2 - High", "at": at[1]},
        {"field": "priority", "old": "High", "new": "Low", "at": at[2]},
        {"field": "state", "old": "New", "new": "In Progress", "at": at[1]},
        {"field": "state", "old": "In Progress", "new": "On Hold", "at": at[2]},
        {"field": "state", "old": "On Hold", "new": "In Progress", "at": at[5]},
        {"field": "state", "old": "In Progress", "new": "Review", "at": at[6]},
        {"field": "state", "old": "Review", "new": "In Progress", "at": at[7]},  # rework
    ]
    frame = pd.DataFrame({"created": [T0], "resolved": [T0 + timedelta(hours=9)],
                          "history": [history]})
    signals = _signals(frame)
    assert signals["reassignment_count"][0] == 3
    assert signals["pingpong"][0] == 2  # back to Service Desk, back to Network
    assert signals["_pingpong_groups"][0] == ["Network", "Service Desk"]
    assert signals["priority_raised"][0] == 1
    assert signals["on_hold_hours"][0] == 3.0
    assert signals["rework"][0] == 1
    assert math.isnan(_signals(pd.DataFrame({"x": [1]}))["pingpong"][0])


def test_repeat_contact_same_requester_same_service_within_window() -> None:
    frame = pd.DataFrame(
        {
            "requester": ["ana", "ana", "ana", "luis", "ana", ""],
            "service": ["VPN", "VPN", "SAP", "VPN", "VPN", "VPN"],
            "created": [T0, T0 + timedelta(days=3), T0 + timedelta(days=4), T0 + timedelta(days=5),
                        T0 + timedelta(days=30), T0 + timedelta(days=1)],
        }
    )
    signals = compute_signals(frame, comments_table(frame), history_table(frame), NOW,
                              frame_is_population=True)["repeat_contact"].tolist()
    assert signals[:5] == [0, 1, 0, 0, 0]
    assert math.isnan(signals[5])  # nobody to repeat
    # A sync page alone is no population: its neighbours change, so the count is unknown.
    assert _signals(frame)["repeat_contact"].isna().all()
    # Context items count too (a sync page rarely holds the earlier contact).
    context = pd.DataFrame({"requester": ["luis"], "service": ["VPN"],
                            "created": [T0 + timedelta(days=2)]})
    with_context = compute_signals(frame, comments_table(frame), history_table(frame), NOW,
                                   context=context)
    assert with_context["repeat_contact"][3] == 1
    # An empty history (a first sync's first batch) is still a history: the batch's items are
    # compared with each other, as every later batch is with the batches before it, so the
    # next run does not rewrite the field only because "unknown" became 0.
    empty = compute_signals(frame, comments_table(frame), history_table(frame), NOW,
                            context=context.iloc[0:0])["repeat_contact"].tolist()
    assert empty[:5] == [0, 1, 0, 0, 0] and math.isnan(empty[5])


def test_channel_switches_from_comment_channels_or_a_column() -> None:
    frame = pd.DataFrame(
        {
            "comments": [
                [_comment("requester", "a", 1, channel="portal"),
                 _comment("requester", "b", 2, channel="email"),
                 _comment("agent", "c", 3, channel="phone"),
                 _comment("requester", "d", 4, channel="phone")],
                [_comment("requester", "a", 1)],
            ]
        }
    )
    switches = _signals(frame)["channel_switches"]
    assert switches[0] == 2 and math.isnan(switches[1])
    listed = _signals(pd.DataFrame({"channels": [["phone", "phone", "chat"], "email, portal"]}))
    assert listed["channel_switches"].tolist() == [1, 1]
    assert math.isnan(_signals(pd.DataFrame({"x": [1]}))["channel_switches"][0])


def test_lost_hours_and_howto_for_operation() -> None:
    frame = pd.DataFrame(
        {
            "kind": ["incident", "request", "incident", "change"],
            "title": ["VPN down", "New laptop", "How do I export to Excel?", "Upgrade SAP"],
            "priority": ["1 - Critical", "4 - Low", "3", "3"],
            "created": [T0] * 4,
            "resolved": [T0 + timedelta(hours=6), T0 + timedelta(hours=48),
                         T0 + timedelta(hours=3), T0 + timedelta(hours=3)],
        }
    )
    moments = np.array(["operation", "operation", "operation", "evolution"], dtype=object)
    signals = compute_signals(frame, comments_table(frame), history_table(frame), NOW,
                              moments=moments)
    # 20 people x 2 working hours (6 h x 8/24) x 50%; 1 x 16 x 20%; 1 x 1 x 10%.
    assert signals["lost_hours"].tolist()[:3] == [20.0, 3.2, 0.1]
    assert math.isnan(signals["lost_hours"][3])
    assert signals["howto"].tolist()[:3] == [0.0, 0.0, 1.0] and math.isnan(signals["howto"][3])


def test_caused_incidents_by_link_or_by_proximity() -> None:
    linked = pd.DataFrame(
        {
            "kind": ["change", "incident", "incident", "incident"],
            "key": ["CHG001", "INC1", "INC2", "INC3"],
            "caused_by": ["", "CHG001", "chg001", ""],
            "created": [T0] * 4,
            "resolved": [T0] * 4,
        }
    )
    moments = np.array(["evolution", "operation", "operation", "operation"], dtype=object)
    signals = compute_signals(linked, comments_table(linked), history_table(linked), NOW,
                              moments=moments, frame_is_population=True)
    assert signals["caused_incidents"][0] == 2 and math.isnan(signals["caused_incidents"][1])
    near = pd.DataFrame(
        {
            "id": ["c", "i1", "i2", "i3", "i4"],
            "kind": ["change", "incident", "incident", "incident", "incident"],
            "service": ["SAP", "SAP", "SAP", "VPN", "SAP"],
            "created": [T0, T0 + timedelta(days=2), T0 - timedelta(days=1),
                        T0 + timedelta(days=1), T0 + timedelta(days=9)],
            "resolved": [T0 + timedelta(hours=1)] + [None] * 4,
        }
    )
    # A sync page holding only the change; the incidents are in the history (the context).
    page = near.iloc[:1]
    signals = compute_signals(page, comments_table(page), history_table(page), NOW,
                              moments=np.array(["evolution"], dtype=object),
                              context=near.iloc[1:])
    # Only the SAP incident within 7 days after the implementation counts.
    assert signals["caused_incidents"][0] == 1
    # Items in both the page and the context (re-pulled) are the same items, counted once.
    again = compute_signals(page, comments_table(page), history_table(page), NOW,
                            moments=np.array(["evolution"], dtype=object), context=near)
    assert again["caused_incidents"][0] == 1


def test_caused_incidents_links_count_only_for_the_source_that_links() -> None:
    """A Jira change is measured by proximity even when the history holds ServiceNow
    incidents linked to ServiceNow changes."""
    history = pd.DataFrame(
        {
            "source": ["servicenow", "jira", "jira"],
            "id": ["sn-i1", "j-i1", "j-i2"],
            "kind": ["incident", "incident", "incident"],
            "caused_by": ["sn-c1", None, None],
            "service": ["SAP", "Portal", "Portal"],
            "created": [T0 + timedelta(days=1)] * 3,
        }
    )
    page = pd.DataFrame(
        {
            "source": ["servicenow", "jira"],
            "id": ["sn-c1", "j-c1"],
            "kind": ["change", "change"],
            "service": ["SAP", "Portal"],
            "created": [T0 - timedelta(days=3)] * 2,
            "resolved": [T0, T0],
        }
    )
    signals = compute_signals(page, comments_table(page), history_table(page), NOW,
                              moments=np.array(["evolution", "evolution"], dtype=object),
                              context=history)
    assert signals["caused_incidents"].tolist() == [1.0, 2.0]


def test_failed_change_when_the_data_says_and_null_when_it_cannot() -> None:
    frame = pd.DataFrame(
        {"kind": ["change"] * 3,
         "fields": [{"close_code": "Unsuccessful"}, {"close_code": "Successful"}, {}]}
    )
    moments = np.array(["evolution"] * 3, dtype=object)
    signals = compute_signals(frame, comments_table(frame), history_table(frame), NOW,
                              moments=moments)
    assert signals["failed_change"].tolist() == [1.0, 0.0, 0.0]
    none = pd.DataFrame({"kind": ["change"]})
    missing = compute_signals(none, comments_table(none), history_table(none), NOW,
                              moments=np.array(["evolution"], dtype=object))
    assert math.isnan(missing["failed_change"][0])


def test_business_participation_and_stalled_work() -> None:
    frame = pd.DataFrame(
        {
            "created": [T0, T0],
            "resolved": [None, None],
            "comments": [
                [_comment("requester", "idea", 1, author="Ana"),
                 _comment("other", "yes", 2, author="Luis"),
                 _comment("other", "and", 3, author="Luis"),
                 _comment("agent", "ok", 4, author="IT")],
                [_comment("agent", "scope attached", 24, author="IT")],
            ],
        }
    )
    moments = np.array(["innovation", "innovation"], dtype=object)
    signals = compute_signals(frame, comments_table(frame), history_table(frame),
                              T0 + timedelta(days=10), moments=moments)
    assert signals["business_participants"].tolist() == [2, 0]
    assert signals["business_share"].tolist() == [0.75, 0.0]
    assert signals["stalled_days"].tolist() == [pytest.approx(9.8, abs=0.01), 9.0]
    closed = frame.assign(resolved=[T0 + timedelta(days=1)] * 2)
    done = compute_signals(closed, comments_table(closed), history_table(closed),
                           T0 + timedelta(days=10), moments=moments)
    assert done["stalled_days"].isna().all()


def test_unanswered_questions_need_no_dates() -> None:
    frame = pd.DataFrame(
        {
            "comments": [
                [{"author_role": "requester", "text": "Who is our contact?"},
                 {"author_role": "agent", "text": "Me."},
                 {"author_role": "requester", "text": "And the estimate?"}],
                "¿Cuándo estará?",  # plain text is the requester's
            ]
        }
    )
    signals = _signals(frame)
    assert signals["unanswered_questions"].tolist() == [1, 1]
    assert signals["wait_hours"].isna().all()  # no dates, no waiting time


def test_the_sla_target_is_the_reference_when_there_is_no_population() -> None:
    frame = pd.DataFrame(
        {
            "kind": ["incident", "incident"],
            "created": [T0, T0],
            "resolved": [T0 + timedelta(hours=48), T0 + timedelta(hours=5)],
            "fields": [{"sla_planned_end": "2025-02-02 09:00:00"}, {}],
        }
    )
    signals = compute_signals(frame, comments_table(frame), history_table(frame), NOW,
                              moments=np.array(["operation"] * 2, dtype=object))
    assert signals["_typical_hours"].tolist() == [24.0, 5 * 24.0]


def test_momentos_own_notes_are_not_part_of_the_conversation() -> None:
    from momentos.nudges import marker

    note = f"momentos: the experience is at risk. Why: unhappy customer. {marker('jira', '1', 1)}"
    frame = pd.DataFrame(
        {
            "created": [T0],
            "resolved": [None],
            "comments": [[_comment("requester", "Any update?", 1),
                          _comment("agent", note, 30, internal=True)]],
        }
    )
    signals = compute_signals(frame, comments_table(frame), history_table(frame),
                              T0 + timedelta(hours=48))
    assert signals["agent_concern"][0] == 0
    assert signals["wait_hours"][0] == 47.0 and signals["_waiting_now"][0]
