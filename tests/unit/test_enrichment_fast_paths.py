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
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from momentos.enrichment import lexicon as lx
from momentos.enrichment import signals
from momentos.enrichment.frame import (
    _read_jsonl_range,
    _write_jsonl_appended,
    enrich_file,
    to_json_text,
)
from momentos.enrichment.learn import _strip_accents, default_model

NOW = datetime(2025, 3, 1, tzinfo=UTC)
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


def test_orjson_reads_every_line_as_json_does(tmp_path, monkeypatch) -> None:
    """The fast reader (orjson) against ``json`` on the lines where the two could differ:
    integers beyond 64 bits, NaN and Infinity, lone surrogates, duplicate keys, long floats,
    deep nesting, whitespace and carriage returns."""
    from momentos.enrichment import frame as frame_module

    lines = [
        '{"id": 1, "big": 123456789012345678901234567890, "neg": -9223372036854775809}',
        '{"id": 2, "u64": 18446744073709551615, "i": -9223372036854775808, "t": "ref 12345678901234567890"}',
        '{"id": 3, "nan": NaN, "inf": -Infinity}',
        '{"id": 4, "s": "\\ud800 lone", "e": "\\u00e9\\n"}',
        '{"id": 5, "id": 6, "f": 0.30000000000000004, "g": 1e-320, "h": 1.7976931348623157e308}',
        '{"id": 7, "deep": ' + "[" * 500 + "]" * 500 + "}",
        '  {"id": 8, "x": [ ]}  \r',
        "",
        '{"id": 9, "😡": "ñ"}',
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    size = path.stat().st_size
    fast = [_read_jsonl_range(path, 0, size, 1, raw_bytes=b) for b in (False, True)]
    monkeypatch.setattr(frame_module, "_fast_loads", None)
    plain = [_read_jsonl_range(path, 0, size, 1, raw_bytes=b) for b in (False, True)]
    for (frame, raw), (reference, reference_raw) in zip(fast, plain):
        assert raw == reference_raw
        assert frame.columns.tolist() == reference.columns.tolist()
        for name in reference.columns:
            got, want = frame[name].tolist(), reference[name].tolist()
            assert repr(got) == repr(want), name  # repr: NaN equals NaN, 1 differs from 1.0
    assert fast[0][0]["big"].iloc[0] == 123456789012345678901234567890


@pytest.mark.parametrize("line", ['{"id": 1} {"id": 2}', "{nope}", '{"id": 1', "[1, 2]",
                                  '{"deep": ' + "[" * 100_000 + "]" * 100_000 + "}"])
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


def _reference_ranges(path, chunk_rows: int) -> list[tuple[int, int, int]]:
    """The chunk ranges as they were found before: one Python step per line."""
    ranges = []
    start = position = lines = 0
    first_line = 1
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            position += len(line)
            if line.strip():
                lines += 1
            if lines == chunk_rows:
                ranges.append((start, position, first_line))
                start, lines, first_line = position, 0, number + 1
    if position > start:
        ranges.append((start, position, first_line))
    return ranges


def test_chunk_ranges_equal_the_line_by_line_scan(tmp_path) -> None:
    from momentos.enrichment.frame import _jsonl_ranges

    rng = random.Random(4)
    pieces = [b"{}\n", b"\n", b"  \n", b"\r\n", b'{"a": "\xc3\xb1"}\r\n', b"\t\x0b\x0c\n", b"{}",
              b" x \n", b'{"e": "\xf0\x9f\x98\xa1"}\n']
    path = tmp_path / "in.jsonl"
    for trial in range(300):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
        if trial % 3 == 0:
            data = data.rstrip(b"\n")
        path.write_bytes(data)
        for chunk_rows in (1, 2, 3, 7, 100):
            assert _jsonl_ranges(path, chunk_rows) == _reference_ranges(path, chunk_rows), data


def test_reading_decodes_line_by_line_as_the_whole_text_would(tmp_path) -> None:
    lines = ['{"t": "emoji 😡 and ñ"}', '{"t": "plain"}', '{"t": "’quoted‘ – dash"}']
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8") + b"\n")
    frame, raw = _read_jsonl_range(path, 0, path.stat().st_size, 1)
    assert raw == lines
    assert frame["t"].tolist() == [json.loads(line)["t"] for line in lines]

    path.write_bytes(b'{"t": "ok"}\n{"t": "\xff broken"}\n')
    with pytest.raises(UnicodeDecodeError):
        _read_jsonl_range(path, 0, path.stat().st_size, 1)


def test_lines_written_as_bytes_equal_the_joined_text(tmp_path) -> None:
    from momentos.enrichment import frame as frame_module

    lines = ["a", "", "ñ", "emoji 😡", "tab\tand \\ quote \"", "x" * 5000] * 1500
    path = tmp_path / "out.jsonl"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("head\n")  # text written before must stay first
        frame_module._write_lines(handle, lines)
        handle.write("tail\n")
    assert path.read_text(encoding="utf-8") == "head\n" + "\n".join(lines) + "\n" + "tail\n"
    text = io.StringIO()
    frame_module._write_lines(text, lines)
    assert text.getvalue() == "\n".join(lines) + "\n"


def test_parts_are_appended_byte_for_byte(tmp_path) -> None:
    from momentos.enrichment.frame import _append_file

    parts = [b"", b"x", "ñ😡\n".encode() * 100_000, bytes(range(256)) * 10]
    out_path = tmp_path / "out"
    with out_path.open("wb", buffering=0) as out:
        for i, blob in enumerate(parts):
            part = tmp_path / f"part{i}"
            part.write_bytes(blob)
            _append_file(part, out)
    assert out_path.read_bytes() == b"".join(parts)


def test_only_the_given_size_of_a_reused_part_is_appended(tmp_path) -> None:
    from momentos.enrichment.frame import _append_fd

    out_path = tmp_path / "out"
    with (tmp_path / "slot").open("w+b") as slot, out_path.open("wb", buffering=0) as out:
        slot.write(b"a long first part\n" * 1000)
        slot.flush()
        _append_fd(slot.fileno(), 18 * 1000, out)
        slot.seek(0)
        slot.write(b"short\n")  # the slot still holds the first part's tail after this
        slot.flush()
        _append_fd(slot.fileno(), 6, out)
    assert out_path.read_bytes() == b"a long first part\n" * 1000 + b"short\n"


@pytest.mark.parametrize("memory_slots", [True, False])
def test_parallel_parts_reused_many_times_give_the_one_process_output(
    tmp_path, monkeypatch, memory_slots: bool
) -> None:
    """Ten ranges through four slots (or part files where memory files are missing), with
    long lines first so a reused slot always held a bigger part before."""
    from momentos.enrichment import frame as frame_module

    if not memory_slots:
        monkeypatch.setattr(frame_module, "_memory_slots", lambda count: None)
    lines = [
        json.dumps({"id": f"{i:03d}", "title": "VPN caída " + "x" * (400 - 20 * i),
                    "description": "no funciona, ¿alguna novedad?"}, ensure_ascii=False)
        for i in range(20)
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    assert enrich_file(source, one, now=NOW, workers=1) == 20
    assert enrich_file(source, many, now=NOW, chunk_rows=2, workers=2) == 20
    assert many.read_bytes() == one.read_bytes()
    assert [json.loads(line)["id"] for line in many.read_text("utf-8").splitlines()] == [
        f"{i:03d}" for i in range(20)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "many.jsonl", "one.jsonl"]


@pytest.mark.parametrize("kind", [float, int, bool])
def test_signal_value_texts_equal_one_repr_per_value(kind: type) -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([
        rng.choice([0.0, 1.0, 2.0, 0.5, 12.3, 1e-7, 1e16, 123456.7], size=400),
        rng.normal(size=200).round(3),
        np.array([0.1 + 0.2, 3.0, 2.5, -1.0]),
    ])
    if kind is float:
        expected = list(map(float.__repr__, values.tolist()))
    elif kind is int:
        expected = [int.__repr__(int(v)) for v in values.tolist()]
    else:
        expected = ["true" if v else "false" for v in values.tolist()]
    assert list(signals._value_texts(values, kind)) == expected
    with_negative_zero = np.array([0.0, -0.0, 1.0, -0.0])
    assert list(signals._value_texts(with_negative_zero, float)) == ["0.0", "-0.0", "1.0", "-0.0"]
    assert list(signals._value_texts(with_negative_zero, int)) == ["0", "0", "1", "0"]
    assert list(signals._value_texts(np.zeros(0), kind)) == []


_ODD_CELLS = [" Incident ", "CHANGE", "", None, np.nan, 3, 2.5, True, b"Bytes ", "ÁÉ ñ", "\tx\n",
              pd.NA, "İstanbul", "x" * 20_000, [1, 2], {"a": 1}, "  ", "12", " 7,5 ", "abc",
              np.int64(4), np.float64(1.5), False, 10**30]


def test_key_text_is_text_stripped_and_lowered() -> None:
    from momentos.enrichment import columns

    frame = pd.DataFrame({"kind": pd.Series(_ODD_CELLS, dtype=object)})
    expected = columns.text(frame, "kind").str.strip().str.lower()
    pd.testing.assert_series_equal(columns.key_text(frame, "kind"), expected)
    missing = columns.key_text(frame, "nothing")
    pd.testing.assert_series_equal(missing, columns.text(frame, "nothing").str.strip().str.lower())


def test_numbers_and_timestamps_equal_a_call_per_cell() -> None:
    from momentos.enrichment import columns

    frame = pd.DataFrame({"n": pd.Series(_ODD_CELLS, dtype=object)})
    values = frame["n"]
    expected = np.array(pd.to_numeric(values.map(columns._number_cell), errors="coerce"),
                        dtype=float)
    np.testing.assert_array_equal(columns.numbers(frame, "n"), expected)

    stamps = pd.Series(
        ["2025-01-02T03:04:05Z", " 2025-01-02 ", "", "  ", None, "junk", 5,
         pd.Timestamp("2025-03-01", tz="UTC").to_pydatetime(), "2025-01-02T03:04:05+02:00"],
        dtype=object,
    )
    cleaned = pd.Series([columns._timestamp_cell(v) for v in stamps.tolist()], dtype=object)
    reference = pd.to_datetime(cleaned, utc=True, errors="coerce", format="ISO8601")
    pd.testing.assert_series_equal(columns.parse_timestamps(stamps), reference)


def test_batched_sentiment_equals_one_text_at_a_time() -> None:
    from momentos.enrichment import sentiment

    texts: list[object] = [*_random_texts(3000, seed=6), None, 3.5, "", "   ", "\t"]
    texts += [
        "NO FUNCIONA!!! muy mal", "not working, still waiting :( ", "Works now, thanks :)",
        "don’t ‘like’ it", "¿alguna novedad? gracias", "any update?", "any update?",
        "el deploy failed again", "Ｆｕｌｌ width", "İstanbul ÇOK KÖTÜ", "ΣΊΣΥΦΟΣ",
    ]
    languages = [("en", "es", "", "fr")[i % 4] for i in range(len(texts))]
    expected = [sentiment.score_text(t, lang) for t, lang in zip(texts, languages)]
    got = sentiment.score_texts(texts, languages).tolist()
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert (math.isnan(a) and math.isnan(b)) or a == b
    alone = sentiment.score_texts(texts).tolist()
    for a, t in zip(alone, texts):
        b = sentiment.score_text(t)
        assert (math.isnan(a) and math.isnan(b)) or a == b


def test_deaccenting_by_replacement_equals_the_translation_table() -> None:
    from momentos.enrichment import sentiment

    texts = _random_texts(3000, seed=7) + [
        "don’t ‘x’ está ÁÉ über", "ñandú :d :-( ’’", "é:d", ":dé", "d’p", "ÀÈÌÒÙ àèìòù", "😡é",
    ]
    for text in texts:
        assert lx.deaccent(text) == text.translate(lx.DEACCENT), text
        lower = text.lower()
        assert sentiment._deaccented_tokens(lower) == sentiment._tokens(lower), text


@pytest.mark.parametrize("language", ["en", "es"])
def test_reason_phrases_equal_one_phrase_per_cell(language: str) -> None:
    """Phrases are shared between rows that agree on what the signal's phrase reads: the
    same texts as building every needed phrase from the whole row."""
    from momentos.enrichment import score
    from momentos.enrichment.settings import SIGNALS, ExperienceSettings
    from momentos.models import MOMENTS

    rng = random.Random(8)
    n = 3000
    columns: dict[str, list[object]] = {
        name: [rng.choice([0.0, 1.0, 2.0, 3.0, 0.5, 12.3, 40.0, 250.0, 0.04, 0.25, 1e4])
               for _ in range(n)]
        for name in SIGNALS
    }
    columns["_open"] = [rng.random() < 0.3 for _ in range(n)]
    columns["_typical_hours"] = [rng.choice([0.0, 8.0, 24.0, math.nan]) for _ in range(n)]
    columns["_typical_response_hours"] = [rng.choice([1.0, 4.0, 0.1]) for _ in range(n)]
    columns["_kind"] = [rng.choice(["incident", "change", "", "Story"]) for _ in range(n)]
    columns["_pingpong_groups"] = [
        rng.choice([None, ["A", "B"], ["A", "B", "C"], ["B", "A"], ["A"], "x"]) for _ in range(n)
    ]
    columns["_answered"] = [rng.random() < 0.7 for _ in range(n)]
    columns["_waiting_now"] = [rng.random() < 0.3 for _ in range(n)]
    signals_frame = pd.DataFrame(columns)
    moments = np.asarray([rng.choice([*MOMENTS, "odd"]) for _ in range(n)], dtype=object)
    points = np.asarray(
        [[rng.choice([-5.0, -1.0, 0.0, 2.0]) for _ in SIGNALS] for _ in range(n)]
    )
    settings = ExperienceSettings(language=language)
    got = score._reason_texts(signals_frame, points, moments, settings)

    words = score._TEXTS[language]
    age_target = np.array([settings.age_target_days[m] for m in MOMENTS])[
        score._moment_index(moments)
    ]
    expected = np.full(points.shape, "", dtype=object)
    for r in range(n):
        context = {
            "open": bool(columns["_open"][r]),
            "typical": float(columns["_typical_hours"][r]),
            "typical_response": float(columns["_typical_response_hours"][r]),
            "kind": columns["_kind"][r],
            "groups": columns["_pingpong_groups"][r],
            "answered": bool(columns["_answered"][r]),
            "waiting_now": bool(columns["_waiting_now"][r]),
            "age_target": float(age_target[r]),
        }
        for j, name in enumerate(SIGNALS):
            if abs(points[r, j]) >= score._REASON_MIN_POINTS:
                value = float(columns[name][r])
                expected[r, j] = score._phrase(name, value, bool(points[r, j] > 0), context,
                                               words, settings)
    assert got.tolist() == expected.tolist()


def _tokenizer_texts(seed: int, alphabet: str, longest: int) -> list[str]:
    """2,000 ``_random_texts`` and 20,000 short strings drawn from ``alphabet``: the edge
    cases of a tokenizer pattern (up to ``longest - 1`` characters)."""
    rng = random.Random(seed)
    return _random_texts(2000, seed=seed) + [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(longest)))
        for _ in range(20_000)
    ]


def test_sentiment_tokens_equal_the_plain_tokenizer() -> None:
    from momentos.enrichment import sentiment

    plain = re.compile(sentiment._PLAIN_TOKEN_PATTERN)
    texts = _tokenizer_texts(9, ":;-()dpDP'’ \t\n.!?¿¡aé_1²ñ😡x", 16) + [
        ":d", ":dx", ":-(", ";p", "don't :)", "x:(", "'';;--))", ":-", "ab':-pd", ":p'",
    ]
    for text in texts:
        assert sentiment._TOKEN_RE.findall(text) == plain.findall(text), text


def test_model_word_tokens_equal_the_vectorizer_pattern() -> None:
    from momentos.enrichment import learn

    plain = re.compile(learn._WORD_PATTERN)
    texts = _tokenizer_texts(10, "ab1_-' .é\u0301²٣Ωx\t", 14) + [
        "e-mail", "-abc", "ab-", "a--b", "_abc", "1abc", "x1", "a", "ab-", "foo_ bar2-baz",
        "ñandú-", "q-1 -q q- -", "__init__ x_y", "a\u0301b", "αβ-γ", "٣ab ab٣",
    ]
    for text in texts:
        assert learn._WORD_RE.findall(text) == plain.findall(text), text


def test_count_matrix_equals_the_coordinate_build() -> None:
    from scipy import sparse

    from momentos.enrichment.learn import _count_matrix

    rng = random.Random(11)
    for trial in range(200):
        sizes = [rng.choice([0, 0, 1, 2, 5, 9]) for _ in range(rng.randrange(0, 30))]
        width = rng.choice([1, 3, 50])
        columns = [rng.randrange(-1, width) for _ in range(sum(sizes))]
        rows = np.repeat(np.arange(len(sizes)), sizes)
        cols = np.asarray(columns, dtype=np.int64)
        keep = cols >= 0
        slow = sparse.csr_matrix(
            (np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(len(sizes), width)
        )
        slow.sum_duplicates()
        slow.sort_indices()
        fast = _count_matrix(sizes, columns, width, np.float64)
        assert fast.shape == slow.shape, trial
        assert fast.has_canonical_format
        assert np.array_equal(fast.indptr, slow.indptr), trial
        assert np.array_equal(fast.indices, slow.indices), trial
        assert np.array_equal(fast.data, slow.data), trial


def test_model_reasons_equal_a_sort_per_row() -> None:
    from momentos.enrichment.learn import _STOP

    model = default_model()
    texts = _random_texts(1500, seed=12) + [
        "Upgrade the ERP to version 12 . The ERP needs the new version",
        "Nueva funcionalidad: filtro por proveedor", "", "a", "de la de la",
    ]
    features = model._features(texts)
    proba = model.pipeline.named_steps["model"].predict_proba(features)
    best = proba.argmax(axis=1)
    confidence = proba[np.arange(len(best)), best]
    words = features[:, : model._n_words].tocsr()
    expected = []
    for row in range(words.shape[0]):
        start, end = words.indptr[row], words.indptr[row + 1]
        idx = words.indices[start:end]
        push = words.data[start:end] * model._margin[best[row], idx]
        chosen: list[str] = []
        for j in np.argsort(-push):
            term = str(model._word_names[idx[j]])
            if push[j] <= 0 or len(chosen) == 3:
                break
            stop = _STOP.intersection(term.split()) or len(term) < 3
            if stop or any(term in other or other in term for other in chosen):
                continue
            chosen.append(term)
        shown = ", ".join(f"'{t}'" for t in chosen) or "no distinctive words"
        expected.append(f"model {confidence[row]:.2f}: {shown}")
    assert model._reasons(features, best, confidence) == expected


_RAW_LINES = [
    '{"id": 1, "t": "ñ 😡 \\u00e9"}',
    "  {}  ",
    '{"id": 3}\r',
    "",
    "   ",
    '{"a": {"b": null}  }',
    '\t{"x": "’quoted‘ – dash", "n": [1, {"k": "}"}]} ',
    '{"id": 7, "s": "tail \\" }"}',
]


def test_raw_lines_read_as_bytes_are_the_text_lines_encoded(tmp_path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(_RAW_LINES).encode("utf-8") + b"\n")
    frame, text = _read_jsonl_range(path, 0, path.stat().st_size, 1)
    same, encoded = _read_jsonl_range(path, 0, path.stat().st_size, 1, raw_bytes=True)
    pd.testing.assert_frame_equal(frame, same)
    assert all(type(line) is bytes for line in encoded)
    assert encoded == [line.encode("utf-8") for line in text]


def test_appending_to_byte_lines_equals_appending_to_text_lines(tmp_path) -> None:
    raw = [line.strip() for line in _RAW_LINES if line.strip()]
    added = pd.DataFrame(
        {
            "moment": ["operation", None, "evolución \"x\" \\ \n", np.nan, pd.NA, "😡"],
            "moment_confidence": [0.95, np.nan, 1e-12, float("inf"), -0.0, 0.5],
            "experience_score": np.array([1, 2, 3, -4, 10**12, 0], dtype=np.int64),
            "needs_review": np.array([True, False, True, False, True, False]),
            "signals": ['{"a": 1.5}', "{}", "{}", None, '{"t": "é"}', "{}"],
            "50%": ["%s", "%d", "%%", "", "x", "ñ"],
        }
    )
    text_path, bytes_path = tmp_path / "text.jsonl", tmp_path / "bytes.jsonl"
    for path, lines in ((text_path, raw), (bytes_path, [line.encode() for line in raw])):
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write("head\n")  # text written before must stay first
            _write_jsonl_appended(lines, added, handle)
            handle.write("tail\n")
    expected = "head\n" + "\n".join(_reference_append(raw, added)) + "\n" + "tail\n"
    assert text_path.read_text(encoding="utf-8") == expected
    assert bytes_path.read_bytes() == expected.encode("utf-8")
    # A handle that cannot take bytes gets the same text.
    handle = io.StringIO()
    _write_jsonl_appended([line.encode() for line in raw], added, handle)
    assert handle.getvalue() == "\n".join(_reference_append(raw, added)) + "\n"


def test_bigram_columns_by_token_pair_equal_the_joined_lookup() -> None:
    from momentos.enrichment.learn import _bigram_pairs, _word_columns

    model = default_model()
    words = model.pipeline.named_steps["features"].transformer_list[0][1]
    texts = _random_texts(2000, seed=13) + [
        "Upgrade the ERP to the new version", "nueva funcionalidad nueva funcionalidad", "", "a b",
    ]
    # Every bigram of the vocabulary, as a text of its own, so that hits are tested too.
    texts += [term for term in words.vocabulary_ if " " in term]
    joined = _word_columns(words, texts)
    by_pair = _word_columns(words, texts, _bigram_pairs(words.vocabulary_))
    assert by_pair == joined
    assert sum(column >= 0 for column in joined[1]) > len(texts)
