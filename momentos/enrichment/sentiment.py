"""Requester sentiment from -1 (very negative) to 1 (very positive), in English and Spanish.

A lexicon scorer in the VADER tradition, tuned for IT service conversations: negation flips
("no funciona", "not working", "sin respuesta"), intensifiers scale ("muy", "very", ALL CAPS,
"!!!"), persistence words amplify complaints ("still", "sigue"), "but"/"pero" shifts weight to
what follows, and domain phrases carry their own score ("tercera vez", "works now, thanks",
"any update?"). Text is tokenized once with a compiled regex and only tokens found in the
lexicon are looked at: about 120k texts per second on one core in Python, and about 420k with
the C twin of ``score_texts`` (``_csentiment.c``), which gives the same floats bit for bit.

Only the requester's voice counts: an item's sentiment is the weighted mean over its
description and the comments whose ``author_role`` is ``requester``; later texts weigh more,
because how a conversation ends says more about how it was lived than how it started.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from momentos.enrichment import lexicon as lx

# Words keep apostrophes (don't); emoticons come before other symbols so ":(" stays one
# token; every other symbol (punctuation, emoji) is a token of its own. Simple classes keep
# this regex fast. Words go first, possessive (``++``): the commonest token is tried first and
# never backtracked into. (Words and emoticons begin with different characters, and nothing
# follows a word in its branch, so the tokens are those of ``_PLAIN_TOKEN_RE``.)
_TOKEN_RE = re.compile(r"[\w']++|[:;]-?(?:[()]|[dp](?!\w))|[^\w\s]")
#: The tokenizer as first written; ``_TOKEN_RE`` finds exactly the same tokens, faster.
_PLAIN_TOKEN_PATTERN = r"[:;]-?(?:[()]|[dp](?!\w))|[\w']+|[^\w\s]"
_PUNCT = frozenset(".,;:!?¡¿")

_TERM, _NEG, _INT, _PERSIST, _CONTRAST = range(5)
_NEGATION_FACTOR = -0.7  # VADER's negation scalar, for terms without their own negated score
_NEGATION_SCOPE = 3  # words after a negator that it reaches
_INTENSIFIER_SCOPE = 2
_PERSISTENCE_SCOPE = 4
_CAPS_FACTOR = 1.5
_EXCLAMATION_STEP = 0.29  # per "!", up to four
_NORMALIZER = 15.0  # compound = total / sqrt(total² + 15), as in VADER
_NEUTRAL_TEXT_WEIGHT = 0.25

Entry = tuple[int, float, float]


@dataclass(frozen=True, slots=True)
class _Lexicon:
    keys: frozenset[str]  # every token that can start an entry
    words: dict[str, Entry]
    phrases: dict[str, tuple[tuple[tuple[str, ...], Entry], ...]]  # first token → longest first


def _key_tokens(key: str) -> list[str]:
    return _TOKEN_RE.findall(lx.deaccent(key).lower())


def _build_lexicon(
    terms: Iterable[dict[str, lx.Term]],
    negators: dict[str, float],
    intensifiers: dict[str, float],
    persistence: Iterable[str],
    contrast: Iterable[str],
) -> _Lexicon:
    entries: dict[tuple[str, ...], Entry] = {}

    def add(key: str, entry: Entry) -> None:
        variants = {key, key.replace("'", "")}  # "don't" is often written "dont"
        for variant in variants:
            tokens = tuple(_key_tokens(variant))
            if tokens:
                entries[tokens] = entry

    for table in terms:
        for key, term in table.items():
            if isinstance(term, tuple):
                add(key, (_TERM, term[0], term[1]))
            else:
                add(key, (_TERM, term, term * _NEGATION_FACTOR))
    for key, own in negators.items():
        add(key, (_NEG, own, 0.0))
    for key, factor in intensifiers.items():
        add(key, (_INT, factor, 0.0))
    for key in persistence:
        add(key, (_PERSIST, 0.0, 0.0))
    for key in contrast:
        add(key, (_CONTRAST, 0.0, 0.0))

    words = {tokens[0]: entry for tokens, entry in entries.items() if len(tokens) == 1}
    grouped: dict[str, list[tuple[tuple[str, ...], Entry]]] = {}
    for tokens, entry in entries.items():
        if len(tokens) > 1:
            grouped.setdefault(tokens[0], []).append((tokens[1:], entry))
    phrases = {
        first: tuple(sorted(options, key=lambda option: -len(option[0])))
        for first, options in grouped.items()
    }
    return _Lexicon(frozenset(words) | frozenset(phrases), words, phrases)


_LEXICONS: dict[str, _Lexicon] = {
    "en": _build_lexicon(
        terms=(lx.TERMS_EN, lx.TERMS_SYMBOLS),
        negators=lx.NEGATORS_EN,
        intensifiers=lx.INTENSIFIERS_EN,
        persistence=lx.PERSISTENCE_EN,
        contrast=lx.CONTRAST_EN,
    ),
    "es": _build_lexicon(
        terms=(lx.TERMS_ES, lx.TERMS_SYMBOLS),
        negators=lx.NEGATORS_ES,
        intensifiers=lx.INTENSIFIERS_ES,
        persistence=lx.PERSISTENCE_ES,
        contrast=lx.CONTRAST_ES,
    ),
    # Undetected or mixed language ("el deploy failed again"): both, Spanish winning clashes.
    "": _build_lexicon(
        terms=(lx.TERMS_EN, lx.TERMS_ES, lx.TERMS_SYMBOLS),
        negators={**lx.NEGATORS_EN, **lx.NEGATORS_ES},
        intensifiers={**lx.INTENSIFIERS_EN, **lx.INTENSIFIERS_ES},
        persistence=lx.PERSISTENCE_EN | lx.PERSISTENCE_ES,
        contrast=lx.CONTRAST_EN | lx.CONTRAST_ES,
    ),
}
_STOP_EN = lx.STOPWORDS_EN
_STOP_ES = frozenset(lx.deaccent(w) for w in lx.STOPWORDS_ES)

_LANGUAGE_NAMES = {
    "english": "en",
    "ingles": "en",
    "spanish": "es",
    "espanol": "es",
    "español": "es",
    "castellano": "es",
}


def normalize_language(value: object) -> str:
    """``"es-ES"``, ``"Spanish"``, ``"español"`` → ``"es"``; English likewise; else ``""``."""
    if not isinstance(value, str):
        return ""
    word = lx.deaccent(value.strip().lower())
    if word in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[word]
    code = word[:2]
    return code if code in ("en", "es") and (len(word) == 2 or word[2] in "-_") else ""


def _tokens(lower: str) -> list[str]:
    """Tokens of lower-case text, accents removed (per token: cheaper than per text)."""
    tokens = _TOKEN_RE.findall(lower)
    if lower.isascii():
        return tokens
    return [t if t.isascii() else t.translate(lx.DEACCENT) for t in tokens]


#: ``lexicon.DEACCENT``'s letters, and its apostrophes. An accented letter and its plain
#: vowel are both word characters (and neither is an emoticon's "d" or "p"): replaced before
#: tokenizing, the tokens are the same, deaccented. An apostrophe (’) is a token of its own
#: that becomes "'", which would join words into one token: it is replaced after.
_LETTER_PAIRS = tuple((s, t) for s, t in lx.DEACCENT_PAIRS if s.isalpha() and t.isalpha())
_APOSTROPHES = {s: t for s, t in lx.DEACCENT_PAIRS if not s.isalpha()}


def _deaccented_tokens(lower: str) -> list[str]:
    """``_tokens(lower)``, faster: the letters are deaccented in the text, in C, instead of
    token by token."""
    for source, target in _LETTER_PAIRS:
        if source in lower:
            lower = lower.replace(source, target)
    tokens = _TOKEN_RE.findall(lower)
    for source in _APOSTROPHES:
        if source in lower:
            return [_APOSTROPHES.get(token, token) for token in tokens]
    return tokens


def _detect_tokens(tokens: list[str]) -> str:
    english = len(_STOP_EN.intersection(tokens))
    spanish = len(_STOP_ES.intersection(tokens))
    if spanish > english:
        return "es"
    if english > spanish:
        return "en"
    return ""


def detect_language(texts: Iterable[str]) -> list[str]:
    """Guess ``"en"`` or ``"es"`` for each text by counting common function words.

    Returns ``""`` when the counts tie (too short or truly mixed). Offline and cheap: one
    tokenization and two set intersections per text.
    """
    out = []
    for value in texts:
        raw = value if isinstance(value, str) else ""
        out.append(_detect_tokens(_tokens(raw.lower())))
    return out


def _clear(tokens: list[str], start: int, end: int) -> bool:
    """No punctuation between two positions: negation and emphasis stop at a comma or stop."""
    return _PUNCT.isdisjoint(tokens[start + 1 : end])


def _score_tokens(tokens: list[str], shouted: str | None, lexicon: _Lexicon) -> float:
    """Sum of term scores; ``shouted`` is the text with its capitals, when it has any."""
    keys = lexicon.keys
    if keys.isdisjoint(tokens):  # most sentences carry no sentiment: leave at C speed
        return 0.0
    # The positions of tokens in the lexicon, without Python code per token.
    hits = list(itertools.compress(itertools.count(), map(keys.__contains__, tokens)))
    words = lexicon.words
    phrases = lexicon.phrases
    total = 0.0
    before_contrast = 0.0
    after_factor = 1.0
    negator_at = intensifier_at = persistence_at = -100
    negator_own = 0.0
    multiplier = 1.0
    skip_until = -1
    for i in hits:
        if i < skip_until:
            continue
        token = tokens[i]
        entry: Entry | None = None
        span = 1
        options = phrases.get(token)
        if options:
            for rest, candidate in options:
                if tuple(tokens[i + 1 : i + 1 + len(rest)]) == rest:
                    entry, span = candidate, len(rest) + 1
                    break
        if entry is None:
            entry = words.get(token)
            if entry is None:
                continue
        kind, first, second = entry
        last = i + span - 1
        skip_until = last + 1
        if kind == _TERM:
            value = first
            if i - negator_at <= _NEGATION_SCOPE and _clear(tokens, negator_at, i):
                value = second
                # "can't" counts on its own only when it negates nothing; here it does.
                total -= negator_own
                negator_own = 0.0
            if not value:
                continue
            if i - intensifier_at <= _INTENSIFIER_SCOPE and _clear(tokens, intensifier_at, i):
                value *= multiplier
            if (
                value < 0
                and i - persistence_at <= _PERSISTENCE_SCOPE
                and _clear(tokens, persistence_at, i)
            ):
                value *= lx.PERSISTENCE_FACTOR
            if shouted is not None and len(token) >= 3 and token.upper() in shouted:
                value *= _CAPS_FACTOR
            total += value
        elif kind == _NEG:
            negator_at, negator_own = last, first
            total += first
        elif kind == _INT:
            intensifier_at, multiplier = last, first
        elif kind == _PERSIST:
            persistence_at = last
        else:
            # "..., but it still fails": what comes after the contrast is the point.
            before_contrast = (before_contrast + total) * 0.5
            total = 0.0
            after_factor = 1.5
    return before_contrast + total * after_factor


def score_text(text: object, language: str = "") -> float:
    """Sentiment of one text in -1..1; NaN when there is no text.

    ``language`` is ``"en"``, ``"es"`` or ``""`` (detect from the text; mixed when unsure).
    """
    if not isinstance(text, str) or not text.strip():
        return math.nan
    lower = text.lower()
    tokens = _tokens(lower)
    if not language:
        language = _detect_tokens(tokens)
    lexicon = _LEXICONS.get(language, _LEXICONS[""])
    total = _score_tokens(tokens, text if text != lower else None, lexicon)
    if total:
        bangs = min(lower.count("!"), 4)
        total += math.copysign(bangs * _EXCLAMATION_STEP, total)
    return total / math.sqrt(total * total + _NORMALIZER)


def score_texts(texts: Iterable[object], languages: Iterable[str] | None = None) -> np.ndarray:
    """``score_text`` over many texts; ``languages`` aligned with ``texts`` or ``None``.

    Runs in C (``_csentiment``) where the extension was built, else in Python
    (``_score_texts_python``); both give the same floats, bit for bit.
    """
    if _C is None:
        return _score_texts_python(texts, languages)
    if not isinstance(texts, (list, tuple, np.ndarray)):
        texts = list(texts)
    if languages is not None and not isinstance(languages, (list, tuple, np.ndarray)):
        languages = list(languages)
    values, deferred = _C.score_texts(texts, languages)
    if deferred:  # str subclasses, which may override lower() and the rest: scored in Python
        for i, value in enumerate(values):
            if value is None:
                values[i] = _score_texts_python(
                    [texts[i]], None if languages is None else [languages[i]]
                )[0]
    return np.asarray(values, dtype=float)


def _score_texts_python(
    texts: Iterable[object], languages: Iterable[str] | None = None
) -> np.ndarray:
    """``score_texts`` in Python: the reference the C code is tested against, and the path
    where it was not built.

    Each distinct (text, language) pair is scored once: "any update?" and templated
    descriptions repeat a lot in real queues. ``score_text``'s steps are inlined here: per
    text, the calls between them cost as much as the scoring.
    """
    cache: dict[tuple[object, str], float] = {}
    pairs = zip(texts, languages) if languages is not None else ((t, "") for t in texts)
    findall = _TOKEN_RE.findall
    lexicons = _LEXICONS
    mixed = lexicons[""]
    sqrt = math.sqrt
    nan = math.nan
    out = []
    for text, language in pairs:
        key = (text if isinstance(text, str) else None, language)
        value = cache.get(key)
        if value is None:
            if key[0] is None or not text or text.isspace():  # type: ignore[union-attr]
                value = nan
            else:
                lower = text.lower()  # type: ignore[union-attr]
                tokens = findall(lower) if lower.isascii() else _deaccented_tokens(lower)
                lexicon = lexicons.get(language or _detect_tokens(tokens), mixed)
                if lexicon.keys.isdisjoint(tokens):
                    value = 0.0
                else:
                    total = _score_tokens(tokens, text if text != lower else None, lexicon)
                    if total:
                        bangs = min(lower.count("!"), 4)
                        total += math.copysign(bangs * _EXCLAMATION_STEP, total)
                    value = total / sqrt(total * total + _NORMALIZER)
            cache[key] = value
        out.append(value)
    return np.asarray(out, dtype=float)


def _c_can_tokenize() -> bool:
    """Whether the C tokenizer's shortcuts give ``_deaccented_tokens``' tokens with today's
    accent and apostrophe maps. Python replaces letters in the whole text before cutting it
    and apostrophes as whole tokens; C replaces letters inside word tokens and apostrophes
    as one-symbol tokens, and never looks up ASCII. That is the same while every letter pair
    maps a non-ASCII word character to a word character, neither of them an emoticon's
    ``d``/``p``, and every apostrophe is a non-ASCII character that is neither a word
    character nor space."""
    word = re.compile(r"\w")
    for source, target in _LETTER_PAIRS:
        if (len(source) != 1 or len(target) != 1 or source.isascii()
                or not word.fullmatch(source) or not word.fullmatch(target)
                or source in "dp" or target in "dp"):
            return False
    return all(
        len(source) == 1 and not source.isascii() and not word.fullmatch(source)
        and not source.isspace()
        for source in _APOSTROPHES
    )


def _load_c() -> object | None:
    """The C scorer, configured with this module's lexicons; ``None`` where it was not built
    (no compiler at install time), where the maps outgrew its tokenizer
    (``_c_can_tokenize``), or when ``MOMENTOS_PURE_PYTHON`` is set to anything but ""/0."""
    if os.environ.get("MOMENTOS_PURE_PYTHON", "").strip() not in ("", "0"):
        return None
    try:
        from momentos.enrichment import _csentiment  # type: ignore[attr-defined]
    except ImportError:
        return None
    if not _c_can_tokenize():
        return None
    try:
        _configure_c(_csentiment)
    except (TypeError, ValueError):  # lexicons of a shape the C code does not read: Python
        return None
    return _csentiment


def _configure_c(module: Any) -> None:
    """Hand the C scorer what it scores with: this module's lexicons, maps and constants."""
    module.configure(
        {name: (lex.keys, lex.words, lex.phrases) for name, lex in _LEXICONS.items()},
        _STOP_EN,
        _STOP_ES,
        {ord(s): ord(t) for s, t in _LETTER_PAIRS},
        {ord(s): t for s, t in _APOSTROPHES.items()},
        _PUNCT,
        math.nan,
        _NEGATION_SCOPE,
        _INTENSIFIER_SCOPE,
        _PERSISTENCE_SCOPE,
        lx.PERSISTENCE_FACTOR,
        _CAPS_FACTOR,
        _EXCLAMATION_STEP,
        _NORMALIZER,
    )


_C = _load_c()


def score_comments(
    comments: pd.DataFrame, languages: pd.Series, roles: tuple[str, ...] = ("requester", "other")
) -> np.ndarray:
    """Sentiment of each public comment written by one of ``roles`` (NaN for the others).

    ``comments`` is ``columns.comments_table(frame)``; ``languages`` the frame's normalized
    language per row. Work notes (``internal``) are IT talking to IT, never the customer.
    """
    out = np.full(len(comments), np.nan)
    if comments.empty:
        return out
    chosen = comments["role"].isin(roles).to_numpy().copy()
    if "internal" in comments:
        chosen &= ~comments["internal"].to_numpy(dtype=bool)
    rows = comments["row"].to_numpy()[chosen]
    out[chosen] = score_texts(comments["text"].to_numpy(dtype=object)[chosen],
                              languages.to_numpy(dtype=object)[rows])
    return out


def weighted_voice(
    n: int,
    rows: np.ndarray,
    ranks: np.ndarray,
    scores: np.ndarray,
    opening: np.ndarray | None = None,
) -> np.ndarray:
    """Per-row weighted mean of text scores: the opening text (description) has weight 1 and
    the k-th later text weight k + 1; texts without any sentiment count a quarter."""
    if opening is not None:
        rows = np.concatenate([np.arange(n), rows])
        scores = np.concatenate([opening, scores])
        ranks = np.concatenate([np.zeros(n), ranks])
    weights = ranks + 1.0
    has_text = ~np.isnan(scores)
    # "Here is the screenshot" says nothing about how it feels; letting such texts count in
    # full would dilute what the requester did express.
    weights = np.where(scores == 0.0, weights * _NEUTRAL_TEXT_WEIGHT, weights)
    weighted = np.bincount(rows[has_text], (scores * weights)[has_text], minlength=n)
    total_weight = np.bincount(rows[has_text], weights[has_text], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = weighted / total_weight
    return np.where(total_weight > 0, result, np.nan)


def requester_sentiment(
    descriptions: pd.Series,
    comments: pd.DataFrame,
    languages: pd.Series,
    comment_scores: np.ndarray | None = None,
) -> np.ndarray:
    """Per-row requester sentiment (-1..1, NaN when the requester wrote nothing).

    ``descriptions`` and ``languages`` are positional text Series of the frame's length;
    ``comments`` is ``columns.comments_table(frame)``; ``comment_scores`` (aligned with it)
    saves scoring the comments twice. The description has weight 1 and the requester's k-th
    comment weight k + 1 (how a conversation ends says more than how it started); texts
    without any sentiment count a quarter.
    """
    n = len(descriptions)
    mask = (comments["role"] == "requester").to_numpy().copy()
    if "internal" in comments:
        mask &= ~comments["internal"].to_numpy(dtype=bool)
    requester = comments[mask]
    rank = requester.groupby("row").cumcount().to_numpy() + 1.0
    if comment_scores is None:
        scores = score_texts(requester["text"], languages.to_numpy(dtype=object)[
            requester["row"].to_numpy()])
    else:
        scores = comment_scores[mask]
    opening = score_texts(descriptions, languages.to_numpy(dtype=object))
    return weighted_voice(n, requester["row"].to_numpy(), rank, scores, opening)
