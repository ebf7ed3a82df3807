"""At-risk nudges: one internal note when an item enters at_risk or poor, once per episode.

An *episode* starts when an item's level falls to a nudge level and ends when it recovers (good
or fair); a new episode can only start after that. The note states the reasons and one
suggested action for the item's moment, in the spirit of the seeds: in Operation the
technician's goal is to learn how the user works, in Evolution to keep the process simple, in
Innovation to co-create.

Exactly once, even across crashes: the episode and the *intent* to post are committed before
the note is sent; after the platform accepts it the intent becomes *sent*. A run that finds an
intent left behind looks for the note's marker on the platform before posting again.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from momentos.models import Item

log = logging.getLogger("momentos.nudges")


class NudgeSettings(BaseModel):
    """YAML key ``nudges:``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Post one internal note when an item falls at risk.")
    levels: list[Literal["at_risk", "poor"]] = Field(default_factory=lambda: ["at_risk", "poor"])
    #: Language when an item's own language is unknown.
    language: Literal["en", "es"] = "en"


ACTIONS: dict[str, dict[str, str]] = {
    "operation": {
        "en": "Call the requester to learn how they use the system and what got in their way; "
        "the goal is to learn, not to teach.",
        "es": "Llama al solicitante para entender cómo usa el sistema y qué le ha frenado; "
        "el objetivo es aprender, no enseñar.",
    },
    "evolution": {
        "en": "Review the change with its business owner: is the process still simple, and is it "
        "being adopted?",
        "es": "Revisa el cambio con su responsable de negocio: ¿el proceso sigue siendo simple y "
        "se está adoptando?",
    },
    "innovation": {
        "en": "Meet the business participants and re-plan the next step together.",
        "es": "Reúnete con los participantes de negocio y replanificad juntos el siguiente paso.",
    },
}

HEADINGS = {
    "en": "momentos: the requester's experience of this {moment} item is {level} (score {score}).",
    "es": "momentos: la experiencia del solicitante en este elemento de {moment} es {level} "
    "(puntuación {score}).",
}
LEVEL_WORDS = {
    "en": {"at_risk": "at risk", "poor": "poor"},
    "es": {"at_risk": "en riesgo", "poor": "mala"},
}
MOMENT_WORDS = {
    "en": {"operation": "Operation", "evolution": "Evolution", "innovation": "Innovation"},
    "es": {"operation": "Operación", "evolution": "Evolución", "innovation": "Innovación"},
}
REASONS = {"en": "Why: {reasons}.", "es": "Por qué: {reasons}."}
ACTION = {"en": "Suggested action: {action}", "es": "Acción sugerida: {action}"}


def marker(source: str, item_id: str, episode: int) -> str:
    """A token unique to one episode's note, searchable on the platform."""
    return f"[momentos-nudge {source}:{item_id}:{episode}]"


def note_text(row: dict[str, Any], language: str, mark: str) -> str:
    lang = language if language in ("en", "es") else "en"
    moment = str(row.get("moment") or "operation")
    level = str(row.get("experience_level") or "at_risk")
    lines = [
        HEADINGS[lang].format(
            moment=MOMENT_WORDS[lang].get(moment, moment),
            level=LEVEL_WORDS[lang].get(level, level),
            score=int(row.get("experience_score") or 0),
        )
    ]
    reasons = str(row.get("experience_reasons") or "").strip()
    if reasons:
        lines.append(REASONS[lang].format(reasons=reasons))
    lines.append(ACTION[lang].format(action=ACTIONS.get(moment, ACTIONS["operation"])[lang]))
    lines.append(mark)
    return "\n".join(lines)


def plan_episodes(
    source: str,
    items: list[Item],
    enriched: pd.DataFrame,
    open_episodes: dict[str, dict[str, Any]],
    last_numbers: dict[str, int],
    settings: NudgeSettings,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Which items open a new episode (with its note) and which items' episodes close."""
    to_open: list[dict[str, Any]] = []
    to_close: list[str] = []
    by_id = {i.id: i for i in items}
    for row in enriched.to_dict("records"):
        item = by_id.get(row["id"])
        if item is None:
            continue
        level = row.get("experience_level")
        # Only live work gets a nudge: a note on a closed ticket asks nobody to act.
        falling = level in settings.levels and item.resolved is None
        if falling and item.id not in open_episodes:
            number = last_numbers.get(item.id, 0) + 1
            mark = marker(source, item.id, number)
            language = str(row.get("language") or item.language or settings.language)
            to_open.append(
                {
                    "item_id": item.id, "episode": number, "key": item.key,
                    "container": item.container, "note": "intent", "marker": mark,
                    "text": note_text(row, language, mark),
                }
            )
        elif not falling and level in ("good", "fair") and item.id in open_episodes:
            to_close.append(item.id)
    return to_open, to_close
