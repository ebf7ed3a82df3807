"""The words and number formats of the report, in English and Spanish.

Kept as plain dicts in code (not gettext catalogues) because the report is the only place that
needs them and a reviewer can compare both languages side by side. Data values (moment and level
codes, column names of the CSV files) stay in English: they are the contract, not prose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LANGUAGES: tuple[str, ...] = ("en", "es")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "generated": "Generated",
        "no_data": "There is no data to report yet: no items were pulled or enriched.",
        "no_data_hint": "Run a sync, or check that the sources are configured and reachable.",
        "headline": "At a glance",
        "items": "items",
        "item": "item",
        "mean_score": "mean experience score",
        "at_risk_share": "at risk or poor",
        "sources": "By source",
        "source": "Source",
        "attention": "Where attention is needed first",
        "attention_none": "No customer has items at risk right now.",
        "attention_line": "{at_risk} of {items} items at risk, mean score {mean}",
        "matrix": "Customer 360: what each customer is living with IT",
        "matrix_note": (
            "Customers with most items at risk first. Each cell: items, mean score "
            "(coloured by level), items at risk, most frequent reason among them."
        ),
        "matrix_capped": "Showing {shown} of {total} customers; every customer is in {file}.",
        "customer": "Customer",
        "all_moments": "All moments",
        "at_risk_n": "{n} at risk",
        "worst": "needs attention",
        "charts": "Charts",
        "chart_scores": "Mean score per customer and moment",
        "chart_scores_capped": "the {n} customers with most items at risk",
        "chart_levels": "Experience levels per moment",
        "where_to_act": "Where to act",
        "groups": "Assignment groups",
        "services": "Services",
        "group": "Group",
        "service": "Service",
        "top_reasons": "Main reasons",
        "at_risk_list": "Items at risk",
        "at_risk_list_note": "Lowest scores first. Showing {shown} of {total}; all are in {file}.",
        "at_risk_none": "No items are at risk.",
        "score": "Score",
        "key": "Item",
        "moment": "Moment",
        "reasons": "Reasons",
        "age": "Age (days)",
        "owner": "Owner",
        "title": "Title",
        "unassigned": "(unassigned)",
        "how_to_read": "How to read this report",
        "how_moments": (
            "Every item belongs to one relationship moment with the business. "
            "The experience score (0\u2013100, higher is better) says how the requester lived "
            "it, from the item's own signals; the reasons say why in plain words."
        ),
        "how_operation": (
            "Incidents, requests, questions. The goal is to learn how users perceive "
            "and really use the systems, not only to close tickets."
        ),
        "how_evolution": (
            "Changes, enhancements, evolutive maintenance. The goal is simple, "
            "homogeneous processes that are widely used, not implementing every request."
        ),
        "how_innovation": (
            "Demands, ideas, projects, pilots. The goal is to co-create new "
            "processes and services with the customer, aimed at business growth."
        ),
        "how_levels": (
            "Levels: good \u2265 {good}, fair \u2265 {fair}, at risk \u2265 {at_risk}, "
            "poor below that. Cell colours use the same bands on the mean score; "
            "\u201cat risk\u201d counts items at risk or poor."
        ),
        "how_age": "Age: days from creation to resolution, or to now when the item is still open.",
        "how_action": (
            "Start with the highlighted cells: they pool what operation, evolution and "
            "innovation roles each hear from the same customer. Read the reasons, open the "
            "items, and agree the change with the customer."
        ),
        "files": "Files next to this report",
        "no_customer": "(no customer)",
    },
    "es": {
        "generated": "Generado",
        "no_data": "Todavía no hay datos: no se ha extraído ni enriquecido ningún elemento.",
        "no_data_hint": (
            "Ejecute una sincronización o compruebe que las fuentes están configuradas y "
            "accesibles."
        ),
        "headline": "De un vistazo",
        "items": "elementos",
        "item": "elemento",
        "mean_score": "puntuación media de experiencia",
        "at_risk_share": "en riesgo o mala",
        "sources": "Por fuente",
        "source": "Fuente",
        "attention": "Dónde actuar primero",
        "attention_none": "Ningún cliente tiene elementos en riesgo ahora mismo.",
        "attention_line": "{at_risk} de {items} elementos en riesgo, puntuación media {mean}",
        "matrix": "Cliente 360: lo que cada cliente está viviendo con TI",
        "matrix_note": (
            "Primero los clientes con más elementos en riesgo. Cada celda: elementos, "
            "puntuación media (color según nivel), elementos en riesgo y el motivo más "
            "frecuente entre ellos."
        ),
        "matrix_capped": "Se muestran {shown} de {total} clientes; todos están en {file}.",
        "customer": "Cliente",
        "all_moments": "Todos los momentos",
        "at_risk_n": "{n} en riesgo",
        "worst": "requiere atención",
        "charts": "Gráficos",
        "chart_scores": "Puntuación media por cliente y momento",
        "chart_scores_capped": "los {n} clientes con más elementos en riesgo",
        "chart_levels": "Niveles de experiencia por momento",
        "where_to_act": "Dónde actuar",
        "groups": "Grupos de asignación",
        "services": "Servicios",
        "group": "Grupo",
        "service": "Servicio",
        "top_reasons": "Motivos principales",
        "at_risk_list": "Elementos en riesgo",
        "at_risk_list_note": (
            "Primero las puntuaciones más bajas. Se muestran {shown} de {total}; todos están "
            "en {file}."
        ),
        "at_risk_none": "No hay elementos en riesgo.",
        "score": "Puntuación",
        "key": "Elemento",
        "moment": "Momento",
        "reasons": "Motivos",
        "age": "Antigüedad (días)",
        "owner": "Responsable",
        "title": "Título",
        "unassigned": "(sin asignar)",
        "how_to_read": "Cómo leer este informe",
        "how_moments": (
            "Cada elemento pertenece a un momento de relación con el negocio. La puntuación "
            "de experiencia (0\u2013100, más es mejor) indica cómo lo vivió el solicitante, "
            "según las señales del propio elemento; los motivos explican por qué."
        ),
        "how_operation": (
            "Incidencias, peticiones, consultas. El objetivo es aprender cómo "
            "perciben y usan realmente los sistemas los usuarios, no solo cerrar tickets."
        ),
        "how_evolution": (
            "Cambios, mejoras, mantenimiento evolutivo. El objetivo son procesos "
            "sencillos y homogéneos, muy usados, no implantar cada petición."
        ),
        "how_innovation": (
            "Demandas, ideas, proyectos, pilotos. El objetivo es co-crear con el "
            "cliente nuevos procesos y servicios orientados al crecimiento del negocio."
        ),
        "how_levels": (
            "Niveles: bueno \u2265 {good}, aceptable \u2265 {fair}, en riesgo \u2265 "
            "{at_risk}, malo por debajo. Los colores de las celdas usan las mismas bandas "
            "sobre la puntuación media; \u201cen riesgo\u201d cuenta elementos en riesgo o malos."
        ),
        "how_age": (
            "Antigüedad: días desde la creación hasta la resolución, o hasta hoy si sigue "
            "abierto."
        ),
        "how_action": (
            "Empiece por las celdas resaltadas: reúnen lo que oyen de un mismo cliente los "
            "roles de operación, evolución e innovación. Lea los motivos, abra los elementos y "
            "acuerde el cambio con el cliente."
        ),
        "files": "Ficheros junto a este informe",
        "no_customer": "(sin cliente)",
    },
}

MOMENT_LABELS: dict[str, dict[str, str]] = {
    "en": {"operation": "Operation", "evolution": "Evolution", "innovation": "Innovation",
           "(no moment)": "(no moment)"},
    "es": {"operation": "Operación", "evolution": "Evolución", "innovation": "Innovación",
           "(no moment)": "(sin momento)"},
}

LEVEL_LABELS: dict[str, dict[str, str]] = {
    "en": {"good": "good", "fair": "fair", "at_risk": "at risk", "poor": "poor"},
    "es": {"good": "bueno", "fair": "aceptable", "at_risk": "en riesgo", "poor": "malo"},
}


@dataclass(frozen=True, slots=True)
class Words:
    """The strings and number formats of one language, handed to the template and the charts."""

    language: str
    text: dict[str, str]
    moments: dict[str, str]
    levels: dict[str, str]

    def moment(self, code: str) -> str:
        """Display name of a moment code; unknown codes are shown as they are."""
        return self.moments.get(code, code)

    def level(self, code: str) -> str:
        """Display name of a level code; unknown codes are shown as they are."""
        return self.levels.get(code, code)

    def num(self, value: float | None) -> str:
        """A whole number with the language's thousands separator; empty when missing."""
        if _missing(value):
            return ""
        text = f"{round(value):,}"
        return text.replace(",", ".") if self.language == "es" else text

    def dec(self, value: float | None, digits: int = 1) -> str:
        """A decimal number with the language's separators; empty when missing."""
        if _missing(value):
            return ""
        text = f"{value:,.{digits}f}"
        if self.language == "es":
            # Swap through a placeholder so "1,234.5" becomes "1.234,5".
            text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
        return text

    def pct(self, value: float | None) -> str:
        """A share in 0..1 shown as a percentage with one decimal."""
        if _missing(value):
            return ""
        # Spanish style puts a (non-breaking) space before the percent sign.
        sign = "\u00a0%" if self.language == "es" else "%"
        return f"{self.dec(value * 100.0)}{sign}"


def _missing(value: float | None) -> bool:
    """True for None and NaN (pandas hands both over for empty cells)."""
    return value is None or math.isnan(value)


def words_for(language: str) -> Words:
    """The ``Words`` of ``language`` (``en`` or ``es``); a ``ValueError`` names the choices."""
    code = (language or "en").strip().lower()
    if code not in LABELS:
        raise ValueError(f"report language {language!r} is not available; use one of {LANGUAGES}")
    return Words(code, LABELS[code], MOMENT_LABELS[code], LEVEL_LABELS[code])
