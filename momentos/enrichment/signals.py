"""Experience signals: how the requester lived each item, measured from the frame alone.

Every signal is computed for the whole frame at once (numpy / pandas group-bys over the
exploded comment and history tables), never with a Python loop per row. A signal that cannot
be known for a row (no comments, no dates, not that moment's indicator) is NaN, which the score
reads as "no evidence" and the ``signals`` JSON writes as null. The definitions are in
docs/SIGNALS.md; names and types are ``settings.SIGNALS`` / ``settings.SIGNAL_TYPES``.

Cross-item signals (repeat contact, incidents caused by a change, "typical" durations) look at
the frame plus an optional ``context`` frame of other recent items (e.g. from the state store),
because a sync page rarely holds a change and the incidents it caused. A sync also passes
``stored`` (``StoredNeighbours``): counts over every item of its state store, so an item's
repeat contacts and caused incidents do not depend on how much history fits in memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import pandas as pd

from momentos.enrichment import columns as col
from momentos.enrichment import lexicon as lx
from momentos.enrichment import sentiment as sent
from momentos.enrichment.settings import SIGNAL_TYPES, SIGNALS, ExperienceSettings
from momentos.models import MOMENTS


def _literal_trie(words: tuple[str, ...]) -> str:
    """A regex that finds any of ``words`` (plain strings) as a trie of alternations: the
    engine then tries a branch per distinct next character instead of one per word. A word
    that extends another is left out (for ``search`` the shorter one already matches)."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        if "" in node:
            return ""
        branches = [re.escape(char) + emit(node[char]) for char in sorted(node)]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(trie)


#: States after which a move back to anything else is a reopen (ServiceNow numbers included).
_CLOSED_STATES = frozenset(
    {"resolved", "closed", "done", "cancelled", "canceled", "complete", "completed", "6", "7",
     "closed complete", "closed incomplete", "resuelto", "cerrado"}
)
_CLOSED_STATE_LIST = sorted(_CLOSED_STATES)
#: History fields momentos itself writes: they are not activity on the item.
_OWN_FIELDS = frozenset({"moment", "score", "signals"})
_HOUR = 3600.0
#: A business comment with sentiment at or below this is a complaint.
COMPLAINT_AT = -0.25
_MIN_TYPICAL_RESPONSE_HOURS = 0.1
_CONCERN_RE = re.compile("|".join(f"(?:{p})" for p in lx.CONCERN_PATTERNS))
#: Every concern pattern holds one of ``lx.CONCERN_WORDS``: texts without any skip the regex.
_CONCERN_HINT = re.compile(_literal_trie(lx.CONCERN_WORDS))
_DAY = 86_400.0

#: Priority words to a rank (1 = most urgent); numbers ("2 - High", "P2", "2") parse directly.
_PRIORITY_WORDS = {
    "critical": 1, "highest": 1, "blocker": 1, "urgent": 1, "urgente": 1, "critica": 1,
    "high": 2, "alta": 2, "major": 2,
    "medium": 3, "moderate": 3, "normal": 3, "media": 3,
    "low": 4, "minor": 4, "baja": 4,
    "lowest": 5, "planning": 5, "trivial": 5, "muy baja": 5, "planificacion": 5,
}
_PRIORITY_NUMBER = re.compile(r"^\s*p?([1-5])\b")

#: How-to and usage questions, as opposed to defects and requests (de-accented lower case).
_HOWTO_RE = re.compile(
    r"\bhow (?:do|can|should|to|would) (?:i|we|you)?\b|\bhow to\b|\bwhere (?:is|can|do|are)\b"
    r"|\bis (?:it|there) (?:possible|a way)\b|\bquick question\b|\bquestion\b|\bhow-to\b"
    r"|\bcomo (?:puedo|se|hago|podemos|lo hago)\b|^\W*como\b|\bduda\b|\bconsulta\b"
    r"|\bdonde (?:esta|puedo|se)\b|\bse puede\b|\bme explica(?:is|s)? como\b|\bmanual\b"
    r"|\bguide\b|\bguia\b",
)
_HOWTO_HINT = (
    r"how|where|question|possible|a way|c[oó]mo|duda|consulta|d[oó]nde|se puede|manual|guide|"
    r"gu[ií]a"
)
_HOWTO_HINT_RE = re.compile(_HOWTO_HINT)
_HOWTO_CATEGORIES = frozenset({"inquiry", "question", "how-to", "howto", "help", "consulta",
                               "duda", "inquiry / help", "usage"})
_REQUEST_KINDS = frozenset({"request", "service request", "sc_req_item", "requested item",
                            "service request with approvals", "solicitud"})


def chaser_regex(extra_patterns: list[str] | tuple[str, ...] = ()) -> re.Pattern[str]:
    """The built-in English/Spanish status-chasing patterns plus ``extra_patterns``, as one
    regex meant for de-accented lower-case text (``_matches`` prepares the text).

    The built-ins are written in lower case and compiled without IGNORECASE, which makes the
    search about four times faster; configured patterns keep case-insensitivity locally.
    """
    patterns = [f"(?:{p})" for p in lx.CHASER_PATTERNS]
    patterns += [f"(?i:{lx.deaccent(p)})" for p in extra_patterns]
    return re.compile("|".join(patterns))


def _matches(
    texts: pd.Series, pattern: re.Pattern[str], hint: re.Pattern[str] | None = None
) -> np.ndarray:
    """Boolean per text, searched in its de-accented lower case; each distinct text is tested
    once (chasers and templates repeat). ``hint``, when given, is a cheaper pattern that every
    match of ``pattern`` also matches: texts it does not find skip ``pattern``."""
    if texts.empty:
        return np.zeros(0, dtype=bool)
    codes, uniques = pd.factorize(texts, sort=False)
    search = pattern.search
    plain = [lx.deaccent(t.lower()) for t in uniques.tolist()]
    if hint is None:
        hits = np.fromiter((search(t) is not None for t in plain), dtype=bool,
                           count=len(plain))
    else:
        first = hint.search
        hits = np.fromiter(
            (first(t) is not None and search(t) is not None for t in plain), dtype=bool,
            count=len(plain),
        )
    return hits[codes]


def count_chasers(comments: pd.DataFrame, n: int, pattern: re.Pattern[str]) -> np.ndarray:
    """Per row: how many of the requester's comments chase status (a comment counts once)."""
    requester = comments[comments["role"] == "requester"]
    if requester.empty:
        return np.zeros(n)
    texts = requester["text"]
    chasing = np.zeros(len(texts), dtype=bool)
    if pattern.pattern == _BUILTIN_CHASERS.pattern:
        # Every built-in pattern holds one of these words: one fast test spares most texts
        # the full expression. (Configured patterns may not, so they are always searched.)
        maybe = np.fromiter((_chaser_hint(t.lower()) for t in texts.tolist()), dtype=bool,
                            count=len(texts))
    else:
        maybe = np.ones(len(texts), dtype=bool)
    if maybe.any():
        chasing[maybe] = _matches(texts[maybe], pattern)
    return np.bincount(requester["row"].to_numpy()[chasing], minlength=n).astype(float)


_BUILTIN_CHASERS = chaser_regex()
_CHASER_HINT = (
    r"\?|update|news|progress|feedback|wait|status|\beta\b|follow|check|remind|anyone|anybody|"
    r"expect|chance|novedad|noticia|actualizaci|avance|esperando|respuesta|cu[aá]ndo|estado|"
    r"alguien|recordatorio|recuerdo|pregunt|insisto|sabemos|sabe algo|se sabe|algo nuevo|"
    r"still|sigo|seguimos|c[oó]mo va|c[oó]mo vamos|c[oó]mo est[aá]|c[oó]mo sigue"
)


_CHASER_HINT_RE = re.compile(_CHASER_HINT)
# The same test, faster: Python's regex engine tries every branch of an alternation at every
# position, and one ``\b`` branch stops it from skipping positions by their first character.
# The literal words as one trie (``st(?:atus|ill)``) are tried a few at a time, and "eta" as a
# whole word is a substring test first. Exactly the matches of ``_CHASER_HINT_RE``.
_CHASER_HINT_WORDS = (
    "?", "update", "news", "progress", "feedback", "wait", "status", "follow", "check",
    "remind", "anyone", "anybody", "expect", "chance", "novedad", "noticia", "actualizaci",
    "avance", "esperando", "respuesta", "cuando", "cuándo", "estado", "alguien",
    "recordatorio", "recuerdo", "pregunt", "insisto", "sabemos", "sabe algo", "se sabe",
    "algo nuevo", "still", "sigo", "seguimos", "como va", "cómo va", "como vamos", "cómo vamos",
    "como esta", "cómo esta", "como está", "cómo está", "como sigue", "cómo sigue",
)
_CHASER_HINT_FAST = re.compile(_literal_trie(_CHASER_HINT_WORDS))
_ETA_RE = re.compile(r"\beta\b")


def _chaser_hint(lower: str) -> bool:
    """``_CHASER_HINT_RE.search(lower) is not None``, about four times faster."""
    if _CHASER_HINT_FAST.search(lower) is not None:
        return True
    return "eta" in lower and _ETA_RE.search(lower) is not None


def priority_rank(values: pd.Series) -> np.ndarray:
    """Priority labels ("1 - Critical", "High", "P2", "Alta") as ranks 1..5; unknown → NaN."""
    text = values.astype(str).str.strip().str.lower()
    codes, uniques = pd.factorize(text, sort=False)
    ranks = np.full(len(uniques), np.nan)
    for i, word in enumerate(uniques.tolist()):
        match = _PRIORITY_NUMBER.match(word)
        if match:
            ranks[i] = float(match.group(1))
            continue
        plain = lx.deaccent(word)
        for name, rank in _PRIORITY_WORDS.items():
            if plain == name or plain.endswith(" " + name) or plain.startswith(name + " "):
                ranks[i] = float(rank)
                break
    out = ranks[codes]
    out[codes < 0] = np.nan
    return out


def _end_times(created: pd.Series, resolved: pd.Series, now: datetime | None) -> pd.Series:
    """When each item's story ends for waiting and duration: resolved, else ``now``.

    ``now`` counts in whole hours: two syncs within the same hour see an open item exactly
    alike, so its signals (and the text written back) do not change by a few minutes.
    """
    if now is None:
        return resolved
    reference = pd.Timestamp(now if now.tzinfo else now.replace(tzinfo=UTC)).tz_convert("UTC")
    return resolved.where(resolved.notna(), reference.floor("h"))


def _hours(delta: pd.Series) -> np.ndarray:
    return np.array(delta.dt.total_seconds() / _HOUR, dtype=float)


def _per_row(series: pd.Series, n: int) -> np.ndarray:
    """A Series indexed by row position → a dense float array of length n (NaN elsewhere)."""
    out = np.full(n, np.nan)
    if len(series):
        out[series.index.to_numpy(dtype=np.int64)] = series.to_numpy(dtype=float)
    return out


def _seconds(values: pd.Series) -> np.ndarray:
    """UTC timestamps as float seconds since the epoch (NaT → NaN).

    Read at microsecond resolution whatever the column's unit: dates far from today (year
    9999 in bad data) overflow nanoseconds but not microseconds."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    raw = values.to_numpy(dtype="datetime64[us]")
    out = raw.astype(np.int64) / 1e6
    out[np.isnat(raw)] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# Conversation signals
# ---------------------------------------------------------------------------------------------


def _conversation(
    comments: pd.DataFrame,
    n: int,
    created: pd.Series,
    end: pd.Series,
    is_open: np.ndarray,
) -> dict[str, np.ndarray]:
    """wait_hours, unanswered questions, requester_interactions, business participation, and
    the time of IT's first public reply (``first_agent``, epoch seconds)."""
    public = comments[~comments["internal"].to_numpy(dtype=bool)]
    rows = public["row"].to_numpy()
    agent = (public["role"] == "agent").to_numpy()
    customer = ~agent
    out: dict[str, np.ndarray] = {}

    interactions = np.bincount(rows[(public["role"] == "requester").to_numpy()], minlength=n)
    out["requester_interactions"] = interactions.astype(float)

    # Business participation: distinct non-IT authors (requester and participants) and their
    # share of the public conversation. Unnamed comments count as one author per role.
    total = np.bincount(rows, minlength=n).astype(float)
    business = np.bincount(rows[customer], minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["business_share"] = np.where(total > 0, business / total, np.nan)
    people = public.loc[customer, ["row", "author", "role"]]
    who = people["author"].where(people["author"] != "", "~" + people["role"])
    distinct = pd.DataFrame({"row": people["row"].to_numpy(), "who": who.to_numpy()})
    counts = distinct.drop_duplicates().groupby("row").size()
    participants = _per_row(counts, n)
    out["business_participants"] = np.where(total > 0, np.nan_to_num(participants), np.nan)

    # Timing needs dates; comments after the item's end (a "thanks" after resolution) do not
    # make anyone wait.
    end_s = _seconds(end)
    when = _seconds(public["when"]) if len(public) else np.zeros(0)
    dated = ~np.isnan(when)
    in_story = dated & (when <= end_s[rows] + 1.0)

    agent_times = pd.Series(when[agent & in_story], index=rows[agent & in_story])
    first_agent = _per_row(agent_times.groupby(level=0).min(), n)

    # Waiting: each run of business messages (requester or participants) waits from its first
    # message until IT's next public reply, or until the item's end when IT never answered.
    # The longest such wait is the signal; ``waiting_now`` says it is still running.
    story = public[in_story]
    s_rows = story["row"].to_numpy()
    s_when = when[in_story]
    s_agent = agent[in_story]
    reply_at = pd.Series(np.where(s_agent, s_when, np.nan)).groupby(s_rows).bfill().to_numpy()
    ongoing = np.isnan(reply_at)
    reply_at = np.where(ongoing, end_s[s_rows], reply_at)
    said_by_it = pd.Series(s_agent.astype(float))
    previous_agent = said_by_it.groupby(s_rows).shift().to_numpy()  # NaN: first comment
    run_start = ~s_agent & (np.isnan(previous_agent) | (previous_agent == 1.0))
    waits = np.where(run_start, (reply_at - s_when) / _HOUR, np.nan)
    # A business question is unanswered when IT does not reply before the business has to
    # write again, or before the story ends. Order is enough here: undated comments count.
    in_order = ~dated | np.isnan(end_s[rows]) | in_story
    ordered = public[in_order]
    o_rows = ordered["row"].to_numpy()
    o_agent = agent[in_order]
    next_agent = pd.Series(o_agent.astype(float)).groupby(o_rows).shift(-1).to_numpy()
    asks = ~o_agent & np.fromiter(
        ("?" in text for text in ordered["text"].tolist()), dtype=bool, count=len(ordered)
    )
    unanswered = asks & (next_agent != 1.0)  # NaN (the last comment) is no answer either
    out["unanswered_questions"] = np.where(
        np.bincount(rows, minlength=n) > 0,
        np.bincount(o_rows[unanswered], minlength=n).astype(float),
        np.nan,
    )
    longest = pd.Series(waits).groupby(s_rows).max()
    wait = np.nan_to_num(_per_row(longest, n), nan=0.0)
    now_waiting = pd.Series(run_start & ongoing).groupby(s_rows).any()
    has_dates = np.bincount(rows[dated], minlength=n) > 0
    out["wait_hours"] = np.where(has_dates, np.maximum(wait, 0.0), np.nan)
    out["waiting_now"] = _per_row(now_waiting.astype(float), n) == 1.0

    out["first_agent"] = first_agent
    out["waiting_now"] &= is_open
    return out


# ---------------------------------------------------------------------------------------------
# Process signals from history
# ---------------------------------------------------------------------------------------------


def _history_signals(
    history: pd.DataFrame, n: int, end: pd.Series, hold_states: list[str]
) -> dict[str, np.ndarray]:
    """reassignments, reopens, ping-pong, priority raises, on-hold hours, rework, activity."""
    out: dict[str, np.ndarray] = {}
    has_history = np.zeros(n, dtype=bool)
    if history.empty:
        for name in ("reassign", "reopen", "pingpong", "priority_raised", "on_hold_hours",
                     "rework", "last_activity", "first_assign"):
            out[name] = np.full(n, np.nan)
        out["has_history"] = has_history
        out["pingpong_groups"] = np.full(n, "", dtype=object)
        return out
    rows = history["row"].to_numpy()
    has_history[rows] = True
    field = history["field"]

    # The first assignment (no previous group) is routing, not a reassignment.
    groups = history[field == "assignment_group"]
    moved = (groups["old"] != "").to_numpy()
    out["reassign"] = np.bincount(groups["row"].to_numpy()[moved], minlength=n).astype(float)
    # Ping-pong: a move into a group the item had already visited (A → B → A).
    visited = pd.concat(
        [
            pd.DataFrame({"row": groups["row"], "group": groups["old"], "seq": groups["seq"] - 0.5}),
            pd.DataFrame({"row": groups["row"], "group": groups["new"], "seq": groups["seq"]}),
        ]
    )
    visited = visited[visited["group"] != ""].sort_values(["row", "seq"], kind="stable")
    visited = visited[visited["group"] != visited.groupby("row")["group"].shift()]  # same stays
    repeat = visited.duplicated(["row", "group"], keep="first").to_numpy()
    out["pingpong"] = np.bincount(visited["row"].to_numpy()[repeat], minlength=n).astype(float)
    # The groups the item bounced between, as written, for the reason ("Network and Desktop").
    names = dict(zip(groups["new"].tolist(), groups["shown"].tolist()))
    previous = visited.groupby("row")["group"].shift()
    bounced = visited.loc[repeat, ["row"]].assign(
        pair=[
            f"{names.get(a, a)}|{names.get(b, b)}"
            for a, b in zip(previous[repeat].tolist(), visited.loc[repeat, "group"].tolist())
        ]
    )
    between = np.full(n, "", dtype=object)
    if len(bounced):
        joined = bounced.groupby("row")["pair"].agg(
            lambda pairs: list(dict.fromkeys(g for p in pairs for g in p.split("|")))
        )
        between[joined.index.to_numpy()] = joined.to_numpy()
    out["pingpong_groups"] = between

    states = history[field == "state"]
    reopened = (
        states["old"].isin(_CLOSED_STATE_LIST)
        & ~states["new"].isin(_CLOSED_STATE_LIST)
        & (states["new"] != "")
    ).to_numpy()
    out["reopen"] = np.bincount(states["row"].to_numpy()[reopened], minlength=n).astype(float)

    priorities = history[field == "priority"]
    if len(priorities):
        raised = priority_rank(priorities["new"]) < priority_rank(priorities["old"])
        out["priority_raised"] = np.bincount(
            priorities["row"].to_numpy()[raised], minlength=n
        ).astype(float)
    else:
        out["priority_raised"] = np.zeros(n)

    # Time on hold: from entering a hold state to the next state change (or the item's end).
    hold = frozenset(hold_states)
    at = _seconds(states["at"]) if len(states) else np.zeros(0)
    state_rows = states["row"].to_numpy()
    next_at = pd.Series(at).groupby(state_rows).shift(-1).to_numpy()
    end_s = _seconds(end)
    next_at = np.where(np.isnan(next_at), end_s[state_rows], next_at)
    holding = states["new"].isin(hold).to_numpy() & ~np.isnan(at)
    spans = np.clip(np.nan_to_num(next_at - at), 0.0, None) / _HOUR
    out["on_hold_hours"] = np.bincount(state_rows[holding], spans[holding], minlength=n)

    # Rework: the work went back to a stage it had already passed (not counting the normal
    # "on hold → in progress" return, nor reopening, which has its own signal).
    coming_back = states["old"].isin(hold).to_numpy() | states["old"].isin(_CLOSED_STATE_LIST)
    revisit = pd.DataFrame({"row": state_rows, "state": states["new"].to_numpy()})
    again = revisit.duplicated(["row", "state"], keep="first").to_numpy() & ~coming_back
    again &= ~states["new"].isin(hold).to_numpy()
    out["rework"] = np.bincount(state_rows[again], minlength=n).astype(float)

    # IT's first action on the record: the first assignment to a person.
    assigned = history[field.isin(["assigned_to", "assignee"]) & (history["new"] != "")]
    first = pd.Series(_seconds(assigned["at"]), index=assigned["row"].to_numpy())
    out["first_assign"] = _per_row(first.groupby(level=0).min(), n)

    # Last activity: any tracked change except the fields momentos writes itself.
    activity = history[~field.isin(_OWN_FIELDS)]
    last = pd.Series(_seconds(activity["at"]), index=activity["row"].to_numpy())
    out["last_activity"] = _per_row(last.groupby(level=0).max(), n)
    out["has_history"] = has_history
    return out


# ---------------------------------------------------------------------------------------------
# Cross-item signals (frame + context)
# ---------------------------------------------------------------------------------------------


def _group_codes(*keys: pd.Series) -> np.ndarray:
    """One integer per distinct combination of key values (``-1`` when any key is empty)."""
    frame = pd.DataFrame({f"k{i}": k.to_numpy(dtype=object) for i, k in enumerate(keys)})
    empty = np.zeros(len(frame), dtype=bool)
    for name in frame.columns:
        empty |= (frame[name] == "").to_numpy()
    codes = frame.groupby(list(frame.columns), sort=False, dropna=False).ngroup().to_numpy()
    return np.where(empty, -1, codes)


def _earlier_within(codes: np.ndarray, seconds: np.ndarray, window_s: float) -> np.ndarray:
    """Per item: how many items of the same group were created in the ``window_s`` before it.

    Sorted once by (group, time); a binary search per item finds the window's start, so the
    whole count is two numpy calls whatever the frame's size.
    """
    n = len(codes)
    valid = (codes >= 0) & ~np.isnan(seconds)
    out = np.full(n, np.nan)
    if not valid.any():
        return out
    idx = np.flatnonzero(valid)
    order = np.lexsort((seconds[idx], codes[idx]))
    g = codes[idx][order].astype(np.float64)
    t = seconds[idx][order]
    # Compose (group, time) into one sortable float: groups are far apart on the time axis.
    span = (np.nanmax(t) - np.nanmin(t)) + window_s * 4 + 1.0
    key = g * span + (t - np.nanmin(t))
    start = np.searchsorted(key, key - window_s, side="left")
    same_second = np.searchsorted(key, key, side="left")  # ties are not "earlier"
    counts = same_second - start
    out[idx[order]] = counts
    return out


def _typical(
    values: np.ndarray,
    usable: np.ndarray,
    keys: list[np.ndarray],
    min_group: int,
) -> np.ndarray:
    """Per item: the median of ``values`` over usable items sharing the most specific key that
    has at least ``min_group`` of them; NaN when none does."""
    n = len(values)
    out = np.full(n, np.nan)
    for key in keys:
        todo = np.isnan(out)
        if not todo.any():
            break
        frame = pd.DataFrame({"key": key[usable], "value": values[usable]})
        frame = frame[frame["key"] >= 0]
        stats = frame.groupby("key")["value"].agg(["median", "size"])
        stats = stats[stats["size"] >= min_group]
        if stats.empty:
            continue
        found = pd.Series(key).map(stats["median"]).to_numpy(dtype=float)
        out = np.where(todo, found, out)
    return out


# ---------------------------------------------------------------------------------------------
# The frame's signals
# ---------------------------------------------------------------------------------------------


def _text_or_field(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.Series:
    """The first of ``names`` found as a column or inside the ``fields`` dicts, lower-case."""
    n = len(frame)
    out = pd.Series([""] * n, dtype=object)
    for name in names:
        if name in frame.columns:
            values = col.key_text(frame, name)
            out = out.where(out != "", values)
    fields = col.column(frame, "fields")
    if fields is not None:
        cells = [col.parse_json_cell(c) for c in fields]
        for name in names:
            values = pd.Series(
                [
                    " ".join(col.field_values(c.get(name))) if isinstance(c, dict) else ""
                    for c in cells
                ],
                dtype=object,
            )
            out = out.where(out != "", values)
    return out


def _has_source(frame: pd.DataFrame, names: tuple[str, ...]) -> bool:
    """Whether the frame carries any of ``names`` as a column or as a platform field."""
    if any(name in frame.columns for name in names):
        return True
    fields = col.column(frame, "fields")
    if fields is None:
        return False
    return any(
        isinstance(cell, dict) and any(name in cell for name in names)
        for cell in (col.parse_json_cell(c) for c in fields)
    )


def is_howto(frame: pd.DataFrame) -> np.ndarray:
    """Usage or how-to questions (by category, kind or the wording of the title)."""
    category = col.key_text(frame, "category")
    kind = col.key_text(frame, "kind")
    request_type = col.key_text(frame, "request_type")
    titles = col.text(frame, "title", 300)
    # Most titles hold none of the question words: a cheap substring test spares the regex.
    lowered = pd.Series([title.lower() for title in titles.tolist()], dtype=object)
    hint = _HOWTO_HINT_RE.search
    maybe = np.fromiter(
        (hint(title) is not None for title in lowered.tolist()), dtype=bool, count=len(lowered)
    )
    worded = np.zeros(len(titles), dtype=bool)
    if maybe.any():
        worded[maybe] = _matches(lowered[maybe], _HOWTO_RE)
    by_field = (
        category.isin(_HOWTO_CATEGORIES)
        | kind.isin({"question", "how-to", "howto"})
        | request_type.str.contains(r"\bhelp\b|\bquestion\b|\bayuda\b", regex=True)
    ).to_numpy()
    return by_field | worded


def _lost_hours(
    frame: pd.DataFrame,
    resolution_hours: np.ndarray,
    howto: np.ndarray,
    settings: ExperienceSettings,
) -> np.ndarray:
    """users affected (by priority) × working hours elapsed × share of their work lost."""
    lost = settings.lost_time
    rank = priority_rank(col.text(frame, "priority"))
    users = pd.Series(rank).map({float(k): v for k, v in lost.users_by_priority.items()})
    users = users.fillna(lost.users_by_priority.get(3, 1.0)).to_numpy(dtype=float)
    kind = col.key_text(frame, "kind").to_numpy(dtype=object)
    is_request = np.isin(kind, list(_REQUEST_KINDS))
    share = np.where(
        howto,
        lost.loss_share["howto"],
        np.where(is_request, lost.loss_share["request"], lost.loss_share["defect"]),
    )
    working = np.minimum(resolution_hours, lost.cap_hours) * lost.workday_hours / 24.0
    return users * working * share


def _other_items(frame: pd.DataFrame, context: pd.DataFrame | None) -> pd.DataFrame | None:
    """The context without the frame's own items (a re-pulled item is in both), or None."""
    if context is None or not len(context):
        return None
    if "id" in frame.columns and "id" in context.columns:
        def keys(data: pd.DataFrame) -> pd.Series:
            return col.text(data, "source") + "\x1f" + col.text(data, "id")

        context = context[~keys(context).isin(set(keys(frame))).to_numpy()]
    return context if len(context) else None


def _context_response_hours(ctx: pd.DataFrame) -> np.ndarray:
    """First response hours of context rows: their own column, or their ``signals`` JSON."""
    direct = col.column(ctx, "first_response_hours")
    if direct is not None:
        return col.numbers(ctx, "first_response_hours")
    cells = col.column(ctx, "signals")
    if cells is None:
        return np.full(len(ctx), np.nan)
    values = []
    for cell in cells:
        cell = col.parse_json_cell(cell)
        value = cell.get("first_response_hours") if isinstance(cell, dict) else None
        values.append(float(value) if isinstance(value, (int, float)) else np.nan)
    return np.asarray(values, dtype=float)


def _sla_target_hours(frame: pd.DataFrame) -> np.ndarray:
    """Hours from creation to the SLA's planned end (``sla_planned_end`` / ``sla_due``, as a
    column or platform field); NaN where there is none."""
    names = ("sla_planned_end", "sla_due", "due_date")
    if not _has_source(frame, names):
        return np.full(len(frame), np.nan)
    planned = _parse_text_timestamps(_text_or_field(frame, names))
    hours = _hours(planned - col.timestamps(frame, "created"))
    hours[hours <= 0] = np.nan
    return hours


def _parse_text_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps from text cells (``""`` → NaT)."""
    return col.parse_timestamps(values.where(values != "", None))


def _typicals(
    frame: pd.DataFrame,
    ctx: pd.DataFrame | None,
    kind: pd.Series,
    moment: np.ndarray,
    duration: np.ndarray,
    is_open: np.ndarray,
    response: np.ndarray,
    answered: np.ndarray,
    settings: ExperienceSettings,
    use_frame: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Typical resolution and first-response hours for each row: the median over similar items
    (same kind and priority; else same kind; else same moment) in the reference population,
    once a group has ``min_group_size`` of them; else the configured targets.

    The reference population is the context (the instance's recent history), plus the frame
    itself when ``use_frame`` (a whole file, a whole world). A sync page alone is never it:
    an item's score would then depend on which page it arrived in, and change, and be written
    again, every time it is pulled with different neighbours.
    """
    n = len(frame)
    priority = pd.Series(priority_rank(col.text(frame, "priority"))).fillna(0).astype(int)
    if ctx is None:
        all_kind, all_priority = kind, priority
        all_moment = pd.Series(moment, dtype=object)
        all_duration, resolved_ok = duration, ~is_open & ~np.isnan(duration) & use_frame
        all_response, response_ok = response, answered & ~np.isnan(response) & use_frame
    else:
        all_kind = pd.concat([kind, col.key_text(ctx, "kind")],
                             ignore_index=True)
        c_priority = pd.Series(priority_rank(col.text(ctx, "priority"))).fillna(0).astype(int)
        all_priority = pd.concat([priority, c_priority], ignore_index=True)
        all_moment = pd.concat(
            [pd.Series(moment, dtype=object), col.key_text(ctx, "moment")],
            ignore_index=True,
        )
        c_duration = _hours(col.timestamps(ctx, "resolved") - col.timestamps(ctx, "created"))
        all_duration = np.concatenate([duration, c_duration])
        resolved_ok = np.concatenate(
            [~is_open & ~np.isnan(duration) & use_frame,
             ~np.isnan(c_duration) & (c_duration >= 0)]
        )
        c_response = _context_response_hours(ctx)
        all_response = np.concatenate([response, c_response])
        response_ok = np.concatenate(
            [answered & ~np.isnan(response) & use_frame, ~np.isnan(c_response)]
        )
    keys = [
        _group_codes(all_kind, all_priority.astype(str)),
        _group_codes(all_kind),
        _group_codes(all_moment.fillna("").astype(str)),
    ]
    typical = _typical(all_duration, resolved_ok, keys, settings.min_group_size)[:n]
    # Without a population to compare with, the item's own SLA target is the next best
    # reference (ServiceNow task SLAs give their planned end).
    typical = np.where(np.isnan(typical), _sla_target_hours(frame), typical)
    configured = kind.map(settings.resolution_target_hours).to_numpy(dtype=float)
    by_moment = pd.Series(moment, dtype=object)
    fallback = by_moment.map({m: settings.age_target_days[m] * 24.0 for m in MOMENTS})
    typical = np.where(~np.isnan(configured), configured, typical)
    typical = np.where(np.isnan(typical), fallback.to_numpy(dtype=float), typical)
    typical_response = _typical(all_response, response_ok, keys, settings.min_group_size)[:n]
    response_fallback = by_moment.map(settings.response_target_hours).to_numpy(dtype=float)
    typical_response = np.where(np.isnan(typical_response), response_fallback, typical_response)
    # A median of a few seconds (auto-assignment) would make any human pace look slow.
    typical_response = np.maximum(typical_response, _MIN_TYPICAL_RESPONSE_HOURS)
    return typical, typical_response


def _languages(frame: pd.DataFrame) -> pd.Series:
    """``sentiment.normalize_language`` of each row's language, each distinct value once."""
    codes, uniques = pd.factorize(col.text(frame, "language"), sort=False)
    names = np.asarray([sent.normalize_language(u) for u in uniques.tolist()] + [""],
                       dtype=object)
    return pd.Series(names[codes], dtype=object)


def compute_signals(
    frame: pd.DataFrame,
    comments: pd.DataFrame,
    history: pd.DataFrame,
    now: datetime | None,
    chasers: re.Pattern[str] | None = None,
    settings: ExperienceSettings | None = None,
    moments: np.ndarray | None = None,
    context: pd.DataFrame | None = None,
    frame_is_population: bool = False,
    stored: StoredNeighbours | None = None,
    cross_context: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row of signals per frame row (positional ``RangeIndex``).

    ``comments`` and ``history`` are ``columns.comments_table(frame)`` and
    ``columns.history_table(frame)``; ``chasers`` is ``chaser_regex(...)`` (built-ins when
    ``None``); ``moments`` the rows' moments (moment-specific indicators are NaN elsewhere;
    when ``None`` every indicator is computed for every row). ``context`` holds other recent
    items (same recognised columns, e.g. from the state store) that cross-item signals may
    look at; it is never scored. ``frame_is_population`` lets the frame's own items be the
    reference too (right for a whole file; wrong for a sync page, whose neighbours change from
    one sync to the next): without it or a context, repeat contact and caused incidents are
    unknown. ``stored`` (a sync's state store) counts repeat contacts and caused incidents
    over every stored item instead of ``context``: then those two compare with the frame,
    ``cross_context`` (rows not in the store yet, e.g. a dry run's earlier pages) and the
    store, and ``context`` serves only the typical durations. Columns: ``settings.SIGNALS``
    plus ``_open`` (still open), ``_typical_hours`` (the typical resolution hours used) and
    ``_kind``.
    """
    settings = settings or ExperienceSettings()
    n = len(frame)
    moment = (
        np.asarray(moments, dtype=object) if moments is not None else np.full(n, "", dtype=object)
    )
    any_moment = moments is None

    def only(name: str, values: np.ndarray) -> np.ndarray:
        return values if any_moment else np.where(moment == name, values, np.nan)

    # -- sentiment ------------------------------------------------------------------------
    languages = _languages(frame)
    descriptions = col.text(frame, "description")
    voice = sent.score_comments(comments, languages)
    sentiment = sent.requester_sentiment(descriptions, comments, languages, voice)
    public = ~comments["internal"].to_numpy(dtype=bool)
    others = ((comments["role"] == "other").to_numpy() & public)
    other_rows = comments["row"].to_numpy()[others]
    participants = sent.weighted_voice(
        n,
        other_rows,
        pd.Series(other_rows).groupby(other_rows).cumcount().to_numpy() + 1.0,
        voice[others],
    )
    # A complaint stays a complaint even when a later "thanks" lifts the average.
    complaining = voice <= COMPLAINT_AT
    complaints = np.bincount(comments["row"].to_numpy()[complaining], minlength=n).astype(float)
    agents = comments[comments["role"] == "agent"]
    concern = np.bincount(
        agents["row"].to_numpy()[_matches(agents["text"], _CONCERN_RE, _CONCERN_HINT)],
        minlength=n,
    ).astype(float)

    # -- time ------------------------------------------------------------------------------
    created = col.timestamps(frame, "created")
    resolved = col.timestamps(frame, "resolved")
    has_resolved_column = col.column(frame, "resolved") is not None
    end = _end_times(created, resolved, now)
    is_open = (resolved.isna() & end.notna()).to_numpy() if has_resolved_column else np.zeros(
        n, dtype=bool
    )
    duration = _hours(end - created) if has_resolved_column else np.full(n, np.nan)
    duration[duration < 0] = np.nan  # resolved before created: bad data, not a fast fix
    age_days = duration / 24.0

    talk = _conversation(comments, n, created, end, is_open)
    hist = _history_signals(history, n, end, settings.hold_states)
    has_history = hist["has_history"]

    # First response: IT's first visible action, a public reply or taking the item (assigning
    # it to a person), as response SLAs measure it.
    created_s = _seconds(created)
    first_touch = np.fmin(talk["first_agent"], hist["first_assign"])
    response = (first_touch - created_s) / _HOUR
    # Still open and nobody from IT has acted yet: the wait so far is the best we know.
    untouched = np.isnan(first_touch) & is_open
    response = np.where(untouched, (_seconds(end) - created_s) / _HOUR, response)
    response[response < 0] = np.nan
    talk["first_response_hours"] = response
    talk["answered"] = ~np.isnan(first_touch)

    reassignments = col.counts(frame, "reassignment_count")
    reassignments = np.where(np.isnan(reassignments) & has_history, hist["reassign"], reassignments)
    reopens = col.counts(frame, "reopen_count")
    reopens = np.where(np.isnan(reopens) & has_history, hist["reopen"], reopens)

    # -- typical durations (category median) -------------------------------------------------
    ctx = _other_items(frame, context)
    kind = col.key_text(frame, "kind")
    # Typical durations come from the whole history, the stored versions of this frame's own
    # items included: a table whose items all arrive in one page still has a reference, and
    # an item's reference does not depend on which page it arrives in. Only a whole
    # population (a file) is its own reference, without the context's copies of its items.
    reference = ctx if frame_is_population or context is None or not len(context) else context
    typical, typical_response = _typicals(
        frame, reference, kind, moment, duration, is_open, talk["first_response_hours"],
        talk["answered"], settings, frame_is_population,
    )

    # -- repeat contact -----------------------------------------------------------------------
    # Items are compared with each other when there is a population: a file, or a history
    # passed by the caller, even an empty one (a first sync's first batch: the frame and the
    # history so far, like every later batch). Only without any history are they unknown.
    cross_items = frame_is_population or context is not None or stored is not None
    near = ctx if stored is None else _other_items(frame, cross_context)
    repeat = _repeat_contact(frame, near, created, settings.repeat_contact_days, stored)

    # -- moment-specific indicators ----------------------------------------------------------
    howto = is_howto(frame)
    lost = _lost_hours(frame, duration, howto, settings)
    # The store is asked only for the rows whose count is kept (evolution's indicator).
    caused = _caused_incidents(frame, near, created, resolved, kind, settings, stored,
                               None if any_moment else moment == "evolution")
    if not cross_items:
        repeat = np.full(n, np.nan)
        caused = np.full(n, np.nan)
    failed = _failed_changes(frame, settings.failed_change_values)
    last_comment = pd.Series(
        _seconds(comments["when"]) if len(comments) else np.zeros(0),
        index=comments["row"].to_numpy(),
    )
    last_activity = np.fmax(
        _per_row(last_comment.groupby(level=0).max(), n), hist["last_activity"]
    )
    last_activity = np.fmax(last_activity, _seconds(created))
    stalled = np.where(is_open, (_seconds(end) - last_activity) / _DAY, np.nan)
    stalled = np.where(stalled < 0, 0.0, stalled)

    channel_switches = _channel_switches(frame, comments, n)

    signals = pd.DataFrame(
        {
            "sentiment": np.round(sentiment, 3),
            "participants_sentiment": np.round(participants, 3),
            "complaints": complaints,
            "agent_concern": concern,
            "chasers": count_chasers(comments, n, chasers or chaser_regex()),
            "unanswered_questions": talk["unanswered_questions"],
            "wait_hours": np.round(talk["wait_hours"], 1),
            "first_response_hours": np.round(talk["first_response_hours"], 1),
            "resolution_hours": np.round(duration, 1),
            "reopen_count": reopens,
            "reassignment_count": reassignments,
            "pingpong": np.where(has_history, hist["pingpong"], np.nan),
            "sla_breached": col.flags(frame, "sla_breached"),
            "priority_raised": np.where(has_history, hist["priority_raised"], np.nan),
            "on_hold_hours": np.round(np.where(has_history, hist["on_hold_hours"], np.nan), 1),
            "repeat_contact": repeat,
            "requester_interactions": talk["requester_interactions"],
            "channel_switches": channel_switches,
            "survey_score": np.round(col.survey_scores(frame), 3),
            "lost_hours": np.round(only("operation", lost), 1),
            "age_days": np.round(age_days, 1),
            "howto": only("operation", howto.astype(float)),
            "caused_incidents": only("evolution", caused),
            "failed_change": only("evolution", failed),
            "rework": only("evolution", np.where(has_history, hist["rework"], np.nan)),
            "business_participants": only("innovation", talk["business_participants"]),
            "business_share": np.round(only("innovation", talk["business_share"]), 2),
            "stalled_days": np.round(np.where(any_moment | (moment != "operation"), stalled,
                                              np.nan), 1),
            "_open": is_open,
            "_typical_hours": typical,
            "_typical_response_hours": typical_response,
            "_kind": kind.to_numpy(dtype=object),
            "_answered": talk["answered"],
            "_waiting_now": talk["waiting_now"],
            "_pingpong_groups": hist["pingpong_groups"],
        }
    )
    return signals


def _contact_keys(data: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """What repeat contact compares: the requester, and what the item is about (its service,
    else ``c:`` and its category; ``""`` when neither is known)."""
    requester = col.key_text(data, "requester")
    service = col.key_text(data, "service")
    category = col.key_text(data, "category")
    about = service.where(service != "", "c:" + category)
    about = about.where(about != "c:", "")
    return requester, about


def _repeat_contact(
    frame: pd.DataFrame, ctx: pd.DataFrame | None, created: pd.Series, days: float,
    stored: StoredNeighbours | None = None,
) -> np.ndarray:
    """Earlier items from the same requester about the same service (else category) within
    ``days`` before this one; NaN when the requester or the date is unknown."""
    requester, about = _contact_keys(frame)
    n = len(frame)
    seconds = _seconds(created)
    own_seconds = seconds
    if ctx is not None:
        c_requester, c_about = _contact_keys(ctx)
        requester = pd.concat([requester, c_requester], ignore_index=True)
        about = pd.concat([about, c_about], ignore_index=True)
        seconds = np.concatenate([seconds, _seconds(col.timestamps(ctx, "created"))])
    codes = _group_codes(requester, about)
    out = _earlier_within(codes, seconds, days * _DAY)[:n]
    if stored is not None:
        rows = np.flatnonzero(~np.isnan(out))
        if len(rows):
            keys_r = requester.to_numpy(dtype=object)[rows]
            keys_a = about.to_numpy(dtype=object)[rows]
            end = _micros(own_seconds[rows])
            out[rows] += stored.contacts(
                [_stored_key(k) for k in keys_r], [_stored_key(k) for k in keys_a],
                _datetimes(end - round(days * _DAY * 1e6)), _datetimes(end),
            )
    return out


#: Keys stored for ``StoredNeighbours`` are cut to this many characters (an index holds them).
STORED_KEY_CHARS = 200


#: What no database stores in text (PostgreSQL refuses NUL; no encoding holds a lone surrogate).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _stored_key(value: str) -> str:
    """A key as stored and as looked up: its first ``STORED_KEY_CHARS`` characters, with
    what no database stores replaced by U+FFFD (the same for the stored side and the
    batch's, so they still meet)."""
    return _UNSTORABLE.sub("\ufffd", value[:STORED_KEY_CHARS])


def stored_keys(rows: pd.DataFrame) -> pd.DataFrame:
    """Per stored row (the enriched rows a sync stores: ``requester``, ``service``,
    ``category``, ``kind``, ``caused_by``), the keys ``StoredNeighbours`` finds it by:
    ``requester_key`` and ``about_key`` (repeat contact), ``service_key`` and ``kind_key``
    (incidents after a change), ``caused_by_key`` (incidents linked to a change); None where
    empty. The same normalisation the signals apply to a context frame."""
    requester, about = _contact_keys(rows)
    out = {
        "requester_key": requester,
        "about_key": about,
        "service_key": col.key_text(rows, "service"),
        "kind_key": col.key_text(rows, "kind"),
        "caused_by_key": col.key_text(rows, "caused_by"),
    }
    return pd.DataFrame(
        {name: [_stored_key(v) if v else None for v in values.tolist()]
         for name, values in out.items()}
    )


class StoredNeighbours(Protocol):
    """Counts over the items a state store holds (``stored_keys`` of each), for the cross-item
    signals of a frame. The implementation leaves out the frame's own items and any other it
    was told to (their current versions are in the frame or its context)."""

    def contacts(self, requester: Sequence[str], about: Sequence[str],
                 start: Sequence[datetime], end: Sequence[datetime]) -> np.ndarray:
        """Per entry: items with that ``requester_key`` and ``about_key``, created in
        [start, end)."""
        ...

    def incidents(self, service: Sequence[str], start: Sequence[datetime],
                  end: Sequence[datetime], kinds: Sequence[str]) -> np.ndarray:
        """Per entry: items of one of ``kinds`` with that ``service_key``, created in
        [start, end]."""
        ...

    def links(self, changes: Sequence[str], kinds: Sequence[str]) -> dict[str, int]:
        """Items of one of ``kinds`` per ``caused_by_key`` among ``changes``."""
        ...

    def linking_sources(self, sources: Sequence[str], kinds: Sequence[str]) -> set[str]:
        """Those of ``sources`` that hold an item of one of ``kinds`` with a ``caused_by_key``."""
        ...


def _micros(seconds: np.ndarray) -> np.ndarray:
    """Float epoch seconds (``_seconds``, exact to the microsecond) as integer microseconds."""
    return np.round(seconds * 1e6).astype(np.int64)


_MIN_MICROS = int((datetime(1, 1, 2) - datetime(1970, 1, 1)).total_seconds()) * 1_000_000
_MAX_MICROS = int((datetime(9999, 12, 30) - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


def _datetimes(micros: np.ndarray) -> list[datetime]:
    """Integer epoch microseconds as aware UTC datetimes, held within what datetime holds."""
    clipped = np.clip(micros, _MIN_MICROS, _MAX_MICROS).astype("datetime64[us]")
    return [value.replace(tzinfo=UTC) for value in clipped.tolist()]


def _caused_incidents(
    frame: pd.DataFrame,
    ctx: pd.DataFrame | None,
    created: pd.Series,
    resolved: pd.Series,
    kind: pd.Series,
    settings: ExperienceSettings,
    stored: StoredNeighbours | None = None,
    asked: np.ndarray | None = None,
) -> np.ndarray:
    """Incidents caused by each change.

    By the issue's definition: incidents on the same service (or configuration item) created
    within ``caused_incident_days`` after the change was implemented (resolved). Where a source
    links incidents to changes (a ``caused_by`` column or platform field on its incidents), a
    change of that source counts the larger of its linked incidents and that window's count.
    Items that are not changes get NaN from the caller's moment mask. ``stored`` adds the
    state store's incidents to those of the frame and ``ctx``, for the rows ``asked`` marks
    (all when None; the others' counts are left to the frame and ``ctx``).
    """
    n = len(frame)
    data = frame if ctx is None else pd.concat([frame, ctx], ignore_index=True)
    all_kind = col.key_text(data, "kind")
    incident = all_kind.isin(settings.incident_kinds).to_numpy()
    out = _caused_in_window(frame, data, incident, resolved, settings, stored, asked)
    # Explicit links add what proximity misses (an incident on another service, or later).
    sources = col.text(data, "source").to_numpy(dtype=object)
    per_change = pd.Series(dtype=float)
    linked: set[str] = set()
    if _has_source(data, ("caused_by", "caused_by_change")):
        links = _text_or_field(data, ("caused_by", "caused_by_change"))
        has_link = incident & (links != "").to_numpy()
        # Only sources whose incidents carry links: a Jira change next to ServiceNow
        # incidents still gets the window count.
        linked = set(np.unique(sources[has_link]).tolist())
        per_change = links[has_link].value_counts().astype(float)
    ids = [col.key_text(frame, name) for name in ("key", "id")]
    if stored is not None:
        own = sorted(set(sources[:n].tolist()))
        linked |= stored.linking_sources(own, settings.incident_kinds)
        if linked & set(own):
            keep = np.ones(n, dtype=bool) if asked is None else asked
            wanted = sorted({_stored_key(v) for s in ids for v in s[keep].tolist() if v})
            found = pd.Series(stored.links(wanted, settings.incident_kinds), dtype=float)
            per_change = per_change.add(found, fill_value=0.0)
    linking = np.isin(sources[:n], sorted(linked))
    if linking.any() and len(per_change):
        counts = np.zeros(n)
        for values in ids:
            if stored is not None:
                values = values.map(_stored_key)
            counts = np.maximum(counts, values.map(per_change).fillna(0).to_numpy(dtype=float))
        out = np.where(linking, np.fmax(counts, out), out)
    return out


def _caused_in_window(
    frame: pd.DataFrame,
    data: pd.DataFrame,
    incident: np.ndarray,
    resolved: pd.Series,
    settings: ExperienceSettings,
    stored: StoredNeighbours | None = None,
    asked: np.ndarray | None = None,
) -> np.ndarray:
    """Per frame row: incidents on its service created within ``caused_incident_days`` after
    it was implemented (resolved); NaN without a service. ``stored`` adds the store's, for the
    rows ``asked`` marks (all when None)."""
    n = len(frame)
    service = _text_or_field(data, ("service", "cmdb_ci", "configuration_item"))
    when = _seconds(col.timestamps(data, "created"))
    is_change = ~incident
    implemented = _seconds(resolved)
    window_s = settings.caused_incident_days * _DAY
    # Incidents sorted by (service, created); for each change count those in its window.
    codes = _group_codes(service)
    inc = np.flatnonzero(incident & (codes >= 0) & ~np.isnan(when))
    out = np.full(n, np.nan)
    change_rows = np.flatnonzero(is_change[:n] & (codes[:n] >= 0) & ~np.isnan(implemented))
    out[np.flatnonzero(is_change[:n] & (codes[:n] >= 0))] = 0.0
    if not len(change_rows):
        return out
    if len(inc):
        span = np.nanmax(when) - np.nanmin(when) + window_s * 4 + 1.0
        base = np.nanmin(when)
        key = np.sort(codes[inc] * span + (when[inc] - base))
        start = codes[change_rows] * span + (implemented[change_rows] - base)
        stop = start + window_s
        out[change_rows] = np.searchsorted(key, stop, side="right") - np.searchsorted(
            key, start, side="left"
        )
    if stored is not None:
        rows = change_rows if asked is None else change_rows[asked[change_rows]]
        begin = _micros(implemented[rows])
        out[rows] += stored.incidents(
            [_stored_key(v) for v in service.to_numpy(dtype=object)[rows]],
            _datetimes(begin), _datetimes(begin + round(window_s * 1e6)),
            settings.incident_kinds,
        )
    return out


def _failed_changes(frame: pd.DataFrame, values: list[str]) -> np.ndarray:
    """1 when a close code / resolution / result / state says the change failed or was backed
    out, 0 when such a field exists and does not, NaN when the data has no such field."""
    names = ("close_code", "resolution", "change_result", "u_close_code", "close_status")
    if not _has_source(frame, names):
        return np.full(len(frame), np.nan)
    text = _text_or_field(frame, names).map(lx.deaccent)
    state = col.key_text(frame, "state").map(lx.deaccent)
    pattern = "|".join(re.escape(lx.deaccent(v)) for v in values) or r"(?!x)x"
    failed = text.str.contains(pattern, regex=True) | state.str.contains(pattern, regex=True)
    return failed.to_numpy(dtype=float)


def _channel_switches(frame: pd.DataFrame, comments: pd.DataFrame, n: int) -> np.ndarray:
    """How often the requester changed channel (portal, email, phone, chat) between contacts.

    Read from a ``channel`` key on the comments, or a ``channels`` column (a list per item in
    contact order); NaN when the data has no channel information (ServiceNow's ``contact_type``
    gives only the first channel, so one value cannot show a switch).
    """
    values = col.column(frame, "channels")
    if values is not None:
        lists = [col.text_list(v) for v in values]
        exploded = pd.Series(lists, dtype=object).explode().dropna()
        exploded = exploded[exploded != ""]
        if not exploded.empty:
            changed = exploded != exploded.groupby(level=0).shift()
            first = ~exploded.index.duplicated(keep="first")
            switches = (changed.to_numpy() & ~first).astype(float)
            sums = pd.Series(switches, index=exploded.index).groupby(level=0).sum()
            out = _per_row(sums, n)
            return np.where(np.isnan(out) & np.array([bool(x) for x in lists]), 0.0, out)
    if "channel" in comments.columns:
        requester = comments[(comments["role"] == "requester") & (comments["channel"] != "")]
        if len(requester):
            channel = requester["channel"]
            previous = channel.groupby(requester["row"]).shift()
            switched = (previous.notna() & (channel != previous)).to_numpy()
            rows = requester["row"].to_numpy()
            sums = np.bincount(rows[switched], minlength=n).astype(float)
            return np.where(np.bincount(rows, minlength=n) > 0, sums, np.nan)
    return np.full(n, np.nan)


def signal_dicts(signals: pd.DataFrame, extra: dict[str, np.ndarray] | None = None
                 ) -> list[dict[str, object]]:
    """The per-row JSON-able ``signals`` objects: counts as ints, flags as bools, NaN as null.

    ``extra`` adds more columns (name → values; bool arrays become JSON booleans) after the
    signals, e.g. the watermelon flag that needs the score.
    """
    n = len(signals)
    columns: dict[str, list[object]] = {}
    for name in SIGNALS:
        if name not in signals:
            continue
        data = signals[name].to_numpy(dtype=float)
        present = ~np.isnan(data)
        kind = SIGNAL_TYPES[name]
        if kind is int:
            columns[name] = [int(v) if ok else None for v, ok in zip(data.tolist(),
                                                                     present.tolist())]
        elif kind is bool:
            columns[name] = [bool(v) if ok else None for v, ok in zip(data.tolist(),
                                                                      present.tolist())]
        else:
            columns[name] = [v if ok else None for v, ok in zip(data.tolist(), present.tolist())]
    for name, values in (extra or {}).items():
        array = np.asarray(values)
        columns[name] = array.tolist() if array.dtype == bool else [
            None if isinstance(v, float) and np.isnan(v) else v for v in array.tolist()
        ]
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())] if n else []


def _value_texts(values: np.ndarray, kind: type) -> np.ndarray | list[str]:
    """JSON text of each (finite) value of one signal, written as ``kind``.

    A signal takes few distinct values in a chunk (counts, flags, hours rounded to 0.1): each
    distinct value is written once and the texts are taken by position. Zero is written
    "-0.0" or "0.0" by its sign, which ``np.unique`` does not tell apart; a float column with
    a negative zero is written value by value."""
    if kind is float and bool((np.signbit(values) & (values == 0)).any()):
        return list(map(float.__repr__, values.tolist()))
    distinct, position = np.unique(values, return_inverse=True)
    if kind is int:
        texts = list(map(int.__repr__, map(int, distinct.tolist())))
    elif kind is bool:
        texts = ["true" if v else "false" for v in distinct.tolist()]
    else:
        texts = list(map(float.__repr__, distinct.tolist()))
    return np.asarray(texts, dtype=object)[position.reshape(-1)]


def signal_json_texts(
    signals: pd.DataFrame, extra: dict[str, np.ndarray] | None = None
) -> list[str] | None:
    """The JSON text of each ``signal_dicts`` row, exactly as ``frame.to_json_text`` writes
    it, built a column at a time (no dict per row): what a file holds in ``signals``.

    ``None`` when a value cannot be written that way (an infinite number, an ``extra`` column
    of another type): the caller then writes ``signal_dicts``.
    """
    import json

    n = len(signals)
    if not n:
        return []
    names: list[str] = []
    texts: list[np.ndarray] = []
    for name in SIGNALS:
        if name not in signals:
            continue
        data = signals[name].to_numpy(dtype=float)
        present = ~np.isnan(data)
        if np.isinf(data).any():
            return None
        kind = SIGNAL_TYPES[name]
        column = np.full(n, "null", dtype=object)
        column[present] = _value_texts(data[present], kind)
        names.append(name)
        texts.append(column)
    for name, raw in (extra or {}).items():
        array = np.asarray(raw)
        if array.dtype != bool:
            return None
        names.append(name)
        texts.append(np.where(array, "true", "false").astype(object))
    if not names:
        return ["{}"] * n
    template = "{" + ", ".join(
        json.encoder.encode_basestring(name).replace("%", "%%") + ": %s" for name in names
    ) + "}"
    return [template % row for row in zip(*(column.tolist() for column in texts))]

