"""The fast paths of enrichment give exactly what the plain ones they replace gave.

Each speed-up (a trie regex for a hint, counting n-grams outside scikit-learn, writing JSON a
column at a time, reading with the decoder's scanner) is checked here against the reference
computation on awkward inputs, so a later edit cannot make them drift apart silently.
"""

from __future__ import annotations

import io
import json
import math
import random
import re

import numpy as np
import pandas as pd
import pytest

from momentos.enrichment import lexicon as lx
from momentos.enrichment import signals
from momentos.enrichment.frame import _read_jsonl_range, _write_jsonl_appended, to_json_text
from momentos.enrichment.learn import _strip_accents, default_model

_ALPHABET = "aábcdeéfghiíjklmnñoópqrstuúüvwxyz ÁÉÑ.?¿!-_'’1234567890\t\u00a0ﬁ²"


def _random_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = [*signals._CHASER_HINT_WORDS, "eta", "beta", "zeta", "eta?", " ", "x", "?", "¿"]
    texts = []
    for _ in range(count):
        if rng.random() < 0.5:
            texts.append(" ".join(rng.choice(words) for _ in range(rng.randrange(1, 5))))
        else:
            texts.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 40))))
    return texts


def test_chaser_hint_is_exactly_the_hint_regex() -> None:
    texts = _random_texts(5000) + ["any eta?", "beta", "la beta", "cómo está lo mío?", "como est"]
    for text in texts:
        lower = text.lower()
        assert signals._chaser_hint(lower) == (
            signals._CHASER_HINT_RE.search(lower) is not None
        ), text


def test_every_concern_pattern_holds_one_of_the_concern_words() -> None:
    """A text with none of ``CONCERN_WORDS`` skips the concern patterns: every branch of
    every pattern must spell one of them literally."""
    for pattern in lx.CONCERN_PATTERNS:
        for branch in _top_level_branches(pattern):
            plain = branch.replace(r"\b", "")
            assert any(word in plain for word in lx.CONCERN_WORDS), branch


def _top_level_branches(pattern: str) -> list[str]:
    branches, depth, current = [], 0, ""
    for char in pattern:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            branches.append(current)
            current = ""
        else:
            current += char
    return [*branches, current]


def test_literal_trie_finds_the_same_texts_as_the_plain_alternation() -> None:
    words = ("status", "still", "sigo", "st", "novedad", "a way", "?")
    trie = re.compile(signals._literal_trie(words))
    plain = re.compile("|".join(re.escape(w) for w in words))
    for text in _random_texts(3000, seed=1) + ["s t", "sta", "novedades", "a wa"]:
        assert (trie.search(text) is None) == (plain.search(text) is None), text


def test_accent_stripping_matches_scikit_learn_on_every_character() -> None:
    from sklearn.feature_extraction.text import strip_accents_unicode

    text = "".join(chr(i) for i in range(1, 0x3000) if not 0xD800 <= i < 0xE000)
    assert _strip_accents(text) == strip_accents_unicode(text)
    assert _strip_accents("plain ascii") == "plain ascii"


def test_model_features_equal_the_pipeline_transform() -> None:
    model = default_model()
    texts = _random_texts(1500, seed=2) + [
        "Upgrade the ERP to version 12 . The ERP needs the new version",
        "El portátil no enciende . Desde ayer  no arranca",
        "Nueva funcionalidad: filtro por proveedor . ",
        " . ",
        "a",
        "Añadir campo ﬁltro  con\ttabulador . descripción",
    ]
    fast = model._features(texts)
    assert model._fast is True
    slow = model.pipeline.named_steps["features"].transform(texts).tocsr()
    assert fast.shape == slow.shape
    assert np.array_equal(fast.indptr, slow.indptr)
    assert np.array_equal(fast.indices, slow.indices)
    assert np.array_equal(fast.data, slow.data)


def _reference_append(raw: list[str], added: pd.DataFrame) -> list[str]:
    """What the writer produced before it wrote a column at a time: a dict per row."""
    from momentos.enrichment.frame import _file_ready, _json_default

    ready = _file_ready(added, nested_as_text=False)
    names = [str(c) for c in ready.columns]
    columns = []
    for name in names:
        columns.append([
            None if v is pd.NA or v is pd.NaT or (type(v) is float and math.isnan(v)) else v
            for v in ready[name].tolist()
        ])
    dumps = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode
    out = []
    for line, row in zip(raw, zip(*columns)):
        body = line[:-1].rstrip()
        tail = dumps(dict(zip(names, row)))[1:]
        out.append(body + (", " if not body.endswith("{") else "") + tail)
    return out


def test_column_wise_json_lines_equal_a_dict_per_row() -> None:
    raw = ['{"id": 1}', "{}", '{"id": "ñ", "x": [1, 2]}', '{"a": {"b": null}  }', '{"z": 0}']
    added = pd.DataFrame(
        {
            "moment": ["operation", None, "evolución \"x\" \\ \n", np.nan, pd.NA],
            "moment_confidence": [0.95, np.nan, 1e-12, float("inf"), -0.0],
            "experience_score": np.array([1, 2, 3, -4, 10**12], dtype=np.int64),
            "needs_review": np.array([True, False, True, False, True]),
            "signals": [{"a": 1.5, "b": None}, {"a": float("nan")}, {}, None, {"t": "é"}],
            "odd": [np.int64(3), np.float64("nan"), [1, "x"], pd.Timestamp("2025-01-01"), 7],
            "50%": ["%s", "%d", "%%", "", "x"],
        }
    )
    handle = io.StringIO()
    _write_jsonl_appended(raw, added, handle)
    assert handle.getvalue().split("\n")[:-1] == _reference_append(raw, added)


def test_reading_json_lines_with_the_scanner_equals_json_loads(tmp_path) -> None:
    lines = [
        '{"id": 1, "t": "ñ\\u00e9", "n": null, "f": 1.5e3, "l": [1, {"a": "}"}]}',
        '  {"id": 2}  ',
        '{"id": 3}\r',
        "",
        '{"id": 4, "big": 123456789012345678901234567890}',
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    frame, raw = _read_jsonl_range(path, 0, path.stat().st_size, 1)
    expected = [json.loads(line) for line in lines if line.strip()]
    pd.testing.assert_frame_equal(frame, pd.DataFrame(expected, dtype=object))
    assert raw == [line.strip() for line in lines if line.strip()]


@pytest.mark.parametrize("line", ['{"id": 1} {"id": 2}', "{nope}", '{"id": 1', "[1, 2]"])
def test_bad_lines_still_name_their_line(tmp_path, line: str) -> None:
    from momentos.enrichment.frame import TableFormatError

    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 0}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(TableFormatError, match=":2:"):
        _read_jsonl_range(path, 0, path.stat().st_size, 1)


def test_signals_json_text_is_unchanged() -> None:
    value = {"a": 1.0, "b": None, "c": True, "d": [1, 2], "e": float("nan")}
    assert to_json_text(value) == '{"a": 1.0, "b": null, "c": true, "d": [1, 2], "e": null}'


def test_signals_as_text_is_the_json_of_the_signal_dicts() -> None:
    from datetime import UTC, datetime

    from momentos.enrichment import enrich

    frame = pd.DataFrame(
        {
            "id": ["1", "2", "3", "4"],
            "kind": ["incident", "change", "demand", "story"],
            "title": ["VPN caída", "Upgrade ERP", "New portal", "Filtro"],
            "description": ["no funciona!!", "", None, "gracias"],
            "comments": [
                [{"author_role": "requester", "text": "¿alguna novedad?",
                  "created": "2025-01-02T10:00:00Z"}],
                [],
                "any update?",
                None,
            ],
            "created": ["2025-01-01T09:00:00Z", "2025-01-01", None, "2025-01-03T00:00:00Z"],
            "resolved": ["2025-01-03T09:00:00Z", None, None, "2025-01-02T00:00:00Z"],
            "reopen_count": [1, None, "x", 2],
            "sla_breached": [True, False, None, "yes"],
            "survey_score": [5, None, 1, 3],
        }
    )
    now = datetime(2025, 2, 1, tzinfo=UTC)
    dicts = enrich(frame, now=now, frame_is_population=True)
    texts = enrich(frame, now=now, frame_is_population=True, signals_as_text=True)
    assert texts["signals"].tolist() == [to_json_text(d) for d in dicts["signals"]]
    other = [c for c in dicts.columns if c != "signals"]
    pd.testing.assert_frame_equal(dicts[other], texts[other])
