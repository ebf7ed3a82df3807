"""The words and number formats of the report, in English and Spanish.

Kept as plain dicts in code (not gettext catalogues) because the report is the only place that
needs them and a reviewer can compare both languages side by side. Data values (moment and level
codes, column names of the CSV files) stay in English: they are the contract, not prose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

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
        "period": "Period",
        "period_line": "{start} \u2013 {end} ({days} days), compared with the {days} days before",
        "previous": "previous period",
        "vs_previous": "before: {value}",
        "new_in_period": "new",
        "trend_up": "better than the previous period",
        "trend_down": "worse than the previous period",
        "trend_flat": "about the same as the previous period",
        "watermelons": "Watermelons",
        "watermelons_kpi": "watermelons: SLA met, experience poor",
        "watermelons_note": (
            "Green outside, red inside: the SLA was met but the requester lived it badly. "
            "{n} of {met} items with the SLA met ({share})."
        ),
        "watermelons_none": "No watermelons: every item with the SLA met was lived well enough.",
        "watermelons_no_sla": "Not available: the items carry no SLA information.",
        "survey": "Does the score agree with the surveys?",
        "survey_line": (
            "Spearman rank correlation between the experience score and the survey answer: "
            "{rho} over {n} surveyed items ({scope})."
        ),
        "survey_scope_period": "this period",
        "survey_scope_all": "all the data",
        "survey_good": "The score and the surveys agree well.",
        "survey_fair": "The score and the surveys partly agree.",
        "survey_poor": "The score and the surveys hardly agree: review the weights in the config.",
        "survey_few": (
            "Not enough survey answers to compare in {scope} ({n}; at least {min} are needed)."
        ),
        "howto_example": "Latest question",
        "vs_previous_short": "vs previous period",
        "watermelons_short": "watermelons (SLA met, experience poor)",
        "attached": "Full report attached",
        "moments_view": "What each moment is telling us",
        "moments_view_note": (
            "The new view of each moment: learn how users really use the systems, keep change "
            "simple and adopted, co-create with the business. Figures of this period; "
            "the previous period in grey."
        ),
        "not_available": "not available: no item carries this signal",
        "ind_howto_share": "How-to questions (users struggling to use a system)",
        "ind_chased_share": "Requesters who chased for status",
        "ind_lost_hours": "Working hours lost by users",
        "ind_lost_hours_per_item": "Hours lost per item",
        "ind_changes_with_incidents": "Changes followed by incidents",
        "ind_failed_changes": "Failed or backed-out changes",
        "ind_lead_time_days": "Lead time, creation to resolution (median)",
        "ind_business_participants": "Business people taking part (median per item)",
        "ind_business_share": "Comments written by the business",
        "ind_stalled": "Initiatives stalled (no activity)",
        "unit_days": "{v} days",
        "unit_hours": "{v} h",
        "unit_people": "{v}",
        "of_items": "{count} of {measured}",
        "howto_themes": "How-to themes by service",
        "howto_none": "No how-to questions in this period.",
        "howto_items": "How-to",
        "themes": "Themes",
        "ranked": "Services and groups, worst experience first",
        "ranked_note": (
            "Ranked by mean score in this period; fewer than {min} items are ranked last. "
            "The arrow compares with the previous period. All are in {files}."
        ),
        "rank": "#",
        "trend": "Trend",
        "pingpong": "Reassignment ping-pong between groups",
        "pingpong_note": "Pairs of groups that passed items back and forth in this period.",
        "pingpong_none": "No ping-pong between groups in this period.",
        "pingpong_basis_reasons": (
            "Pairs read from the items' reasons; the order of the moves is not stored."
        ),
        "group_pair": "Groups",
        "weekly": "Weekly trends per moment",
        "weekly_note": "Items opened each week (bars) and their mean score (lines).",
        "chart_weekly_score": "Mean score",
        "chart_weekly_volume": "Items opened",
        "few_items": "few items",
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
        "period": "Periodo",
        "period_line": "{start} \u2013 {end} ({days} días), comparado con los {days} días anteriores",
        "previous": "periodo anterior",
        "vs_previous": "antes: {value}",
        "new_in_period": "nuevo",
        "trend_up": "mejor que el periodo anterior",
        "trend_down": "peor que el periodo anterior",
        "trend_flat": "parecido al periodo anterior",
        "watermelons": "Sandías",
        "watermelons_kpi": "sandías: SLA cumplido, mala experiencia",
        "watermelons_note": (
            "Verdes por fuera, rojas por dentro: se cumplió el SLA pero el solicitante lo vivió "
            "mal. {n} de {met} elementos con el SLA cumplido ({share})."
        ),
        "watermelons_none": "No hay sandías: todo lo que cumplió el SLA se vivió bien.",
        "watermelons_no_sla": "No disponible: los elementos no traen información de SLA.",
        "survey": "¿Coincide la puntuación con las encuestas?",
        "survey_line": (
            "Correlación de rangos de Spearman entre la puntuación de experiencia y la "
            "respuesta a la encuesta: {rho} en {n} elementos encuestados ({scope})."
        ),
        "survey_scope_period": "este periodo",
        "survey_scope_all": "todos los datos",
        "survey_good": "La puntuación y las encuestas coinciden bien.",
        "survey_fair": "La puntuación y las encuestas coinciden en parte.",
        "survey_poor": (
            "La puntuación y las encuestas apenas coinciden: revise los pesos de la configuración."
        ),
        "survey_few": (
            "No hay suficientes encuestas para comparar en {scope} ({n}; hacen falta {min})."
        ),
        "howto_example": "Última consulta",
        "vs_previous_short": "frente al periodo anterior",
        "watermelons_short": "sandías (SLA cumplido, mala experiencia)",
        "attached": "Informe completo adjunto",
        "moments_view": "Lo que nos dice cada momento",
        "moments_view_note": (
            "La nueva visión de cada momento: aprender cómo usan de verdad los sistemas, "
            "cambios sencillos y adoptados, co-crear con el negocio. Cifras de este periodo; "
            "en gris, el periodo anterior."
        ),
        "not_available": "no disponible: ningún elemento trae esta señal",
        "ind_howto_share": "Consultas de uso (usuarios con dificultades para usar un sistema)",
        "ind_chased_share": "Solicitantes que preguntaron por el estado",
        "ind_lost_hours": "Horas de trabajo perdidas por los usuarios",
        "ind_lost_hours_per_item": "Horas perdidas por elemento",
        "ind_changes_with_incidents": "Cambios seguidos de incidencias",
        "ind_failed_changes": "Cambios fallidos o revertidos",
        "ind_lead_time_days": "Plazo de entrega, de la creación a la resolución (mediana)",
        "ind_business_participants": "Personas de negocio que participan (mediana por elemento)",
        "ind_business_share": "Comentarios escritos por el negocio",
        "ind_stalled": "Iniciativas paradas (sin actividad)",
        "unit_days": "{v} días",
        "unit_hours": "{v} h",
        "unit_people": "{v}",
        "of_items": "{count} de {measured}",
        "howto_themes": "Temas de las consultas de uso por servicio",
        "howto_none": "No hay consultas de uso en este periodo.",
        "howto_items": "Consultas",
        "themes": "Temas",
        "ranked": "Servicios y grupos, peor experiencia primero",
        "ranked_note": (
            "Ordenados por puntuación media del periodo; con menos de {min} elementos van al "
            "final. La flecha compara con el periodo anterior. Todos están en {files}."
        ),
        "rank": "#",
        "trend": "Tendencia",
        "pingpong": "Ping-pong de reasignaciones entre grupos",
        "pingpong_note": "Parejas de grupos que se pasaron elementos de uno a otro en este periodo.",
        "pingpong_none": "No hubo ping-pong entre grupos en este periodo.",
        "pingpong_basis_reasons": (
            "Parejas leídas de los motivos de los elementos; el orden de los pasos no se guarda."
        ),
        "group_pair": "Grupos",
        "weekly": "Tendencias semanales por momento",
        "weekly_note": "Elementos abiertos cada semana (barras) y su puntuación media (líneas).",
        "chart_weekly_score": "Puntuación media",
        "chart_weekly_volume": "Elementos abiertos",
        "few_items": "pocos elementos",
    },
}

MOMENT_LABELS: dict[str, dict[str, str]] = {
    "en": {"operation": "Operation", "evolution": "Evolution", "innovation": "Innovation",
           "(no moment)": "(no moment)"},
    "es": {"operation": "Operación", "evolution": "Evolución", "innovation": "Innovación",
           "(no moment)": "(sin momento)"},
}

MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "es": ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"),
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

    def day(self, value: date) -> str:
        """A date as the language writes it: ``12 Oct 2026`` / ``12 oct 2026``."""
        return f"{value.day} {MONTHS[self.language][value.month - 1]} {value.year}"

    def short_day(self, value: date) -> str:
        """A date without the year, for chart axes: ``12 Oct``."""
        return f"{value.day} {MONTHS[self.language][value.month - 1]}"

    def signed(self, value: float | None) -> str:
        """A change with its sign: ``+3.2``, ``\u22124.0`` (true minus sign), ``0.0``."""
        if _missing(value):
            return ""
        text = self.dec(abs(value))
        if round(value, 1) > 0:
            return "+" + text
        if round(value, 1) < 0:
            return "\u2212" + text
        return text

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
