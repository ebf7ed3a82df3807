"""The learned moment classifier: what no rule decides, and what a rule marks ``auto``.

A scikit-learn linear model (multinomial logistic regression) on word 1-2-grams of the item's
title and description and character 3-5-grams of its title, in Spanish and English (accents
stripped, so "gestión" and "gestion" are one word). It is trained on:

- the instance's own items that a rule decided with confidence (origin ``rule``),
- every human correction made in the platform's moment field (origin ``human``, weighed more),
- a small default set written for momentos (``data/moments_default.csv``), so that a new
  install classifies sensibly before it has any history.

The default model is trained at first use (well under a second) instead of being shipped as a
pickle, because pickles break across scikit-learn versions. An instance's model is stored in
the state store with the library versions it was trained with; when they no longer match, it
is retrained from the stored labels.

Every prediction carries its confidence (the predicted class's probability) and a readable
reason: the word n-grams that pushed it most, ``model 0.83: 'nueva funcionalidad', 'upgrade'``.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import logging
import pickle
import platform
import re
import unicodedata
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import numpy as np
import pandas as pd

from momentos.enrichment import columns as col
from momentos.enrichment import lexicon as lx
from momentos.models import MOMENTS

log = logging.getLogger("momentos.enrichment.learn")

MODEL_NAME = "moments"
#: Bump when the features or the estimator change: stored models of another format retrain.
MODEL_FORMAT = 2
#: Labels of these origins weigh this much in training (a person's correction is deliberate).
ORIGIN_WEIGHT = {"default": 1.0, "rule": 1.0, "human": 3.0}
#: Rule decisions at or above this confidence become training labels.
RULE_LABEL_CONFIDENCE = 0.9
_TITLE_CHARS = 300
_DESCRIPTION_CHARS = 400
_REASON_TERMS = 3
_WORD_PATTERN = r"(?u)\b[^\W\d_][\w\-]+\b"
#: ``_WORD_PATTERN``'s tokens, about 10% faster in Python's regex engine: a word boundary
#: before a letter is the same as no word character before it.
_WORD_RE = re.compile(r"(?<!\w)[^\W\d_][\w\-]+\b")
_STOP = frozenset(lx.STOPWORDS_EN | {lx.deaccent(w) for w in lx.STOPWORDS_ES}) | frozenset(
    ["a", "an", "as", "at", "by", "de", "del", "el", "en", "for", "i", "in", "is", "it", "la", "las", "le", "lo", "los", "me", "mi", "my", "of", "on", "or", "so", "to", "un", "una", "we", "y"]
)


class StateLike(Protocol):
    """What ``retrain`` and ``load`` need from ``momentos.state.StateStore``."""

    def training_labels(self) -> list[dict[str, Any]]: ...

    def save_model(
        self, name: str, blob: bytes, meta: dict[str, Any], trained_at: datetime | None = None
    ) -> None: ...

    def load_model(self, name: str) -> tuple[bytes, datetime, dict[str, Any]] | None: ...


def item_texts(frame: pd.DataFrame) -> pd.Series:
    """The text the model reads for each row: title, then the start of the description."""
    titles = col.text(frame, "title", _TITLE_CHARS)
    descriptions = col.text(frame, "description", _DESCRIPTION_CHARS)
    return (titles + " . " + descriptions).str.strip(" .")


def _versions() -> dict[str, str]:
    import sklearn

    return {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "format": str(MODEL_FORMAT),
    }


def title_part(text: str) -> str:
    """The title of an ``item_texts`` text, lower case without accents (char n-gram input)."""
    from sklearn.feature_extraction.text import strip_accents_unicode

    return strip_accents_unicode(text.split(" . ", 1)[0].lower())


class _AccentTable(dict[int, str]):
    """``str.translate`` table that strips accents exactly as scikit-learn's
    ``strip_accents_unicode`` (NFKD, then drop combining marks), one character at a time.

    NFKD decomposes each character on its own and only reorders combining marks, which are all
    dropped, so the per-character result joined equals the whole-text result; the table
    learns each character once, and translating is a C loop instead of a Python one.
    """

    def __missing__(self, code: int) -> str:
        decomposed = unicodedata.normalize("NFKD", chr(code))
        stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
        self[code] = stripped
        return stripped


_ACCENTS = _AccentTable()


def _strip_accents(text: str) -> str:
    """``strip_accents_unicode(text)``, faster on non-ASCII text."""
    return text if text.isascii() else text.translate(_ACCENTS)


def _pipeline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    words = TfidfVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        strip_accents="unicode",
        lowercase=True,
        sublinear_tf=True,
        token_pattern=_WORD_PATTERN,  # words, not numbers or ticket ids
        min_df=1,
        max_features=200_000,
    )
    # Character n-grams catch inflections and typos ("actualizacion", "upgrades", "pilto"),
    # but cost far more than words: they read the title only, where the gist is.
    chars = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 5),
        preprocessor=title_part,
        sublinear_tf=True,
        min_df=2,
        max_features=200_000,
    )
    return Pipeline(
        [
            ("features", FeatureUnion([("words", words), ("chars", chars)])),
            ("model", LogisticRegression(C=8.0, max_iter=2000, class_weight="balanced")),
        ]
    )


class MomentModel:
    """A fitted moment classifier with readable reasons. Build with ``train``."""

    def __init__(self, pipeline: Any, meta: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.meta = meta
        self._fast: bool | None = None  # whether ``_features`` may count by itself
        self._terms: list[str] | None = None  # word n-gram names, for reasons
        self._telling: list[bool] = []  # whether each may be shown as a reason
        self._char_cache: dict[str, tuple[int, ...]] = {}  # title word → its n-gram columns
        self._pairs: dict[tuple[str, str], int] | None = None  # word bigram columns by pair
        model = pipeline.named_steps["model"]
        self.classes: list[str] = [str(c) for c in model.classes_]
        words = pipeline.named_steps["features"].transformer_list[0][1]
        self._word_names = np.asarray(words.get_feature_names_out(), dtype=object)
        self._n_words = len(self._word_names)
        # How much each word pushes a class over the others: the basis of the reasons.
        coef = np.asarray(model.coef_)[:, : self._n_words]
        if coef.shape[0] == 1:  # two classes: one row of coefficients for classes_[1]
            coef = np.vstack([-coef, coef])
        k = coef.shape[0]
        self._margin = coef - (coef.sum(axis=0, keepdims=True) - coef) / max(k - 1, 1)

    # -- predicting ---------------------------------------------------------------------------

    def predict_texts(self, texts: list[str] | pd.Series) -> pd.DataFrame:
        """``moment``, ``confidence`` (0..1) and ``reason`` for each text (positional index).

        Identical texts (templated tickets) are scored once.
        """
        series = pd.Series(list(texts), dtype=object).fillna("").astype(str)
        codes, uniques = pd.factorize(series, sort=False)
        if len(uniques) == 0:
            return pd.DataFrame({"moment": [], "confidence": [], "reason": []})
        from threadpoolctl import threadpool_limits

        features = self._features(list(uniques))
        model = self.pipeline.named_steps["model"]
        with threadpool_limits(1):
            proba = model.predict_proba(features)
        best = proba.argmax(axis=1)
        confidence = proba[np.arange(len(best)), best]
        reasons = self._reasons(features, best, confidence)
        moments = np.asarray(self.classes, dtype=object)[best]
        return pd.DataFrame(
            {
                "moment": moments[codes],
                "confidence": np.round(confidence[codes], 2),
                "reason": np.asarray(reasons, dtype=object)[codes],
            }
        )

    def _features(self, texts: list[str]) -> Any:
        """The pipeline's feature matrix for ``texts``, as ``features.transform`` computes it.

        scikit-learn's vectorizers spend most of their time in Python: accents stripped one
        character at a time, every character n-gram sliced and looked up for every title.
        For the features ``_pipeline`` builds, the same counts are computed here with the
        accent table, C-level counting and the n-grams of each distinct title word
        remembered (words repeat across titles), then weighted by the vectorizers' own
        tf-idf. Any other configuration (a model of another format) uses the pipeline.
        """
        union = self.pipeline.named_steps["features"]
        if self._fast is None:
            self._fast = _fast_features_supported(union)
        if not self._fast or not texts:
            return union.transform(texts)
        from scipy import sparse

        parts = []
        for name, vectorizer in union.transformer_list:
            if name == "words":
                if self._pairs is None:
                    self._pairs = _bigram_pairs(vectorizer.vocabulary_)
                sizes, columns = _word_columns(vectorizer, texts, self._pairs)
            else:
                sizes, columns = _char_columns(vectorizer, texts, self._char_cache)
            counts = _count_matrix(sizes, columns, len(vectorizer.vocabulary_),
                                   vectorizer.dtype)
            parts.append(vectorizer._tfidf.transform(counts, copy=False))
        return sparse.hstack(parts).tocsr()

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``predict_texts`` on the frame's titles and descriptions, aligned with its index."""
        out = self.predict_texts(item_texts(frame))
        out.index = frame.index
        return out

    def _reasons(self, features: Any, best: np.ndarray, confidence: np.ndarray) -> list[str]:
        """``model 0.83: 'a', 'b'``: the word n-grams that pushed the winner most."""
        words = features[:, : self._n_words].tocsr()
        # Every row's pushes in one vectorised product; rows are then read as slices.
        bounds = words.indptr.tolist()
        owner = np.repeat(best, np.diff(words.indptr))
        pushes = words.data * self._margin[owner, words.indices]
        if self._terms is None:
            self._terms = [str(term) for term in self._word_names]
            # "de", "que los": function words help the model but explain nothing.
            self._telling = [
                not (_STOP.intersection(term.split()) or len(term) < 3) for term in self._terms
            ]
        terms, telling = self._terms, self._telling
        # Whole-matrix lists and one negation: per row, only the sort is left to NumPy (on
        # the same values as ``-push``, so ties fall in the same order).
        falling = -pushes
        values = pushes.tolist()
        indices = words.indices.tolist()
        heads = [f"model {c:.2f}: " for c in confidence.tolist()]
        reasons = []
        for row in range(words.shape[0]):
            start, end = bounds[row], bounds[row + 1]
            chosen: list[str] = []
            for k in falling[start:end].argsort().tolist():
                k += start
                if values[k] <= 0 or len(chosen) == _REASON_TERMS:
                    break
                if not telling[indices[k]]:
                    continue
                term = terms[indices[k]]
                if any(term in other or other in term for other in chosen):
                    continue
                chosen.append(term)
            shown = ", ".join(f"'{t}'" for t in chosen) or "no distinctive words"
            reasons.append(heads[row] + shown)
        return reasons

    # -- persistence ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The pickled estimator (stored in the state store with ``meta``)."""
        return pickle.dumps(self.pipeline, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, blob: bytes, meta: dict[str, Any]) -> MomentModel:
        """Rebuild from ``to_bytes``; only call when ``compatible(meta)`` (pickles are not
        portable across scikit-learn versions)."""
        return cls(pickle.loads(blob), meta)


#: Distinct title words whose n-gram columns are remembered; the memory is emptied beyond.
_CHAR_CACHE_WORDS = 100_000


def _fast_features_supported(union: Any) -> bool:
    """Whether ``union`` holds exactly the two vectorizers ``_pipeline`` builds."""
    try:
        (w_name, words), (c_name, chars) = union.transformer_list
        return (
            (w_name, c_name) == ("words", "chars")
            and (words.analyzer, tuple(words.ngram_range), words.token_pattern)
            == ("word", (1, 2), _WORD_PATTERN)
            and (words.lowercase, words.strip_accents) == (True, "unicode")
            and words.preprocessor is None
            and words.tokenizer is None
            and words.stop_words is None
            and (chars.analyzer, tuple(chars.ngram_range)) == ("char_wb", (3, 5))
            and chars.preprocessor is title_part
            and not words.binary
            and not chars.binary
            and all(v.input == "content" for v in (words, chars))
            and all(hasattr(v, a) for v in (words, chars)
                    for a in ("_tfidf", "vocabulary_", "_white_spaces"))
        )
    except (AttributeError, TypeError, ValueError):
        return False


def _word_columns(
    vectorizer: Any, texts: list[str], pairs: dict[tuple[str, str], int] | None = None
) -> tuple[list[int], list[int]]:
    """Per text, how many word 1- and 2-grams it has, and all their vocabulary columns in a
    row (-1 when out of vocabulary): ``analyzer="word"`` on lower-case text without accents,
    tokens by the vectorizer's pattern. ``pairs`` (``_bigram_pairs`` of the vocabulary) finds
    a bigram by its two tokens without joining them into a new string first."""
    get = vectorizer.vocabulary_.get
    find = _WORD_RE.findall
    join = " ".join
    missing = itertools.repeat(-1)
    sizes: list[int] = []
    columns: list[int] = []
    for text in texts:
        tokens = find(_strip_accents(text.lower()))
        columns.extend(map(get, tokens, missing))
        if pairs is None:
            columns.extend(map(get, map(join, itertools.pairwise(tokens)), missing))
        else:
            columns.extend(map(pairs.get, itertools.pairwise(tokens), missing))
        sizes.append(max(2 * len(tokens) - 1, 0))
    return sizes, columns


def _bigram_pairs(vocabulary: dict[str, int]) -> dict[tuple[str, str], int]:
    """The vocabulary's word bigrams keyed by their two tokens (``"a b"`` → ``("a", "b")``).
    Tokens hold no space, so each bigram splits back into exactly its two tokens."""
    pairs = {}
    for term, column in vocabulary.items():
        parts = term.split(" ")
        if len(parts) == 2:
            pairs[(parts[0], parts[1])] = column
    return pairs


def _char_columns(
    vectorizer: Any, texts: list[str], cache: dict[str, tuple[int, ...]]
) -> tuple[list[int], list[int]]:
    """Per text, how many in-vocabulary character 3-5-grams its title words have, and their
    columns in a row (``analyzer="char_wb"`` on ``title_part``); each distinct word's
    columns are found once."""
    vocabulary = vectorizer.vocabulary_
    spaces = vectorizer._white_spaces.sub
    if len(cache) > _CHAR_CACHE_WORDS:
        cache.clear()
    sizes: list[int] = []
    columns: list[int] = []
    for text in texts:
        before = len(columns)
        for word in spaces(" ", _strip_accents(text.split(" . ", 1)[0].lower())).split():
            found = cache.get(word)
            if found is None:
                found = cache[word] = _word_char_columns(word, vocabulary)
            columns.extend(found)
        sizes.append(len(columns) - before)
    return sizes, columns


def _word_char_columns(word: str, vocabulary: dict[str, int]) -> tuple[int, ...]:
    """The vocabulary columns of one word's padded character 3-5-grams, as scikit-learn's
    ``_char_wb_ngrams`` slices them (a word shorter than n counts once)."""
    padded = " " + word + " "
    size = len(padded)
    grams = []
    for n in range(3, 6):
        offset = 0
        grams.append(padded[offset : offset + n])
        while offset + n < size:
            offset += 1
            grams.append(padded[offset : offset + n])
        if offset == 0:
            break
    return tuple(column for column in map(vocabulary.get, grams) if column is not None)


def _count_matrix(sizes: list[int], columns: list[int], width: int, dtype: Any) -> Any:
    """The CSR count matrix ``CountVectorizer`` builds from each row's columns (-1 skipped):
    duplicates summed, indices sorted within rows. Rows come in order, so the row pointers
    are counted directly, without a detour through COO coordinates."""
    from scipy import sparse

    n = len(sizes)
    cols = np.asarray(columns, dtype=np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.asarray(sizes, dtype=np.int64))
    keep = cols >= 0
    if not keep.all():
        cols, rows = cols[keep], rows[keep]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    matrix = sparse.csr_matrix((np.ones(len(cols), dtype=dtype), cols, indptr),
                               shape=(n, width))
    matrix.sum_duplicates()  # sorts each row's indices, then sums repeats
    return matrix


def compatible(meta: dict[str, Any]) -> bool:
    """Whether a stored model was trained with this scikit-learn, numpy and model format."""
    now = _versions()
    return all(str(meta.get(key)) == now[key] for key in ("sklearn", "numpy", "format"))


def train(
    texts: list[str] | pd.Series,
    labels: list[str] | pd.Series,
    weights: list[float] | np.ndarray | None = None,
    *,
    include_default: bool = True,
    meta: dict[str, Any] | None = None,
) -> MomentModel:
    """Fit a ``MomentModel`` on texts and moment labels (plus the default set, unless told not
    to). Labels outside the three moments are dropped."""
    text_list = [str(t) for t in texts]
    label_list = [str(label) for label in labels]
    weight_list = (
        [float(w) for w in weights] if weights is not None else [ORIGIN_WEIGHT["rule"]] * len(
            text_list)
    )
    if include_default:
        default = default_examples()
        text_list += default["text"].tolist()
        label_list += default["moment"].tolist()
        weight_list += [ORIGIN_WEIGHT["default"]] * len(default)
    keep = [i for i, label in enumerate(label_list) if label in MOMENTS and text_list[i].strip()]
    x = [text_list[i] for i in keep]
    y = [label_list[i] for i in keep]
    w = np.asarray([weight_list[i] for i in keep], dtype=float)
    if len(set(y)) < 2:
        raise ValueError("training needs examples of at least two moments")
    from threadpoolctl import threadpool_limits

    pipeline = _pipeline()
    # A small sparse problem: BLAS threads only fight each other (6x slower on 2 cores).
    with threadpool_limits(1):
        pipeline.fit(x, y, model__sample_weight=w)
    counts = pd.Series(y).value_counts().to_dict()
    info = {**_versions(), "examples": len(y), "by_moment": counts, **(meta or {})}
    return MomentModel(pipeline, info)


@functools.lru_cache(maxsize=1)
def default_examples() -> pd.DataFrame:
    """The shipped training set: ``moment``, ``language``, ``text`` (comment lines skipped)."""
    raw = resources.files("momentos.enrichment").joinpath("data/moments_default.csv").read_text(
        encoding="utf-8"
    )
    lines = [line for line in raw.splitlines() if line.strip() and not line.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    return pd.DataFrame(rows, columns=["moment", "language", "text"])


@functools.lru_cache(maxsize=1)
def default_model() -> MomentModel:
    """The model a new install uses: trained once per process on the shipped examples."""
    return train([], [], include_default=True, meta={"origin": "default"})


def rule_labels(
    enriched: pd.DataFrame, min_confidence: float = RULE_LABEL_CONFIDENCE
) -> list[dict[str, Any]]:
    """Training labels from an enriched frame: the rows a rule decided (not ``auto``) with at
    least ``min_confidence``. Dicts for ``StateStore.add_labels`` (origin ``rule``)."""
    rule = col.text(enriched, "moment_rule").str.strip()
    reason = col.text(enriched, "moment_reason")
    confidence = col.numbers(enriched, "moment_confidence")
    moment = col.key_text(enriched, "moment")
    decided = (
        (rule != "").to_numpy()
        & ~reason.str.contains("→ auto", regex=False).to_numpy()
        & (confidence >= min_confidence)
        & moment.isin(MOMENTS).to_numpy()
    )
    rows = np.flatnonzero(decided)
    texts = item_texts(enriched.iloc[rows])
    source = col.text(enriched, "source").to_numpy(dtype=object)[rows]
    ids = col.text(enriched, "id").to_numpy(dtype=object)[rows]
    return [
        {"source": s, "item_id": i, "moment": m, "origin": "rule", "text": t}
        for s, i, m, t in zip(source, ids, moment.to_numpy(dtype=object)[rows], texts.tolist())
        if i
    ]


def human_label(source: str, item_id: str, moment: str, text: str) -> dict[str, Any]:
    """A label from a person who changed the moment field in their tool."""
    if moment not in MOMENTS:
        raise ValueError(f"not a moment: {moment!r}")
    return {"source": source, "item_id": item_id, "moment": moment, "origin": "human",
            "text": text}


def _holdout_score(texts: list[str], labels: list[str], weights: np.ndarray) -> float | None:
    """Macro-F1 of a model trained on 80% of the instance labels, on the other 20%."""
    if len(texts) < 50 or len(set(labels)) < 2:
        return None
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    test = rng.random(len(texts)) < 0.2
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    if len({labels[i] for i in train_idx}) < 2 or not len(test_idx):
        return None
    model = train([texts[i] for i in train_idx], [labels[i] for i in train_idx],
                  weights[train_idx])
    predicted = model.predict_texts([texts[i] for i in test_idx])["moment"].tolist()
    return round(float(f1_score([labels[i] for i in test_idx], predicted, average="macro")), 3)


def retrain(state: StateLike, moments_settings: Any = None, now: datetime | None = None
            ) -> dict[str, Any]:
    """Train the moment model on the state store's labels (plus the default set) and store it.

    ``moments_settings`` (``MomentsSettings``) is accepted for the review threshold in the
    summary. Returns a summary: labels used (by origin and moment), the hold-out macro-F1 on
    the instance's own labels (when there are 50 or more), and when it was trained.
    """
    rows = state.training_labels()
    texts = [str(r.get("text") or "") for r in rows]
    labels = [str(r.get("moment") or "") for r in rows]
    origins = [str(r.get("origin") or "rule") for r in rows]
    weights = np.asarray([ORIGIN_WEIGHT.get(o, 1.0) for o in origins], dtype=float)
    trained_at = now or datetime.now(UTC)
    holdout = _holdout_score(texts, labels, weights)
    summary: dict[str, Any] = {
        "model": MODEL_NAME,
        "labels": len(rows),
        "by_origin": dict(pd.Series(origins, dtype=object).value_counts().to_dict()),
        "by_moment": dict(pd.Series(labels, dtype=object).value_counts().to_dict()),
        "default_examples": len(default_examples()),
        "holdout_macro_f1": holdout,
        "trained_at": trained_at.isoformat(),
    }
    if moments_settings is not None:
        summary["review_threshold"] = getattr(moments_settings, "review_threshold", None)
    model = train(texts, labels, weights, meta={"origin": "instance", **{
        k: summary[k] for k in ("labels", "by_origin", "holdout_macro_f1", "trained_at")}})
    state.save_model(MODEL_NAME, model.to_bytes(), model.meta, trained_at)
    summary["examples"] = model.meta["examples"]
    return summary


def load(state: StateLike) -> MomentModel | None:
    """The instance's stored model; retrained from the stored labels when it was trained with
    other library versions; ``None`` when none was ever trained."""
    stored = state.load_model(MODEL_NAME)
    if stored is None:
        return None
    blob, _, meta = stored
    if compatible(meta):
        try:
            return MomentModel.from_bytes(blob, meta)
        except Exception as exc:  # noqa: BLE001 - a corrupt or foreign blob: retrain instead
            log.warning("stored moment model unreadable (%s); retraining from labels", exc)
    retrain(state)
    again = state.load_model(MODEL_NAME)
    return MomentModel.from_bytes(again[0], again[2]) if again else None


def model_for(state: StateLike | None) -> MomentModel:
    """What enrichment should use: the instance's model when there is one, else the default."""
    if state is not None:
        found = load(state)
        if found is not None:
            return found
    return default_model()


def stored_or_default(state: StateLike | None) -> MomentModel:
    """``model_for`` without its side effect, for commands that write nothing (a dry run,
    ``mapping preview``, ``explain``): a stored model trained with other library versions is
    not retrained and saved; the shipped model stands in for it."""
    if state is not None:
        stored = state.load_model(MODEL_NAME)
        if stored is not None and compatible(stored[2]):
            try:
                return MomentModel.from_bytes(stored[0], stored[2])
            except Exception as exc:  # noqa: BLE001 - a read-only caller cannot retrain
                log.warning("stored moment model unreadable (%s); using the shipped one", exc)
    return default_model()
