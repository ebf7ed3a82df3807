"""Property tests: ADF → text and timestamp parsing on anything a platform might send.

``adf_to_text``/``body_text``/``clean_comment`` must turn any JSON value (documents with
unknown node types, wrong types where lists or dicts belong, hostile text) into a ``str``
without raising; ``parse_utc`` must give an aware UTC datetime or ``None`` for any value.
The example-based cases live in tests/integration/test_jira_adf.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momentos.connectors.adf import adf_to_text, body_text, clean_comment, text_to_adf
from momentos.models import Item, parse_utc

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

HOSTILE = [
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{ 7*7 }}", "</style>",
    "😡🔥 emoji 👍🏽", "\u202eمرحبا שלום", "\x00\x1b[31m\x7f", "\ud800\udfff lone", "CafÃ©",
    "caf\xe9", "On Mon, Ana wrote:\n> old", "-- \nsig", "Regards,\nAna",
]
text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30),
                 st.text(alphabet=st.characters(codec="utf-8"), max_size=10))
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
node_types = st.one_of(
    st.sampled_from([
        "doc", "paragraph", "heading", "text", "hardBreak", "mention", "emoji", "inlineCard",
        "date", "status", "placeholder", "bulletList", "orderedList", "listItem", "taskList",
        "taskItem", "blockquote", "codeBlock", "table", "tableRow", "tableHeader", "tableCell",
        "panel", "expand", "rule", "mediaSingle", "media", "extension", "inlineExtension",
        "layoutSection", "quantumNode", "",
    ]),
    json_value,
)
adf = st.recursive(
    st.one_of(json_value, st.fixed_dictionaries({"type": st.just("text"), "text": text})),
    lambda inner: st.fixed_dictionaries(
        {"type": node_types},
        optional={
            "content": st.one_of(st.lists(inner, max_size=4), json_value),
            "attrs": st.one_of(
                st.dictionaries(st.sampled_from(["order", "title", "text", "shortName", "id",
                                                 "url", "timestamp"]), json_value, max_size=3),
                json_value,
            ),
            "text": json_value,
            "marks": json_value,
        },
    ),
    max_leaves=20,
)


@PROPERTY
@given(node=adf)
def test_any_adf_value_renders_as_text(node: Any) -> None:
    assert isinstance(adf_to_text(node), str)
    assert isinstance(body_text(node), str)
    assert isinstance(clean_comment(node), str)
    assert isinstance(body_text({"type": "doc", "content": [node]}), str)


@PROPERTY
@given(words=st.lists(st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]),
                              min_size=1, max_size=20).filter(str.strip), min_size=1, max_size=5))
def test_text_survives_a_round_trip_through_adf(words: list[str]) -> None:
    """What momentos writes as ADF reads back as the same words (signals field)."""
    original = "\n".join(w.strip() for w in words)
    assert adf_to_text(text_to_adf(original)).split() == original.split()


def test_a_megabyte_of_adf_text_is_kept_whole() -> None:
    big = "x" * 1_000_000
    doc = {"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": big}]}]}
    assert adf_to_text(doc) == big


def test_deeply_nested_unknown_nodes_fall_back_to_their_text() -> None:
    node: dict[str, Any] = {"type": "text", "text": "deep words"}
    for depth in range(200):
        node = {"type": f"futureNode{depth % 3}", "content": [node]}
    assert adf_to_text({"type": "doc", "content": [node]}) == "deep words"


timestamps = st.one_of(
    scalar, json_value, st.datetimes(), st.datetimes(timezones=st.timezones()),
    st.floats(min_value=-1e30, max_value=1e30), st.integers(min_value=-(2**100), max_value=2**100),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
                  r"(Z|[+-][0-9]{2}:?[0-9]{2})?\Z"),
)


@PROPERTY
@given(value=timestamps)
def test_parse_utc_is_total(value: Any) -> None:
    parsed = parse_utc(value)
    assert parsed is None or (isinstance(parsed, datetime) and parsed.tzinfo is not None)
    if parsed is not None:
        # Usable downstream: serializable (``momentos pull``) and comparable with aware times.
        Item(source="s", platform="p", container="c", id="1", key="K", created=parsed).to_json()
        assert (parsed < datetime(2000, 1, 1, tzinfo=UTC)) in (True, False)


def test_parse_utc_edge_values() -> None:
    assert parse_utc(1e20) is None and parse_utc(-1e20) is None
    assert parse_utc(float("nan")) is None and parse_utc(float("inf")) is None
    assert parse_utc("9999-12-31T23:59:59-01:00") is None  # past year 9999 in UTC
    assert parse_utc("2024-01-02T03:04:05.000+0200") == datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert parse_utc("2024-01-02T03:04:05.000+0200").utcoffset().total_seconds() == 0
    assert parse_utc(1_700_000_000_000) == parse_utc(1_700_000_000)
