"""The sandbox's synthetic world: customers, people and their items across both platforms.

The world is platform-neutral. ``momentos.sandbox.servicenow`` and ``momentos.sandbox.jira``
render it as Table API records and Jira issues. It is deterministic for a given seed and size.

``WorldItem.truth`` holds the generator's intent (the moment it meant, whether the requester's
experience was bad). It is never served over HTTP; tests and quality benchmarks read it from the
``World`` object, and enrichment must never see it.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import math
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random

INTEGRATION_USER = "momentos.integration"
HUMAN_USER = "it.agent"


@dataclass(slots=True)
class Org:
    """A business area: a company, or a department inside one."""

    id: str  # 32-hex sys_id-style id
    name: str
    kind: str  # "company" | "department"
    company_id: str = ""  # for departments: the owning company


@dataclass(slots=True)
class User:
    id: str  # 32-hex
    username: str  # login name (sys_user.user_name / Jira name)
    name: str  # display name
    email: str
    is_agent: bool  # member of IT (agent) or business user
    company_id: str = ""
    department_id: str = ""
    language: str = "en"  # "en" | "es"
    account_id: str = ""  # Jira Cloud accountId-style id


@dataclass(slots=True)
class Group:
    id: str
    name: str  # assignment group, e.g. "Service Desk", "Network", "SAP Finance"


@dataclass(slots=True)
class WorldComment:
    id: str
    author_id: str  # User.id
    created: datetime
    text: str
    internal: bool = False  # work note / internal comment


@dataclass(slots=True)
class WorldHistory:
    field: str  # "assignment_group" | "assigned_to" | "state" | "priority"
    old: str | None  # display value (group name, user name, state label, priority)
    new: str | None
    at: datetime
    by_id: str  # User.id


@dataclass(slots=True)
class WorldItem:
    platform: str  # "servicenow" | "jira"
    container: str  # ServiceNow table (incident, sc_req_item, ...) or Jira project key
    kind: str  # SN: incident|request|problem|change|project|demand; Jira: issue type name
    id: str  # SN: 32-hex sys_id; Jira: numeric string id
    number: str  # INC0010001 / RITM0010001 / PRB.. / CHG.. / PRJ.. / DMND.. ; Jira: KEY-N
    title: str
    description: str
    language: str  # "en" | "es"
    requester_id: str
    company_id: str
    department_id: str
    group_id: str
    assignee_id: str
    service: str  # business service / component name
    category: str
    state: str  # SN: numeric state string; Jira: status name
    priority: str  # SN: "1".."5"; Jira: Highest|High|Medium|Low|Lowest
    created: datetime
    updated: datetime
    updated_by_id: str
    resolved: datetime | None = None
    labels: list[str] = field(default_factory=list)
    request_type: str = ""  # JSM request type name
    participants: list[str] = field(default_factory=list)  # User.ids (JSM request participants)
    comments: list[WorldComment] = field(default_factory=list)
    history: list[WorldHistory] = field(default_factory=list)
    sla_breached: bool | None = None
    sla_planned_end: datetime | None = None
    survey_score: int | None = None  # 1..5, None when no survey answer
    reopen_count: int = 0
    reassignment_count: int = 0
    caused_by: str = ""  # number of the change that caused this incident
    #: Writeback field values by logical name ("moment", "score", "signals"); empty initially.
    fields: dict[str, str] = field(default_factory=dict)
    #: Ground truth: {"moment": "operation"|"evolution"|"innovation", "bad_experience": bool}.
    truth: dict[str, object] = field(default_factory=dict)


@dataclass
class World:
    seed: int
    now: datetime  # the generator's "now"; every timestamp is at or before it
    orgs: list[Org]
    users: list[User]
    groups: list[Group]
    items: list[WorldItem]

    _users: dict[str, User] = field(default_factory=dict, init=False, repr=False)

    def user(self, user_id: str) -> User:
        if not self._users:
            self._users = {u.id: u for u in self.users}
        return self._users[user_id]


# ---------------------------------------------------------------------------------------------
# Generator
#
# Everything below is private except ``generate_world`` and ``world_summary``. The generator
# draws every decision from one ``random.Random(seed)`` in a fixed order, so a (seed, items,
# now) triple always yields the same world. Text is assembled from precomputed template banks:
# per item we only pick and ``format`` a few strings, which keeps 100k items in seconds.
# ---------------------------------------------------------------------------------------------

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
# ``datetime.fromtimestamp(t, UTC)`` equals ``_EPOCH + timedelta(seconds=t)`` for whole seconds
# and is about four times faster; the world creates some 15 datetimes per item.
_at = datetime.fromtimestamp
_DAY = 86_400
_HORIZON_DAYS = 180

MOMENT_OPERATION = "operation"
MOMENT_EVOLUTION = "evolution"
MOMENT_INNOVATION = "innovation"
_OP, _EVO, _INNO = MOMENT_OPERATION, MOMENT_EVOLUTION, MOMENT_INNOVATION

_GROUPS = (
    "Service Desk",
    "Network",
    "Desktop Support",
    "SAP Finance",
    "Database",
    "Cloud Platform",
    "Application Support",
    "PMO",
)

# Business areas: (company, departments). The generator shuffles them per seed and takes 6-10.
_COMPANIES = (
    ("ACME Retail", ("Tiendas", "E-commerce", "Compras")),
    ("Finanzas", ("Contabilidad", "Tesorería", "Control de Gestión")),
    ("Logística", ("Almacén Central", "Transporte", "Planificación")),
    ("Recursos Humanos", ("Nóminas", "Selección", "Formación")),
    ("Marketing", ("Marca", "Marketing Digital", "Fidelización")),
    ("Operaciones Planta", ("Producción", "Mantenimiento", "Calidad")),
    ("Legal", ("Contratos", "Cumplimiento")),
    ("Ventas", ("Grandes Cuentas", "Canal Distribuidores", "Ventas Sur")),
    ("Compras", ("Proveedores", "Aprovisionamiento")),
    ("Customer Care", ("Contact Center", "Postventa", "Garantías")),
)

# Services: (canonical name, English text form, Spanish article, Spanish noun, group, category,
# weight). The Spanish article lets templates build "al CRM" / "de la VPN" correctly.
_SERVICES = (
    ("SAP", "SAP", "", "SAP", "SAP Finance", "software", 10),
    ("VPN", "VPN", "la", "VPN", "Network", "network", 8),
    ("Outlook", "Outlook", "", "Outlook", "Application Support", "software", 9),
    ("Teams", "Teams", "", "Teams", "Application Support", "software", 7),
    ("CRM", "CRM", "el", "CRM", "Application Support", "software", 7),
    ("Printer", "printer", "la", "impresora", "Desktop Support", "hardware", 6),
    ("Laptop", "laptop", "el", "portátil", "Desktop Support", "hardware", 8),
    ("Payroll portal", "payroll portal", "el", "portal de nóminas", "Application Support",
     "software", 4),
    ("Data warehouse", "data warehouse", "el", "almacén de datos", "Database", "database", 5),
    ("E-commerce site", "e-commerce site", "la", "tienda online", "Cloud Platform", "software", 6),
    ("Wi-Fi", "Wi-Fi", "la", "wifi", "Network", "network", 5),
    ("SharePoint", "SharePoint", "", "SharePoint", "Application Support", "software", 4),
    ("Warehouse management system", "warehouse management system", "el", "SGA", "SAP Finance",
     "software", 4),
    ("Power BI", "Power BI", "", "Power BI", "Database", "database", 4),
    ("Intranet", "intranet", "la", "intranet", "Cloud Platform", "software", 3),
    ("Expense app", "expense app", "la", "app de gastos", "SAP Finance", "software", 3),
    ("Mobile phone", "mobile phone", "el", "móvil corporativo", "Desktop Support", "hardware", 3),
)

_FIRST_ES = (
    "Lucía", "María", "Carmen", "Javier", "Carlos", "Ana", "Pablo", "Laura", "Sergio", "Marta",
    "David", "Elena", "Jorge", "Paula", "Alberto", "Raquel", "Miguel", "Cristina", "Andrés",
    "Nuria", "Álvaro", "Irene", "Diego", "Beatriz", "Rubén", "Silvia", "Manuel", "Patricia",
    "Óscar", "Teresa", "Iñigo", "Rocío", "Fernando", "Alicia", "Hugo", "Noelia",
)
_LAST_ES = (
    "García", "Martínez", "López", "Sánchez", "Pérez", "Gómez", "Fernández", "Ruiz", "Díaz",
    "Moreno", "Álvarez", "Romero", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil",
    "Serrano", "Molina", "Ortega", "Castro", "Delgado", "Marín", "Iglesias", "Núñez", "Medina",
    "Garrido", "Cortés", "Lozano",
)
_FIRST_EN = (
    "James", "Emily", "Oliver", "Sophie", "Daniel", "Hannah", "Thomas", "Grace", "Michael",
    "Chloe", "Ryan", "Lauren", "George", "Amelia", "Jack", "Olivia", "Samuel", "Emma", "Liam",
    "Jessica", "Ethan", "Megan", "Noah", "Rachel", "Harry", "Isabel", "Lewis", "Zoe",
)
_LAST_EN = (
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Roberts",
    "Walker", "Wright", "Hughes", "Green", "Hall", "Clarke", "Jackson", "Wood", "Turner", "Hill",
    "Cooper", "Morgan", "Baker", "Price", "Bennett",
)

_SLA_TARGET_H = (8, 24, 72, 120, 240)  # resolution target by priority index (P1..P5)
_REQUEST_TARGET_H = (24, 48, 120, 120, 240)
_SN_PRIORITY_LABEL = ("1 - Critical", "2 - High", "3 - Moderate", "4 - Low", "5 - Planning")
_JIRA_PRIORITY = ("Highest", "High", "Medium", "Low", "Lowest")
_SN_PRIORITY = ("1", "2", "3", "4", "5")  # one string object each, shared by every item


@dataclass(frozen=True, slots=True)
class _Flow:
    """A container's status workflow, as display labels (SN codes are looked up separately)."""

    new: str
    stages: tuple[str, ...]  # work states in order; stages[-1] is where reopens go back to
    hold: str | None
    resolved: str
    closed: str | None
    close_days: tuple[float, float]
    reopenable: bool


_FLOW_INCIDENT = _Flow("New", ("In Progress",), "On Hold", "Resolved", "Closed", (3, 3), True)
_FLOW_RITM = _Flow("Open", ("Work in Progress",), "Pending", "Closed Complete", None, (0, 0),
                   False)
_FLOW_PROBLEM = _Flow("New", ("Assess", "Root Cause Analysis", "Fix in Progress"), None,
                      "Resolved", "Closed", (5, 20), False)
_FLOW_CHANGE = _Flow("New", ("Assess", "Authorize", "Scheduled", "Implement", "Review"), None,
                     "Closed", None, (0, 0), False)
_FLOW_PROJECT = _Flow("Pending", ("Open", "Work in Progress"), None, "Closed Complete", None,
                      (0, 0), False)
_FLOW_DEMAND = _Flow("Draft", ("Submitted", "Screening", "Qualified", "Approved"), None,
                     "Completed", None, (0, 0), False)
_FLOW_JSM = _Flow("Open", ("In Progress",), "Waiting for customer", "Resolved", "Closed", (2, 7),
                  True)
_FLOW_JIRA = _Flow("Open", ("In Progress",), None, "Done", None, (0, 0), False)
_FLOW_BUG = _Flow("Open", ("In Progress",), None, "Resolved", "Closed", (1, 10), True)

_SN_STATE_CODES: dict[str, dict[str, str]] = {
    "incident": {"New": "1", "In Progress": "2", "On Hold": "3", "Resolved": "6", "Closed": "7"},
    "sc_req_item": {"Open": "1", "Work in Progress": "2", "Pending": "-5", "Closed Complete": "3"},
    "problem": {"New": "101", "Assess": "102", "Root Cause Analysis": "103",
                "Fix in Progress": "104", "Resolved": "106", "Closed": "107"},
    "change_request": {"New": "-5", "Assess": "-4", "Authorize": "-3", "Scheduled": "-2",
                       "Implement": "-1", "Review": "0", "Closed": "3"},
    "pm_project": {"Pending": "-5", "Open": "1", "Work in Progress": "2", "Closed Complete": "3"},
    "dmn_demand": {"Draft": "1", "Submitted": "2", "Screening": "3", "Qualified": "4",
                   "Approved": "8", "Completed": "9"},
}

# ServiceNow tables: (table, kind, share of SN, number prefix, flow).
_SN_TABLES = (
    ("incident", "incident", 0.38, "INC", _FLOW_INCIDENT),
    ("sc_req_item", "request", 0.22, "RITM", _FLOW_RITM),
    ("problem", "problem", 0.04, "PRB", _FLOW_PROBLEM),
    ("change_request", "change", 0.14, "CHG", _FLOW_CHANGE),
    ("pm_project", "project", 0.08, "PRJ", _FLOW_PROJECT),
    ("dmn_demand", "demand", 0.14, "DMND", _FLOW_DEMAND),
)
# Jira projects: (key, share of Jira, ((issue type, weight), ...)). The first kinds listed in
# _JIRA_FORCED are generated first so that even tiny worlds have every moment on both platforms.
_JIRA_PROJECTS = (
    ("SD", 0.50, (("Incident", 50), ("Service Request", 35), ("Problem", 5), ("Change", 10))),
    ("APP", 0.30, (("Story", 40), ("Task", 25), ("Bug", 28), ("Epic", 7))),
    ("PMO", 0.20, (("Epic", 35), ("Idea", 35), ("Task", 30))),
)
_JIRA_FORCED = {
    "SD": ("Incident", "Incident", "Change"),
    "APP": ("Bug", "Story", "Task"),
    "PMO": ("Idea", "Epic", "Task"),
}


#: One ``truth`` dict per (moment, bad experience), shared by every item with those values:
#: 184 bytes an item less (about 180 MB at a million items). Readers treat it as read-only.
_TRUTH: dict[tuple[str, bool], dict[str, object]] = {
    (m, b): {"moment": m, "bad_experience": b} for m in (_OP, _EVO, _INNO) for b in (False, True)
}


def _jira_flow(container: str, kind: str) -> _Flow:
    if container == "SD" and kind != "Change":
        return _FLOW_JSM
    if kind == "Bug":
        return _FLOW_BUG
    return _FLOW_JIRA


# Moment intent by (container, kind): ((moment, weight), ...). Real data is messy, so Jira
# Task/Story spread over all three moments and some demands/projects/epics are evolution.
_MOMENT_MIX: dict[tuple[str, str], tuple[tuple[str, float], ...]] = {
    ("incident", "incident"): ((_OP, 1.0),),
    ("sc_req_item", "request"): ((_OP, 1.0),),
    ("problem", "problem"): ((_OP, 1.0),),
    ("change_request", "change"): ((_EVO, 1.0),),
    ("pm_project", "project"): ((_INNO, 0.85), (_EVO, 0.15)),
    ("dmn_demand", "demand"): ((_INNO, 0.85), (_EVO, 0.15)),
    ("SD", "Incident"): ((_OP, 1.0),),
    ("SD", "Service Request"): ((_OP, 1.0),),
    ("SD", "Problem"): ((_OP, 1.0),),
    ("SD", "Change"): ((_EVO, 1.0),),
    ("APP", "Story"): ((_OP, 0.2), (_EVO, 0.5), (_INNO, 0.3)),
    ("APP", "Task"): ((_OP, 0.4), (_EVO, 0.4), (_INNO, 0.2)),
    ("APP", "Bug"): ((_OP, 1.0),),
    ("APP", "Epic"): ((_INNO, 0.7), (_EVO, 0.3)),
    ("PMO", "Epic"): ((_INNO, 0.85), (_EVO, 0.15)),
    ("PMO", "Idea"): ((_INNO, 1.0),),
    ("PMO", "Task"): ((_OP, 0.15), (_EVO, 0.3), (_INNO, 0.55)),
}

# Text flavour by (kind, moment): which title/description bank the item's text comes from.
_FLAVOR_MIX: dict[tuple[str, str], tuple[tuple[str, float], ...]] = {
    ("incident", _OP): (("incident", 0.85), ("howto", 0.15)),
    ("request", _OP): (("request", 0.8), ("howto", 0.2)),
    ("problem", _OP): (("problem", 1.0),),
    ("change", _EVO): (("change", 0.7), ("enhancement", 0.3)),
    ("project", _INNO): (("innovation", 1.0),),
    ("project", _EVO): (("change", 0.5), ("enhancement", 0.5)),
    ("demand", _INNO): (("innovation", 1.0),),
    ("demand", _EVO): (("enhancement", 1.0),),
    ("Incident", _OP): (("incident", 0.9), ("howto", 0.1)),
    ("Service Request", _OP): (("request", 0.6), ("howto", 0.4)),
    ("Problem", _OP): (("problem", 1.0),),
    ("Change", _EVO): (("change", 0.8), ("enhancement", 0.2)),
    ("Story", _OP): (("optask", 0.6), ("bug", 0.4)),
    ("Story", _EVO): (("evostory", 0.7), ("enhancement", 0.3)),
    ("Story", _INNO): (("innostory", 0.7), ("innotask", 0.3)),
    ("Task", _OP): (("optask", 1.0),),
    ("Task", _EVO): (("change", 0.5), ("enhancement", 0.5)),
    ("Task", _INNO): (("innotask", 1.0),),
    ("Bug", _OP): (("bug", 1.0),),
    ("Epic", _INNO): (("innovation", 1.0),),
    ("Epic", _EVO): (("programme", 0.5), ("enhancement", 0.5)),
    ("Idea", _INNO): (("idea", 1.0),),
}

# Kinds that carry an SLA (incidents and requests on both platforms).
_SLA_KINDS = frozenset({"incident", "request", "Incident", "Service Request"})
_CAUSE_KINDS = frozenset({"incident", "Incident"})

# Median duration in days (good, bad) for kinds without an SLA target.
_DURATION_DAYS: dict[str, tuple[float, float]] = {
    "problem": (12, 40), "Problem": (12, 40),
    "change": (6, 18), "Change": (6, 18),
    "project": (60, 120), "demand": (30, 80),
    "Story": (8, 25), "Task": (5, 20), "Bug": (3, 14), "Epic": (60, 130), "Idea": (40, 150),
}


# --------------------------------------------------------------------------- text banks -------


def _cross(*parts: tuple[str, ...]) -> tuple[str, ...]:
    """All concatenations of one string from each part (precomputed once at import)."""
    return tuple("".join(p) for p in itertools.product(*parts))


# Slot fillers, by language.
_WHEN = {
    "en": ("this morning", "yesterday", "Monday", "the last update", "last week", "lunchtime",
           "the weekend", "the password change"),
    "es": ("esta mañana", "ayer", "el lunes", "la última actualización", "la semana pasada",
           "mediodía", "el fin de semana", "el cambio de contraseña"),
}
_ERRORS = ("ERR_CONNECTION_RESET", "401 Unauthorized", "Session expired", "Error 500",
           "The RPC server is unavailable", "Timeout", "License not found", "0x80070005",
           "ORA-12541", "SSO token invalid", "Disk quota exceeded", "Certificate not trusted")
_SITES = {
    "en": ("Madrid HQ", "the Barcelona office", "the Zaragoza warehouse", "Plant 2", "Seville",
           "the Lisbon office", "Valencia", "the London office"),
    "es": ("la sede de Madrid", "la oficina de Barcelona", "el almacén de Zaragoza", "Planta 2",
           "Sevilla", "la oficina de Lisboa", "Valencia", "la oficina de Londres"),
}
_SOFTWARE = ("Visio", "Adobe Acrobat Pro", "Power BI Desktop", "AutoCAD", "Tableau", "Zoom",
             "Python", "Project", "7-Zip", "Notepad++", "SAP GUI", "DBeaver")
_FIELD = {
    "en": ("cost center", "delivery date", "VAT number", "customer segment", "supplier code",
           "approval reason", "store code", "incoterm", "contract end date"),
    "es": ("centro de coste", "fecha de entrega", "NIF", "segmento de cliente",
           "código de proveedor", "motivo de aprobación", "código de tienda", "incoterm",
           "fecha de fin de contrato"),
}
_FORM = {
    "en": ("purchase order", "customer onboarding", "expense report", "vacation request",
           "returns", "sales order", "supplier registration"),
    "es": ("pedidos", "alta de clientes", "notas de gastos", "solicitud de vacaciones",
           "devoluciones", "pedido de venta", "alta de proveedores"),
}
_PROC = {
    "en": ("purchase", "invoice", "expense", "onboarding", "returns", "price change",
           "contract renewal", "stock transfer"),
    "es": ("compras", "facturas", "gastos", "incorporaciones", "devoluciones", "cambio de precios",
           "renovación de contratos", "traspasos de stock"),
}
_REPORT = {
    "en": ("sales", "stock", "headcount", "margin", "overtime", "supplier performance", "churn"),
    "es": ("ventas", "stock", "plantilla", "margen", "horas extra", "desempeño de proveedores",
           "bajas de clientes"),
}
_INNO_THING = {
    "en": ("HR chatbot", "predictive stock replenishment", "customer portal for distributors",
           "mobile app for field sales", "computer vision for quality control",
           "product recommendations on the e-commerce site", "IoT sensors on the production line",
           "AI assistant for sales proposals", "self-service analytics for store managers",
           "digital signature of contracts", "dynamic pricing", "voice ordering for key accounts",
           "supplier collaboration portal", "route optimisation for deliveries",
           "digital onboarding for new hires"),
    "es": ("chatbot para RRHH", "reposición predictiva de stock",
           "portal de clientes para distribuidores", "app móvil para comerciales",
           "visión artificial para control de calidad",
           "recomendaciones de producto en la tienda online",
           "sensores IoT en la línea de producción", "asistente de IA para propuestas comerciales",
           "analítica de autoservicio para jefes de tienda", "firma digital de contratos",
           "precios dinámicos", "pedidos por voz para grandes cuentas",
           "portal de colaboración con proveedores", "optimización de rutas de reparto",
           "incorporación digital de nuevos empleados"),
}
_NEW_THING = {
    "en": ("customer portal", "B2B marketplace", "loyalty app", "partner self-service portal",
           "analytics platform", "onboarding app", "field service app", "pricing engine"),
    "es": ("portal de clientes", "marketplace B2B", "app de fidelización",
           "portal de autoservicio para socios", "plataforma analítica", "app de bienvenida",
           "app de servicio de campo", "motor de precios"),
}
_AUDIENCE = {
    "en": ("distributors", "store managers", "field technicians", "new employees", "key accounts",
           "suppliers", "franchisees"),
    "es": ("distribuidores", "jefes de tienda", "técnicos de campo", "nuevos empleados",
           "grandes cuentas", "proveedores", "franquiciados"),
}
_TECH = {
    "en": ("generative AI", "machine learning", "RPA", "digital twins", "low-code apps",
           "open data", "computer vision"),
    "es": ("IA generativa", "aprendizaje automático", "RPA", "gemelos digitales",
           "aplicaciones low-code", "datos abiertos", "visión artificial"),
}
_GOAL = {
    "en": ("reduce stock-outs", "speed up onboarding", "grow online sales", "cut delivery times",
           "personalise offers", "reduce manual data entry", "improve first-time fix rate"),
    "es": ("reducir roturas de stock", "agilizar las incorporaciones", "crecer en venta online",
           "acortar los plazos de entrega", "personalizar ofertas",
           "reducir la grabación manual de datos", "resolver más averías a la primera"),
}
_ROLE = {
    "en": ("store manager", "buyer", "sales rep", "HR partner", "controller", "warehouse lead",
           "marketing analyst", "plant supervisor"),
    "es": ("jefe de tienda", "comprador", "comercial", "responsable de RRHH", "controller",
           "jefe de almacén", "analista de marketing", "supervisor de planta"),
}
_BENEFIT = {
    "en": ("I save time every week", "errors are reduced", "month-end closes faster",
           "customers get answers sooner", "we stop using spreadsheets"),
    "es": ("ahorre tiempo cada semana", "haya menos errores", "el cierre de mes sea más rápido",
           "los clientes reciban respuesta antes", "dejemos de usar hojas de cálculo"),
}
_BUG = {
    "en": ("totals rounded incorrectly in invoice PDF",
           "crash when saving an order with empty discount", "date filter ignores the time zone",
           "export button does nothing in Firefox",
           "duplicate notifications sent to customers", "search returns deleted records",
           "wrong currency shown for EUR customers", "login page loops after SSO timeout",
           "pagination skips the last page", "attachment upload fails above 10 MB"),
    "es": ("los totales se redondean mal en el PDF de la factura",
           "error 500 al guardar un pedido sin descuento", ("el filtro de fechas ignora la zona "
           "horaria"), "el botón de exportar no hace nada en Firefox",
           "se envían notificaciones duplicadas a clientes", ("la búsqueda devuelve registros "
           "borrados"), "muestra la moneda equivocada a clientes en EUR",
           "bucle en la pantalla de login al caducar el SSO", ("la paginación se salta la última "
           "página"), "falla la subida de adjuntos de más de 10 MB"),
}
_MONTH = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
           "octubre", "noviembre", "diciembre"),
}

# How-to questions: (English act, Spanish infinitive, Spanish first person, service).
_HOWTO = (
    ("export the report to Excel", "exportar el informe a Excel", "exporto el informe a Excel",
     "Power BI"),
    ("connect to the VPN from home", "conectarme a la VPN desde casa",
     "me conecto a la VPN desde casa", "VPN"),
    ("share my calendar with my team", "compartir mi calendario con el equipo",
     "comparto mi calendario con el equipo", "Outlook"),
    ("recover a deleted file from SharePoint", "recuperar un fichero borrado de SharePoint",
     "recupero un fichero borrado de SharePoint", "SharePoint"),
    ("change my email signature", "cambiar mi firma de correo", "cambio mi firma de correo",
     "Outlook"),
    ("download my payslip", "descargar mi nómina", "descargo mi nómina", "Payroll portal"),
    ("record a Teams meeting", "grabar una reunión de Teams", "grabo una reunión de Teams",
     "Teams"),
    ("create a custom filter for my orders", "crear un filtro personalizado para mis pedidos",
     "creo un filtro personalizado para mis pedidos", "CRM"),
    ("schedule a recurring report", "programar un informe periódico",
     "programo un informe periódico", "Data warehouse"),
    ("reset my MFA device", "restablecer el doble factor de autenticación",
     "restablezco el doble factor de autenticación", "VPN"),
    ("approve an expense from my phone", "aprobar un gasto desde el móvil",
     "apruebo un gasto desde el móvil", "Expense app"),
    ("print double-sided by default", "imprimir a doble cara por defecto",
     "imprimo a doble cara por defecto", "Printer"),
    ("post a purchase invoice in SAP", "contabilizar una factura de compra en SAP",
     "contabilizo una factura de compra en SAP", "SAP"),
    ("check the stock of a product in another store",
     "consultar el stock de un producto en otra tienda",
     "consulto el stock de un producto en otra tienda", "Warehouse management system"),
    ("add a delegate to my mailbox", "añadir un delegado a mi buzón",
     "añado un delegado a mi buzón", "Outlook"),
    ("connect my laptop to the meeting room screen",
     "conectar el portátil a la pantalla de la sala",
     "conecto el portátil a la pantalla de la sala", "Laptop"),
    ("update a product photo on the website", "actualizar la foto de un producto en la web",
     "actualizo la foto de un producto en la web", "E-commerce site"),
    ("set up email on my new phone", "configurar el correo en el móvil nuevo",
     "configuro el correo en el móvil nuevo", "Mobile phone"),
    ("find last year's payroll certificate", ("encontrar el certificado de retenciones del año "
     "pasado"), "encuentro el certificado de retenciones del año pasado", "Payroll portal"),
    ("share a Power BI dashboard with my manager",
     "compartir un panel de Power BI con mi responsable",
     "comparto un panel de Power BI con mi responsable", "Power BI"),
)

# Titles. Placeholders: {svc} service as written mid-sentence, {Svc} capitalised, {a_svc} /
# {de_svc} Spanish contractions ("al CRM", "de la VPN"), plus the slot fillers above.
_TITLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("incident:software", "en"): (
        "Cannot log in to {svc}", "{Svc} very slow since {when}",
        "Error '{err}' when opening {svc}",
        "{Svc} keeps crashing", "{Svc} not loading for the {dept} team",
        "{Svc}: access denied after password change", "Data missing in {svc}",
        "{Svc} down for everyone in {site}", "{Svc} freezes when saving",
        "Can't open attachments in {svc}",
    ),
    ("incident:software", "es"): (
        "No puedo entrar en {svc}", "{Svc} va muy lento desde {when}",
        "Error '{err}' al abrir {svc}", "{Svc} se cierra solo",
        "{Svc} no carga para el equipo de {dept}",
        "Acceso denegado {a_svc} tras cambiar la contraseña", "Faltan datos en {svc}",
        "Caída {de_svc} para todos en {site}", "{Svc} se bloquea al guardar",
        "No se abren los adjuntos en {svc}",
    ),
    ("incident:network", "en"): (
        "Cannot connect to {svc} from home", "{Svc} drops every few minutes",
        "No {svc} coverage in {site}", "{Svc} very slow in {site}",
        "{Svc} error '{err}' since {when}", "Lost {svc} connection during calls",
    ),
    ("incident:network", "es"): (
        "No conecta {svc} desde casa", "{Svc} se corta cada pocos minutos",
        "Sin cobertura de {svc} en {site}", "Lentitud {de_svc} en {site}",
        "Error '{err}' en {svc} desde {when}", "Se cae {svc} en mitad de las llamadas",
    ),
    ("incident:hardware", "en"): (
        "{Svc} does not turn on", "{Svc} broken after {when}", "{Svc} screen flickering",
        "{Svc} in {site} not working", "{Svc} battery drains in one hour",
        "{Svc} makes a strange noise and shuts down",
    ),
    ("incident:hardware", "es"): (
        "{Svc} no enciende", "{Svc} no funciona desde {when}", "La pantalla {de_svc} parpadea",
        "{Svc} de {site} no funciona", "La batería {de_svc} dura una hora",
        "{Svc} hace un ruido raro y se apaga",
    ),
    ("incident:database", "en"): (
        "Report in {svc} shows wrong totals", "{Svc} refresh failed last night",
        "Timeout querying {svc}", "{Svc} data not updated since {when}",
        "{Svc} dashboard empty for {dept}",
    ),
    ("incident:database", "es"): (
        "El informe de {svc} muestra totales erróneos", "Falló la carga nocturna {de_svc}",
        "Timeout al consultar {svc}", "Los datos {de_svc} no se actualizan desde {when}",
        "El cuadro de mando de {svc} sale vacío para {dept}",
    ),
    ("request", "en"): (
        "Request access to {svc}", "Access request: {svc} ({dept})",
        "Please grant {first2} access to {svc}", "New {svc} account for {first2}",
        "Need a {sw} licence", "Install {sw} on my laptop", "New laptop for a new hire in {dept}",
        "Shared mailbox for {dept}", "Add me to the {dept} Teams channel",
        "Read permissions on the {dept} folder", "Replace my broken {gear}",
        "Need a new {gear} for {first2}",
    ),
    ("request", "es"): (
        "Solicitud de acceso {a_svc}", "Alta en {svc} para {first2}",
        "Permisos en {svc} para el equipo de {dept}", "Necesito una licencia de {sw}",
        "Instalar {sw} en mi portátil", "Portátil para nueva incorporación en {dept}",
        "Buzón compartido para {dept}", "Añadirme al canal de Teams de {dept}",
        "Permisos de lectura en la carpeta de {dept}", "Se ha roto mi {gear}, necesito un recambio",
        "Recambio de {gear} para {first2}",
    ),
    ("problem", "en"): (
        "Recurring {svc} outages at {site}", "Root cause analysis: {svc} timeouts every morning",
        "Repeated '{err}' errors in {svc}", "Known error: {svc} sync fails after patching",
        "Investigate frequent {svc} incidents from {dept}",
    ),
    ("problem", "es"): (
        "Caídas recurrentes {de_svc} en {site}",
        "Análisis de causa raíz: lentitud {de_svc} cada mañana",
        "Errores '{err}' repetidos en {svc}", "Error conocido: falla la sincronización {de_svc}",
        "Investigar incidencias frecuentes {de_svc} en {dept}",
    ),
    ("bug", "en"): ("{Svc}: {bug}", "[Bug] {Svc} - {bug}", "Defect: {bug} ({svc})",
                    "{bug} in {svc}"),
    ("bug", "es"): ("{Svc}: {bug}", "[Bug] {Svc} - {bug}", "Defecto: {bug} ({svc})",
                    "Error en {svc}: {bug}"),
    ("optask", "en"): (
        "Investigate '{err}' in {svc} reported by {dept}", "Restore {svc} access for {first2}",
        "Clear {svc} cache for {dept} users", "Fix failing {svc} nightly job",
        "Support {dept} with {svc} month-end issues", "Unlock {svc} accounts after SSO outage",
    ),
    ("optask", "es"): (
        "Investigar error '{err}' en {svc} reportado por {dept}",
        "Restablecer acceso {a_svc} para {first2}", "Limpiar caché {de_svc} para {dept}",
        "Corregir el proceso nocturno {de_svc}", "Dar soporte a {dept} con {svc} en el cierre",
        "Desbloquear cuentas {de_svc} tras la caída del SSO",
    ),
    ("change", "en"): (
        "Upgrade {svc} to version {ver}", "Upgrade {svc} kernel", ("Apply {month} security "
        "patches to {svc} servers"), "Migrate mailbox quotas to {gb} GB",
        "Renew SSL certificate for {svc}", "Increase {svc} storage by {gb} GB",
        "Change firewall rule for {svc} access from {site}", "Move {svc} database to new cluster",
        "Decommission legacy {svc} server", "Update {svc} configuration for {dept}",
    ),
    ("change", "es"): (
        "Actualizar {svc} a la versión {ver}", "Actualizar el kernel {de_svc}",
        "Aplicar parches de seguridad de {month} a los servidores {de_svc}",
        "Migrar cuotas de buzón a {gb} GB", "Renovar certificado SSL {de_svc}",
        "Ampliar almacenamiento {de_svc} en {gb} GB",
        "Cambio de regla de firewall para acceso {a_svc} desde {site}",
        "Mover la base de datos {de_svc} al nuevo clúster", "Retirar el servidor antiguo {de_svc}",
        "Actualizar la configuración {de_svc} para {dept}",
    ),
    ("enhancement", "en"): (
        "Add field '{field}' to the {form} form", "Simplify the {proc} approval workflow",
        "Automate the monthly {report} report", "New filter by {field} in {svc}",
        "Harmonise the {proc} process across {dept} and {dept2}",
        "Reduce steps in {proc} approval from {n} to {m}",
        "Improve {svc} performance for month-end close", ("Evolutive maintenance: {svc} {proc} "
        "module"), "Show {field} in the {report} report",
    ),
    ("enhancement", "es"): (
        "Añadir campo '{field}' al formulario de {form}",
        "Simplificar el flujo de aprobación de {proc}",
        "Automatizar el informe mensual de {report}",
        "Nuevo filtro por {field} en {svc}",
        "Homogeneizar el proceso de {proc} entre {dept} y {dept2}",
        "Reducir de {n} a {m} los pasos de aprobación de {proc}",
        "Mejorar el rendimiento {de_svc} en el cierre de mes",
        "Mantenimiento evolutivo: módulo de {proc} {de_svc}",
        "Mostrar {field} en el informe de {report}",
    ),
    ("programme", "en"): ("{Svc} upgrade programme", "Process harmonisation: {proc}",
                          "Modernise {svc} for {dept}", "{Svc} {ver} rollout"),
    ("programme", "es"): ("Programa de actualización {de_svc}", ("Homogeneización del proceso de "
                          "{proc}"), "Modernizar {svc} para {dept}", "Despliegue de {svc} {ver}"),
    ("evostory", "en"): (
        "As a {role}, I want a '{field}' field on the {form} form so that {benefit}",
        "As a {role}, I want to filter {svc} by {field} so that {benefit}",
        "As a {role}, I want the {report} report generated automatically so that {benefit}",
        "As a {role}, I want fewer approval steps in {proc} so that {benefit}",
    ),
    ("evostory", "es"): (
        "Como {role}, quiero un campo '{field}' en el formulario de {form} para que {benefit}",
        "Como {role}, quiero filtrar {svc} por {field} para que {benefit}",
        "Como {role}, quiero el informe de {report} automático para que {benefit}",
        "Como {role}, quiero menos pasos de aprobación en {proc} para que {benefit}",
    ),
    ("innovation", "en"): (
        "Pilot: {inno} for {dept}", "Pilot: {inno}", "New {new} for {audience}",
        "Proof of concept: {inno}", "Explore {tech} to {goal}", "Co-design a {new} with {co}",
        "Discovery workshop: {inno}", "{Inno} - pilot with {n} users",
    ),
    ("innovation", "es"): (
        "Piloto de {inno} en {dept}", "Piloto de {inno}", "Nuevo proyecto: {new} para {audience}",
        "Prueba de concepto: {inno}", "Explorar {tech} para {goal}", "Co-diseñar {new} con {co}",
        "Taller de descubrimiento: {inno}", "{Inno}: piloto con {n} usuarios",
    ),
    ("innostory", "en"): (
        "As a {role}, I want to try {inno} with a small group so that we learn fast",
        "As a {role}, I want a prototype of the {new} so that {audience} can give feedback",
        "Spike: can {tech} help us {goal}?",
    ),
    ("innostory", "es"): (
        "Como {role}, quiero probar {inno} con un grupo pequeño para aprender rápido",
        "Como {role}, quiero un prototipo de {new} para que {audience} opinen",
        "Spike: ¿puede {tech} ayudarnos a {goal}?",
    ),
    ("innotask", "en"): ("Prototype {inno}", "Prepare business case for {inno}",
                         "Organise ideation session with {co}", "Benchmark {tech} vendors",
                         "Define pilot success criteria with {dept}"),
    ("innotask", "es"): ("Prototipar {inno}", "Preparar caso de negocio de {inno}",
                         "Organizar sesión de ideación con {co}",
                         "Comparar proveedores de {tech}",
                         "Definir criterios de éxito del piloto con {dept}"),
    ("idea", "en"): ("Idea: {inno}", "Idea: use {tech} to {goal}", "Idea: {new} for {audience}",
                     "What if we offered a {new} to {audience}?"),
    ("idea", "es"): ("Idea: {inno}", "Idea: usar {tech} para {goal}",
                     "Idea: {new} para {audience}", "¿Y si ofrecemos {new} a {audience}?"),
}
_HOWTO_TITLES = {
    "en": ("How do I {act}?", "How can I {act}?", "Question: how to {act}",
           "Quick question - how do I {act}?", "Help: how do I {act}?"),
    "es": ("¿Cómo {act1}?", "¿Cómo puedo {act}?", "Duda: cómo {act}", "Consulta: ¿cómo {act1}?",
           "¿Me explicáis cómo {act}?"),
}

# Descriptions: opening + 1-2 details + closing, per description family and language.
_DESC: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    ("op", "en"): (
        ("Hi, since {when} {svc} is not working properly.", ("Hello team, I have a problem with "
         "{svc}."), "Good morning, several of us in {dept} can't use {svc}.",
         "Hi IT, {svc} is giving us trouble again.", "Hello, I need help with {svc}."),
        ("The message says '{err}'.", "I already restarted the computer and it still fails.",
         "It happens both in the office and from home.", "It only happens with large files.",
         "A colleague in {dept} has the same issue.", "It started around {when}.",
         "We are working from {site}."),
        ("We cannot close today's orders.", "It is blocking my work.",
         "Not urgent, but it is annoying.", "The whole team is affected.",
         "We need it for the monthly close.", "Thanks in advance.", "Can you help?"),
    ),
    ("op", "es"): (
        ("Hola, desde {when} {svc} no funciona bien.", "Buenos días, tengo un problema con {svc}.",
         "Hola, varios compañeros de {dept} no podemos usar {svc}.",
         "Hola, otra vez tenemos problemas con {svc}.", "Buenas, necesito ayuda con {svc}."),
        ("El mensaje dice '{err}'.", "Ya he reiniciado el ordenador y sigue fallando.",
         "Pasa tanto en la oficina como desde casa.", "Solo ocurre con ficheros grandes.",
         "A un compañero de {dept} le pasa lo mismo.", "Empezó más o menos {when}.",
         "Estamos trabajando desde {site}."),
        ("No podemos cerrar los pedidos de hoy.", "Me tiene bloqueado.",
         "No es urgente, pero molesta.", "Afecta a todo el equipo.",
         "Lo necesitamos para el cierre mensual.", "Gracias de antemano.", "¿Podéis ayudarme?"),
    ),
    ("howto", "en"): (
        ("Hi, quick question.", "Hello, I'm new in {dept}.", "Hi team."),
        ("I need to {act} and I can't find the option.", ("I tried the manual but it is not clear "
         "how to {act}."), "A colleague showed me once how to {act} but I forgot."),
        ("Thanks!", "Is there a guide somewhere?", "Thanks for your help."),
    ),
    ("howto", "es"): (
        ("Hola, una duda rápida.", "Hola, soy nuevo en {dept}.", "Buenas."),
        ("Necesito {act} y no encuentro la opción.", ("He mirado el manual pero no queda claro "
         "cómo {act}."), "Un compañero me enseñó a {act} pero no me acuerdo."),
        ("¡Gracias!", "¿Hay alguna guía?", "Gracias por la ayuda."),
    ),
    ("request", "en"): (
        ("Hi, please process this request for {dept}.", "Hello.", "Hi IT team."),
        ("It is needed for {first2}, who joins {dept} next week.", ("My manager already approved "
         "it."), "It is for the {proc} process.", "We need it to work with {svc}."),
        ("Thanks.", "Regards.", "Thank you in advance."),
    ),
    ("request", "es"): (
        ("Hola, por favor tramitad esta solicitud para {dept}.", "Hola.", "Buenos días."),
        ("Es para {first2}, que se incorpora a {dept} la semana que viene.",
         "Mi responsable ya lo ha aprobado.", "Es para el proceso de {proc}.",
         "Lo necesitamos para trabajar con {svc}."),
        ("Gracias.", "Un saludo.", "Gracias de antemano."),
    ),
    ("problem", "en"): (
        ("Opened after {n} related incidents in the last weeks.", ("Several incidents point to the "
         "same underlying cause.")),
        ("Users in {dept} and {site} are affected.", "Workaround: restart the service.",
         "Logs show '{err}' at the same time every day."),
        ("Goal: find and remove the root cause.", "Next step: review with the vendor."),
    ),
    ("problem", "es"): (
        ("Abierto tras {n} incidencias relacionadas en las últimas semanas.",
         "Varias incidencias apuntan a la misma causa."),
        ("Afecta a usuarios de {dept} y {site}.", "Solución temporal: reiniciar el servicio.",
         "Los logs muestran '{err}' a la misma hora cada día."),
        ("Objetivo: encontrar y eliminar la causa raíz.", ("Siguiente paso: revisar con el "
         "proveedor.")),
    ),
    ("bug", "en"): (
        ("Steps to reproduce: open {svc}, go to {proc}, save.", "Reported by {dept}."),
        ("Expected: the operation completes. Actual: {bug}.", "Seen in production since {when}.",
         "Affects roughly {n}% of users."),
        ("Severity to be confirmed.", "Screenshots attached."),
    ),
    ("bug", "es"): (
        ("Pasos: abrir {svc}, ir a {proc}, guardar.", "Reportado por {dept}."),
        ("Esperado: la operación termina. Real: {bug}.", "Visto en producción desde {when}.",
         "Afecta a un {n}% de usuarios aproximadamente."),
        ("Severidad por confirmar.", "Adjunto capturas."),
    ),
    ("evo", "en"): (
        ("Business need from {dept}.", "Requested by {co}.",
         "Part of the {proc} improvement plan."),
        ("Currently the {proc} process requires manual steps in {svc}.",
         "Scope: {svc} in test and production.", "Users spend about {n} hours a week on this.",
         "Maintenance window proposed for Saturday night.", "Vendor recommends this version."),
        ("Expected impact: {benefit}.", "Rollback plan documented.",
         "To be validated by key users before go-live."),
    ),
    ("evo", "es"): (
        ("Necesidad de negocio de {dept}.", "Solicitado por {co}.",
         "Forma parte del plan de mejora de {proc}."),
        ("Ahora mismo el proceso de {proc} requiere pasos manuales en {svc}.",
         "Alcance: {svc} en test y producción.", "Los usuarios dedican unas {n} horas a la semana.",
         "Ventana de mantenimiento propuesta: sábado por la noche.",
         "El fabricante recomienda esta versión."),
        ("Impacto esperado: que {benefit}.", "Plan de vuelta atrás documentado.",
         "A validar por usuarios clave antes de la puesta en producción."),
    ),
    ("inno", "en"): (
        ("{co} wants to explore {inno} together with IT.", ("Idea raised in the {dept} "
         "innovation workshop."), "Opportunity identified with {co}."),
        ("Goal: {goal}.", "We propose a {n}-week pilot with users from {dept}.",
         "Technology opportunity: {tech}.", "Customers asked for something like this."),
        ("Success criteria to be agreed in a joint session.", "Sponsor: head of {dept}.",
         "Next step: co-design workshop."),
    ),
    ("inno", "es"): (
        ("{co} quiere explorar {inno} junto con IT.", ("Idea surgida en el taller de innovación "
         "de {dept}."), "Oportunidad identificada con {co}."),
        ("Objetivo: {goal}.", "Proponemos un piloto de {n} semanas con usuarios de {dept}.",
         "Oportunidad tecnológica: {tech}.", "Los clientes nos piden algo así."),
        ("Criterios de éxito a acordar en una sesión conjunta.", ("Patrocinador: dirección de "
         "{dept}."), "Siguiente paso: taller de co-diseño."),
    ),
}
_DESC_FAMILY = {
    "incident": "op", "optask": "op", "howto": "howto", "request": "request",
    "problem": "problem", "bug": "bug", "change": "evo", "enhancement": "evo", "programme": "evo",
    "evostory": "evo", "innovation": "inno", "innostory": "inno", "innotask": "inno",
    "idea": "inno",
}
_CAUSE_SENTENCE = {
    "en": " It started right after the last {svc} change.",
    "es": " Empezó justo después del último cambio en {svc}.",
}

# Comments. Requester banks reflect the experience; agent banks stay neutral.
_GREET = {"en": ("", "Hi, ", "Hello, ", "Hi team, "), "es": ("", "Hola, ", "Buenas, ",
                                                              "Buenos días, ")}
_COMMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("chaser", "en"): _cross(
        _GREET["en"],
        ("any update?", "any news on this?", "is anyone looking at this?",
         "just checking in on this ticket.", "could you give me an ETA?",
         "any progress here?", "still waiting for an answer on this."),
        ("", " Thanks.", " It's been a few days.", " We really need this."),
    ),
    ("chaser", "es"): _cross(
        _GREET["es"],
        ("¿alguna novedad?", "¿cómo va lo mío?", "¿hay alguna actualización sobre esto?",
         "¿sabemos algo?", "seguimos esperando respuesta.", "¿para cuándo estará?",
         "¿alguien lo está mirando?"),
        ("", " Gracias.", " Ya han pasado varios días.", " Lo necesitamos de verdad."),
    ),
    ("frustration", "en"): _cross(
        ("Still broken after the update!!!", "This is the third time I report this.",
         "We have been waiting {days} days, this is unacceptable.",
         "URGENT: we cannot ship orders.", "Nobody has answered and the team is blocked.",
         "Same problem again. Please escalate.", "This keeps happening every week.",
         "I was told it was fixed, it is NOT."),
        ("", " Very disappointed.", " Please call me.", " {dept} is losing sales because of this."),
    ),
    ("frustration", "es"): _cross(
        ("Sigue sin funcionar, es la tercera vez que lo reporto.", "URGENTE: no podemos facturar.",
         "Llevamos {days} días así, esto es inaceptable.", ("Nadie nos contesta y el equipo está "
         "parado."), "Otra vez el mismo problema. Por favor, escalad.",
         "Esto pasa todas las semanas.", "Me dijeron que estaba resuelto y NO lo está.",
         "Sigue igual después de la actualización!!!"),
        ("", " Muy decepcionados.", " Llamadme, por favor.",
         " En {dept} estamos perdiendo ventas por esto."),
    ),
    ("reopen", "en"): ("It is failing again, please reopen.", "Not fixed, same error as before.",
                       "Still broken!!", "The problem came back this morning."),
    ("reopen", "es"): ("Vuelve a fallar, por favor reabrid.", "No está resuelto, mismo error.",
                       "Sigue sin funcionar!!", "Ha vuelto a pasar esta mañana."),
    ("reply", "en"): ("Here is the screenshot you asked for.", ("I'm on my laptop from home, "
                      "Windows 11."), "Yes, it happens to everyone in {dept}.",
                      "It happened again at 9:15.", "My user is the usual one.",
                      "I tried that and it didn't change anything."),
    ("reply", "es"): ("Adjunto la captura que me pedís.", ("Estoy con el portátil desde casa, "
                      "Windows 11."), "Sí, le pasa a todo el equipo de {dept}.",
                      "Ha vuelto a pasar a las 9:15.", "Mi usuario es el de siempre.",
                      "Lo he probado y sigue igual."),
    ("thanks", "en"): _cross(
        ("Works now, thanks!", "Great, thanks for the quick help.", "Confirmed, all good now.",
         "Perfect, thank you {agent}!", "That solved it, thanks a lot."),
        ("", " Have a nice day.", " :)"),
    ),
    ("thanks", "es"): _cross(
        ("Gracias, ya funciona.", "Perfecto, muchas gracias por la rapidez.",
         "Confirmado, ya puedo acceder. ¡Gracias!", "¡Mil gracias, {agent}!",
         "Resuelto, gracias."),
        ("", " Buen día.", " :)"),
    ),
    ("reluctant", "en"): ("Ok, it seems to work now, but it took far too long.",
                          "Fine, closing, but we lost two days with this.",
                          "It works. Please make sure it doesn't happen again."),
    ("reluctant", "es"): ("Vale, parece que funciona, pero ha tardado demasiado.",
                          "De acuerdo, cerrad, pero hemos perdido dos días con esto.",
                          "Funciona. Por favor, que no vuelva a pasar."),
    ("howto_follow", "en"): ("Thanks, and how do I do the same on my phone?",
                             "And can I make it the default?", "Where exactly is that menu?"),
    ("howto_follow", "es"): ("Gracias, ¿y cómo lo hago desde el móvil?",
                             "¿Y se puede dejar por defecto?", "¿Dónde está exactamente ese menú?"),
    ("biz_pos", "en"): (
        "From {co} we propose validating the pilot with 3 stores.",
        "Great workshop today, {co} would like to extend the pilot to {site}.",
        "The proposal fits us; we can provide two key users.",
        "We shared the idea with the {dept} team and they love it.",
        "Happy to co-design the next iteration with you.",
        "Results from the first weeks look promising, thanks for the support.",
    ),
    ("biz_pos", "es"): (
        "Desde {co} proponemos validar el piloto con 3 tiendas.",
        "Muy buen taller hoy, en {co} queremos ampliar el piloto a {site}.",
        "Nos encaja la propuesta; podemos aportar dos usuarios clave.",
        "Lo hemos compartido con el equipo de {dept} y les encanta.",
        "Encantados de co-diseñar la siguiente iteración con vosotros.",
        "Los resultados de las primeras semanas pintan bien, gracias por el apoyo.",
    ),
    ("biz_neg", "en"): (
        "We have been waiting weeks for the demand assessment.",
        "We haven't heard from IT since the kick-off.",
        "The proposed scope does not reflect what we asked for in the workshop.",
        "Nobody from IT came to the last two meetings.",
        "Our competitors already have this; we keep being told 'next quarter'.",
        "We feel IT is just collecting requirements, not building this with us.",
    ),
    ("biz_neg", "es"): (
        "Llevamos semanas esperando la valoración de la demanda.",
        "No sabemos nada de IT desde el arranque.",
        "El alcance propuesto no refleja lo que pedimos en el taller.",
        "Nadie de IT vino a las dos últimas reuniones.",
        "La competencia ya lo tiene y a nosotros nos dicen 'el trimestre que viene'.",
        "Tenemos la sensación de que IT solo recoge requisitos, no lo construye con nosotros.",
    ),
    ("biz_question", "en"): ("When will we have the estimate?", "What's the next step here?",
                             "Can we review the timeline together?",
                             "Who is our contact in IT for this?"),
    ("biz_question", "es"): ("¿Cuándo tendremos la estimación?", "¿Cuál es el siguiente paso?",
                             "¿Podemos revisar juntos la planificación?",
                             "¿Quién es nuestro contacto en IT para esto?"),
    ("evo_pos", "en"): ("Validated in test, OK for us.", "The new form is much faster, thanks.",
                        "Users in {dept} confirm it works as agreed.",
                        "Good communication about the maintenance window, thanks."),
    ("evo_pos", "es"): ("Validado en test, por nuestra parte OK.",
                        "El nuevo formulario va mucho más rápido, gracias.",
                        "Los usuarios de {dept} confirman que funciona como acordamos.",
                        "Buena comunicación de la ventana de mantenimiento, gracias."),
    ("evo_neg", "en"): ("The change went live without telling us and broke the monthly close.",
                        "The new form is slower than the old one.",
                        "We were not informed about the maintenance window.",
                        "This is not what we agreed; users are confused.",
                        "Since the upgrade half of {dept} cannot work."),
    ("evo_neg", "es"): ("El cambio salió sin avisarnos y nos rompió el cierre mensual.",
                        "El nuevo formulario es más lento que el anterior.",
                        "No nos avisaron de la ventana de mantenimiento.",
                        "Esto no es lo que acordamos; los usuarios están perdidos.",
                        "Desde la actualización medio {dept} no puede trabajar."),
    # Agent side.
    ("ack", "en"): ("Hi {first}, we're looking into it.", ("Hello {first}, thanks for reporting, "
                    "we are checking."), "Ticket received, the {grp} team is on it.",
                    "Hi {first}, I'm taking this one."),
    ("ack", "es"): ("Hola {first}, estamos revisando la incidencia.",
                    "Hola {first}, gracias por avisar, lo estamos mirando.",
                    "Recibido, el equipo de {grp} se encarga.", "Hola {first}, me lo quedo yo."),
    ("ask", "en"): ("Could you send a screenshot of the error?", "Which device are you using?",
                    "Does it happen from the office too?", ("Can you try again and tell us the "
                    "exact time?")),
    ("ask", "es"): ("¿Nos puedes enviar una captura del error?", "¿Desde qué equipo accedes?",
                    "¿Te pasa también desde la oficina?",
                    "¿Puedes probar de nuevo y decirnos la hora exacta?"),
    ("progress", "en"): ("We are still working on it and will keep you posted.",
                         "Escalated to the {grp} team.", "Waiting for the vendor's answer.",
                         "We found the cause, applying the fix now.",
                         "Sorry for the delay, this is our priority today."),
    ("progress", "es"): ("Seguimos trabajando en ello, te mantenemos informado.",
                         "Escalado al equipo de {grp}.", "Esperando respuesta del proveedor.",
                         "Hemos encontrado la causa, aplicando la solución.",
                         "Perdona el retraso, hoy es nuestra prioridad."),
    ("fix", "en"): ("Solution applied: we reset your profile. Please confirm it works.",
                    "We restarted the {svc} service; it should work now.",
                    "Permissions updated. Please try again.",
                    "Replaced the device; please confirm.", ("Done. Let us know if anything "
                    "else is needed.")),
    ("fix", "es"): ("Solución aplicada: hemos regenerado tu perfil. ¿Puedes confirmar?",
                    "Hemos reiniciado el servicio {de_svc}; ya debería funcionar.",
                    "Permisos actualizados. Prueba de nuevo, por favor.",
                    "Hemos cambiado el equipo; confírmanos, por favor.",
                    "Hecho. Avísanos si necesitas algo más."),
    ("howto_answer", "en"): ("You can do it from File > Export > Excel.",
                             "Here is the step-by-step guide from the knowledge base.",
                             "Go to Settings > Options and enable it there.",
                             "I'll call you in 5 minutes and show you."),
    ("howto_answer", "es"): ("Puedes hacerlo desde Archivo > Exportar > Excel.",
                             "Te paso la guía paso a paso de la base de conocimiento.",
                             "Ve a Configuración > Opciones y actívalo ahí.",
                             "Te llamo en 5 minutos y te lo enseño."),
    ("reopen_ack", "en"): ("Sorry about that, reopening and checking again.",
                           "Reopened; we will look at it with the {grp} team."),
    ("reopen_ack", "es"): ("Disculpa, lo reabrimos y volvemos a revisarlo.",
                           "Reabierto; lo revisamos con el equipo de {grp}."),
    ("reassigned", "en"): ("Reassigned to {grp} for analysis.", "Routing to {grp}."),
    ("reassigned", "es"): ("Reasignado a {grp} para análisis.", "Lo pasamos a {grp}."),
    ("evo_update", "en"): ("Change scheduled for the maintenance window on Saturday.",
                           "Deployed to pre-production; pending business validation.",
                           "CAB approved the change.", "Estimate shared with {co}.",
                           "Test plan attached."),
    ("evo_update", "es"): ("Cambio programado para la ventana del sábado.",
                           "Desplegado en preproducción; pendiente de validación de negocio.",
                           "El CAB ha aprobado el cambio.", "Estimación compartida con {co}.",
                           "Adjunto el plan de pruebas."),
    ("evo_done", "en"): ("Change implemented successfully.", ("Deployed to production, monitoring "
                         "for 48h."), "Done; documentation updated."),
    ("evo_done", "es"): ("Cambio implantado correctamente.", ("Desplegado en producción, "
                         "monitorizamos 48h."), "Hecho; documentación actualizada."),
    ("inno_update", "en"): ("We scheduled a design session with {co} for next week.",
                            "Business case drafted, pending review with the {co} sponsor.",
                            "Attached the proposed scope for the pilot.",
                            "Vendor demo booked for Thursday."),
    ("inno_update", "es"): ("Hemos programado una sesión de diseño con {co} la semana que viene.",
                            "Caso de negocio preparado, pendiente de revisar con el patrocinador.",
                            "Adjuntamos la propuesta de alcance para el piloto.",
                            "Demo del proveedor el jueves."),
    ("inno_done", "en"): ("Pilot closed; results shared with {co}.", ("Moved to the roadmap "
                          "after the joint review.")),
    ("inno_done", "es"): ("Piloto cerrado; resultados compartidos con {co}.",
                          "Pasa a la hoja de ruta tras la revisión conjunta."),
    ("answer", "en"): ("Good question, we'll review it in Thursday's follow-up.",
                       "Estimate expected by the end of the week.", "I'll be your contact."),
    ("answer", "es"): ("Buena pregunta, lo vemos en el seguimiento del jueves.",
                       "La estimación estará a final de semana.", "Seré vuestro contacto."),
    # Internal work notes.
    ("note", "en"): ("Checked logs on app{n:02d}: nothing relevant.", ("Vendor ticket opened "
                     "#{ticket}."), "Cleared cache and restarted the service.",
                     "Related to known error KB00{ticket}."),
    ("note", "es"): ("Revisados logs en app{n:02d}: nada relevante.",
                     "Abierto ticket con proveedor #{ticket}.", "Limpiada caché y reiniciado.",
                     "Relacionado con el error conocido KB00{ticket}."),
    ("note_bad", "en"): ("User is very upset, handle with care.", ("Second reassignment; nobody "
                         "owns this."), "SLA at risk.", ("Looks like the last patch; check the "
                         "change.")),
    ("note_bad", "es"): ("Usuario muy molesto, cuidado.",
                         "Segunda reasignación; nadie se hace cargo.", "SLA en riesgo.",
                         "Parece el último parche; revisar el cambio."),
}

_REQUEST_TYPES = {
    "Incident": ("Report a system problem", "Report a system problem", "Get IT help"),
    "Service Request": ("Request new software", "Request new hardware", "Request access"),
    "Problem": ("Report a system problem", "Investigate a problem"),
    "Change": ("Request a change",),
}


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _service_forms(entry: tuple) -> dict[str, dict[str, str]]:
    """Per-language placeholder values for one service (articles and contractions included)."""
    _, en, art, noun, *_ = entry
    es = f"{art} {noun}" if art else noun
    a_es = {"el": f"al {noun}", "la": f"a la {noun}", "": f"a {noun}"}[art]
    de_es = {"el": f"del {noun}", "la": f"de la {noun}", "": f"de {noun}"}[art]
    return {
        "en": {"svc": en, "Svc": en[:1].upper() + en[1:], "a_svc": f"to {en}",
               "de_svc": f"of {en}"},
        "es": {"svc": es, "Svc": es[:1].upper() + es[1:], "a_svc": a_es, "de_svc": de_es},
    }


_SERVICE_FORMS = [_service_forms(s) for s in _SERVICES]
_SERVICE_INDEX = {s[0]: i for i, s in enumerate(_SERVICES)}
_SERVICE_CUM = list(itertools.accumulate(s[6] for s in _SERVICES))
# Changes, enhancements and new capabilities are about systems, not about a broken printer.
_SERVICE_CUM_PROJECT = list(itertools.accumulate(
    0 if s[5] == "hardware" else s[6] for s in _SERVICES))

_GEAR = {
    "en": ("headset", "mouse", "keyboard", "docking station", "monitor", "webcam", "charger",
           "badge reader"),
    "es": ("auricular", "ratón", "teclado", "base de conexión", "monitor", "webcam", "cargador",
           "lector de tarjetas"),
}
# Lazily filled slot values: ``str.format_map`` asks for a key, we draw it once per item.
_LANG_FILLERS: dict[str, dict[str, tuple[str, ...]]] = {
    "when": _WHEN, "site": _SITES, "field": _FIELD, "form": _FORM, "proc": _PROC,
    "report": _REPORT, "inno": _INNO_THING, "new": _NEW_THING, "audience": _AUDIENCE,
    "tech": _TECH, "goal": _GOAL, "role": _ROLE, "benefit": _BENEFIT, "bug": _BUG,
    "month": _MONTH, "gear": _GEAR,
}
_PLAIN_FILLERS: dict[str, tuple[str, ...]] = {"err": _ERRORS, "sw": _SOFTWARE}
_FIRST_BY_LANG = {"en": _FIRST_EN, "es": _FIRST_ES}
_LAST_BY_LANG = {"en": _LAST_EN, "es": _LAST_ES}

# Creation hour of day (UTC), weighted to office hours.
_HOUR_CUM = list(itertools.accumulate(
    (1, 1, 1, 1, 1, 2, 4, 10, 18, 20, 18, 16, 10, 14, 16, 14, 10, 6, 3, 2, 2, 1, 1)))
_PRIORITY_CUM_TICKET = list(itertools.accumulate((2, 10, 48, 32, 8)))
_PRIORITY_CUM_OTHER = list(itertools.accumulate((1, 8, 55, 30, 6)))


class _Ctx(dict):
    """Template slot values for one item; unknown keys are drawn on first use."""

    __slots__ = ("gen", "lang")

    def __missing__(self, key: str) -> object:
        value = self.gen._fill(key, self)
        self[key] = value
        return value


def _bisect_pick(r: float, cum: list[int]) -> int:
    """Index for a uniform ``r`` in [0, 1) against cumulative integer weights: the first
    ``i`` with ``r * total < cum[i]`` (C bisect), the last index if rounding reaches the end."""
    return min(bisect.bisect_right(cum, r * cum[-1]), len(cum) - 1)


def _wpick(r: float, pairs: tuple[tuple[str, float], ...]) -> str:
    total = 0.0
    for _, w in pairs:
        total += w
    x = r * total
    for value, w in pairs:
        x -= w
        if x < 0:
            return value
    return pairs[-1][0]


def _allocate(total: int, weights: list[float], minimum: int) -> list[int]:
    """Split ``total`` by ``weights`` (largest remainder), giving every bucket ``minimum``."""
    wsum = sum(weights)
    raw = [total * w / wsum for w in weights]
    counts = [max(minimum, int(x)) for x in raw]
    diff = total - sum(counts)
    by_fraction = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    i = 0
    while diff > 0:
        counts[by_fraction[i % len(counts)]] += 1
        diff -= 1
        i += 1
    while diff < 0:  # minimums overshot: take from the biggest buckets
        j = max(range(len(counts)), key=lambda k: counts[k])
        counts[j] -= 1
        diff += 1
    return counts


@dataclass(slots=True)
class _Company:
    org: Org
    departments: list[Org]
    weight: float
    rates: dict[str, float]  # probability of a bad experience per moment
    users: list[User] = field(default_factory=list)


class _Generator:
    """Holds the rng and the reference data while items are generated (one use per world)."""

    def __init__(
        self, seed: int, n_items: int, now: datetime, only_tables: tuple[str, ...] = ()
    ) -> None:
        self.only_tables = only_tables
        self.rng = Random(seed)
        self.seed = seed
        self.n_items = n_items
        self.now = now
        self.now_ts = int(now.timestamp())
        self.midnight = self.now_ts - self.now_ts % _DAY
        self.jira_comment_seq = 10_000
        self.usernames: set[str] = set()

    # -- small helpers ----------------------------------------------------------------------

    def hex32(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def pick(self, seq: tuple | list) -> object:
        return seq[int(self.rng.random() * len(seq))]

    def _fill(self, key: str, ctx: _Ctx) -> object:
        """Draw one template slot value (called by ``_Ctx.__missing__``)."""
        r = self.rng.random
        lang = ctx.lang
        bank = _LANG_FILLERS.get(key)
        if bank is not None:
            options = bank[lang]
            return options[int(r() * len(options))]
        bank2 = _PLAIN_FILLERS.get(key)
        if bank2 is not None:
            return bank2[int(r() * len(bank2))]
        if key == "Inno":
            inno = ctx["inno"]
            return inno[:1].upper() + inno[1:]
        if key == "n":
            return 2 + int(r() * 11)
        if key == "m":
            n = ctx["n"]
            return 1 + int(r() * (n - 1))
        if key == "days":
            return 3 + int(r() * 19)
        if key == "ticket":
            return 1000 + int(r() * 90_000)
        if key == "gb":
            return (50, 100, 200, 500)[int(r() * 4)]
        if key == "ver":
            return f"{2 + int(r() * 11)}.{int(r() * 10)}"
        if key == "first2":
            names = _FIRST_BY_LANG[lang]
            return names[int(r() * len(names))]
        if key == "dept2":
            return self.all_departments[int(r() * len(self.all_departments))]
        if key in ("grp", "agent"):
            return ""  # set while the timeline is replayed; empty if never assigned
        raise KeyError(key)

    def username(self, first: str, last: str) -> str:
        base = f"{_ascii_slug(first)}.{_ascii_slug(last)}"
        name = base
        k = 2
        while name in self.usernames:
            name = f"{base}{k}"
            k += 1
        self.usernames.add(name)
        return name

    def person(self, lang: str, is_agent: bool, company: str = "", department: str = "") -> User:
        first = self.pick(_FIRST_BY_LANG[lang])
        last = self.pick(_LAST_BY_LANG[lang])
        if lang == "es" and self.rng.random() < 0.6:
            # Spanish users usually carry both surnames.
            last = f"{last} {self.pick(_LAST_ES)}"
        username = self.username(first, last.split(" ")[0])
        return User(
            id=self.hex32(),
            username=username,
            name=f"{first} {last}",
            email=f"{username}@example.com",
            is_agent=is_agent,
            company_id=company,
            department_id=department,
            language=lang,
            account_id=f"{self.rng.getrandbits(96):024x}",
        )

    # -- reference data ---------------------------------------------------------------------

    def build_reference(self) -> None:
        rng = self.rng
        order = list(range(len(_COMPANIES)))
        rng.shuffle(order)
        n_companies = rng.randint(6, 10)
        self.orgs: list[Org] = []
        self.companies: list[_Company] = []
        for rank, ci in enumerate(order[:n_companies]):
            name, depts = _COMPANIES[ci]
            org = Org(id=self.hex32(), name=name, kind="company")
            n_depts = min(len(depts), rng.choice((2, 3)))
            dept_orgs = [
                Org(id=self.hex32(), name=d, kind="department", company_id=org.id)
                for d in depts[:n_depts]
            ]
            # Give a few customers a clear story so per-customer views have something to show:
            # one suffers in Operation, one in Innovation, one in Evolution, one is happy.
            if rank == 0:
                rates = {_OP: 0.58, _EVO: 0.28, _INNO: 0.22}
            elif rank == 1:
                rates = {_OP: 0.20, _EVO: 0.30, _INNO: 0.66}
            elif rank == 2:
                rates = {_OP: 0.07, _EVO: 0.08, _INNO: 0.08}
            elif rank == 3:
                rates = {_OP: 0.24, _EVO: 0.52, _INNO: 0.25}
            else:
                jitter = rng.uniform(-0.05, 0.05)
                rates = {_OP: 0.26 + jitter, _EVO: 0.25 + jitter, _INNO: 0.24 + jitter}
            weight = rng.uniform(0.9, 1.6) if rank < 4 else rng.uniform(0.5, 1.4)
            self.orgs.append(org)
            self.orgs.extend(dept_orgs)
            self.companies.append(_Company(org, dept_orgs, weight, rates))
        self.all_departments = [d.name for c in self.companies for d in c.departments]
        self.company_cum = list(itertools.accumulate(
            int(c.weight * 1000) for c in self.companies))

        self.groups = [Group(id=self.hex32(), name=g) for g in _GROUPS]
        self.group_index = {g: i for i, g in enumerate(_GROUPS)}

        # Business users: about one per eight items, every customer mixes both languages.
        n_business = max(20, min(5000, self.n_items // 8))
        shares = _allocate(n_business, [c.weight for c in self.companies], 2)
        self.users: list[User] = []
        for company, count in zip(self.companies, shares):
            p_es = rng.uniform(0.35, 0.65)
            for _ in range(count):
                lang = "es" if rng.random() < p_es else "en"
                dept = self.pick(company.departments)
                company.users.append(self.person(lang, False, company.org.id, dept.id))
            langs = {u.language for u in company.users}
            if len(langs) == 1:
                # Guarantee the bilingual mix even for tiny customers.
                u = company.users[-1]
                u.language = "en" if u.language == "es" else "es"
            self.users.extend(company.users)

        # IT agents, each in one assignment group (at least two per group).
        n_agents = max(15, min(40, 15 + int(math.sqrt(self.n_items) / 12)))
        self.group_agents: list[list[User]] = [[] for _ in _GROUPS]
        for k in range(n_agents):
            agent = self.person("es" if rng.random() < 0.5 else "en", True)
            gi = k % len(_GROUPS) if k < 2 * len(_GROUPS) else int(rng.random() * len(_GROUPS))
            self.group_agents[gi].append(agent)
            self.users.append(agent)
        self.integration = User(
            id=self.hex32(), username=INTEGRATION_USER, name="Momentos Integration",
            email=f"{INTEGRATION_USER}@example.com", is_agent=True,
            account_id=f"{rng.getrandbits(96):024x}",
        )
        self.human = User(
            id=self.hex32(), username=HUMAN_USER, name="IT Agent",
            email=f"{HUMAN_USER}@example.com", is_agent=True,
            account_id=f"{rng.getrandbits(96):024x}",
        )
        self.users.extend((self.integration, self.human))
        self.usernames.update((INTEGRATION_USER, HUMAN_USER))

    # -- slots ----------------------------------------------------------------------------------

    def build_slots(self) -> list[tuple[str, str, str, _Flow, bool]]:
        """(platform, container, kind, flow, saga) for every item, in generation order."""
        rng = self.rng
        n = self.n_items
        slots: list[tuple[str, str, str, _Flow, bool]] = []
        if self.only_tables:
            # Only ServiceNow records of these tables (benchmarks of one connector).
            tables = [t for t in _SN_TABLES if t[0] in self.only_tables]
            for (table, kind, _, _, flow), count in zip(
                tables, _allocate(n, [t[2] for t in tables], 1)
            ):
                slots.extend([("servicenow", table, kind, flow, False)] * count)
            return slots
        n_jira = max(9, n - round(n * 0.55))
        n_sn = n - n_jira
        sn_counts = _allocate(n_sn, [t[2] for t in _SN_TABLES], 3)
        for (table, kind, _, _, flow), count in zip(_SN_TABLES, sn_counts):
            slots.extend([("servicenow", table, kind, flow, False)] * count)
        jira_counts = _allocate(n_jira, [p[1] for p in _JIRA_PROJECTS], 3)
        want_sagas = n >= 200
        for (key, _, kinds), count in zip(_JIRA_PROJECTS, jira_counts):
            cum = list(itertools.accumulate(w for _, w in kinds))
            forced = _JIRA_FORCED[key]
            for k in range(count):
                if k < len(forced):
                    kind = forced[k]
                else:
                    kind = kinds[_bisect_pick(rng.random(), cum)][0]
                # The two forced SD incidents become long sagas (> 20 comments) in big worlds.
                saga = want_sagas and key == "SD" and k < 2
                slots.append(("jira", key, kind, _jira_flow(key, kind), saga))
        return slots

    # -- text -----------------------------------------------------------------------------------

    def text(self, flavor: str, category: str, lang: str, ctx: _Ctx) -> tuple[str, str]:
        """Title and description for one item from the flavour's template banks."""
        r = self.rng.random
        if flavor == "howto":
            titles = _HOWTO_TITLES[lang]
        elif flavor == "incident":
            titles = _TITLES[(f"incident:{category}", lang)]
        else:
            titles = _TITLES[(flavor, lang)]
        title = titles[int(r() * len(titles))].format_map(ctx)
        title = title[:1].upper() + title[1:]
        opens, details, closes = _DESC[(_DESC_FAMILY[flavor], lang)]
        i = int(r() * len(details))
        parts = [opens[int(r() * len(opens))], details[i]]
        if r() < 0.5:
            parts.append(details[(i + 1 + int(r() * (len(details) - 1))) % len(details)])
        parts.append(closes[int(r() * len(closes))])
        description = " ".join(parts).format_map(ctx)
        return title, description

    def comment_text(self, key: str, lang: str, ctx: _Ctx) -> str:
        bank = _COMMENTS[(key, lang)]
        text = bank[int(self.rng.random() * len(bank))]
        # Most comments have no slots: reuse the constant string (saves time and memory).
        return text.format_map(ctx) if "{" in text else text

    # -- experience script ----------------------------------------------------------------------

    def _op_round(self, bad: bool, flow: _Flow, howto: bool, jsm: bool) -> list[tuple]:
        x = self.rng.random()
        if not bad:
            if howto and x < 0.35:
                return [("C", "r", "howto_follow"), ("C", "a", "howto_answer")]
            if x < 0.45:
                return self._ask_round(flow, jsm)
            if x < 0.70:
                return [("C", "a", "progress")]
            if x < 0.85:
                return [("C", "n", "note")]
            if x < 0.93:
                return [("C", "r", "chaser")]  # even happy users chase sometimes (noise)
            return [("C", "r", "reply")]
        if x < 0.30:
            rd = [("C", "r", "chaser")]
            if self.rng.random() < 0.5:
                rd.append(("C", "a", "progress"))
            return rd
        if x < 0.45:
            return [("C", "r", "frustration")]
        if x < 0.60:
            return self._ask_round(flow, jsm)
        if x < 0.70:
            return [("C", "a", "progress")]
        if x < 0.80:
            return [("C", "n", "note_bad")]
        if x < 0.88:
            return [("P", None, None), ("C", "a", "progress")]
        if x < 0.94:
            return [("C", "n", "note")]
        return [("C", "r", "reply")]

    def _ask_round(self, flow: _Flow, jsm: bool) -> list[tuple]:
        if flow.hold and self.rng.random() < 0.5:
            # JSM moves "Waiting for customer" back on the customer's reply, so the requester
            # makes that transition; in ServiceNow the agent resumes the ticket.
            return [("S", flow.hold, "a"), ("C", "a", "ask"), ("C", "r", "reply"),
                    ("S", flow.stages[-1], "r" if jsm else "a")]
        return [("C", "a", "ask"), ("C", "r", "reply")]

    def _evo_round(self, bad: bool) -> list[tuple]:
        x = self.rng.random()
        if not bad:
            if x < 0.35:
                return [("C", "a", "evo_update")]
            if x < 0.60:
                return [("C", "r", "evo_pos")]
            if x < 0.80:
                return [("C", "r", "biz_question"), ("C", "a", "answer")]
            if x < 0.92:
                return [("C", "n", "note")]
            return [("C", "r", "chaser")]
        if x < 0.25:
            return [("C", "r", "evo_neg")]
        if x < 0.45:
            return [("C", "r", "chaser")]
        if x < 0.60:
            return [("C", "r", "biz_question")]  # left unanswered
        if x < 0.75:
            return [("C", "a", "evo_update")]
        if x < 0.83:
            return [("C", "r", "frustration")]
        if x < 0.92:
            return [("C", "n", "note_bad")]
        return [("C", "r", "evo_pos")]  # noise: not every comment on a bad item is negative

    def _inno_round(self, bad: bool) -> list[tuple]:
        x = self.rng.random()
        if not bad:
            if x < 0.35:
                return [("C", "r", "biz_pos")]
            if x < 0.60:
                return [("C", "a", "inno_update")]
            if x < 0.80:
                return [("C", "r", "biz_question"), ("C", "a", "answer")]
            if x < 0.92:
                return [("C", "n", "note")]
            return [("C", "r", "biz_neg")]
        if x < 0.30:
            return [("C", "r", "biz_neg")]
        if x < 0.48:
            return [("C", "r", "chaser")]
        if x < 0.63:
            return [("C", "r", "biz_question")]
        if x < 0.76:
            return [("C", "a", "inno_update")]
        if x < 0.87:
            return [("C", "r", "biz_pos")]
        return [("C", "n", "note_bad")]

    def _insert_in_order(self, rounds: list[list[tuple]], extra: list[list[tuple]],
                         start: int = 0) -> None:
        """Insert ``extra`` rounds at random positions >= start, keeping their relative order."""
        if not extra:
            return
        span = len(rounds) - start + 1
        positions = sorted(start + int(self.rng.random() * span) for _ in extra)
        for offset, (pos, rd) in enumerate(zip(positions, extra)):
            rounds.insert(pos + offset, rd)

    def script(self, fam: str, moment: str, flow: _Flow, bad: bool, saga: bool, howto: bool,
               jsm: bool, groups: list[int], first_by_requester: bool
               ) -> tuple[list[tuple], list[tuple]]:
        """The item's story as ordered beats: (main until final resolution, post-resolution)."""
        rng = self.rng
        r = rng.random
        rounds: list[list[tuple]] = []
        if saga:
            target = rng.randint(21, 48)
            saga_beats = (("C", "r", "chaser"), ("C", "r", "frustration"), ("C", "a", "progress"),
                          ("C", "r", "reply"), ("C", "a", "ask"))
            cum = [35, 50, 80, 90, 100]
            for _ in range(target):
                rounds.append([saga_beats[_bisect_pick(r(), cum)]])
        elif fam in ("ticket", _OP):
            if r() < (0.75 if fam == "ticket" else 0.4):
                rounds.append([("C", "a", "ack")])
            if bad:
                n_rounds = rng.randint(2, 6)
            else:
                n_rounds = _bisect_pick(r(), [30, 65, 90, 100])
            for _ in range(n_rounds):
                rounds.append(self._op_round(bad, flow, howto, jsm))
        else:
            n_rounds = rng.randint(2, 6) if bad else rng.randint(1, 3)
            make = self._evo_round if moment == _EVO else self._inno_round
            for _ in range(n_rounds):
                rounds.append(make(bad))

        # Multi-stage workflows (problem, change, demand, project) walk their stages in order.
        self._insert_in_order(rounds, [[("S", st, "a")] for st in flow.stages[1:]])
        # Reassignments, in the order the group sequence was drawn (it may ping-pong A->B->A).
        reassign_rounds = []
        for gi in groups[1:]:
            rd: list[tuple] = [("G", gi, None), ("A", None, None)]
            if r() < 0.5:
                rd.append(("C", "n" if r() < 0.5 else "a", "reassigned"))
            reassign_rounds.append(rd)
        self._insert_in_order(rounds, reassign_rounds)
        # Reopenings go in the second half: resolved, requester says it's still broken, back.
        if flow.reopenable and fam in ("ticket", _OP) and r() < (0.4 if bad else 0.04):
            n_reopen = 2 if bad and r() < 0.2 else 1
            reopen = [("S", flow.resolved, "a"), ("C", "r", "reopen"),
                      ("S", flow.stages[-1], "a"), ("C", "a", "reopen_ack")]
            self._insert_in_order(rounds, [list(reopen) for _ in range(n_reopen)],
                                  start=len(rounds) // 2)

        main: list[tuple] = [("G", groups[0], None), ("A", None, None),
                             ("S", flow.stages[0], "r" if first_by_requester else "a")]
        for rd in rounds:
            main.extend(rd)
        if fam in ("ticket", _OP):
            if r() < 0.8:
                main.append(("C", "a", "howto_answer" if howto else "fix"))
        elif moment == _EVO:
            if r() < 0.7:
                main.append(("C", "a", "evo_done"))
        elif r() < 0.6:
            main.append(("C", "a", "inno_done"))
        main.append(("S", flow.resolved, "a"))

        post: list[tuple] = []
        x = r()
        if fam in ("ticket", _OP):
            if not bad:
                if x < (0.65 if fam == "ticket" else 0.35):
                    post.append(("C", "r", "thanks"))
            elif x < 0.25:
                post.append(("C", "r", "reluctant"))
            elif x < 0.35:
                post.append(("C", "r", "thanks"))
            elif x < 0.45:
                post.append(("C", "r", "frustration"))
        elif moment == _EVO:
            if x < (0.3 if bad else 0.4):
                post.append(("C", "r", "evo_neg" if bad else "evo_pos"))
        elif x < (0.3 if bad else 0.4):
            post.append(("C", "r", "biz_neg" if bad else "biz_pos"))
        return main, post

    # -- items ------------------------------------------------------------------------------

    def group_sequence(self, moment: str, fam: str, flavor: str, svc_group: int, bad: bool
                       ) -> list[int]:
        """Assignment groups the item goes through: first group, then each reassignment."""
        r = self.rng.random
        sd, pmo = self.group_index["Service Desk"], self.group_index["PMO"]
        if moment == _OP:
            if fam == "ticket" or flavor == "howto":
                first = sd if r() < 0.7 else svc_group
            else:
                first = svc_group
            cum = [20, 50, 75, 90, 100] if bad else [62, 94, 100]
        else:
            if moment == _INNO:
                first = pmo if r() < 0.7 else svc_group
            else:
                first = svc_group if r() < 0.85 else self.group_index["Application Support"]
            cum = [45, 75, 100] if bad else [80, 100]
        n_moves = _bisect_pick(r(), cum)
        seq = [first]
        for k in range(n_moves):
            if k >= 1 and bad and r() < 0.45:
                nxt = seq[-2]  # ping-pong back to the previous group
            elif seq[-1] != svc_group and r() < 0.6:
                nxt = svc_group
            else:
                # Any group but the current one; operational work never bounces to the PMO.
                choices = [g for g in range(len(_GROUPS))
                           if g != seq[-1] and not (moment == _OP and g == pmo)]
                nxt = choices[int(r() * len(choices))]
            seq.append(nxt)
        return seq

    def make_item(self, platform: str, container: str, kind: str, flow: _Flow, saga: bool
                  ) -> tuple[WorldItem, int, int, bool]:
        """One item; returns (item, created epoch seconds, service index, wants caused_by)."""
        rng = self.rng
        r = rng.random
        now_ts = self.now_ts
        moment = _wpick(r(), _MOMENT_MIX[(container, kind)])
        flavor = _wpick(r(), _FLAVOR_MIX[(kind, moment)])
        if saga:
            flavor = "incident"
        company = self.companies[_bisect_pick(r(), self.company_cum)]
        requester = company.users[int(r() * len(company.users))]
        lang = requester.language
        if r() < 0.1:
            lang = "en" if lang == "es" else "es"  # bilingual people switch now and then
        department = next(
            (d for d in company.departments if d.id == requester.department_id),
            company.departments[0],
        )

        howto = None
        if flavor == "howto":
            howto = _HOWTO[int(r() * len(_HOWTO))]
            si = _SERVICE_INDEX[howto[3]]
        else:
            systems_only = moment != _OP or flavor == "bug"
            si = _bisect_pick(r(), _SERVICE_CUM_PROJECT if systems_only else _SERVICE_CUM)
        service = _SERVICES[si]
        category = "inquiry" if howto else service[5]
        caused = kind in _CAUSE_KINDS and flavor == "incident" and r() < 0.11
        is_sla = kind in _SLA_KINDS
        p_idx = _bisect_pick(r(), _PRIORITY_CUM_TICKET if is_sla else _PRIORITY_CUM_OTHER)
        rate = company.rates[moment] + (0.1 if caused else 0.0) + (0.05 if p_idx <= 1 else 0.0)
        bad = saga or r() < rate
        fam = "ticket" if is_sla else moment
        jsm = platform == "jira" and container == "SD"

        # Creation time: a weekday office hour within the last ~180 days (sagas are older so
        # their whole conversation fits before now).
        d = rng.randint(60, 170) if saga else int(r() * _HORIZON_DAYS)
        day_start = self.midnight - (d + 1) * _DAY
        weekday = (day_start // _DAY + 3) % 7  # 1970-01-01 was a Thursday
        if weekday >= 5 and r() < 0.75 and d + weekday - 4 < _HORIZON_DAYS:
            day_start -= (weekday - 4) * _DAY  # move weekend tickets to Friday
        created = day_start + _bisect_pick(r(), _HOUR_CUM) * 3600 + int(r() * 3600)

        # How long the item takes to its final resolution.
        target_s = 0
        if is_sla:
            targets = _SLA_TARGET_H if kind in _CAUSE_KINDS else _REQUEST_TARGET_H
            target_s = targets[p_idx] * 3600
            mult = math.exp(rng.gauss(math.log(1.7), 0.8) if bad else
                            rng.gauss(math.log(0.3), 0.9))
            if howto:
                mult *= 0.5
            duration = max(600, int(target_s * mult))
        else:
            good_days, bad_days = _DURATION_DAYS[kind]
            if moment == _OP and kind in ("Story", "Task"):
                good_days, bad_days = 3, 14
            median = bad_days if bad else good_days
            duration = max(3600, int(median * _DAY * math.exp(rng.gauss(0.0, 0.6))))
        if saga:
            duration = rng.randint(10, 45) * _DAY + int(r() * _DAY)

        # Participants: JSM request participants; stakeholders on innovation items.
        participants: list[User] = []
        if jsm or moment == _INNO:
            k = (1 + int(r() * 3)) if moment == _INNO else _bisect_pick(r(), [50, 80, 95, 100])
            for _ in range(k):
                u = company.users[int(r() * len(company.users))]
                if u is not requester and u not in participants:
                    participants.append(u)

        ctx = _Ctx(_SERVICE_FORMS[si][lang])
        ctx.gen = self
        ctx.lang = lang
        ctx["first"] = requester.name.split(" ")[0]
        ctx["dept"] = department.name
        ctx["co"] = company.org.name
        if howto:
            ctx["act"] = howto[0] if lang == "en" else howto[1]
            ctx["act1"] = howto[0] if lang == "en" else howto[2]
        title, description = self.text(flavor, category, lang, ctx)
        if caused:
            description += _CAUSE_SENTENCE[lang].format_map(ctx)

        groups = self.group_sequence(moment, fam, flavor, self.group_index[service[4]], bad)
        main, post = self.script(fam, moment, flow, bad, saga, howto is not None, jsm, groups,
                                 first_by_requester=container == "dmn_demand")

        # Times: the first three beats (routing, assignment, start) come quickly; the rest
        # spread until the final resolution at created + duration; post beats follow it.
        early = min(7200 if bad else 1800, max(60, duration // 4))
        times = sorted(created + 1 + int(r() * early) for _ in range(3))
        n_mid = len(main) - 4
        span = max(1, duration - early - 1)
        times.extend(sorted(created + early + int(r() * span) for _ in range(n_mid)))
        resolved_at = created + duration
        times.append(resolved_at)
        beats = main
        if post or flow.closed:
            close_after = 0
            if flow.closed:
                lo, hi = flow.close_days
                close_after = int((lo + r() * (hi - lo)) * _DAY) + int(r() * 3600) + 600
            for beat in post:
                limit = close_after - 60 if close_after else int(1.5 * _DAY)
                times.append(resolved_at + 300 + int(r() * max(1, limit - 300)))
            beats = main + post
            if flow.closed:
                beats.append(("S", flow.closed, "a"))
                times.append(resolved_at + close_after)

        item = WorldItem(
            platform=platform, container=container, kind=kind,
            id=self.hex32() if platform == "servicenow" else "",
            number="", title=title, description=description, language=lang,
            requester_id=requester.id, company_id=company.org.id, department_id=department.id,
            group_id="", assignee_id="", service=service[0], category=category,
            state="", priority="", created=_at(created, _UTC),
            updated=_EPOCH, updated_by_id="",
            participants=[u.id for u in participants],
            truth=_TRUTH[moment, bad],
        )
        self.replay(item, beats, times, flow, requester, participants, p_idx, ctx, now_ts)

        if is_sla:
            planned = created + target_s
            resolved_ts = int(item.resolved.timestamp()) if item.resolved else now_ts
            item.sla_breached = resolved_ts > planned
            # A deadline still in the future is left out: every world timestamp is <= now.
            item.sla_planned_end = _at(planned, _UTC) if planned <= now_ts \
                else None
        if moment == _OP and item.resolved is not None and r() < 0.15:
            cum = [35, 70, 90, 97, 100] if bad else [2, 5, 15, 50, 100]
            item.survey_score = 1 + _bisect_pick(r(), cum)
        if jsm:
            options = _REQUEST_TYPES[kind]
            item.request_type = "Get IT help" if howto else options[int(r() * len(options))]
        if platform == "jira":
            if r() < 0.5:
                item.labels.append(_ascii_slug(service[0]))
            if bad and r() < 0.15:
                item.labels.append("escalated")
        return item, created, si, caused

    def replay(self, item: WorldItem, beats: list[tuple], times: list[int], flow: _Flow,
               requester: User, participants: list[User], p_idx: int, ctx: _Ctx, now_ts: int
               ) -> None:
        """Play the beats in time order up to ``now``; fill comments, history and status."""
        r = self.rng.random
        sn = item.platform == "servicenow"
        prio_labels = _SN_PRIORITY_LABEL if sn else _JIRA_PRIORITY
        lang = item.language
        state = flow.new
        group = -1
        assignee: User | None = None
        resolved_ts: int | None = None
        reassignments = reopens = 0
        last_ts = int(item.created.timestamp())
        last_actor = requester
        comments = item.comments
        history = item.history
        for t, beat in zip(times, beats):
            if t > now_ts:
                break  # the rest of the story has not happened yet: the item is still open
            at = _at(t, _UTC)
            code = beat[0]
            if code == "C":
                role = beat[1]
                if role == "r":
                    author = requester
                    if participants and r() < 0.3:
                        author = participants[int(r() * len(participants))]
                else:
                    author = assignee
                    if author is None or r() < 0.2:
                        members = self.group_agents[max(group, 0)]
                        author = members[int(r() * len(members))]
                if sn:
                    cid = self.hex32()
                else:
                    cid = str(self.jira_comment_seq)
                    self.jira_comment_seq += 1
                comments.append(WorldComment(cid, author.id, at,
                                             self.comment_text(beat[2], lang, ctx),
                                             internal=role == "n"))
                actor = author
            elif code == "G":
                new = beat[1]
                members = self.group_agents[new]
                actor = assignee or members[int(r() * len(members))]
                history.append(WorldHistory("assignment_group",
                                            _GROUPS[group] if group >= 0 else None,
                                            _GROUPS[new], at, actor.id))
                if group >= 0:
                    reassignments += 1
                group = new
                ctx["grp"] = _GROUPS[new]
            elif code == "A":
                members = self.group_agents[group]
                new_a = members[int(r() * len(members))]
                if new_a is assignee and len(members) > 1:
                    new_a = members[(members.index(new_a) + 1) % len(members)]
                actor = assignee or new_a
                history.append(WorldHistory("assigned_to", assignee.name if assignee else None,
                                            new_a.name, at, actor.id))
                assignee = new_a
                ctx["agent"] = new_a.name.split(" ")[0]
            elif code == "S":
                new_state = beat[1]
                if new_state == state:
                    continue
                actor = requester if beat[2] == "r" else (assignee or requester)
                history.append(WorldHistory("state", state, new_state, at, actor.id))
                if new_state == flow.resolved:
                    resolved_ts = t
                elif state == flow.resolved and new_state != flow.closed:
                    resolved_ts = None
                    reopens += 1
                state = new_state
            else:  # "P": priority escalation by one level
                if p_idx == 0:
                    continue
                actor = assignee or requester
                history.append(WorldHistory("priority", prio_labels[p_idx],
                                            prio_labels[p_idx - 1], at, actor.id))
                p_idx -= 1
            last_ts = t
            last_actor = actor

        item.state = _SN_STATE_CODES[item.container][state] if sn else state
        item.priority = _SN_PRIORITY[p_idx] if sn else _JIRA_PRIORITY[p_idx]
        item.group_id = self.groups[group].id
        item.assignee_id = assignee.id if assignee else ""
        item.resolved = _at(resolved_ts, _UTC) if resolved_ts else None
        item.reassignment_count = reassignments
        item.reopen_count = reopens
        item.updated = _at(last_ts, _UTC)
        # The last person who touched the item updated it; requesters' own comments count
        # half of the time (portal updates), otherwise the agent's follow-up does.
        updater = last_actor
        if not updater.is_agent and assignee is not None and r() < 0.5:
            updater = assignee
        if r() < 0.05:
            updater = self.human
        item.updated_by_id = updater.id

    # -- whole world ------------------------------------------------------------------------

    def build(self) -> World:
        self.build_reference()
        slots = self.build_slots()
        made = [self.make_item(*slot) for slot in slots]
        order = sorted(range(len(made)), key=lambda i: made[i][1])
        items = [made[i][0] for i in order]

        # Numbers and Jira ids follow creation order, like the real tools; caused_by points
        # to a recent earlier change on the same service and platform.
        prefixes = {t[0]: t[3] for t in _SN_TABLES}
        counters: Counter[str] = Counter()
        recent_changes: dict[tuple[str, int], list[str]] = {}
        jira_id = 10_000
        r = self.rng.random
        for i in order:
            item, _, si, caused = made[i]
            counters[item.container] += 1
            seq = counters[item.container]
            if item.platform == "servicenow":
                item.number = f"{prefixes[item.container]}{10_000 + seq:07d}"
            else:
                item.number = f"{item.container}-{seq}"
                item.id = str(jira_id)
                jira_id += 1
            key = (item.platform, si)
            if caused:
                changes = recent_changes.get(key)
                if changes:
                    item.caused_by = changes[-1 - int(r() * min(3, len(changes)))]
            if item.kind in ("change", "Change"):
                lst = recent_changes.setdefault(key, [])
                lst.append(item.number)
                if len(lst) > 5:
                    del lst[0]

        # About 2% of items share their `updated` second with another one (bulk updates by the
        # same person), so consumers meet realistic timestamp collisions.
        n_pairs = max(1, round(len(items) * 0.01))
        for _ in range(n_pairs):
            a = items[int(r() * len(items))]
            b = items[int(r() * len(items))]
            if a is b:
                continue
            if b.updated > a.updated:
                a, b = b, a
            b.updated = a.updated
            b.updated_by_id = a.updated_by_id

        return World(seed=self.seed, now=self.now, orgs=self.orgs, users=self.users,
                     groups=self.groups, items=items)


def _default_now() -> datetime:
    today = datetime.now(_UTC)
    return today.replace(hour=0, minute=0, second=0, microsecond=0)


def generate_world(
    seed: int = 7,
    items: int = 2000,
    now: datetime | None = None,
    *,
    only_tables: tuple[str, ...] = (),
) -> World:
    """Generate the sandbox's synthetic world, deterministic for ``(seed, items, now)``.

    ``only_tables`` (e.g. ``("incident",)``) makes every item a ServiceNow record of those
    tables and leaves Jira empty: for benchmarks of one connector on one table.

    ``now`` defaults to today's midnight UTC; a naive ``now`` is taken as UTC. Every generated
    timestamp is timezone-aware UTC, at or before ``now``, with items created within the ~180
    days before it. ``items`` is the exact number of items (50..1,000,000 supported); about 55%
    are ServiceNow records and 45% Jira issues, with every table/project represented.
    """
    if items < 1:
        raise ValueError("items must be positive")
    if now is None:
        now = _default_now()
    elif now.tzinfo is None:
        now = now.replace(tzinfo=_UTC)
    else:
        now = now.astimezone(_UTC)
    # Whole seconds, like both platforms store them.
    now = now.replace(microsecond=0)
    # The generator allocates millions of small objects and frees almost none; pausing the
    # cyclic GC avoids repeated full-heap scans (about 25% faster at 100k items).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        unknown = set(only_tables) - {t[0] for t in _SN_TABLES}
        if unknown:
            raise ValueError(f"only_tables: not generated tables {sorted(unknown)}")
        return _Generator(seed, items, now, tuple(only_tables)).build()
    finally:
        if was_enabled:
            gc.enable()


def world_summary(world: World) -> dict:
    """Counts that describe a world: per platform/container/kind, per moment, experience."""
    by_platform: Counter[str] = Counter()
    by_container: dict[str, Counter[str]] = {}
    by_kind: dict[str, Counter[str]] = {}
    by_moment: Counter[str] = Counter()
    by_platform_moment: dict[str, Counter[str]] = {}
    languages: Counter[str] = Counter()
    bad_by_company: dict[str, list[int]] = {}
    bad = comments = max_comments = caused = breached = surveys = reopened = reassigned = 0
    open_items = 0
    names = {o.id: o.name for o in world.orgs}
    for it in world.items:
        by_platform[it.platform] += 1
        by_container.setdefault(it.platform, Counter())[it.container] += 1
        by_kind.setdefault(it.platform, Counter())[it.kind] += 1
        moment = str(it.truth.get("moment", ""))
        by_moment[moment] += 1
        by_platform_moment.setdefault(it.platform, Counter())[moment] += 1
        languages[it.language] += 1
        is_bad = bool(it.truth.get("bad_experience"))
        bad += is_bad
        tally = bad_by_company.setdefault(names.get(it.company_id, it.company_id), [0, 0])
        tally[0] += is_bad
        tally[1] += 1
        comments += len(it.comments)
        max_comments = max(max_comments, len(it.comments))
        caused += bool(it.caused_by)
        breached += it.sla_breached is True
        surveys += it.survey_score is not None
        reopened += it.reopen_count > 0
        reassigned += it.reassignment_count > 0
        open_items += it.resolved is None
    n = len(world.items)
    return {
        "seed": world.seed,
        "now": world.now.isoformat(),
        "items": n,
        "companies": sum(1 for o in world.orgs if o.kind == "company"),
        "departments": sum(1 for o in world.orgs if o.kind == "department"),
        "business_users": sum(1 for u in world.users if not u.is_agent),
        "agents": sum(1 for u in world.users if u.is_agent),
        "groups": len(world.groups),
        "by_platform": dict(by_platform),
        "by_container": {p: dict(c) for p, c in by_container.items()},
        "by_kind": {p: dict(c) for p, c in by_kind.items()},
        "by_moment": dict(by_moment),
        "by_platform_moment": {p: dict(c) for p, c in by_platform_moment.items()},
        "languages": dict(languages),
        "bad_experience": bad,
        "bad_rate": round(bad / n, 3) if n else 0.0,
        "bad_rate_by_company": {k: round(v[0] / v[1], 3) for k, v in bad_by_company.items()},
        "open": open_items,
        "comments": comments,
        "max_comments": max_comments,
        "caused_by": caused,
        "sla_breached": breached,
        "surveys": surveys,
        "reopened": reopened,
        "reassigned": reassigned,
    }
