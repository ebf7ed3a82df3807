"""The C scorer of requester sentiment (``_csentiment``) gives the Python scorer's floats, bit
for bit, and the Python scorer takes over where the extension is missing or turned off.

The Python code in sentiment.py is the reference: every text here is scored both ways.
"""

from __future__ import annotations

import gc
import math
import os
import random
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from momentos.enrichment import sentiment

_C = sentiment._C
# Without the module every test here fails (the README's test command builds it);
# ``test_the_c_scorer_was_built`` says why.


def test_the_c_scorer_was_built() -> None:
    """The README's test command builds the extension (pip compiles it on install)."""
    assert _C is not None, (
        "momentos.enrichment._csentiment was not built or MOMENTOS_PURE_PYTHON is set: "
        "reinstall with a C compiler (and Python's headers) to test the C scorer"
    )


def _words() -> list[str]:
    """Every token of every lexicon key (terms, negators, intensifiers, phrases), with and
    without accents and capitals, plus stop words and awkward bits."""
    out: set[str] = set()
    for lexicon in sentiment._LEXICONS.values():
        out |= lexicon.keys
        for options in lexicon.phrases.values():
            for rest, _ in options:
                out |= set(rest)
    out |= set(sentiment._STOP_EN) | set(sentiment._STOP_ES)
    accented = {w.replace("a", "á").replace("o", "ó").replace("u", "ü") for w in list(out)[::7]}
    return sorted(out | accented | {w.upper() for w in list(out)[::5]}) + [
        ":(", ":-(", ":)", ":d", ":p", ":-p", ";)", "!", "!!!", "?", "¿", "¡", ",", ".", "’",
        "‘", "'", "don’t", "ÑANDÚ", "İ", "ΣΊΣΥΦΟΣ", "😡", "🙂", "²", "ﬁ", "_", "\u00a0",
        "x:dx", "a:p", "1:(", "NO", "MUY", "STILL", "\ud800", "á" * 100 + "x", "Ü" * 70,
    ]


_WORDS = _words()
_SEPARATORS = [" ", " ", " ", "  ", "\t", "\n", ", ", ". ", "! ", "", "\u2003"]


def _texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randrange(1, 25)):
            parts.append(rng.choice(_WORDS))
            parts.append(rng.choice(_SEPARATORS))
        text = "".join(parts)
        if rng.random() < 0.1:
            text = text.upper()
        texts.append(text)
    return texts


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal floats, NaN where NaN, and the same sign of zero."""
    numbers = ~np.isnan(a)
    return bool(np.array_equal(a, b, equal_nan=True) and
                np.array_equal(np.signbit(a[numbers]), np.signbit(b[numbers])))


def test_c_scores_equal_python_scores_on_lexicon_soup() -> None:
    texts: list[object] = _texts(20_000, seed=1)
    texts += [None, 3.5, "", "   ", "\t\n", "\u00a0", float("nan"), b"bytes", "x"]
    languages = [("en", "es", "", "fr", None)[i % 5] for i in range(len(texts))]
    python = sentiment._score_texts_python(texts, languages)
    c = sentiment.score_texts(texts, languages)
    assert _same(c, python)
    assert np.count_nonzero(np.nan_to_num(python)) > 10_000  # the soup does carry sentiment
    assert _same(sentiment.score_texts(texts), sentiment._score_texts_python(texts))


def test_c_scores_equal_python_scores_on_the_labelled_comments() -> None:
    import csv
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "sentiment_labelled.csv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    texts = [r["text"] for r in rows]
    texts += [t.upper() for t in texts] + [t.title() for t in texts]
    languages = [r["language"] for r in rows] * 3
    assert _same(sentiment.score_texts(texts, languages),
                 sentiment._score_texts_python(texts, languages))
    assert _same(sentiment.score_texts(texts), sentiment._score_texts_python(texts))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(
    [*"aeiouáéíóúüñnostdpx :;-()!?¿¡,.'’‘_1²AÉÑ\t😡", *_WORDS]), max_size=40).map("".join),
    max_size=5), st.sampled_from(["", "en", "es", "fr"]))
def test_c_scores_equal_python_scores_on_any_text(texts: list[str], language: str) -> None:
    languages = [language] * len(texts)
    assert _same(sentiment.score_texts(texts, languages),
                 sentiment._score_texts_python(texts, languages))


def test_c_tokens_equal_the_python_tokens() -> None:
    rng = random.Random(3)
    alphabet = ":;-()dpDP'’‘ \t\n.!?¿¡aé_1²ñ😡xÁ\u00a0"
    texts = _texts(2000, seed=2) + [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(16))) for _ in range(20_000)
    ] + [":d", ":dx", ":-(", ";p", "don't :)", "x:(", "'';;--))", ":-", "ab':-pd", ":p'", ":"]
    for text in texts:
        lower = text.lower()
        assert _C.tokens(lower) == sentiment._deaccented_tokens(lower), text
        assert _C.tokens(lower) == sentiment._tokens(lower), text


def test_c_scoring_keeps_no_memory() -> None:
    """Many rounds over the same texts: a reference leaked per token or text would grow."""
    texts = _texts(2000, seed=4)
    languages = ["en", "es", ""] * 667
    for _ in range(3):
        sentiment.score_texts(texts, languages)
    gc.collect()
    tracemalloc.start()
    try:
        sentiment.score_texts(texts, languages)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            sentiment.score_texts(texts, languages)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 50_000, grown  # 40,000 texts scored; a leak of one object each is ~2 MB
    word = next(iter(sentiment._LEXICONS["en"].words))
    count = sys.getrefcount(word)
    sentiment.score_texts([f"{word} {word} no {word}"] * 100, None)
    assert sys.getrefcount(word) == count


def test_languages_shorter_than_texts_stop_the_scoring_as_zip_does() -> None:
    texts = ["not working", "works now, thanks", "gracias"]
    assert _same(sentiment.score_texts(texts, ["en"]),
                 sentiment._score_texts_python(texts, ["en"]))
    assert len(sentiment.score_texts(iter(texts), iter(["en", "en"]))) == 2


def test_pure_python_is_used_when_asked_and_scores_the_same() -> None:
    code = (
        "from momentos.enrichment import sentiment as s;"
        "print(s._C is None, repr(float(s.score_texts(['NO funciona!!! :('], ['es'])[0])))"
    )
    env = {**os.environ, "MOMENTOS_PURE_PYTHON": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    off, value = done.stdout.split()
    assert off == "True"
    assert float(value) == sentiment.score_texts(["NO funciona!!! :("], ["es"])[0]
    assert float(value) < -0.5


def test_a_bad_argument_is_a_python_error_not_a_crash() -> None:
    with pytest.raises(TypeError):
        _C.score_texts(5, None)
    with pytest.raises(TypeError):
        _C.tokens(5)
    with pytest.raises(TypeError):
        _C.configure({"": ("not", "a", "lexicon")}, frozenset(), frozenset(), {}, {},
                     frozenset(), math.nan, 3, 2, 4, 1.3, 1.5, 0.29, 15.0)
    assert sentiment.score_texts(["not working"], ["en"])[0] < 0  # the failed call changed nothing
    scores, deferred = _C.score_texts([None, "ok"], None)
    assert math.isnan(scores[0]) and deferred == 0


class _Blank(str):
    def isspace(self) -> bool:
        return True


class _Quiet(str):
    def __ne__(self, other: object) -> bool:
        return False


class _Odd(str):
    def lower(self):  # type: ignore[override]
        return [1, 2, 3]


def test_str_subclasses_are_scored_as_python_scores_them() -> None:
    """A subclass may override what the scorer calls: those texts go through Python, one at a
    time (a batch in Python would reuse the score of an equal plain ``str``)."""
    texts = ["terrible", _Blank("terrible"), _Quiet("TERRIBLE"), "TERRIBLE", _Blank("   ")]
    for languages in (["en"] * len(texts), None):
        got = sentiment.score_texts(texts, languages)
        alone = np.array([
            sentiment._score_texts_python([t], None if languages is None else [languages[i]])[0]
            for i, t in enumerate(texts)
        ])
        assert _same(got, alone)
        assert got[0] < 0 and math.isnan(got[1]) and got[2] != got[3] and math.isnan(got[4])
    with pytest.raises(AttributeError):
        sentiment._score_texts_python([_Odd("x")], ["en"])
    with pytest.raises(AttributeError):
        sentiment.score_texts([_Odd("x")], ["en"])


def test_containers_changed_during_scoring_do_not_crash_it() -> None:
    """Python code the scorer calls (a language's ``__bool__``, a finalizer) may empty the
    lists being scored; the scorer holds what it is working on and goes on or stops cleanly."""
    texts = [f"bad service {i}" for i in range(500)]
    languages: list[object] = ["en"] * 500

    class Clearing:
        def __bool__(self) -> bool:
            texts.clear()
            languages.clear()
            return False

        def __hash__(self) -> int:
            return 0

    languages[3] = Clearing()
    scores, _ = _C.score_texts(texts, languages)
    assert 1 <= len(scores) <= 500 and all(v < 0 for v in scores)

    texts = [f"bad service {i}" for i in range(5000)]

    class Finalizer:
        def __del__(self) -> None:
            texts.clear()

    for _ in range(300):  # garbage whose collection empties the list mid-run
        cycle = Finalizer()
        cycle.self = cycle  # type: ignore[attr-defined]
    del cycle
    scores, _ = _C.score_texts(texts, None)
    assert all(v < 0 for v in scores)


def test_the_tokenizer_shortcuts_hold_for_the_shipped_maps(monkeypatch) -> None:
    """C replaces accents inside word tokens and apostrophes as one-symbol tokens; a map that
    breaks that (a digit-like apostrophe, a letter that turns ":ð" into ":d") turns C off."""
    assert sentiment._c_can_tokenize()
    monkeypatch.setattr(sentiment, "_APOSTROPHES", {**sentiment._APOSTROPHES, "²": "2"})
    assert not sentiment._c_can_tokenize()
    monkeypatch.undo()
    monkeypatch.setattr(sentiment, "_LETTER_PAIRS", (*sentiment._LETTER_PAIRS, ("ð", "d")))
    assert not sentiment._c_can_tokenize()
