"""Property tests: ``enrich`` on frames of arbitrary recognised columns never raises.

Any subset of the contract's recognised columns (plus the ones ``items_to_frame`` adds), each
cell null, of a wrong type, huge, a weird date, or comments as broken JSON: every row still
gets a moment, a 0..100 integer score, one of the four levels and a sentiment in [-1, 1] or
NaN. tests/unit/test_enrichment.py::test_bad_values_never_crash holds one hand-picked frame;
these generate many, including frames whose index and dtypes are odd.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from momentos.enrichment import enrich
from momentos.models import LEVELS, MOMENTS

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

NOW = datetime(2026, 11, 1, tzinfo=UTC)
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    # Shrinking a failing frame costs minutes; the explicit tests below pin found failures.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: The contract's recognised columns, and the extra ones the sync's frames carry.
RECOGNISED = [
    "id", "source", "kind", "title", "description", "comments", "created", "resolved",
    "priority", "reopen_count", "reassignment_count", "sla_breached", "survey_score",
    "customer", "language",
]
EXTRA = ["key", "platform", "container", "category", "labels", "request_type", "requester",
         "assignment_group", "assignee", "service", "state", "updated", "history", "fields"]

BIG = "el sistema no funciona, otra vez!!! " * 30_000  # ~1 MB
HOSTILE = [
    None, np.nan, pd.NaT, "", " ", 0, -1, 2**63 - 1, 1e308, -1e308, float("inf"), True, b"\xff\xfe",
    "<script>alert(1)</script>", "😡 terrible 👎", "\u202eمرحبا", "\x00\x1b\x7f", "\ud800",
    "CafÃ© mojibake", "caf\xe9", "2024-02-30", "yesterday", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00", "1e400", "NaN", "-5", "TRUE", "maybe", "klingon",
    "[not json", '[{"author_role": "requester", "text": 5}]', '{"a": ', "[]", "[null]",
    '[{"author_role": "boss", "text": "hola", "created": "never"}]',
    [None, "x", {"text": None}], {"author_role": 1}, [1, [2]], {},
    pd.Timestamp("2024-01-01", tz="UTC"), datetime(2024, 1, 1), datetime(1, 1, 1, tzinfo=UTC),
]
cells = st.one_of(
    st.sampled_from(range(len(HOSTILE))).map(HOSTILE.__getitem__),
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.lists(st.dictionaries(st.sampled_from(["author_role", "text", "created", "field", "at"]),
                             st.one_of(st.none(), st.text(max_size=10), st.integers()),
                             max_size=3), max_size=3),
)
comments_cells = st.one_of(
    cells,
    st.lists(st.fixed_dictionaries({
        "author_role": st.sampled_from(["requester", "agent", "other", "", None, 3]),
        "text": st.one_of(st.text(max_size=40), st.sampled_from(["gracias!!", "this is awful",
                                                               "¿alguna novedad?", BIG])),
        "created": st.sampled_from(["2024-01-01T00:00:00Z", "bad", None, 17]),
    }), max_size=3).map(lambda rows: json.dumps(rows)),
)


@st.composite
def frames(draw: Any) -> pd.DataFrame:
    n = draw(st.integers(min_value=1, max_value=6))
    names = draw(st.lists(st.sampled_from(RECOGNISED + EXTRA), min_size=0, max_size=10, unique=True))
    data: dict[str, list[Any]] = {}
    for name in names:
        strategy = comments_cells if name == "comments" else cells
        data[name] = draw(st.lists(strategy, min_size=n, max_size=n))
    frame = pd.DataFrame(data, index=range(n)) if data else pd.DataFrame(index=range(n))
    if draw(st.booleans()):
        frame.index = [draw(st.sampled_from(["a", 1, None, 2.5]))] * n  # duplicate, mixed index
    if "title" in frame and draw(st.booleans()):
        frame.loc[frame.index[0], "title"] = BIG
    return frame


def _check(out: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert len(out) == len(frame)
    for name in frame.columns:  # input columns untouched
        assert name in out.columns
    assert set(out["moment"]) <= set(MOMENTS)
    assert set(out["experience_level"]) <= set(LEVELS)
    scores = out["experience_score"]
    assert scores.dtype == np.int64 and scores.between(0, 100).all()
    for value in out["sentiment"]:
        assert math.isnan(value) or -1.0 <= value <= 1.0
    conf = out["moment_confidence"]
    assert ((conf >= 0) & (conf <= 1)).all()
    assert all(isinstance(s, dict) for s in out["signals"])
    json.dumps(out["signals"].tolist(), default=str)


@PROPERTY
@given(frame=frames())
def test_enrich_never_raises_and_every_row_is_tagged(frame: pd.DataFrame) -> None:
    _check(enrich(frame, now=NOW), frame)


@PROPERTY
@given(frame=frames())
def test_enrich_without_now_and_as_a_whole_population(frame: pd.DataFrame) -> None:
    _check(enrich(frame, now=None, frame_is_population=True), frame)


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59Z", "1600-01-01T00:00:00Z"])
def test_dates_outside_the_nanosecond_range_do_not_crash(when: Any) -> None:
    """Valid ISO dates pandas cannot hold in nanoseconds (a planned end in 9999, a typo'd
    year) are a bad cell like any other: the row is still tagged."""
    frame = pd.DataFrame({"id": ["a", "b"], "title": ["x", "y"], "created": [None, when],
                          "resolved": [when, None]})
    _check(enrich(frame, now=NOW), frame)
