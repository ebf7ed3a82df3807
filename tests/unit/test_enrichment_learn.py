"""The learned moment classifier: training, reasons, review flags, overruling, persistence."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from momentos.enrichment import enrich, learn
from momentos.enrichment.moments import assign_moments
from momentos.enrichment.settings import MomentRule, MomentsSettings
from momentos.state import StateStore

NOW = datetime(2025, 3, 1, tzinfo=UTC)

_EXAMPLES = {
    "operation": [
        "El portátil no enciende",
        "No puedo entrar en el correo",
        "VPN not working from home",
        "Printer error on floor 2",
        "Cannot open the CRM, error 500",
        "Se cae la wifi cada hora",
    ],
    "evolution": [
        "Upgrade the ERP to version 12",
        "Nueva funcionalidad: filtro por proveedor en el CRM",
        "Añadir campo centro de coste al formulario",
        "Automate the monthly sales report",
        "Simplificar el flujo de aprobación de facturas",
        "Migrate the mail server to the new cluster",
    ],
    "innovation": [
        "Piloto de chatbot para RRHH",
        "Proof of concept: computer vision for quality",
        "Idea: app de fidelización para franquiciados",
        "Explore generative AI for sales proposals",
        "Co-diseñar un portal de clientes",
        "Prototype a recommendation engine",
    ],
}


def _small_model() -> learn.MomentModel:
    texts = [t for ts in _EXAMPLES.values() for t in ts]
    labels = [m for m, ts in _EXAMPLES.items() for _ in ts]
    return learn.train(texts, labels, include_default=False)


def test_default_model_classifies_both_languages_with_reasons() -> None:
    model = learn.default_model()
    out = model.predict_texts(
        [
            "No funciona la impresora de la planta 3",
            "Upgrade SAP to the latest support package",
            "Piloto de asistente de IA con el equipo comercial",
        ]
    )
    assert out["moment"].tolist() == ["operation", "evolution", "innovation"]
    assert (out["confidence"] > 0.5).all() and (out["confidence"] <= 1.0).all()
    assert out["reason"][2].startswith(f"model {out['confidence'][2]:.2f}: ")
    assert "'piloto'" in out["reason"][2]
    assert learn.default_model() is model  # trained once per process


def test_reasons_name_words_not_function_words() -> None:
    out = _small_model().predict_texts(["Nueva funcionalidad de filtro en el CRM"])
    assert out["moment"][0] == "evolution"
    reason = out["reason"][0]
    assert reason.startswith("model 0.")
    assert "'nueva funcionalidad'" in reason or "'filtro'" in reason
    assert "'de'" not in reason and "'el'" not in reason


def test_low_confidence_is_flagged_for_review() -> None:
    frame = pd.DataFrame(
        {
            "platform": ["jira", "jira"],
            "kind": ["Task", "Task"],
            "title": ["Piloto de chatbot para RRHH", "asdf qwerty"],
        }
    )
    out = assign_moments(frame, MomentsSettings(review_threshold=0.6), _small_model())
    assert out["moment"][0] == "innovation"
    assert out["moment_reason"][0].startswith(
        "rule 'jira-auto': platform = jira, kind = Task → auto; model 0."
    )
    assert not out["needs_review"][0]
    assert out["needs_review"][1] and out["moment_confidence"][1] < 0.6


def test_a_mostly_right_rule_yields_to_a_surer_model() -> None:
    frame = pd.DataFrame(
        {
            "platform": ["servicenow", "servicenow"],
            "container": ["dmn_demand", "dmn_demand"],
            "title": ["Upgrade the ERP to version 12 and migrate the mail server",
                      "Piloto de chatbot para RRHH"],
        }
    )
    out = assign_moments(frame, MomentsSettings(override_confidence=0.5), _small_model())
    assert out["moment"].tolist() == ["evolution", "innovation"]
    assert "→ innovation (0.85); overruled by model" in out["moment_reason"][0]
    assert out["moment_reason"][1] == (
        "rule 'servicenow-innovation': platform = servicenow, table = dmn_demand"
    )
    off = assign_moments(frame, MomentsSettings(model_can_override_below=0.0), _small_model())
    assert off["moment"].tolist() == ["innovation", "innovation"]


def test_enrich_takes_a_model_and_defaults_to_the_shipped_one() -> None:
    frame = pd.DataFrame({"title": ["Co-diseñar un portal de clientes"]})
    assert enrich(frame, now=NOW)["moment_reason"][0].startswith("no rule matched; model ")
    out = enrich(frame, now=NOW, model=_small_model())
    assert out["moment"][0] == "innovation"


def test_rule_labels_take_confident_rule_decisions_only() -> None:
    frame = pd.DataFrame(
        {
            "id": ["1", "2", "3", "4"],
            "source": ["sn"] * 4,
            "platform": ["servicenow", "servicenow", "jira", "servicenow"],
            "container": ["incident", "dmn_demand", "APP", "change_request"],
            "kind": ["incident", "demand", "Task", "change"],
            "title": ["VPN down", "Pilot chatbot", "Piloto de chatbot", "Upgrade SAP"],
            "description": ["", "", "", "kernel patch"],
        }
    )
    out = enrich(frame, now=NOW, model=_small_model())
    labels = learn.rule_labels(out)
    # The demand's rule is only "mostly" right (0.85) and the task went to the model.
    assert [(r["item_id"], r["moment"]) for r in labels] == [("1", "operation"),
                                                            ("4", "evolution")]
    assert labels[1]["text"] == "Upgrade SAP . kernel patch"
    assert labels[0]["origin"] == "rule" and labels[0]["source"] == "sn"


def test_retrain_stores_the_model_and_load_brings_it_back(tmp_path: object) -> None:
    state = StateStore(f"sqlite:///{tmp_path}/state.db")
    try:
        assert learn.load(state) is None
        assert learn.model_for(state) is learn.default_model()
        rows = [
            {"source": "jira", "item_id": f"{m}-{i}", "moment": m, "origin": "rule", "text": t}
            for m, ts in _EXAMPLES.items()
            for i, t in enumerate(ts)
        ]
        # A person said this task is evolution; their word beats the rule's.
        rows.append({"source": "jira", "item_id": "operation-0", "moment": "evolution",
                     "origin": "human", "text": "El portátil no enciende"})
        state.add_labels(rows)
        summary = learn.retrain(state, MomentsSettings(), now=NOW)
        assert summary["labels"] == 18
        assert summary["by_origin"] == {"rule": 17, "human": 1}
        assert summary["by_moment"]["evolution"] == 7
        assert summary["holdout_macro_f1"] is None  # fewer than 50 labels
        assert summary["trained_at"] == NOW.isoformat()
        blob, trained_at, meta = state.load_model(learn.MODEL_NAME)  # type: ignore[misc]
        assert trained_at == NOW and learn.compatible(meta) and blob
        model = learn.load(state)
        assert model is not None and model.predict_texts(["Piloto de chatbot"])["moment"][
            0] == "innovation"
    finally:
        state.close()


def test_a_model_from_other_library_versions_is_retrained_from_labels(tmp_path: object) -> None:
    state = StateStore(f"sqlite:///{tmp_path}/state.db")
    try:
        state.add_labels(
            [{"source": "s", "item_id": str(i), "moment": m, "origin": "rule", "text": t}
             for i, (m, t) in enumerate((m, t) for m, ts in _EXAMPLES.items() for t in ts)]
        )
        state.save_model(learn.MODEL_NAME, b"not a pickle", {"sklearn": "0.1", "format": "1"})
        model = learn.load(state)
        assert model is not None
        assert learn.compatible(state.load_model(learn.MODEL_NAME)[2])  # type: ignore[index]
    finally:
        state.close()


def test_training_needs_two_moments_and_ignores_unknown_labels() -> None:
    with pytest.raises(ValueError, match="two moments"):
        learn.train(["a", "b"], ["operation", "operation"], include_default=False)
    model = learn.train(
        ["printer broken again", "upgrade the printer driver", "printer mood board"],
        ["operation", "evolution", "mood"],
        include_default=False,
    )
    assert sorted(model.classes) == ["evolution", "operation"]
    with pytest.raises(ValueError):
        learn.human_label("s", "1", "support", "text")


def test_identical_texts_are_scored_once() -> None:
    model = _small_model()
    out = model.predict_texts(["VPN not working"] * 3 + [""])
    assert out["moment"].tolist()[:3] == ["operation"] * 3
    assert len(out) == 4 and np.isfinite(out["confidence"]).all()


def test_user_rules_still_win_over_the_model() -> None:
    frame = pd.DataFrame({"platform": ["jira"], "kind": ["Task"], "title": ["Piloto de chatbot"]})
    settings = MomentsSettings(rules=[MomentRule(name="tasks", kind="task", moment="operation")])
    out = assign_moments(frame, settings, _small_model())
    assert out["moment"][0] == "operation" and out["moment_rule"][0] == "tasks"
