"""Experience score 0-100 (higher is better), its level, and the reasons in plain words.

Each signal has a *severity*: 0 (no harm) to 1 (as bad as it gets), or -1..1 for the signals
that can also be good news (sentiment, survey answers). A signal moves the score by its
severity times its weight for the item's moment (``ExperienceSettings.weights``):

- counts saturate, so the first one costs most and none costs more than its weight:
  ``n / (n + k)`` (k = 1 for chasers, reopens, ping-pong, priority raises, caused incidents and
  rework; 2.5 for reassignments; 2 for repeat contacts and channel switches);
- effort counts only past the usual two requester messages: ``m / (m + 3)``, m = messages - 2;
- waiting and stalling grow towards 1: ``x / (x + target)`` (half at the moment's target);
- durations compare with what is typical for the same kind (and priority): ``log2(ratio) / 2``
  clipped to 0..1, so twice the usual costs half the weight and four times costs all of it;
- ``sla_breached`` and ``failed_change`` cost their full weight;
- sentiment (-1..1) and survey answers (``2 x score - 1``) move it both ways.

``score = 100 - penalties + min(bonuses, penalties) / 2``, clipped to 0..100: good news can
win back at most half of what the bad news cost, so a kind "thanks" never hides three chasers,
a further negative signal never raises the score, and an item with nothing known scores
100 (momentos reports risk it can see, not risk it imagines).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from momentos.enrichment.settings import SIGNALS, ExperienceSettings
from momentos.models import MOMENTS

#: ``n / (n + k)`` saturation constants of the count signals.
SATURATION: dict[str, float] = {
    "complaints": 1.0,
    "agent_concern": 1.0,
    "chasers": 1.0,
    "unanswered_questions": 1.0,
    "reopen_count": 1.0,
    "reassignment_count": 2.5,
    "pingpong": 1.0,
    "priority_raised": 1.0,
    "repeat_contact": 2.0,
    "channel_switches": 2.0,
    "caused_incidents": 1.0,
    "rework": 1.0,
}
#: Requester messages that are part of any normal conversation, and the effort saturation.
_USUAL_INTERACTIONS = 2.0
_INTERACTION_SATURATION = 3.0
_HOLD_TARGET_HOURS = 48.0
_LOST_TARGET_HOURS = 40.0  # a working week of one person
#: Share of the penalties that positive signals can win back.
_BONUS_SHARE = 0.5
#: Contributions smaller than this many points are noise, not a reason worth reading.
_REASON_MIN_POINTS = 1.0

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "sentiment-": "negative requester sentiment ({x})",
        "sentiment+": "positive requester sentiment ({x})",
        "participants_sentiment-": "business participants sound negative ({x})",
        "participants_sentiment+": "business participants sound positive ({x})",
        "complaints": "{n} {complaint} from the business",
        "agent_concern": "IT's own notes flag an unhappy customer",
        "chasers": "requester chased {n} {times} for status",
        "unanswered_questions": "{n} {question} from the business left unanswered",
        "wait_open": "requester waiting {d} for an answer from IT",
        "wait_closed": "requester waited {d} for an answer from IT",
        "first_response": "IT took {d} to pick it up (usual: {t})",
        "no_response": "nobody in IT has picked it up after {d}",
        "resolution_open": "open {d}, {r}× the usual for {kind}",
        "resolution_closed": "resolved in {d}, {r}× the usual for {kind}",
        "reopen_count": "reopened {n} {times}",
        "reassignment_count": "reassigned {n} {times}",
        "pingpong": "ping-pong between {groups}",
        "sla_breached": "SLA breached",
        "priority_raised": "priority raised {n} {times}",
        "on_hold_hours": "on hold waiting for the requester {d}",
        "repeat_contact": "{n} earlier {contacts} about the same service in {k} days",
        "requester_interactions": "{n} messages from the requester",
        "channel_switches": "requester changed channel {n} {times}",
        "survey_score-": "low survey score ({x}/5)",
        "survey_score+": "high survey score ({x}/5)",
        "lost_hours": "about {h} working hours lost",
        "age_open": "open {n} days (target {t})",
        "age_closed": "resolved in {n} days (target {t})",
        "caused_incidents": "{n} {incidents} on the same service after the change",
        "failed_change": "change failed or was backed out",
        "rework": "work went back {n} {times} to an earlier stage",
        "business_participants": "little business participation ({n} {people})",
        "business_share": "the business wrote only {p}% of the comments",
        "stalled_days": "no activity for {n} days",
        "none": "no negative signals",
        "once": "time",
        "many": "times",
        "question": "question",
        "question_many": "questions",
        "complaint": "complaint",
        "complaint_many": "complaints",
        "contact": "contact",
        "contacts": "contacts",
        "incident": "incident",
        "incidents": "incidents",
        "person": "person",
        "people": "people",
        "and": "and",
        "minutes": "{n} min",
        "hours": "{n} h",
        "days": "{n} days",
        "day": "1 day",
        "decimal": ".",
        "items": "items of this kind",
        "kinds": "incident:incidents|request:requests|service request:service requests|"
        "problem:problems|change:changes|bug:bugs|story:stories|task:tasks|epic:epics|"
        "idea:ideas|demand:demands|project:projects",
    },
    "es": {
        "sentiment-": "sentimiento negativo del solicitante ({x})",
        "sentiment+": "sentimiento positivo del solicitante ({x})",
        "participants_sentiment-": "los participantes de negocio se muestran negativos ({x})",
        "participants_sentiment+": "los participantes de negocio se muestran positivos ({x})",
        "complaints": "{n} {complaint} del negocio",
        "agent_concern": "las notas de IT avisan de un cliente descontento",
        "chasers": "el solicitante preguntó {n} {times} por el estado",
        "unanswered_questions": "{n} {question} del negocio sin respuesta",
        "wait_open": "el solicitante lleva {d} esperando respuesta de IT",
        "wait_closed": "el solicitante esperó {d} una respuesta de IT",
        "first_response": "IT tardó {d} en atenderlo (lo habitual: {t})",
        "no_response": "nadie de IT lo ha atendido tras {d}",
        "resolution_open": "abierto {d}, {r} veces lo habitual para {kind}",
        "resolution_closed": "resuelto en {d}, {r} veces lo habitual para {kind}",
        "reopen_count": "reabierto {n} {times}",
        "reassignment_count": "reasignado {n} {times}",
        "pingpong": "ping-pong entre {groups}",
        "sla_breached": "SLA incumplido",
        "priority_raised": "prioridad subida {n} {times}",
        "on_hold_hours": "en espera del solicitante {d}",
        "repeat_contact": "{n} {contacts} previos por el mismo servicio en {k} días",
        "requester_interactions": "{n} mensajes del solicitante",
        "channel_switches": "el solicitante cambió de canal {n} {times}",
        "survey_score-": "valoración baja en la encuesta ({x}/5)",
        "survey_score+": "valoración alta en la encuesta ({x}/5)",
        "lost_hours": "unas {h} horas de trabajo perdidas",
        "age_open": "abierto {n} días (objetivo {t})",
        "age_closed": "resuelto en {n} días (objetivo {t})",
        "caused_incidents": "{n} {incidents} en el mismo servicio tras el cambio",
        "failed_change": "cambio fallido o revertido",
        "rework": "el trabajo volvió {n} {times} a una fase anterior",
        "business_participants": "poca participación de negocio ({n} {people})",
        "business_share": "el negocio escribió solo el {p}% de los comentarios",
        "stalled_days": "sin actividad desde hace {n} días",
        "none": "sin señales negativas",
        "once": "vez",
        "many": "veces",
        "question": "pregunta",
        "question_many": "preguntas",
        "complaint": "queja",
        "complaint_many": "quejas",
        "contact": "contacto",
        "contacts": "contactos",
        "incident": "incidencia",
        "incidents": "incidencias",
        "person": "persona",
        "people": "personas",
        "and": "y",
        "minutes": "{n} min",
        "hours": "{n} h",
        "days": "{n} días",
        "day": "1 día",
        "decimal": ",",
        "items": "elementos de este tipo",
        "kinds": "incident:incidencias|request:solicitudes|service request:solicitudes|"
        "problem:problemas|change:cambios|bug:errores|story:historias|task:tareas|"
        "epic:épicas|idea:ideas|demand:demandas|project:proyectos",
    },
}

#: Signals that can also be good news (severity -1..1).
TWO_SIDED = frozenset({"sentiment", "participants_sentiment", "survey_score"})


def _moment_index(moments: np.ndarray | pd.Series) -> np.ndarray:
    """Position of each row's moment in ``MOMENTS``; anything else is judged as operation."""
    index = pd.Series(np.asarray(moments, dtype=object)).map({m: i for i, m in enumerate(MOMENTS)})
    return index.fillna(0).to_numpy(dtype=np.int64)


def _column(signals: pd.DataFrame, name: str) -> np.ndarray:
    if name not in signals:
        return np.full(len(signals), np.nan)
    return signals[name].to_numpy(dtype=float)


def severities(
    signals: pd.DataFrame, moments: np.ndarray | pd.Series, settings: ExperienceSettings
) -> np.ndarray:
    """Severity of every signal: an (n, len(SIGNALS)) array, negative = harm, positive = good
    news, 0 where the signal is missing (columns follow ``settings.SIGNALS``)."""
    moment_index = _moment_index(moments)
    age_target = np.array([settings.age_target_days[m] for m in MOMENTS])[moment_index]
    wait_target = np.array([settings.wait_target_hours[m] for m in MOMENTS])[moment_index]
    stall_target = np.array([settings.stall_days[m] for m in MOMENTS])[moment_index]
    typical = _column(signals, "_typical_hours")
    typical_response = _column(signals, "_typical_response_hours")

    def ratio_level(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = value / reference
            return -np.clip(np.log2(ratio) / 2.0, 0.0, 1.0)

    out = np.zeros((len(signals), len(SIGNALS)))
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, name in enumerate(SIGNALS):
            data = _column(signals, name)
            if name in SATURATION:
                level = -data / (data + SATURATION[name])
            elif name in ("sentiment", "participants_sentiment"):
                level = np.clip(data, -1.0, 1.0)
            elif name == "survey_score":
                level = 2.0 * np.clip(data, 0.0, 1.0) - 1.0
            elif name in ("sla_breached", "failed_change"):
                level = -np.clip(data, 0.0, 1.0)
            elif name == "wait_hours":
                level = -data / (data + wait_target)
            elif name == "first_response_hours":
                level = ratio_level(data, typical_response)
            elif name == "resolution_hours":
                level = ratio_level(data, typical)
            elif name == "on_hold_hours":
                level = -data / (data + _HOLD_TARGET_HOURS)
            elif name == "requester_interactions":
                extra = np.maximum(data - _USUAL_INTERACTIONS, 0.0)
                level = -extra / (extra + _INTERACTION_SATURATION)
            elif name == "lost_hours":
                level = -data / (data + _LOST_TARGET_HOURS)
            elif name == "age_days":
                level = -np.maximum(0.0, 1.0 - age_target / data)
            elif name == "business_participants":
                # Co-creation needs people from the business: none is the worst, two is fine.
                level = -np.clip((2.0 - data) / 2.0, 0.0, 1.0)
            elif name == "business_share":
                level = -np.clip((0.5 - data) / 0.5, 0.0, 1.0)
            elif name == "stalled_days":
                level = -data / (data + stall_target)
            else:  # howto: what IT learns, not a harm
                level = np.zeros(len(signals))
            out[:, j] = np.nan_to_num(level, nan=0.0)
    return out


def weight_table(settings: ExperienceSettings) -> np.ndarray:
    """(len(MOMENTS), len(SIGNALS)) weights in points."""
    return np.array([[settings.weights[m].get(s, 0.0) for s in SIGNALS] for m in MOMENTS])


def contributions(
    signals: pd.DataFrame, moments: np.ndarray | pd.Series, settings: ExperienceSettings
) -> np.ndarray:
    """Points each signal adds (positive) or takes away (negative): an (n, len(SIGNALS))
    array whose columns follow ``settings.SIGNALS``. Missing signals contribute 0."""
    weights = weight_table(settings)[_moment_index(moments)]
    return severities(signals, moments, settings) * weights


#: The score of an item with nothing known against it.
BASE_SCORE = 100.0


def _balance(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the penalties, the bonuses, and the part of the bonuses the score credits
    (``min(bonuses, penalties) / 2``)."""
    penalties = -np.minimum(points, 0.0).sum(axis=1)
    bonuses = np.maximum(points, 0.0).sum(axis=1)
    return penalties, bonuses, _BONUS_SHARE * np.minimum(bonuses, penalties)


def combine(points: np.ndarray) -> np.ndarray:
    """The raw score (before rounding and clipping) from the per-signal points."""
    penalties, _, credited = _balance(points)
    return BASE_SCORE - penalties + credited


def score_contributions(
    signals: pd.DataFrame, moments: np.ndarray | pd.Series, settings: ExperienceSettings
) -> pd.DataFrame:
    """Points each signal moves the score away from ``BASE_SCORE``, as the score counts them.

    One row per signals row (positional index), one column per ``SIGNALS`` name. Penalties
    are the signals' full ``contributions``; the good news is scaled down to the share the
    score credits (at most half the penalties), in proportion to each positive signal. So a
    row sums to ``raw score - BASE_SCORE``, and ``experience_score`` is
    ``BASE_SCORE + row sum``, rounded and clipped to 0..100.
    """
    points = contributions(signals, moments, settings)
    _, bonuses, credited = _balance(points)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(bonuses > 0, credited / bonuses, 0.0)
    counted = np.where(points > 0, points * scale[:, None], points)
    return pd.DataFrame(counted, columns=list(SIGNALS))


def _number(value: float, decimal: str) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    text = "0" if text in ("-0", "") else text
    return text.replace(".", decimal)


def _duration(hours: float, words: dict[str, str]) -> str:
    """``25 min`` under an hour, ``1.5 h`` under ten, ``30 h`` under two days, else days."""
    if hours < 1:
        return words["minutes"].format(n=max(1, round(hours * 60)))
    if hours < 10:
        return words["hours"].format(n=_number(round(hours, 1), words["decimal"]))
    if hours < 48:
        return words["hours"].format(n=round(hours))
    days = round(hours / 24.0)
    return words["day"] if days == 1 else words["days"].format(n=days)


def _kind_names(words: dict[str, str]) -> dict[str, str]:
    return _kind_table(words["kinds"])


@functools.lru_cache(maxsize=8)
def _kind_table(kinds: str) -> dict[str, str]:
    """``"incident:incidents|…"`` as a dict, read once per language (never modified)."""
    return dict(pair.split(":", 1) for pair in kinds.split("|"))


def _times(n: float, words: dict[str, str]) -> str:
    return words["once"] if n == 1 else words["many"]


def _phrase(
    name: str,
    value: float,
    up: bool,
    row: dict[str, object],
    words: dict[str, str],
    settings: ExperienceSettings,
) -> str:
    """The plain-words reason for one signal of one row."""
    dec = words["decimal"]
    n = int(value) if np.isfinite(value) else 0
    if name in ("sentiment", "participants_sentiment"):
        return words[f"{name}{'+' if up else '-'}"].format(x=_number(value, dec))
    if name == "survey_score":
        key = "survey_score+" if up else "survey_score-"
        return words[key].format(x=_number(1.0 + 4.0 * value, dec))
    if name in ("sla_breached", "failed_change"):
        return words[name]
    if name == "reassignment_count":
        text = words[name].format(n=n, times=_times(n, words))
        groups = row.get("groups")
        if isinstance(groups, list) and len(groups) >= 2:
            shown = f"{', '.join(groups[:-1])} {words['and']} {groups[-1]}"
            text += f" ({words['pingpong'].format(groups=shown)})"
        return text
    if name == "pingpong":
        groups = row.get("groups")
        if isinstance(groups, list) and len(groups) >= 2:
            return words[name].format(groups=f"{', '.join(groups[:-1])} {words['and']} {groups[-1]}")
        return words["reassignment_count"].format(n=n, times=_times(n, words))
    if name == "unanswered_questions":
        return words[name].format(n=n, question=words["question" if n == 1 else
                                                      "question_many"])
    if name == "complaints":
        return words[name].format(n=n, complaint=words["complaint" if n == 1 else
                                                        "complaint_many"])
    if name == "agent_concern":
        return words[name]
    if name in ("chasers", "reopen_count", "priority_raised", "channel_switches", "rework"):
        return words[name].format(n=n, times=_times(n, words))
    if name == "wait_hours":
        return words["wait_open" if row.get("waiting_now") else "wait_closed"].format(
            d=_duration(value, words)
        )
    if name == "first_response_hours":
        if row["open"] and not row.get("answered", True):
            return words["no_response"].format(d=_duration(value, words))
        return words["first_response"].format(
            d=_duration(value, words), t=_duration(float(row["typical_response"]), words)
        )
    if name == "resolution_hours":
        ratio = value / float(row["typical"]) if row["typical"] else 0.0
        kind = str(row.get("kind") or "")
        kind = _kind_names(words).get(kind, kind) or words["items"]
        key = "resolution_open" if row["open"] else "resolution_closed"
        return words[key].format(d=_duration(value, words), r=_number(round(ratio, 1), dec),
                                 kind=kind)
    if name == "on_hold_hours":
        return words[name].format(d=_duration(value, words))
    if name == "repeat_contact":
        return words[name].format(
            n=n, contacts=words["contact" if n == 1 else "contacts"],
            k=_number(settings.repeat_contact_days, dec),
        )
    if name == "requester_interactions":
        return words[name].format(n=n)
    if name == "lost_hours":
        return words[name].format(h=max(1, round(value)))
    if name == "age_days":
        return words["age_open" if row["open"] else "age_closed"].format(
            n=round(value), t=_number(float(row["age_target"]), dec)
        )
    if name == "caused_incidents":
        return words[name].format(n=n, incidents=words["incident" if n == 1 else "incidents"])
    if name == "business_participants":
        return words[name].format(n=n, people=words["person" if n == 1 else "people"])
    if name == "business_share":
        return words[name].format(p=round(value * 100))
    if name == "stalled_days":
        return words[name].format(n=round(value))
    return name


def _reason_texts(
    signals: pd.DataFrame,
    points: np.ndarray,
    moments: np.ndarray | pd.Series,
    settings: ExperienceSettings,
    needed: np.ndarray | None = None,
) -> np.ndarray:
    """(n, len(SIGNALS)) object array: the phrase for each signal where it matters, else ``""``.

    Phrases are built only for the ``needed`` cells (default: every contribution big enough to
    be shown), at most a few per row; equal inputs share one phrase.
    """
    words = _TEXTS[settings.language]
    texts = np.full(points.shape, "", dtype=object)
    n = len(signals)
    is_open = signals["_open"].to_numpy(dtype=bool) if "_open" in signals else np.zeros(n, bool)
    typical = _column(signals, "_typical_hours")
    typical_response = _column(signals, "_typical_response_hours")
    kinds = (
        signals["_kind"].to_numpy(dtype=object) if "_kind" in signals else np.full(n, "", object)
    )
    groups = (
        signals["_pingpong_groups"].to_numpy(dtype=object)
        if "_pingpong_groups" in signals
        else np.full(n, "", dtype=object)
    )
    answered = (
        signals["_answered"].to_numpy(dtype=bool) if "_answered" in signals else np.ones(n, bool)
    )
    waiting_now = (
        signals["_waiting_now"].to_numpy(dtype=bool)
        if "_waiting_now" in signals
        else np.zeros(n, dtype=bool)
    )
    age_target = np.array([settings.age_target_days[m] for m in MOMENTS])[_moment_index(moments)]
    if needed is None:
        needed = np.abs(points) >= _REASON_MIN_POINTS
    # Plain lists: the loop below reads a few cells of each per phrase, and indexing a list
    # costs a tenth of boxing a NumPy scalar.
    context_columns: dict[str, list[object]] = {
        "open": is_open.tolist(),
        "typical": typical.tolist(),
        "typical_response": typical_response.tolist(),
        "kind": kinds.tolist(),
        "answered": answered.tolist(),
        "waiting_now": waiting_now.tolist(),
        "age_target": age_target.tolist(),
        # Bounced groups as a key: a list cannot be one, and only a list is ever shown.
        "groups": [tuple(g) if isinstance(g, list) else None for g in groups.tolist()],
    }
    bounced_groups = groups.tolist()
    for j, name in enumerate(SIGNALS):
        rows = np.flatnonzero(needed[:, j])
        if not len(rows):
            continue
        data = _column(signals, name)[rows].tolist()
        up = (points[rows, j] > 0).tolist()
        # Equal (value, direction, the context this signal's phrase reads) share one phrase.
        inputs = [context_columns[field] for field in _PHRASE_CONTEXT.get(name, ())]
        said: dict[tuple[object, ...], str] = {}
        phrases = []
        for r, value, good in zip(rows.tolist(), data, up):
            key = (value, good, *[column[r] for column in inputs])
            phrase = said.get(key)
            if phrase is None:
                context = {
                    "open": bool(context_columns["open"][r]),
                    "typical": context_columns["typical"][r],
                    "typical_response": context_columns["typical_response"][r],
                    "kind": context_columns["kind"][r],
                    "groups": bounced_groups[r],
                    "answered": bool(context_columns["answered"][r]),
                    "waiting_now": bool(context_columns["waiting_now"][r]),
                    "age_target": context_columns["age_target"][r],
                }
                phrase = said[key] = _phrase(name, value, good, context, words, settings)
            phrases.append(phrase)
        texts[rows, j] = phrases
    return texts


#: The context fields ``_phrase`` reads for each signal (besides the value and direction).
#: Rows that agree on these get the same phrase; a signal not listed reads none.
_PHRASE_CONTEXT: dict[str, tuple[str, ...]] = {
    "reassignment_count": ("groups",),
    "pingpong": ("groups",),
    "wait_hours": ("waiting_now",),
    "first_response_hours": ("open", "answered", "typical_response"),
    "resolution_hours": ("open", "typical", "kind"),
    "age_days": ("open", "age_target"),
}


def score_experience(
    signals: pd.DataFrame, moments: np.ndarray | pd.Series, settings: ExperienceSettings
) -> pd.DataFrame:
    """Score, level and reasons per row (positional index).

    ``experience_reasons`` lists the top ``settings.max_reasons`` negative contributors, worst
    first, joined with ``"; "``; when there are none it says so ("no negative signals" /
    "sin señales negativas") and adds the positive ones.
    """
    n = len(signals)
    points = contributions(signals, moments, settings)
    score = np.clip(np.round(combine(points)), 0, 100).astype(np.int64)
    levels = settings.levels
    level = np.select(
        [score >= levels.good, score >= levels.fair, score >= levels.at_risk],
        ["good", "fair", "at_risk"],
        default="poor",
    ).astype(object)

    # Ping-pong is told inside the reassignment reason ("reassigned 4 times (ping-pong between
    # Network and Desktop)"), so its points join that slot instead of taking a second one.
    shown = points.copy()
    reassign, pingpong = SIGNALS.index("reassignment_count"), SIGNALS.index("pingpong")
    has_both = shown[:, reassign] != 0
    shown[has_both, reassign] += shown[has_both, pingpong]
    shown[has_both, pingpong] = 0.0
    rows = np.arange(n)
    k = min(settings.max_reasons, len(SIGNALS))
    worst_first = np.argsort(shown, axis=1, kind="stable")[:, :k]
    best_first = np.argsort(-shown, axis=1, kind="stable")[:, :k]
    # Only the phrases that will be read: the top negatives, or the top positives of rows
    # without any negative.
    needed = np.zeros(shown.shape, dtype=bool)
    any_bad = shown[rows, worst_first[:, 0]] <= -_REASON_MIN_POINTS if n else np.zeros(0, bool)
    for j in range(k):
        bad = shown[rows, worst_first[:, j]] <= -_REASON_MIN_POINTS
        needed[rows[bad], worst_first[bad, j]] = True
        good = ~any_bad & (shown[rows, best_first[:, j]] >= _REASON_MIN_POINTS)
        needed[rows[good], best_first[good, j]] = True
    texts = _reason_texts(signals, shown, moments, settings, needed)
    negative = [
        np.where(
            shown[rows, worst_first[:, j]] <= -_REASON_MIN_POINTS,
            texts[rows, worst_first[:, j]],
            "",
        )
        for j in range(k)
    ]
    positive = [
        np.where(
            shown[rows, best_first[:, j]] >= _REASON_MIN_POINTS, texts[rows, best_first[:, j]], ""
        )
        for j in range(k)
    ]
    none = _TEXTS[settings.language]["none"]
    reasons = (
        [
            "; ".join(p for p in bad if p) or "; ".join([none, *(p for p in good if p)])
            for bad, good in zip(zip(*negative), zip(*positive))
        ]
        if n
        else []
    )
    return pd.DataFrame(
        {
            "experience_score": score,
            "experience_level": level,
            "experience_reasons": pd.Series(reasons, dtype=object),
        }
    )
