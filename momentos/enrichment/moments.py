"""Tag each item with its relationship moment: operation, evolution or innovation.

Rules are applied in order and the first match wins. Each rule is evaluated as one boolean
mask over the whole frame. Items a rule sends to ``auto``, and items no rule matches, go to
the learned model (``momentos.enrichment.learn``), or, without one, ``classify_fallback``: a
transparent bilingual keyword classifier. Every decision carries its reason in plain words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

import numpy as np
import pandas as pd

from momentos.enrichment import columns as col
from momentos.enrichment import lexicon as lx
from momentos.enrichment.settings import CRITERIA, MomentRule, MomentsSettings
from momentos.models import MOMENTS

#: Upper bound of the fallback's confidence: keywords never count as sure as a rule.
FALLBACK_MAX_CONFIDENCE = 0.7
_NO_KEYWORD_CONFIDENCE = 0.3
_MAX_KEYWORDS_SHOWN = 4
_FALLBACK_TEXT_CHARS = 5_000  # the gist of an item is in its title and first paragraphs

class MomentModelLike(Protocol):
    """What ``assign_moments`` needs from a learned model (``learn.MomentModel``)."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame: ...


_LABELS = {
    "source": "source",
    "platform": "platform",
    "container": "container",
    "kind": "kind",
    "category": "category",
    "request_type": "request type",
    "labels": "label",
}
_CONTAINER_ALIASES = ("container", "table", "project")


_WORD_RE = re.compile(r"\w+")

# keyword tokens → canonical key, grouped by first token, longest first.
KeywordIndex = dict[str, tuple[tuple[tuple[str, ...], str], ...]]


def _keyword_tables() -> tuple[KeywordIndex, dict[str, str], dict[str, str], dict[str, float]]:
    display: dict[str, str] = {}
    moment_of: dict[str, str] = {}
    weight_of: dict[str, float] = {}
    grouped: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for moment, keywords in lx.MOMENT_KEYWORDS.items():
        for keyword, weight in keywords.items():
            key = lx.deaccent(keyword).lower()
            display.setdefault(key, keyword)
            moment_of[key] = moment
            weight_of[key] = weight
            tokens = tuple(_WORD_RE.findall(key))
            # Plurals: "mejoras", "errores", "pilots" count as their keyword.
            for last in (tokens[-1], tokens[-1] + "s", tokens[-1] + "es"):
                variant = (*tokens[:-1], last)
                grouped.setdefault(variant[0], []).append((variant[1:], key))
    # Longest first, so "cambio de contraseña" (operation) wins over "cambio" (evolution).
    index = {
        first: tuple(sorted(options, key=lambda option: -len(option[0])))
        for first, options in grouped.items()
    }
    return index, display, moment_of, weight_of


_KEYWORDS, _KEYWORD_DISPLAY, _KEYWORD_MOMENT, _KEYWORD_WEIGHT = _keyword_tables()
_KEYWORD_FIRST = frozenset(_KEYWORDS)
_KEYWORD_MOMENT_INDEX = {key: MOMENTS.index(moment) for key, moment in _KEYWORD_MOMENT.items()}


def _plain_tokens(text: str) -> list[str]:
    lower = text.lower()
    tokens = _WORD_RE.findall(lower)
    if lower.isascii():
        return tokens
    # Removing accents per token is several times cheaper than translating the whole text.
    return [t if t.isascii() else t.translate(lx.DEACCENT) for t in tokens]


def find_keywords(text: str) -> list[str]:
    """Moment keywords in ``text`` (canonical, de-accented), whole words, in order of appearance.

    One regex tokenization, then dictionary lookups: an alternation of 300 keywords would be
    tried at every character, this looks only at words that can start a keyword.
    """
    tokens = _plain_tokens(text)
    if _KEYWORD_FIRST.isdisjoint(tokens):
        return []
    found: list[str] = []
    skip_until = -1
    size = len(tokens)
    for i in [i for i, token in enumerate(tokens) if token in _KEYWORD_FIRST]:
        if i < skip_until:
            continue
        for rest, key in _KEYWORDS[tokens[i]]:
            if rest:
                end = i + 1 + len(rest)
                if end > size or tokens[i + 1] != rest[0] or tuple(tokens[i + 1 : end]) != rest:
                    continue
            found.append(key)
            skip_until = i + 1 + len(rest)
            break
    return found


def classify_fallback(frame: pd.DataFrame) -> pd.DataFrame:
    """Keyword classifier for items no rule decides.

    Returns a frame aligned with ``frame`` (same index) with ``moment``, ``confidence``
    (at most 0.7) and ``reason`` (``keywords: 'nueva funcionalidad', 'upgrade'``). Each moment
    scores the summed weights of the distinct keywords found in title + description; the
    confidence grows with the winner's share and with how much evidence there is. Items without
    any keyword get the usual moment of their kind (or ``operation``) at confidence 0.3.
    """
    n = len(frame)
    titles = col.text(frame, "title", _FALLBACK_TEXT_CHARS)
    descriptions = col.text(frame, "description", _FALLBACK_TEXT_CHARS)
    found = [
        list(dict.fromkeys(find_keywords(title + "\n" + description)))  # distinct, in order
        for title, description in zip(titles.tolist(), descriptions.tolist())
    ]
    scores = np.zeros((n, len(MOMENTS)))
    for row, keys in enumerate(found):
        for key in keys:
            scores[row, _KEYWORD_MOMENT_INDEX[key]] += _KEYWORD_WEIGHT[key]
    best = scores.argmax(axis=1)
    best_score = scores.max(axis=1)
    total = scores.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, best_score / total, 0.0)
    strength = 0.5 + 0.5 * np.minimum(1.0, best_score / 4.0)
    confidence = np.where(
        total > 0, FALLBACK_MAX_CONFIDENCE * share * strength, _NO_KEYWORD_CONFIDENCE
    )

    kinds = col.key_text(frame, "kind")
    kind_prior = kinds.map(lx.KIND_PRIOR)
    prior = kind_prior.fillna("operation").to_numpy(dtype=object)
    moments = np.where(total > 0, np.asarray(MOMENTS, dtype=object)[best], prior)
    reasons = np.where(
        kind_prior.notna(),
        "no keywords; default for kind '" + kinds + "'",
        "no keywords; default 'operation'",
    ).astype(object)
    said: dict[tuple[str, ...], str] = {}  # same keywords, same sentence: templated tickets
    for row in np.flatnonzero(total > 0).tolist():
        keys = (moments[row], *found[row])
        reason = said.get(keys)
        if reason is None:
            reason = said[keys] = _keyword_reason(found[row], moments[row])
        reasons[row] = reason
    return pd.DataFrame(
        {"moment": moments, "confidence": np.round(confidence, 2), "reason": reasons},
        index=frame.index,
    )


def _keyword_reason(keys: list[str], winner: str) -> str:
    """``keywords: 'a', 'b'; also evolution: 'c'``: the winner's strongest keywords first."""
    ranked = sorted(keys, key=lambda key: (-_KEYWORD_WEIGHT[key], key))
    shown = [f"'{_KEYWORD_DISPLAY[k]}'" for k in ranked if _KEYWORD_MOMENT[k] == winner]
    text = "keywords: " + ", ".join(shown[:_MAX_KEYWORDS_SHOWN])
    for moment in MOMENTS:
        if moment != winner:
            also = [f"'{_KEYWORD_DISPLAY[k]}'" for k in ranked if _KEYWORD_MOMENT[k] == moment]
            if also:
                text += f"; also {moment}: " + ", ".join(also[:_MAX_KEYWORDS_SHOWN])
    return text


class _Fields:
    """Normalized views of the columns rules look at, computed once per frame."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n = len(frame)
        self._scalar: dict[str, tuple[pd.Series, pd.Series]] = {}
        self._listed: dict[str, pd.Series] = {}
        self._dicts: pd.Series | None = None

    def _source_column(self, name: str) -> pd.Series | None:
        if name == "container":
            for alias in _CONTAINER_ALIASES:
                values = col.column(self.frame, alias)
                if values is not None:
                    return values
            return None
        if name.startswith("fields."):
            return None
        return col.column(self.frame, name)

    def scalar(self, name: str) -> tuple[pd.Series, pd.Series] | None:
        """(lower-case stripped values, display values) for a plain column, else None."""
        if name in self._scalar:
            return self._scalar[name]
        values = None if name in ("labels", "fields") else self._source_column(name)
        if values is None:
            return None
        cells = values.tolist()
        if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
            shown = values.fillna("").str.strip().astype(object)
        elif set(map(type, cells)) <= {str}:  # text cells only (files): C-level strip
            shown = pd.Series(list(map(str.strip, cells)), dtype=object)
        elif any(_is_listlike(v) for v in cells):
            return None
        else:
            shown = pd.Series([col.as_text(v).strip() for v in cells], dtype=object)
        result = (shown.str.lower(), shown)
        self._scalar[name] = result
        return result

    def listed(self, name: str) -> pd.Series:
        """Exploded lower-case values (index = row position) for list or platform fields."""
        if name in self._listed:
            return self._listed[name]
        values = self._source_column(name)
        if values is not None:
            lists = [col.text_list(v) for v in values]
        else:
            field = name.removeprefix("fields.")
            lists = [col.field_values(cell.get(field)) for cell in self._platform_fields()]
        exploded = pd.Series(lists, dtype=object).explode().dropna()
        exploded = exploded[exploded.astype(str) != ""].astype(str)
        self._listed[name] = exploded
        return exploded

    def _platform_fields(self) -> pd.Series:
        if self._dicts is None:
            values = col.column(self.frame, "fields")
            cells = [] if values is None else [col.parse_json_cell(v) for v in values]
            self._dicts = pd.Series(
                [c if isinstance(c, dict) else {} for c in cells] or [{}] * self.n, dtype=object
            )
        return self._dicts

    def container_label(self) -> pd.Series:
        """What a container is called on each row's platform: table, project or container."""
        platform = self.scalar("platform")
        if platform is None:
            return pd.Series(["container"] * self.n, dtype=object)
        return platform[0].map({"servicenow": "table", "jira": "project"}).fillna("container")

    def match(self, name: str, wanted: list[str]) -> tuple[np.ndarray, pd.Series]:
        """Rows where field ``name`` has any of ``wanted``, and the value that matched."""
        targets = [w.strip().lower() for w in wanted]
        scalar = self.scalar(name)
        if scalar is not None:
            mask = scalar[0].isin(targets).to_numpy()
            return mask, scalar[1]
        exploded = self.listed(name)
        hit = exploded[exploded.isin(targets)]
        first = hit.groupby(level=0).first()
        mask = np.zeros(self.n, dtype=bool)
        mask[first.index.to_numpy(dtype=np.int64)] = True
        shown = pd.Series([""] * self.n, dtype=object)
        shown.iloc[first.index.to_numpy(dtype=np.int64)] = first.to_numpy()
        return mask, shown

    def lookup(self, name: str, mapping: dict[str, str]) -> tuple[pd.Series, pd.Series]:
        """Per row: the mapped decision for field ``name`` (NaN when unmapped) and its value."""
        scalar = self.scalar(name)
        if scalar is not None:
            return scalar[0].map(mapping), scalar[1]
        exploded = self.listed(name)
        pairs = pd.DataFrame({"value": exploded, "decision": exploded.map(mapping)})
        first = pairs.dropna(subset=["decision"]).groupby(level=0).first()
        positions = first.index.to_numpy(dtype=np.int64)
        decision = pd.Series([np.nan] * self.n, dtype=object)
        shown = pd.Series([""] * self.n, dtype=object)
        decision.iloc[positions] = first["decision"].to_numpy()
        shown.iloc[positions] = first["value"].to_numpy()
        return decision, shown


def _is_listlike(value: object) -> bool:
    return isinstance(value, (list, tuple, dict, set, np.ndarray))


def _criteria(rule: MomentRule) -> list[tuple[str, list[str]]]:
    out = [(name, getattr(rule, name)) for name in CRITERIA if getattr(rule, name) is not None]
    out.extend(rule.fields.items())
    return out


def _evaluate_rule(
    rule: MomentRule, fields: _Fields, titles: Callable[[], pd.Series], open_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (positions) among the open ones that the rule matches, their decision and reason."""
    mask = open_rows.copy()
    shown_parts: list[tuple[str | pd.Series, pd.Series]] = []
    for name, wanted in _criteria(rule):
        hit, shown = fields.match(name, wanted)
        mask &= hit
        if not mask.any():
            return _NOTHING
        shown_parts.append((_label(name, fields), shown))
    decision: pd.Series | None = None
    if rule.map is not None and rule.map_field is not None:
        decision, shown = fields.lookup(rule.map_field, rule.map)
        mask &= decision.notna().to_numpy()
        shown_parts.append((_label(rule.map_field, fields), shown))
    if rule.title_regex is not None and mask.any():
        pattern = re.compile(rule.title_regex, re.IGNORECASE)
        mask &= np.fromiter(
            (pattern.search(t) is not None for t in titles()), dtype=bool, count=fields.n
        )
    rows = np.flatnonzero(mask)
    if not len(rows):
        return _NOTHING

    # Reasons are built only for the matched rows: most rules match a small share of a frame.
    reason = pd.Series([f"rule '{rule.name}': "] * len(rows), dtype=object)
    pieces = []
    for label, shown in shown_parts:
        value = shown.iloc[rows].reset_index(drop=True)
        lead = label.iloc[rows].reset_index(drop=True) if isinstance(label, pd.Series) else label
        pieces.append(lead + " = " + value)
    if rule.title_regex is not None:
        pieces.append(pd.Series([f"title matches '{rule.title_regex}'"] * len(rows), dtype=object))
    if pieces:
        reason = reason + (
            pieces[0].str.cat(pieces[1:], sep=", ") if len(pieces) > 1 else pieces[0]
        )
    else:
        reason = reason + "matches every item"
    if decision is None:
        decisions = np.full(len(rows), rule.moment, dtype=object)
    else:
        decisions = decision.to_numpy(dtype=object)[rows]
    return rows, decisions, reason.to_numpy(dtype=object)


_NOTHING: tuple[np.ndarray, np.ndarray, np.ndarray] = (
    np.zeros(0, dtype=np.int64),
    np.zeros(0, dtype=object),
    np.zeros(0, dtype=object),
)


def _label(name: str, fields: _Fields) -> str | pd.Series:
    if name == "container":
        return fields.container_label()
    return _LABELS.get(name, name.removeprefix("fields."))


def assign_moments(
    frame: pd.DataFrame, settings: MomentsSettings, model: MomentModelLike | None = None
) -> pd.DataFrame:
    """Apply the rules in order (first match wins), then the fallback for the rest.

    The fallback is ``model`` (a ``learn.MomentModel``, or anything with ``predict(frame)``
    returning ``moment``/``confidence``/``reason``); without one, the keyword classifier.

    Returns a frame aligned with ``frame`` with ``moment``, ``moment_confidence``,
    ``moment_reason``, ``moment_rule`` (the rule's name, ``""`` when none matched) and
    ``needs_review`` (confidence below ``settings.review_threshold``).
    """
    n = len(frame)
    fields = _Fields(frame)
    title_cache: list[pd.Series] = []

    def titles() -> pd.Series:
        if not title_cache:
            title_cache.append(col.text(frame, "title"))
        return title_cache[0]

    moment = np.full(n, "auto", dtype=object)
    confidence = np.zeros(n)
    reason = np.full(n, "no rule matched", dtype=object)
    rule_name = np.full(n, "", dtype=object)
    open_rows = np.ones(n, dtype=bool)
    for rule in settings.effective_rules():
        if not open_rows.any():
            break
        rows, decisions, why = _evaluate_rule(rule, fields, titles, open_rows)
        if not len(rows):
            continue
        moment[rows] = decisions
        confidence[rows] = rule.confidence
        reason[rows] = why
        rule_name[rows] = rule.name
        open_rows[rows] = False

    undecided = moment == "auto"
    if undecided.any():
        positions = np.flatnonzero(undecided)
        rest = frame.iloc[positions]
        guess = model.predict(rest) if model is not None else classify_fallback(rest)
        by_rule = ~open_rows[positions]
        lead = np.where(by_rule, reason[positions] + " → auto; ", "no rule matched; ")
        moment[positions] = guess["moment"].to_numpy(dtype=object)
        confidence[positions] = guess["confidence"].to_numpy()
        reason[positions] = lead + guess["reason"].to_numpy(dtype=object)

    # A rule that is only "mostly" right (a demand is usually innovation, sometimes the
    # evolution of an existing system) yields to a learned model that is surer of another
    # moment; the reason keeps both sides.
    if model is not None and settings.model_can_override_below > 0:
        unsure = np.flatnonzero(
            ~undecided & ~open_rows & (confidence < settings.model_can_override_below)
        )
        if len(unsure):
            second = model.predict(frame.iloc[unsure])
            other = second["moment"].to_numpy(dtype=object)
            sure = second["confidence"].to_numpy(dtype=float)
            flip = (other != moment[unsure]) & (sure >= settings.override_confidence)
            rows = unsure[flip]
            if len(rows):
                was = moment[rows]
                moment[rows] = other[flip]
                reason[rows] = (
                    reason[rows] + " → " + was + " (" + np.char.mod("%.2f", confidence[rows])
                    + "); overruled by " + second["reason"].to_numpy(dtype=object)[flip]
                )
                confidence[rows] = sure[flip]

    return pd.DataFrame(
        {
            "moment": moment,
            "moment_confidence": np.round(confidence, 2),
            "moment_reason": reason,
            "moment_rule": rule_name,
            "needs_review": confidence < settings.review_threshold,
        },
        index=frame.index,
    )
