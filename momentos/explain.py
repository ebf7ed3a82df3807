"""`momentos explain KEY`: why one item has its moment, its score and what momentos wrote.

Follow one key: the state store says which source processed it and what the last sync stored
(``StateStore.item_by_key``), who overrode it (``overrides_for``) and what momentos wrote
(``written_for``) → the source's connector reads the item live (``Connector.fetch``, read-only)
→ ``enrich`` recomputes it the way sync does (the instance's moment model, the stored rows as
context) → the explanation: the rule or model behind the moment, every signal's points
(``score.score_contributions``), the requester texts behind the sentiment with their scores and
weights. Nothing is written anywhere: not to a platform, not to the state store (a missing
SQLite file is not even created, a stale model is not retrained).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentos.config import Config
from momentos.connectors.base import Connector, SourceSettings
from momentos.enrichment import columns as col
from momentos.enrichment import enrich, learn
from momentos.enrichment import sentiment as sent
from momentos.enrichment.frame import items_to_frame
from momentos.enrichment.score import BASE_SCORE, score_contributions
from momentos.enrichment.settings import SIGNALS, ExperienceSettings
from momentos.enrichment.signals import chaser_regex, compute_signals
from momentos.errors import MomentosError
from momentos.models import Item
from momentos.state import StateStore

log = logging.getLogger("momentos.explain")

LANGUAGES: tuple[str, ...] = ("en", "es")

#: How much a requester text without any sentiment counts (``sentiment.weighted_voice``).
_NEUTRAL_TEXT_WEIGHT: float = getattr(sent, "_NEUTRAL_TEXT_WEIGHT", 0.25)
#: Requester texts longer than this are cut in the readable layout (never in ``--json``).
_SHOWN_TEXT_CHARS = 160
#: Fields compared between the last sync and the recomputation (the reasons too, when they
#: are in the language the sync wrote them in).
_COMPARED = ("moment", "moment_confidence", "experience_score", "experience_level", "sentiment")

LABELS: dict[str, dict[str, Any]] = {
    "en": {
        "source": "source",
        "moment": "Relationship moment",
        "confidence": "confidence",
        "needs_review": "needs review",
        "yes": "yes",
        "no": "no",
        "by_rule": "set by rule '{rule}'",
        "by_model": "set by the moment model",
        "by_keywords": "set by keywords (no rule matched, no model)",
        "by_person": "set by a person in the platform (momentos scores it as that moment)",
        "evidence": "evidence",
        "score": "Experience score",
        "score_sum": "{base} {sum} points from the signals = {raw}",
        "score_final": " → {score} (rounded, within 0–100)",
        "reasons": "reasons",
        "signals": "Signals and their points",
        "signal": "signal",
        "value": "value",
        "points": "points",
        "no_signal_value": "(no signals with a value)",
        "sentiment": "Requester sentiment",
        "no_texts": "the requester wrote nothing with a sentiment",
        "when": "when",
        "what": "text",
        "text_score": "score",
        "weight": "weight",
        "description": "description",
        "comment": "comment",
        "override": "Human override",
        "overridden": "overridden by a person: {field} {value} (momentos had written {ours})",
        "overridden_by": "by {by} on {at}",
        "no_override": "nobody has overridden momentos on this item",
        "written": "Last written by momentos",
        "field": "field",
        "at": "at",
        "nothing_written": "momentos has written nothing on this item",
        "now_on_platform": "now on the platform",
        "stored": "Last sync (stored {at}) vs recomputed now",
        "stored_same": "the last sync stored the same moment, score and level",
        "stored_value": "last sync",
        "recomputed": "now",
        "not_live": "the item was not found on the platform now; showing what the last sync stored",
        "not_synced": "no sync has processed this item yet; showing it as momentos would see it now",
        "none": "none",
        "fields": {
            "moment": "moment", "moment_confidence": "confidence", "experience_score": "score",
            "experience_level": "level", "sentiment": "sentiment", "experience_reasons": "reasons",
        },
    },
    "es": {
        "source": "origen",
        "moment": "Momento de la relación",
        "confidence": "confianza",
        "needs_review": "revisar",
        "yes": "sí",
        "no": "no",
        "by_rule": "fijado por la regla '{rule}'",
        "by_model": "fijado por el modelo de momentos",
        "by_keywords": "fijado por palabras clave (ninguna regla coincide, sin modelo)",
        "by_person": "fijado por una persona en la plataforma (momentos lo puntúa como ese momento)",
        "evidence": "evidencia",
        "score": "Puntuación de experiencia",
        "score_sum": "{base} {sum} puntos de las señales = {raw}",
        "score_final": " → {score} (redondeado, entre 0 y 100)",
        "reasons": "motivos",
        "signals": "Señales y sus puntos",
        "signal": "señal",
        "value": "valor",
        "points": "puntos",
        "no_signal_value": "(ninguna señal con valor)",
        "sentiment": "Sentimiento del solicitante",
        "no_texts": "el solicitante no escribió nada con sentimiento",
        "when": "cuándo",
        "what": "texto",
        "text_score": "puntuación",
        "weight": "peso",
        "description": "descripción",
        "comment": "comentario",
        "override": "Cambio manual",
        "overridden": "cambiado por una persona: {field} {value} (momentos había escrito {ours})",
        "overridden_by": "por {by} el {at}",
        "no_override": "nadie ha corregido a momentos en este elemento",
        "written": "Último valor escrito por momentos",
        "field": "campo",
        "at": "fecha",
        "nothing_written": "momentos no ha escrito nada en este elemento",
        "now_on_platform": "ahora en la plataforma",
        "stored": "Última sincronización (guardada {at}) frente a lo recalculado ahora",
        "stored_same": "la última sincronización guardó el mismo momento, puntuación y nivel",
        "stored_value": "última sincronización",
        "recomputed": "ahora",
        "not_live": "el elemento no está ahora en la plataforma; se muestra lo que guardó la "
        "última sincronización",
        "not_synced": "ninguna sincronización ha procesado este elemento; se muestra como lo "
        "vería momentos ahora",
        "none": "ninguno",
        "fields": {
            "moment": "momento", "moment_confidence": "confianza", "experience_score": "puntuación",
            "experience_level": "nivel", "sentiment": "sentimiento", "experience_reasons": "motivos",
        },
    },
}
#: Moment and level codes are data (the contract's lower-case values); shown translated.
_VALUES: dict[str, dict[str, str]] = {
    "en": {"at_risk": "at risk"},
    "es": {
        "operation": "operación", "evolution": "evolución", "innovation": "innovación",
        "good": "bueno", "fair": "regular", "at_risk": "en riesgo", "poor": "malo",
        "moment": "momento", "score": "puntuación", "signals": "señales",
    },
}


class ItemNotFound(MomentosError):
    """No configured source has an item with this key."""


def language_for(config: Config, wanted: str | None = None) -> str:
    """``wanted`` when given, else the report's language (what IT managers read)."""
    lang = wanted or config.model.report.language or config.experience.language
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    return lang


def open_state(url: str) -> StateStore | None:
    """The state store, or None when its SQLite file does not exist (never created here)."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        path = url[len(prefix):]
        if path and path != ":memory:" and not Path(path).exists():
            return None
    return StateStore(url)


def stored_model(state: StateStore | None) -> learn.MomentModel:
    """The instance's moment model, read only (``learn.stored_or_default``)."""
    return learn.stored_or_default(state)


def stored_context(state: StateStore | None, settings: ExperienceSettings, now: datetime
                   ) -> pd.DataFrame | None:
    """The instance history sync compares items with: the stored rows of the last
    ``context_days``, at most ``context_items``, reduced as sync reduces them."""
    if state is None:
        return None
    from momentos import sync

    return sync.stored_history(state, settings, now)


def _likely_first(sources: list[SourceSettings], key: str) -> list[SourceSettings]:
    """Jira keys look like ``OPS-77``: try Jira sources first for those, the others first
    otherwise (a wrong guess only costs a read)."""
    jira_like = "-" in key and key.rsplit("-", 1)[1].isdigit()
    return sorted(sources, key=lambda s: (s.type == "jira") != jira_like)


def fetch_live(
    config: Config,
    key: str,
    source: str | None,
    connector_factory: Callable[[SourceSettings], Connector],
) -> tuple[Item | None, str | None]:
    """The item read live from ``source`` (or from the first source that has it) and the
    name of the source it came from."""
    known = {s.name for s in config.sources}
    candidates = (
        [config.source(source)] if source in known else _likely_first(list(config.sources), key)
    )
    for settings in candidates:
        connector = connector_factory(settings)
        try:
            item = connector.fetch(key)
        except NotImplementedError:  # a third-party connector without fetch
            item = None
        finally:
            connector.close()
        if item is not None:
            return item, settings.name
    return None, None


def requester_texts(frame: pd.DataFrame, created: Any) -> list[dict[str, Any]]:
    """The texts behind the requester sentiment of the frame's single row, each with its score
    (``sentiment.score_text``) and the weight ``sentiment.requester_sentiment`` gives it: the
    description 1, the requester's k-th public comment k + 1, a text without sentiment a
    quarter of that, an empty one nothing."""
    language = sent.normalize_language(col.text(frame, "language").iloc[0])
    texts: list[dict[str, Any]] = []

    def add(role: str, kind: str, when: Any, text: str, weight: float, author: str = "") -> None:
        score = sent.score_text(text, language)
        if math.isnan(score):
            weight = 0.0
        elif score == 0.0:
            weight *= _NEUTRAL_TEXT_WEIGHT
        texts.append({
            "author_role": role, "kind": kind, "author": author, "created": _iso(when),
            "text": text, "score": None if math.isnan(score) else round(score, 3),
            "weight": weight,
        })

    add("requester", "description", created, col.text(frame, "description").iloc[0], 1.0)
    comments = col.comments_table(frame)
    mine = comments[(comments["role"] == "requester").to_numpy() & ~comments["internal"].to_numpy()]
    for rank, row in enumerate(mine.itertuples(index=False), start=1):
        add("requester", "comment", row.when, str(row.text), rank + 1.0, str(row.author))
    return [t for t in texts if t["text"].strip()]


def explain_item(
    config: Config,
    key: str,
    *,
    lang: str | None = None,
    source: str | None = None,
    now: datetime | None = None,
    state: StateStore | None = None,
    connector_factory: Callable[[SourceSettings], Connector] | None = None,
) -> dict[str, Any]:
    """The explanation of one item as one JSON-able dict (the ``--json`` object).

    Raises ``ItemNotFound`` when neither the state store nor any source knows ``key``.
    """
    from momentos.sync import make_connector

    lang = language_for(config, lang)
    now = now or datetime.now(UTC)
    own_state = state is None
    if own_state:
        state = open_state(config.state_url)
    try:
        stored = state.item_by_key(key, source) if state is not None else None
        item, found_in = fetch_live(
            config, stored["key"] if stored else key, stored["source"] if stored else source,
            connector_factory or make_connector,
        )
        if item is None and stored is None:
            names = [source] if source else [s.name for s in config.sources]
            raise ItemNotFound(f"no item {key} in source {', '.join(names)}")
        name = found_in or stored["source"]
        item_id = item.id if item is not None else stored["item_id"]
        overrides = (state.overrides_for(name, [item_id]) if state is not None else {})
        written = state.written_for(name, item_id) if state is not None else []
        if item is not None:
            from momentos.sync import person_moment

            recomputed = _recompute(config, item, lang, now, state, person_moment(item, overrides))
        else:
            recomputed = None
        return _assemble(lang, name, item, stored, recomputed, overrides, written,
                         same_language=lang == config.experience.language)
    finally:
        if own_state and state is not None:
            state.close()


def _recompute(config: Config, item: Item, lang: str, now: datetime, state: StateStore | None,
               person: str | None = None) -> dict[str, Any]:
    """Enrich the live item as sync does (with the moment a person set, if any), in ``lang``,
    and take the score apart."""
    experience = config.experience.model_copy(update={"language": lang})
    frame = items_to_frame([item])
    context = stored_context(state, experience, now)
    # Repeat contacts and caused incidents count the stored items as sync counts them.
    stored = (state.neighbours([(item.source, item.id)])
              if state is not None and experience.context_items else None)
    enriched = enrich(frame, config.moments, experience, now=now, model=stored_model(state),
                      context=context, given_moments=[person], stored=stored)
    row = enriched.iloc[0].to_dict()
    moment = enriched["moment"].to_numpy(dtype=object)
    # The signals frame behind the score, with the typical durations it compared against:
    # the same call enrich makes, for the same row, moment and context.
    signals = compute_signals(
        frame, col.comments_table(frame), col.history_table(frame), now,
        chaser_regex(experience.chaser_patterns), settings=experience, moments=moment,
        context=context, stored=stored,
    )
    points = score_contributions(signals, moment, experience).iloc[0]
    row["contributions"] = {name: float(points[name]) for name in SIGNALS}
    row["texts"] = requester_texts(frame, item.created)
    return row


def _decided_by(rule: str, reason: str) -> str:
    """``person`` when someone set it in the platform; ``rule`` when a rule's own moment
    stands; ``model`` when no rule decided (or a rule said ``auto``, or the model overruled
    it) and the learned model did; else ``keywords``."""
    if rule == "person":
        return "person"
    if rule and "→ auto" not in reason and "overruled by" not in reason:
        return "rule"
    return "model" if "model " in reason else "keywords"


def _assemble(
    lang: str,
    source: str,
    item: Item | None,
    stored: dict[str, Any] | None,
    now_row: dict[str, Any] | None,
    overrides: dict[tuple[str, str], dict[str, Any]],
    written: list[dict[str, Any]],
    same_language: bool = False,
) -> dict[str, Any]:
    data = stored["data"] if stored else {}
    row = now_row if now_row is not None else data
    signal_values = _as_dict(row.get("signals"))
    contributions = (now_row or {}).get("contributions") or {}
    rule = _text(row.get("moment_rule"))
    reason = _text(row.get("moment_reason"))
    override_rows = [
        {"field": field, "value": o["value"], "ours": o["ours"], "by": o["by"],
         "at": _iso(o["at"])}
        for (_, field), o in sorted(overrides.items(), key=lambda kv: kv[0][1] != "moment")
    ]
    out: dict[str, Any] = {
        "key": item.key if item is not None else stored["key"],
        "source": source,
        "platform": item.platform if item is not None else stored.get("platform"),
        "kind": item.kind if item is not None else data.get("kind"),
        "title": item.title if item is not None else data.get("title"),
        "url": item.url if item is not None else data.get("url"),
        "language": lang,
        "live": item is not None,
        "synced": stored is not None,
        "moment": {
            "value": row.get("moment"),
            "confidence": _number(row.get("moment_confidence")),
            "rule": rule or None,
            "decided_by": _decided_by(rule, reason),
            "reason": reason,
            "needs_review": bool(row.get("needs_review")) if row.get("needs_review") is not None
            else None,
        },
        "score": {
            "value": _int(row.get("experience_score")),
            "level": row.get("experience_level"),
            "reasons": _text(row.get("experience_reasons")),
            "base": BASE_SCORE,
            "points": round(sum(contributions.values()), 2) if contributions else None,
        },
        "signals": [
            {"name": name, "value": signal_values.get(name),
             "contribution": round(contributions[name], 2) if name in contributions else None}
            for name in SIGNALS
        ],
        "sentiment": {
            "value": _number(row.get("sentiment")),
            "texts": (now_row or {}).get("texts") or [],
        },
        "override": ({**override_rows[0], "fields": override_rows} if override_rows else None),
        "written": [
            {"field": w["field"], "value": w["value"], "at": _iso(w["written_at"])}
            for w in written
        ],
        "platform_values": dict(item.current) if item is not None else None,
        "stored": _stored_block(stored),
        "differs": [],
    }
    if stored is not None and now_row is not None:
        compared = _COMPARED + (("experience_reasons",) if same_language else ())
        out["differs"] = [
            name for name in compared if not _same(data.get(name), now_row.get(name))
        ]
    return out


def _stored_block(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    data = stored["data"]
    return {
        "processed_at": _iso(stored.get("processed_at")),
        "moment": data.get("moment"),
        "moment_confidence": _number(data.get("moment_confidence")),
        "moment_rule": data.get("moment_rule") or None,
        "moment_reason": data.get("moment_reason"),
        "needs_review": data.get("needs_review"),
        "experience_score": _int(data.get("experience_score")),
        "experience_level": data.get("experience_level"),
        "experience_reasons": data.get("experience_reasons"),
        "sentiment": _number(data.get("sentiment")),
    }


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, abs_tol=0.005)
    return a == b


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _as_dict(value: Any) -> dict[str, Any]:
    parsed = col.parse_json_cell(value)
    return parsed if isinstance(parsed, dict) else {}


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _number(value: Any) -> float | None:
    value = _plain(value)
    return round(float(value), 3) if isinstance(value, (int, float)) else None


def _int(value: Any) -> int | None:
    value = _plain(value)
    return int(value) if isinstance(value, (int, float)) else None


def _iso(value: Any) -> str | None:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.isoformat()
    return str(value)


# --- the readable layout ---------------------------------------------------------------------------
def render(explanation: dict[str, Any], console: Any) -> None:
    """Print an explanation (``explain_item``'s dict) on a rich console, in its language."""
    from rich.table import Table

    lang = explanation["language"]
    words = LABELS[lang]
    shown = _VALUES[lang]

    def value(v: Any) -> str:
        return shown.get(str(v), str(v)) if v is not None else "—"

    def say(text: str = "", style: str = "") -> None:
        console.print(text, style=style or None, markup=False, highlight=False)

    e = explanation
    say(f"{e['key']} · {words['source']} {e['source']} · {e.get('kind') or ''} · {e.get('title') or ''}",
        "bold")
    if e.get("url"):
        say(e["url"])
    if not e["live"]:
        say(words["not_live"], "yellow")
    elif not e["synced"]:
        say(words["not_synced"], "yellow")

    m = e["moment"]
    say()
    say(f"{words['moment']}: {value(m['value'])} ({words['confidence']} "
        f"{_fmt(m['confidence'], lang)}; {words['needs_review']}: "
        f"{words['yes'] if m['needs_review'] else words['no']})", "bold")
    by = {"rule": words["by_rule"].format(rule=m["rule"]), "model": words["by_model"],
          "keywords": words["by_keywords"], "person": words["by_person"]}[m["decided_by"]]
    say(f"  {by}")
    say(f"  {words['evidence']}: {m['reason']}")

    s = e["score"]
    say()
    say(f"{words['score']}: {s['value']} ({value(s['level'])})", "bold")
    if s["points"] is not None:
        points = f"{'+' if s['points'] >= 0 else '−'} {_fmt(abs(s['points']), lang)}"
        raw = s["base"] + s["points"]
        line = words["score_sum"].format(base=_fmt(s["base"], lang), sum=points,
                                          raw=_fmt(round(raw, 2), lang))
        if s["value"] is not None and abs(raw - s["value"]) > 0.005:
            line += words["score_final"].format(score=s["value"])
        say("  " + line)
    if s["reasons"]:
        say(f"  {words['reasons']}: {s['reasons']}")

    with_value = [x for x in e["signals"] if x["value"] is not None]
    say()
    say(words["signals"], "bold")
    if with_value:
        table = Table(show_edge=False)
        table.add_column(words["signal"])
        table.add_column(words["value"], justify="right")
        table.add_column(words["points"], justify="right")
        ordered = sorted(with_value, key=lambda x: (x["contribution"] or 0.0, x["name"]))
        for x in ordered:
            c = x["contribution"]
            table.add_row(x["name"], _fmt(x["value"], lang),
                          "—" if c is None else ("0" if abs(c) < 0.005 else
                                                 f"{c:+.2f}".replace(".", _decimal(lang))))
        console.print(table)
    else:
        say(f"  {words['no_signal_value']}")

    sentiment = e["sentiment"]
    say()
    say(f"{words['sentiment']}: {_fmt(sentiment['value'], lang)}", "bold")
    if sentiment["texts"]:
        table = Table(show_edge=False)
        for column in ("when", "what", "text_score", "weight"):
            table.add_column(words[column], overflow="fold",
                             justify="right" if column in ("text_score", "weight") else "left")
        for t in sentiment["texts"]:
            text = " ".join(t["text"].split())
            if len(text) > _SHOWN_TEXT_CHARS:
                text = text[: _SHOWN_TEXT_CHARS - 1] + "…"
            table.add_row(
                f"{(t['created'] or '')[:16]} {words[t['kind']]}", text,
                _fmt(t["score"], lang), _fmt(t["weight"], lang),
            )
        console.print(table)
    else:
        say(f"  {words['no_texts']}")

    say()
    say(words["override"], "bold")
    if e["override"]:
        for o in e["override"]["fields"]:
            say("  " + words["overridden"].format(field=value(o["field"]), value=value(o["value"]),
                                                  ours=value(o["ours"])), "yellow")
            say("    " + words["overridden_by"].format(by=o["by"] or "?", at=(o["at"] or "?")[:19]))
    else:
        say(f"  {words['no_override']}")

    say()
    say(words["written"], "bold")
    if e["written"]:
        current = e.get("platform_values") or {}
        table = Table(show_edge=False)
        for column in ("field", "value", "at", "now_on_platform"):
            table.add_column(words[column], overflow="fold")
        for w in e["written"]:
            table.add_row(value(w["field"]), str(w["value"]), (w["at"] or "")[:19],
                          str(current.get(w["field"], "—")) if e["live"] else "—")
        console.print(table)
    else:
        say(f"  {words['nothing_written']}")

    stored = e["stored"]
    if stored and e["live"]:
        say()
        say(words["stored"].format(at=(stored["processed_at"] or "?")[:19]), "bold")
        if not e["differs"]:
            say(f"  {words['stored_same']}")
        else:
            now_values = {
                "moment": e["moment"]["value"], "moment_confidence": e["moment"]["confidence"],
                "experience_score": e["score"]["value"], "experience_level": e["score"]["level"],
                "sentiment": e["sentiment"]["value"], "experience_reasons": e["score"]["reasons"],
            }
            for name in e["differs"]:
                say(f"  {words['fields'][name]}: {words['stored_value']} {value(stored.get(name))} → "
                    f"{words['recomputed']} {value(now_values.get(name))}")


def _decimal(lang: str) -> str:
    return "," if lang == "es" else "."


def _fmt(value: Any, lang: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return LABELS[lang]["yes"] if value else LABELS[lang]["no"]
    if isinstance(value, (int, float)):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
        return ("0" if text in ("-0", "") else text).replace(".", _decimal(lang))
    return str(value)
