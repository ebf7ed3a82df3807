"""Requester sentiment: IT phrases in both languages, negation, intensity, requester-only."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from momentos.enrichment.columns import comments_table
from momentos.enrichment.sentiment import (
    detect_language,
    normalize_language,
    requester_sentiment,
    score_text,
    score_texts,
)


@pytest.mark.parametrize(
    "text",
    [
        "Please install Office",
        "Por favor, instalar Office en mi portátil",
        "Necesito acceso a la carpeta compartida de Finanzas",
        "Please create a new mailbox for the sales team",
    ],
)
def test_plain_requests_are_neutral(text: str) -> None:
    assert abs(score_text(text)) < 0.05


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("still not working after the update, third time I report it", -1.0, -0.6),
        ("sigue sin funcionar después de la actualización, tercera vez que lo reporto", -1.0, -0.6),
        ("sigue sin funcionar", -1.0, -0.4),
        ("still broken", -1.0, -0.4),
        ("Otra vez se ha caído el ERP", -1.0, -0.2),
        ("third time this week", -1.0, -0.3),
        ("es la tercera vez", -1.0, -0.3),
        ("urgente", -0.5, -0.1),
        ("any update?", -0.5, -0.05),
        ("¿alguna novedad?", -0.5, -0.05),
        ("gracias, ya funciona", 0.4, 1.0),
        ("works now, thanks", 0.4, 1.0),
        ("Genial, muchas gracias por la ayuda 🙏", 0.5, 1.0),
        ("the portal is down again 😡", -1.0, -0.5),
    ],
)
def test_it_phrases(text: str, low: float, high: float) -> None:
    assert low <= score_text(text) <= high


@pytest.mark.parametrize(
    ("plain", "negated"),
    [
        ("funciona bien", "no funciona bien"),
        ("good", "not good"),
        ("it works", "it doesn't work"),
        ("resuelto", "no está resuelto"),
        ("fixed", "not fixed yet"),
    ],
)
def test_negation_turns_positive_into_negative(plain: str, negated: str) -> None:
    assert score_text(plain) >= 0
    assert score_text(negated) < -0.2


@pytest.mark.parametrize(
    ("negative", "negated"), [("problem", "no problem"), ("problemas", "sin problemas")]
)
def test_negation_turns_negative_into_positive(negative: str, negated: str) -> None:
    assert score_text(negative) < 0 < score_text(negated)


def test_not_working_is_negative_in_both_languages() -> None:
    assert score_text("working") == 0.0
    assert score_text("not working") < -0.4
    assert score_text("no funciona") < -0.4
    assert score_text("no me deja entrar") < -0.3


def test_negation_stops_at_punctuation() -> None:
    assert score_text("No, thanks, great job") > 0.5


def test_intensifiers_caps_and_exclamations_amplify() -> None:
    assert score_text("very slow") < score_text("slow") < 0
    assert score_text("muy lento") < score_text("lento") < 0
    assert score_text("URGENTE") < score_text("urgente") < 0
    assert score_text("NO FUNCIONA") < score_text("no funciona")
    assert score_text("this is broken!!!") < score_text("this is broken") < 0
    assert score_text("great!!!") > score_text("great") > 0


def test_but_shifts_weight_to_what_follows() -> None:
    assert score_text("Thanks for the quick fix, but it is broken again") < -0.3


def test_emoji_and_emoticons() -> None:
    assert score_text("😡") < -0.4
    assert score_text("👍") > 0.2
    assert score_text("ok :(") < 0 < score_text("ok :)")
    assert score_text("status:done") == 0.0  # not an emoticon


def test_empty_text_is_nan() -> None:
    assert math.isnan(score_text(""))
    assert math.isnan(score_text("   "))
    assert math.isnan(score_text(None))
    scores = score_texts(["great", "", "great"], ["en", "en", "en"])
    assert scores[0] == scores[2] and math.isnan(scores[1])


def test_score_is_bounded_on_long_and_odd_texts() -> None:
    long_text = "terrible broken useless " * 5000
    assert -1.0 <= score_text(long_text) < -0.99
    assert -1.0 <= score_text("!!!???¿¡") <= 1.0


def test_language_detection() -> None:
    assert detect_language(
        [
            "The VPN is not working since the update and I need it for the closing",
            "La VPN no funciona desde la actualización y la necesito para el cierre",
            "VPN",
        ]
    ) == ["en", "es", ""]
    assert [
        normalize_language(v) for v in ["es-ES", "Spanish", "español", "EN_us", "pt", None]
    ] == [
        "es",
        "es",
        "es",
        "en",
        "",
        "",
    ]


def _requester_sentiment(frame: pd.DataFrame) -> np.ndarray:
    languages = pd.Series([""] * len(frame), dtype=object)
    descriptions = frame["description"].reset_index(drop=True)
    return requester_sentiment(descriptions, comments_table(frame), languages)


def test_only_requester_text_counts() -> None:
    calm = [{"author_role": "requester", "text": "Please install Office"}]
    angry_agent = [*calm, {"author_role": "agent", "text": "This is terrible, awful, broken!!! 😡"}]
    other = [*calm, {"author_role": "other", "text": "unacceptable"}]
    frame = pd.DataFrame({"description": ["", "", ""], "comments": [calm, angry_agent, other]})
    scores = _requester_sentiment(frame)
    assert scores[0] == scores[1] == scores[2] == 0.0


def test_later_comments_weigh_more() -> None:
    frame = pd.DataFrame(
        {
            "description": ["The VPN is broken", "Works now, thanks"],
            "comments": [
                [{"author_role": "requester", "text": "works now, thanks"}],
                [{"author_role": "requester", "text": "the vpn is broken"}],
            ],
        }
    )
    recovered, relapsed = _requester_sentiment(frame)
    assert recovered > 0 > relapsed


def test_comments_are_ordered_by_time_when_dated() -> None:
    frame = pd.DataFrame(
        {
            "description": [""],
            "comments": [
                [
                    {
                        "author_role": "requester",
                        "text": "works now, thanks",
                        "created": "2024-05-02T10:00:00Z",
                    },
                    {
                        "author_role": "requester",
                        "text": "still broken",
                        "created": "2024-05-01T10:00:00Z",
                    },
                ]
            ],
        }
    )
    assert _requester_sentiment(frame)[0] > 0


def test_no_requester_text_is_nan_and_plain_text_comments_are_the_requester() -> None:
    frame = pd.DataFrame(
        {
            "description": ["", None, ""],
            "comments": [[{"author_role": "agent", "text": "fixed"}], None, "still waiting!"],
        }
    )
    scores = _requester_sentiment(frame)
    assert math.isnan(scores[0]) and math.isnan(scores[1])
    assert scores[2] < -0.3
