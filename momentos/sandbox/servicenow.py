"""A simulated ServiceNow instance: the Table API and Batch API over the sandbox world.

What it reproduces, and where the behaviour comes from (ServiceNow's own API reference,
``ServiceNow/ServiceNowDocs`` ``markdown/api-reference/rest-apis/c_TableAPI.md`` and
``batch-api.md``, unless a comment says otherwise):

* ``GET/POST /api/now/table/{table}``, ``GET/PATCH/PUT/DELETE /api/now/table/{table}/{sys_id}``
  and ``POST /api/now/v1/batch`` (``/api/now/batch`` too).
* Every value is a string; reference fields come back as ``{"link", "value"}`` unless
  ``sysparm_exclude_reference_link=true``; ``sysparm_display_value=true|all``.
* ``X-Total-Count`` counts every match of the query; ``Link`` carries first/prev/next/last URLs
  with ``sysparm_offset`` (sample response in gist bryanbarnard/ee1d952604a11e0f0342).
* ``sysparm_limit`` "is applied before ACL evaluation", so records hidden by ACLs make pages
  short or empty while ``X-Total-Count`` still counts them (``acl_hidden_rate``).
* Invalid fields in ``sysparm_fields`` and invalid conditions in ``sysparm_query`` are ignored
  (``glide.invalid_query.returns_no_rows`` defaults to false).
* Error bodies are ``{"error": {"message", "detail"}, "status": "failure"}``: 401
  ``User Not Authenticated`` / ``Required to provide Auth information`` (panoramicdata/
  ServiceNow.Api issue 16); 400 ``Invalid table <name>`` with ``detail: null`` (observed bodies
  quoted in several public ServiceNow clients); 403 ``Operation Failed`` / ``ACL Exception
  Update Failed due to security constraints`` (Azure ITSM connector troubleshooting docs).
* Dictionary administration (what ``momentos fields setup`` uses): a ``POST`` of a
  ``sys_dictionary`` record with ``name``/``element``/``internal_type`` creates that column on
  the table (and, on ``task``, on every table extending it), and a ``sys_choice`` record adds a
  choice; both need the admin role, else 403 ``Operation Failed`` / ``ACL Exception Insert
  Failed due to security constraints``. The integration user is admin unless ``not_admin``;
  the human user (an IT agent with itil) never is.
* The Batch API runs GETs too (its documented cURL example batches two GETs), answering each
  with its status, Base64 body and headers (``X-Total-Count`` included) unless
  ``exclude_response_headers``; requests past ``batch_limit`` are left unserviced.
* Inbound REST rate limiting per user (``rate_limit_per_hour``): ``X-RateLimit-Limit``,
  ``X-RateLimit-Reset`` (Unix time), ``X-RateLimit-Rule`` on every answer, and 429 ``Rate limit
  exceeded`` with ``Retry-After`` (``inbound-REST-API-rate-limiting.md``).
* OAuth 2.0: ``POST /oauth_token.do`` with the password and refresh-token grants of one
  application registry entry (``oauth_client_id``/``oauth_client_secret``); access tokens
  expire after ``oauth_token_ttl_s`` and are then answered with 401.
* The tables of the connector's default set: besides the world's six, ``rm_enhancement`` (the
  world's changes titled like an enhancement) and ``pm_project_task`` (a deterministic share of
  its projects, each under another project of the same customer); see ``_place``.

Storage is built for 100k items: each table keeps its rows as sparse dicts of strings keyed by
sys_id, task tables keep a list sorted by ``(sys_updated_on, sys_id)`` that is bisected for
time windows and keyset paging, and the related tables are indexed on the field a connector
asks for in bulk (``element_id``, ``documentkey``, ``task``, ``trigger_id``, ``instance``...).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import json
import logging
import math
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from momentos.sandbox.base import SandboxApp
from momentos.sandbox.world import HUMAN_USER, INTEGRATION_USER, World, WorldItem

log = logging.getLogger("momentos.sandbox.servicenow")

# --- schema ------------------------------------------------------------------------------------

#: Normalized kind → the ServiceNow table that holds it (the world says "request", SN says RITM).
KIND_TABLE: dict[str, str] = {
    "incident": "incident",
    "request": "sc_req_item",
    "problem": "problem",
    "change": "change_request",
    "project": "pm_project",
    "demand": "dmn_demand",
}
TASK_TABLES: tuple[str, ...] = (
    "incident",
    "sc_req_item",
    "problem",
    "change_request",
    "rm_enhancement",
    "pm_project",
    "pm_project_task",
    "dmn_demand",
)
NUMBER_PREFIX: dict[str, str] = {
    "incident": "INC",
    "sc_req_item": "RITM",
    "problem": "PRB",
    "change_request": "CHG",
    "rm_enhancement": "ENHC",
    "pm_project": "PRJ",
    "pm_project_task": "PRJTASK",
    "dmn_demand": "DMND",
    "asmt_assessment_instance": "AINST",
}
#: Share of the world's projects rendered as tasks of another project (pm_project_task).
PROJECT_TASK_SHARE = 0.4
#: The field that names the person an item is for, per table (the connector's default too).
REQUESTER_FIELD: dict[str, str] = {
    "incident": "caller_id",
    "sc_req_item": "requested_for",
    "change_request": "requested_by",
}
WRITEBACK = ("u_relationship_moment", "u_experience_score", "u_experience_signals")
MOMENT_CHOICES = (
    ("operation", "Operation"),
    ("evolution", "Evolution"),
    ("innovation", "Innovation"),
)

#: State choice labels; incident and problem have their own lists, the rest use task's.
STATE_CHOICES: dict[str, tuple[tuple[str, str], ...]] = {
    "task": (
        ("-5", "Pending"),
        ("1", "Open"),
        ("2", "Work in Progress"),
        ("3", "Closed Complete"),
        ("4", "Closed Incomplete"),
        ("7", "Closed Skipped"),
    ),
    "incident": (
        ("1", "New"),
        ("2", "In Progress"),
        ("3", "On Hold"),
        ("6", "Resolved"),
        ("7", "Closed"),
        ("8", "Canceled"),
    ),
    "problem": (
        ("101", "New"),
        ("102", "Assess"),
        ("103", "Root Cause Analysis"),
        ("104", "Fix in Progress"),
        ("106", "Resolved"),
        ("107", "Closed"),
    ),
    "dmn_demand": (
        ("1", "Draft"),
        ("2", "Submitted"),
        ("3", "Screening"),
        ("4", "Qualified"),
        ("8", "Approved"),
        ("9", "Completed"),
        ("7", "Deferred"),
    ),
    "change_request": (
        ("-5", "New"),
        ("-4", "Assess"),
        ("-3", "Authorize"),
        ("-2", "Scheduled"),
        ("-1", "Implement"),
        ("0", "Review"),
        ("3", "Closed"),
        ("4", "Canceled"),
    ),
    # Enhancements come from the world's change flow, so they keep its codes under the labels
    # an enhancement's life cycle uses.
    "rm_enhancement": (
        ("-5", "Draft"),
        ("-4", "Screening"),
        ("-3", "Approved"),
        ("-2", "Scheduled"),
        ("-1", "Work in Progress"),
        ("0", "Testing"),
        ("3", "Closed Complete"),
        ("4", "Cancelled"),
    ),
}
PRIORITY_CHOICES = (
    ("1", "1 - Critical"),
    ("2", "2 - High"),
    ("3", "3 - Moderate"),
    ("4", "4 - Low"),
    ("5", "5 - Planning"),
)


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One column: its glide type and, for references, the table it points to."""

    type: str = (
        "string"  # string | integer | boolean | glide_date_time | reference | choice | journal
    )
    ref: str = ""
    label: str = ""


def _f(type_: str = "string", ref: str = "", label: str = "") -> FieldDef:
    return FieldDef(type_, ref, label)


_SYS_FIELDS: dict[str, FieldDef] = {
    "sys_id": _f("GUID", label="Sys ID"),
    "sys_created_on": _f("glide_date_time", label="Created"),
    "sys_created_by": _f(label="Created by"),
    "sys_updated_on": _f("glide_date_time", label="Updated"),
    "sys_updated_by": _f(label="Updated by"),
    "sys_mod_count": _f("integer", label="Updates"),
}

_TASK_FIELDS: dict[str, FieldDef] = {
    **_SYS_FIELDS,
    "number": _f(label="Number"),
    "short_description": _f(label="Short description"),
    "description": _f(label="Description"),
    "opened_by": _f("reference", "sys_user", "Opened by"),
    "opened_at": _f("glide_date_time", label="Opened"),
    "closed_at": _f("glide_date_time", label="Closed"),
    "company": _f("reference", "core_company", "Company"),
    "u_business_area": _f(label="Business area"),
    "assignment_group": _f("reference", "sys_user_group", "Assignment group"),
    "assigned_to": _f("reference", "sys_user", "Assigned to"),
    "business_service": _f("reference", "cmdb_ci_service", "Service"),
    "category": _f(label="Category"),
    "state": _f("integer", label="State"),
    "priority": _f("integer", label="Priority"),
    "active": _f("boolean", label="Active"),
    "reassignment_count": _f("integer", label="Reassignment count"),
    "sys_class_name": _f("sys_class_name", label="Task type"),
    "comments": _f("journal_input", label="Additional comments"),
    "work_notes": _f("journal_input", label="Work notes"),
    "u_relationship_moment": _f("choice", label="Relationship moment"),
    "u_experience_score": _f("integer", label="Experience score"),
    "u_experience_signals": _f("string", label="Experience signals"),
}

_TABLE_EXTRA: dict[str, dict[str, FieldDef]] = {
    "incident": {
        "caller_id": _f("reference", "sys_user", "Caller"),
        "resolved_at": _f("glide_date_time", label="Resolved"),
        "reopen_count": _f("integer", label="Reopen count"),
        "caused_by": _f("reference", "change_request", "Caused by Change"),
    },
    "sc_req_item": {"requested_for": _f("reference", "sys_user", "Requested for")},
    "problem": {"resolved_at": _f("glide_date_time", label="Resolved")},
    "change_request": {
        "requested_by": _f("reference", "sys_user", "Requested by"),
        "type": _f(label="Type"),
    },
    "rm_enhancement": {},
    "pm_project": {},
    "pm_project_task": {"parent": _f("reference", "pm_project", "Parent")},
    "dmn_demand": {},
}

_OTHER_TABLES: dict[str, dict[str, FieldDef]] = {
    "sys_user": {
        **_SYS_FIELDS,
        "user_name": _f(label="User ID"),
        "name": _f(label="Name"),
        "email": _f(label="Email"),
        "company": _f("reference", "core_company", "Company"),
        "department": _f("reference", "cmn_department", "Department"),
        "active": _f("boolean", label="Active"),
        "preferred_language": _f(label="Language"),
    },
    "sys_user_group": {
        **_SYS_FIELDS,
        "name": _f(label="Name"),
        "description": _f(label="Description"),
        "active": _f("boolean", label="Active"),
    },
    "sys_user_grmember": {
        **_SYS_FIELDS,
        "group": _f("reference", "sys_user_group", "Group"),
        "user": _f("reference", "sys_user", "User"),
    },
    "core_company": {**_SYS_FIELDS, "name": _f(label="Name"), "customer": _f("boolean")},
    "cmn_department": {
        **_SYS_FIELDS,
        "name": _f(label="Name"),
        "company": _f("reference", "core_company", "Company"),
    },
    "cmdb_ci_service": {**_SYS_FIELDS, "name": _f(label="Name")},
    "sys_journal_field": {
        **_SYS_FIELDS,
        "element_id": _f("GUID", label="Element ID"),
        "element": _f(label="Element"),
        "name": _f(label="Name"),
        "value": _f(label="Value"),
    },
    "sys_audit": {
        **_SYS_FIELDS,
        "documentkey": _f("GUID", label="Document key"),
        "tablename": _f(label="Table name"),
        "fieldname": _f(label="Field name"),
        "oldvalue": _f(label="Old value"),
        "newvalue": _f(label="New value"),
        "user": _f(label="User"),
        "reason": _f(label="Reason"),
    },
    "contract_sla": {**_SYS_FIELDS, "name": _f(label="Name")},
    "task_sla": {
        **_SYS_FIELDS,
        "task": _f("reference", "task", "Task"),
        "sla": _f("reference", "contract_sla", "SLA definition"),
        "stage": _f(label="Stage"),
        "has_breached": _f("boolean", label="Has breached"),
        "start_time": _f("glide_date_time", label="Start time"),
        "planned_end_time": _f("glide_date_time", label="Planned end time"),
    },
    "asmt_metric": {**_SYS_FIELDS, "name": _f(label="Name")},
    "asmt_assessment_instance": {
        **_SYS_FIELDS,
        "number": _f(label="Number"),
        "trigger_id": _f("document_id", label="Trigger id"),
        "trigger_table": _f(label="Trigger table"),
        "state": _f(label="State"),
        "taken_on": _f("glide_date_time", label="Taken on"),
        "user": _f("reference", "sys_user", "Assigned to"),
    },
    "asmt_metric_result": {
        **_SYS_FIELDS,
        "instance": _f("reference", "asmt_assessment_instance", "Instance"),
        "metric": _f("reference", "asmt_metric", "Metric"),
        "actual_value": _f("integer", label="Actual value"),
    },
    "sys_dictionary": {
        **_SYS_FIELDS,
        "name": _f(label="Table"),
        "element": _f(label="Column name"),
        "column_label": _f(label="Column label"),
        "internal_type": _f(label="Type"),
        "reference": _f(label="Reference"),
        "max_length": _f("integer", label="Max length"),
        "choice": _f("integer", label="Choice"),
        "read_only": _f("boolean", label="Read only"),
        "mandatory": _f("boolean", label="Mandatory"),
        "active": _f("boolean", label="Active"),
    },
    "sys_choice": {
        **_SYS_FIELDS,
        "name": _f(label="Table"),
        "element": _f(label="Element"),
        "value": _f(label="Value"),
        "label": _f(label="Label"),
        "language": _f(label="Language"),
        "inactive": _f("boolean", label="Inactive"),
        "sequence": _f("integer", label="Sequence"),
    },
}

#: The field shown as a reference's display value, per table.
DISPLAY_FIELD: dict[str, str] = {
    **{t: "number" for t in (*TASK_TABLES, "task", "asmt_assessment_instance")},
    "sys_journal_field": "element_id",
    "sys_audit": "fieldname",
    "sys_user_grmember": "sys_id",
    "task_sla": "sys_id",
    "asmt_metric_result": "actual_value",
    "sys_dictionary": "element",
    "sys_choice": "label",
}

#: Fields the sandbox indexes, so bulk ``<field>IN...`` lookups never scan.
INDEXED: dict[str, tuple[str, ...]] = {
    "sys_journal_field": ("element_id",),
    "sys_audit": ("documentkey",),
    "task_sla": ("task",),
    "asmt_assessment_instance": ("trigger_id",),
    "asmt_metric_result": ("instance",),
    "sys_user_grmember": ("group", "user"),
    "sys_user": ("user_name",),
    "sys_dictionary": ("element",),
    "sys_choice": ("element",),
    **{t: ("number",) for t in (*TASK_TABLES, "task")},
}

_TRUE = frozenset({"true", "1", "yes"})
#: Tables whose records only the admin role may create (the dictionary and its choices).
ADMIN_TABLES = frozenset({"sys_dictionary", "sys_choice"})


# --- storage ------------------------------------------------------------------------------------


@dataclass
class Table:
    """One table: sparse string rows by sys_id, secondary indexes and, for task tables, the
    ``(sys_updated_on, sys_id)`` order kept sorted across updates."""

    name: str
    schema: dict[str, FieldDef]
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    indexes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    ordered: list[tuple[str, str]] | None = None
    version: int = 0

    @property
    def display_field(self) -> str:
        return DISPLAY_FIELD.get(self.name, "name")

    def insert(self, row: dict[str, str]) -> None:
        sys_id = row["sys_id"]
        self.rows[sys_id] = row
        for fname, index in self.indexes.items():
            value = row.get(fname, "")
            if value:
                index.setdefault(value, []).append(sys_id)
        if self.ordered is not None:
            bisect.insort(self.ordered, (row.get("sys_updated_on", ""), sys_id))
        self.version += 1

    def reindex(self, row: dict[str, str], old: dict[str, str]) -> None:
        """Keep indexes and order right after ``row`` changed from ``old`` values."""
        sys_id = row["sys_id"]
        for fname, index in self.indexes.items():
            if fname in old and old[fname] != row.get(fname, ""):
                ids = index.get(old[fname], [])
                if sys_id in ids:
                    ids.remove(sys_id)
                if row.get(fname):
                    index.setdefault(row[fname], []).append(sys_id)
        if self.ordered is not None and "sys_updated_on" in old:
            key = (old["sys_updated_on"], sys_id)
            pos = bisect.bisect_left(self.ordered, key)
            if pos < len(self.ordered) and self.ordered[pos] == key:
                del self.ordered[pos]
            bisect.insort(self.ordered, (row.get("sys_updated_on", ""), sys_id))
        self.version += 1

    def build_order(self) -> None:
        self.ordered = sorted((r.get("sys_updated_on", ""), sid) for sid, r in self.rows.items())


# --- encoded queries ----------------------------------------------------------------------------

_OPS = (
    "ISNOTEMPTY",
    "ISEMPTY",
    "NOT IN",
    "NOT LIKE",
    "NOTLIKE",
    "STARTSWITH",
    "ENDSWITH",
    "EMPTYSTRING",
    "ANYTHING",
    "BETWEEN",
    "LIKE",
    "IN",
    "!=",
    ">=",
    "<=",
    "=",
    ">",
    "<",
)
# Column names are lower case on ServiceNow and operators are upper case or symbols, so a greedy
# lower-case field name followed by the first operator is unambiguous.
_COND_RE = re.compile(
    r"^([a-z_][a-z0-9_.]*)(" + "|".join(re.escape(o) for o in _OPS) + r")(.*)$", re.DOTALL
)
_DATE_GENERATE_RE = re.compile(
    r"javascript:\s*gs\.dateGenerate\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)", re.IGNORECASE
)


def js_value(value: str) -> str:
    """Evaluate the few ``javascript:`` values real clients send in date comparisons.

    ``gs.dateGenerate('2024-01-31','12:00:00')`` → ``2024-01-31 12:00:00``; the time may be
    ``start`` or ``end`` as on the platform. Anything else is left as it is.
    """
    if not value.startswith("javascript:"):
        return value
    match = _DATE_GENERATE_RE.fullmatch(value.strip())
    if not match:
        return value
    day, clock = match.groups()
    clock = {"start": "00:00:00", "end": "23:59:59"}.get(clock, clock)
    return f"{day} {clock}"


@dataclass(frozen=True, slots=True)
class Cond:
    field: str
    op: str
    value: str


@dataclass
class ParsedQuery:
    """``^NQ`` segments OR-ed; each a list of AND-ed groups; each group OR-ed conditions."""

    segments: list[list[list[Cond]]]
    order: list[tuple[str, bool]]  # (field, descending)

    @property
    def simple(self) -> list[list[Cond]] | None:
        """The only segment, when there is no ``^NQ``."""
        return self.segments[0] if len(self.segments) == 1 else None


def parse_query(text: str) -> ParsedQuery:
    """Parse an encoded query. ``A^B^ORC`` means A AND (B OR C): ``^OR`` binds to the condition
    before it. Unparseable parts are dropped, as the platform ignores invalid query parts."""
    order: list[tuple[str, bool]] = []
    segments: list[list[list[Cond]]] = []
    for segment_text in (text or "").split("^NQ"):
        groups: list[list[Cond]] = []
        for token in segment_text.split("^"):
            token = token.strip()
            if not token or token == "EQ":
                continue
            if token.startswith("ORDERBYDESC"):
                order.append((token[11:], True))
                continue
            if token.startswith("ORDERBY"):
                order.append((token[7:], False))
                continue
            is_or = token.startswith("OR") and bool(groups)
            cond = _parse_cond(token[2:] if is_or else token)
            if cond is None:
                continue
            if is_or:
                groups[-1].append(cond)
            else:
                groups.append([cond])
        segments.append(groups)
    return ParsedQuery(segments=segments, order=order)


def _parse_cond(token: str) -> Cond | None:
    match = _COND_RE.match(token)
    if not match:
        return None
    fname, op, value = match.groups()
    return Cond(fname, op, value)


# --- the application ----------------------------------------------------------------------------


def _sid(*parts: object) -> str:
    """A deterministic 32-hex sys_id."""
    return hashlib.md5(":".join(map(str, parts)).encode()).hexdigest()


_SYS_ID_RE = re.compile(r"[0-9a-f]{32}")


def _is_sys_id(value: str) -> bool:
    return _SYS_ID_RE.fullmatch(value) is not None


_DAYS: dict[int, str] = {}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ts(value: dt.datetime | None) -> str:
    """Raw ServiceNow UTC ``YYYY-MM-DD HH:MM:SS``. A 100k-item world has about a million
    timestamps, so days are formatted once and seconds by arithmetic (4x faster than
    ``strftime``)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    day, second = divmod(int(value.timestamp()), 86_400)
    text = _DAYS.get(day)
    if text is None:
        text = _DAYS[day] = (_EPOCH + dt.timedelta(days=day)).strftime("%Y-%m-%d")
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{text} {hour:02d}:{minute:02d}:{second:02d}"


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in _TRUE


class ServiceNowSandbox(SandboxApp):
    """The world's ServiceNow items served as the Table API and Batch API."""

    platform = "servicenow"

    url_map = Map(
        [
            Rule("/api/now/table/<table>", methods=["GET"], endpoint="table_list"),
            Rule("/api/now/table/<table>", methods=["POST"], endpoint="table_insert"),
            Rule("/api/now/table/<table>/<sys_id>", methods=["GET"], endpoint="table_get"),
            Rule(
                "/api/now/table/<table>/<sys_id>",
                methods=["PATCH", "PUT"],
                endpoint="table_update",
            ),
            Rule("/api/now/table/<table>/<sys_id>", methods=["DELETE"], endpoint="table_delete"),
            Rule("/api/now/v1/batch", methods=["POST"], endpoint="batch"),
            Rule("/api/now/batch", methods=["POST"], endpoint="batch"),
            Rule("/api/now/attachment", methods=["GET"], endpoint="attachment_list"),
            Rule("/api/now/attachment/file", methods=["POST"], endpoint="attachment_upload"),
            Rule("/api/now/attachment/<sys_id>", methods=["GET"], endpoint="attachment_get"),
            Rule("/api/now/attachment/<sys_id>/file", methods=["GET"],
                 endpoint="attachment_content"),
            Rule("/api/now/attachment/<sys_id>", methods=["DELETE"],
                 endpoint="attachment_delete"),
        ],
        strict_slashes=False,
    )

    def __init__(
        self,
        world: World,
        users: dict[str, str],
        seed: int = 7,
        *,
        acl_hidden_rate: float = 0.0,
        same_second: int = 0,
        missing_fields: bool = False,
        deny_writes: bool = False,
        batch_limit: int = 0,
        forbidden_tables: Iterable[str] = (),
        missing_tables: Iterable[str] = (),
        batch_denied: bool = False,
        rate_limit_per_hour: int = 0,
        rate_limit_window_s: float = 3600.0,
        oauth_token_ttl_s: float = 1800.0,
        not_admin: bool = False,
        **other_options: Any,
    ) -> None:
        """``start_sandbox`` passes the same options to both platforms, so options meant for the
        other one are accepted and ignored.

        ``deny_writes`` makes every update by the integration user fail with the platform's ACL
        403; ``batch_limit`` makes the Batch API leave requests beyond that many unserviced, as
        the platform does when a batch reaches its size or time limit; ``forbidden_tables``
        answers 403 to the integration user on those tables (e.g. ``sys_audit``, which real
        instances often keep from integration accounts); ``missing_tables`` leaves out task
        tables whose plugin an instance lacks (``rm_enhancement``, ``pm_project_task``): their
        records stay in the tables the world names. ``batch_denied`` refuses the Batch API to
        the integration user (403), as an instance with an ACL on it does.

        ``rate_limit_per_hour`` is an inbound REST rate limit rule for every user: each
        ``/api/`` request is counted per user in a fixed window (an hour on the platform;
        ``rate_limit_window_s`` shortens it for tests), every answer carries ``X-RateLimit-*``
        headers and requests over the limit get 429 with ``Retry-After``. ``oauth_token_ttl_s``
        is the life of access tokens from ``/oauth_token.do``.

        ``not_admin`` takes the admin role from the integration user: creating dictionary
        entries and choices (``sys_dictionary``, ``sys_choice``) then answers 403, as it always
        does for the human user.
        """
        super().__init__(users, seed=seed)
        self.world = world
        self.seed = seed
        self.acl_hidden_rate = float(acl_hidden_rate)
        self.missing_fields = bool(missing_fields)
        self.deny_writes = bool(deny_writes)
        self.batch_limit = int(batch_limit)
        self.forbidden_tables = frozenset(forbidden_tables)
        self.missing_tables = frozenset(missing_tables) - {"task", *KIND_TABLE.values()}
        self.batch_denied = bool(batch_denied)
        self.admins = frozenset() if not_admin else frozenset({INTEGRATION_USER})
        self.rate_limit_per_hour = int(rate_limit_per_hour)
        self.rate_limit_window_s = float(rate_limit_window_s)
        self._rate_counts: dict[str, tuple[float, int]] = {}  # user → (window start, count)
        self.rate_limit_rule = _sid("sys_rate_limit_rules", "all users", seed)
        # One OAuth application registry entry (System OAuth > Application Registry).
        self.oauth_token_ttl_s = float(oauth_token_ttl_s)
        self.oauth_client_id = _sid("oauth_entity", "momentos", seed)
        self.oauth_client_secret = secrets.token_urlsafe(18)
        self._access_tokens: dict[str, tuple[str, float]] = {}  # token → (user, expires at)
        self._refresh_tokens: dict[str, str] = {}  # token → user
        self.unauthorized_count = 0  # 401 answers, for tests of token refresh
        if other_options:
            log.debug("servicenow sandbox ignores options %s", sorted(other_options))
        self.tables: dict[str, Table] = {}
        self._query_cache: OrderedDict[tuple[str, str, int], list[Any]] = OrderedDict()
        self.hidden: set[str] = set()
        started = time.perf_counter()
        self._build(world)
        if same_second:
            self._share_one_second(int(same_second))
        if self.acl_hidden_rate > 0:
            self._hide_some(self.acl_hidden_rate)
        log.info(
            "servicenow sandbox: %d task records in %.2fs",
            len(self.tables["task"].rows),
            time.perf_counter() - started,
        )

    # --- world → tables ------------------------------------------------------------------------
    def _new_table(self, name: str, schema: dict[str, FieldDef], ordered: bool = False) -> Table:
        if self.missing_fields:
            schema = {k: v for k, v in schema.items() if k not in WRITEBACK}
        table = Table(name, schema)
        table.indexes = {f: {} for f in INDEXED.get(name, ())}
        if ordered:
            table.ordered = []
        self.tables[name] = table
        return table

    def _build(self, world: World) -> None:
        """Render the world as tables: people and groups, reference data, the dictionary, the
        task records with their journal, audit, SLA and survey rows, then the indexes."""
        self._new_table("task", _TASK_FIELDS, ordered=True)
        for name in TASK_TABLES:
            if name not in self.missing_tables:
                self._new_table(name, {**_TASK_FIELDS, **_TABLE_EXTRA[name]}, ordered=True)
        for name, schema in _OTHER_TABLES.items():
            self._new_table(name, schema)

        created = _ts(world.now - dt.timedelta(days=3650))
        defaults = {
            "sys_created_on": created,
            "sys_updated_on": created,
            "sys_created_by": "admin",
            "sys_updated_by": "admin",
            "sys_mod_count": "0",
        }

        def put(table: str, row: dict[str, str]) -> None:
            self.tables[table].rows[row["sys_id"]] = {
                **defaults,
                **{k: v for k, v in row.items() if v != ""},
            }

        self._build_people(world, put)
        sn_items = [i for i in world.items if i.platform == "servicenow"]
        services = sorted({i.service for i in sn_items if i.service})
        self._service_ids = {name: _sid("cmdb_ci_service", name) for name in services}
        for name, sys_id in self._service_ids.items():
            put("cmdb_ci_service", {"sys_id": sys_id, "name": name})
        sla_def = _sid("contract_sla", "resolution")
        put("contract_sla", {"sys_id": sla_def, "name": "Resolution time"})
        metric = _sid("asmt_metric", "overall")
        put("asmt_metric", {"sys_id": metric, "name": "Overall satisfaction"})
        self._build_meta(put)

        orgs = {o.id: o for o in world.orgs}
        numbers = {i.number: i.id for i in sn_items}
        self._numbers: dict[str, int] = {}
        self.placement = {
            item_id: placed
            for item_id, placed in _place(sn_items).items()
            if placed[0] not in self.missing_tables
        }
        for item in sn_items:
            self._build_item(item, orgs, numbers, sla_def, metric)
        # The task table shares the child tables' row objects: an update through either is
        # seen by both, as one record is on the platform.
        task = self.tables["task"]
        for name in TASK_TABLES:
            if name in self.tables:
                task.rows.update(self.tables[name].rows)
        for table in self.tables.values():
            for fname, index in table.indexes.items():
                for sys_id, row in table.rows.items():
                    value = row.get(fname)
                    if value:
                        index.setdefault(value, []).append(sys_id)
            if table.ordered is not None:
                table.build_order()

    def _build_people(self, world: World, put: Callable[[str, dict[str, str]], None]) -> None:
        """Companies, departments, users, groups and group membership."""
        for org in world.orgs:
            if org.kind == "company":
                put("core_company", {"sys_id": org.id, "name": org.name, "customer": "true"})
            else:
                put(
                    "cmn_department",
                    {"sys_id": org.id, "name": org.name, "company": org.company_id},
                )
        self._user_by_name: dict[str, str] = {}  # display name → sys_id (for history values)
        self._user_by_login: dict[str, str] = {}  # user_name → sys_id
        self._login: dict[str, str] = {}  # sys_id → user_name
        for user in world.users:
            put(
                "sys_user",
                {
                    "sys_id": user.id,
                    "user_name": user.username,
                    "name": user.name,
                    "email": user.email,
                    "company": user.company_id,
                    "department": user.department_id,
                    "active": "true",
                    "preferred_language": user.language,
                },
            )
            self._user_by_name.setdefault(user.name, user.id)
            self._user_by_login[user.username] = user.id
            self._login[user.id] = user.username
        for login, name in ((INTEGRATION_USER, "Momentos Integration"), (HUMAN_USER, "IT Agent")):
            if login not in self._user_by_login:
                sys_id = _sid("sys_user", login)
                put(
                    "sys_user",
                    {
                        "sys_id": sys_id,
                        "user_name": login,
                        "name": name,
                        "email": f"{login}@example.com",
                        "active": "true",
                        "preferred_language": "en",
                    },
                )
                self._user_by_login[login] = sys_id
                self._login[sys_id] = login
        self._group_by_name: dict[str, str] = {}
        for group in world.groups:
            put("sys_user_group", {"sys_id": group.id, "name": group.name, "active": "true"})
            self._group_by_name[group.name] = group.id

        # Membership: who works items of which group, and every agent in some group. This is
        # what a connector reads to tell IT agents from business users.
        members: set[tuple[str, str]] = set()
        for item in world.items:
            if item.platform == "servicenow" and item.group_id and item.assignee_id:
                members.add((item.group_id, item.assignee_id))
        group_ids = [g.id for g in world.groups]
        if group_ids:
            placed = {u for _, u in members}
            for n, user in enumerate(world.users):
                if user.is_agent and user.id not in placed:
                    members.add((group_ids[n % len(group_ids)], user.id))
            members.add((group_ids[0], self._user_by_login[HUMAN_USER]))
        for group_id, user_id in sorted(members):
            put(
                "sys_user_grmember",
                {"sys_id": _sid("grmember", group_id, user_id), "group": group_id, "user": user_id},
            )

    def _build_meta(self, put: Callable[[str, dict[str, str]], None]) -> None:
        """sys_dictionary and sys_choice: what ``momentos check`` reads."""
        for name, table in self.tables.items():
            put(
                "sys_dictionary",
                {
                    "sys_id": _sid("dict", name, ""),
                    "name": name,
                    "internal_type": "collection",
                    "column_label": name,
                    "active": "true",
                    "read_only": "false",
                },
            )
            own = _TASK_FIELDS if name == "task" else _TABLE_EXTRA.get(name)
            if own is None:
                own = table.schema
            for element, fdef in own.items():
                if name != "task" and name in TASK_TABLES and element in _TASK_FIELDS:
                    continue  # inherited from task: the dictionary row lives on task only
                if element in WRITEBACK and self.missing_fields:
                    continue
                put(
                    "sys_dictionary",
                    {
                        "sys_id": _sid("dict", name, element),
                        "name": name,
                        "element": element,
                        "internal_type": fdef.type,
                        "reference": fdef.ref,
                        "column_label": fdef.label or element,
                        "active": "true",
                        "read_only": "false",
                        "mandatory": "false",
                        "max_length": "4000" if element == "u_experience_signals" else "",
                    },
                )
        if not self.missing_fields:
            for seq, (value, label) in enumerate(MOMENT_CHOICES):
                put(
                    "sys_choice",
                    {
                        "sys_id": _sid("choice", "task", "moment", value),
                        "name": "task",
                        "element": "u_relationship_moment",
                        "value": value,
                        "label": label,
                        "language": "en",
                        "inactive": "false",
                        "sequence": str(seq),
                    },
                )
        for table, choices in STATE_CHOICES.items():
            for seq, (value, label) in enumerate(choices):
                put(
                    "sys_choice",
                    {
                        "sys_id": _sid("choice", table, "state", value),
                        "name": table,
                        "element": "state",
                        "value": value,
                        "label": label,
                        "language": "en",
                        "inactive": "false",
                        "sequence": str(seq),
                    },
                )
        for seq, (value, label) in enumerate(PRIORITY_CHOICES):
            put(
                "sys_choice",
                {
                    "sys_id": _sid("choice", "task", "priority", value),
                    "name": "task",
                    "element": "priority",
                    "value": value,
                    "label": label,
                    "language": "en",
                    "inactive": "false",
                    "sequence": str(seq),
                },
            )

    def _build_item(
        self,
        item: WorldItem,
        orgs: dict[str, Any],
        numbers: dict[str, str],
        sla_def: str,
        metric: str,
    ) -> None:
        table = (
            item.container
            if item.container in TASK_TABLES
            else KIND_TABLE.get(item.kind, "incident")
        )
        number, parent = item.number, ""
        if item.id in self.placement:
            table, number, parent = self.placement[item.id]
        login = self._login.get
        requester_login = login(item.requester_id, "")
        department = orgs.get(item.department_id)
        resolved = _ts(item.resolved)
        row: dict[str, str] = {
            "sys_id": item.id,
            "number": number,
            "short_description": item.title,
            "description": item.description,
            "opened_by": item.requester_id,
            "opened_at": _ts(item.created),
            "company": item.company_id,
            "u_business_area": department.name if department else "",
            "assignment_group": item.group_id,
            "assigned_to": item.assignee_id,
            "business_service": self._service_ids.get(item.service, ""),
            "category": item.category,
            "state": item.state,
            "priority": item.priority,
            "active": "false" if item.resolved else "true",
            "reassignment_count": str(item.reassignment_count),
            "sys_class_name": table,
            "sys_created_on": _ts(item.created),
            "sys_created_by": requester_login or "admin",
            "sys_updated_on": _ts(item.updated),
            "sys_updated_by": login(item.updated_by_id, "") or "system",
            "sys_mod_count": str(len(item.history) + len(item.comments) + 1),
            "closed_at": resolved if table not in ("incident", "problem") else "",
        }
        if table in ("incident", "problem"):
            row["resolved_at"] = resolved
        if table == "incident":
            row["caller_id"] = item.requester_id
            row["reopen_count"] = str(item.reopen_count)
            row["caused_by"] = numbers.get(item.caused_by, "")
        if parent:
            row["parent"] = parent
        requester_field = REQUESTER_FIELD.get(table)
        if requester_field:
            row[requester_field] = item.requester_id
        if not self.missing_fields:
            for logical, column in zip(("moment", "score", "signals"), WRITEBACK, strict=True):
                row[column] = item.fields.get(logical, "")
        self.tables[table].rows[item.id] = {k: v for k, v in row.items() if v != ""}
        prefix = NUMBER_PREFIX[table]
        digits = number[len(prefix) :]
        if number.startswith(prefix) and digits.isdigit():
            self._numbers[table] = max(self._numbers.get(table, 0), int(digits))

        journal = self.tables["sys_journal_field"].rows
        for n, comment in enumerate(item.comments):
            sys_id = comment.id if _is_sys_id(comment.id) else _sid("journal", item.id, n)
            journal[sys_id] = {
                "sys_id": sys_id,
                "element_id": item.id,
                "name": table,
                "element": "work_notes" if comment.internal else "comments",
                "value": comment.text,
                "sys_created_on": _ts(comment.created),
                "sys_created_by": login(comment.author_id, "") or "system",
                "sys_updated_on": _ts(comment.created),
                "sys_mod_count": "0",
            }
        audit = self.tables["sys_audit"].rows
        for n, event in enumerate(item.history):
            sys_id = _sid("audit", item.id, n)
            audit[sys_id] = {
                "sys_id": sys_id,
                "documentkey": item.id,
                "tablename": table,
                "fieldname": event.field,
                "oldvalue": self._raw_history_value(table, event.field, event.old),
                "newvalue": self._raw_history_value(table, event.field, event.new),
                "user": login(event.by_id, "") or "system",
                "sys_created_on": _ts(event.at),
                "sys_created_by": login(event.by_id, "") or "system",
            }
        if item.sla_breached is not None:
            sys_id = _sid("task_sla", item.id)
            self.tables["task_sla"].rows[sys_id] = {
                "sys_id": sys_id,
                "task": item.id,
                "sla": sla_def,
                "stage": "completed" if item.resolved else "in_progress",
                "has_breached": "true" if item.sla_breached else "false",
                "start_time": _ts(item.created),
                "planned_end_time": _ts(item.sla_planned_end) or _ts(item.created),
                "sys_created_on": _ts(item.created),
                "sys_updated_on": _ts(item.updated),
            }
        if item.survey_score is not None:
            instance = _sid("asmt_instance", item.id)
            self._numbers["asmt_assessment_instance"] = (
                self._numbers.get("asmt_assessment_instance", 0) + 1
            )
            taken = _ts(item.resolved or item.updated)
            self.tables["asmt_assessment_instance"].rows[instance] = {
                "sys_id": instance,
                "number": f"AINST{self._numbers['asmt_assessment_instance']:07d}",
                "trigger_id": item.id,
                "trigger_table": table,
                "state": "complete",
                "taken_on": taken,
                "user": item.requester_id,
                "sys_created_on": taken,
                "sys_updated_on": taken,
            }
            result = _sid("asmt_result", item.id)
            self.tables["asmt_metric_result"].rows[result] = {
                "sys_id": result,
                "instance": instance,
                "metric": metric,
                "actual_value": str(item.survey_score),
                "sys_created_on": taken,
                "sys_updated_on": taken,
            }

    def _raw_history_value(self, table: str, fname: str, value: str | None) -> str:
        """sys_audit stores raw values: sys_ids for references, numbers for choices. The world
        records display values, so map them back."""
        if not value:
            return ""
        if fname == "assignment_group":
            return self._group_by_name.get(value, value)
        if fname == "assigned_to":
            return self._user_by_name.get(value, value)
        if fname == "state":
            for label_table in (table, "task"):
                for raw, label in STATE_CHOICES.get(label_table, ()):
                    if label == value:
                        return raw
            return value
        if fname == "priority":
            for raw, label in PRIORITY_CHOICES:
                if value in (label, label[4:]):
                    return raw
        return value

    def _share_one_second(self, count: int) -> None:
        """Give ``count`` records of the largest task table one sys_updated_on second, picked
        from the middle of its order so they sit between other records (keyset tests)."""
        name = max(
            (t for t in TASK_TABLES if t in self.tables), key=lambda t: len(self.tables[t].rows)
        )
        table = self.tables[name]
        assert table.ordered is not None
        count = min(count, len(table.ordered))
        start = max(0, (len(table.ordered) - count) // 2)
        chosen = table.ordered[start : start + count]
        if not chosen:
            return
        second = chosen[0][0]
        for _, sys_id in chosen:
            table.rows[sys_id]["sys_updated_on"] = second
        table.build_order()
        self.tables["task"].build_order()
        self.same_second_table = name
        self.same_second_value = second

    def _hide_some(self, rate: float) -> None:
        for sys_id in self.tables["task"].rows:
            digest = hashlib.blake2b(f"{self.seed}:{sys_id}".encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") / 2**64 < rate:
                self.hidden.add(sys_id)

    # --- OAuth, rate limits -----------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        """The token endpoint needs no session; everything under ``/api/`` passes the per-user
        rate limit rule, when one is set, before the Table or Batch API sees it."""
        if request.path == "/oauth_token.do" and request.method == "POST":
            with self.lock:
                self.requests["POST /oauth_token.do"] += 1
            return self.injected_fault(request) or self.oauth_token(request)
        if not (self.rate_limit_per_hour and request.path.startswith("/api/")):
            return super().dispatch(request)
        user = self.authenticate(request)
        if user is None:
            return super().dispatch(request)  # the 401, counted as usual
        allowed, headers = self._rate_limit(user)
        if not allowed:
            with self.lock:
                self.requests[f"{request.method} (rate limited)"] += 1
            response = self.error(
                429,
                "Rate limit exceeded",
                f"Rate limit of {self.rate_limit_per_hour} requests per hour for REST API exceeded",
            )
        else:
            response = super().dispatch(request)
        for key, value in headers.items():
            response.headers[key] = value
        return response

    def _rate_limit(self, user: str) -> tuple[bool, dict[str, str]]:
        """Count one request of ``user``; (allowed, the rule's response headers). Headers and
        body as in "Inbound REST API rate limiting" (ServiceNow/ServiceNowDocs
        ``inbound-REST-API-rate-limiting.md``): X-RateLimit-Limit, -Reset (Unix time of the
        next reset), -Rule (the rule's sys_id), and Retry-After in seconds on a 429."""
        now = time.time()
        window = self.rate_limit_window_s
        with self.lock:
            start, count = self._rate_counts.get(user, (now - now % window, 0))
            if now >= start + window:
                start, count = now - now % window, 0
            count += 1
            self._rate_counts[user] = (start, count)
        reset = start + window
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit_per_hour),
            "X-RateLimit-Reset": str(math.ceil(reset)),
            "X-RateLimit-Rule": self.rate_limit_rule,
        }
        if count <= self.rate_limit_per_hour:
            return True, headers
        headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
        return False, headers

    def authenticate(self, request: Request) -> str | None:
        """Basic auth as the base app does, plus bearer tokens issued by ``/oauth_token.do``."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            with self.lock:
                found = self._access_tokens.get(header[7:])
            if found is not None:
                user, expires = found
                return user if time.time() < expires else None
        return super().authenticate(request)

    def oauth_token(self, request: Request) -> Response:
        """``POST /oauth_token.do`` (form encoded): the password grant and the refresh token
        grant of an OAuth application registry entry. Errors follow RFC 6749 section 5.2, which
        is what oauthlib parses on the client side."""
        form = request.form
        if (
            form.get("client_id") != self.oauth_client_id
            or form.get("client_secret") != self.oauth_client_secret
        ):
            return self.json(
                {"error": "invalid_client", "error_description": "access_denied"}, status=401
            )
        grant = form.get("grant_type", "")
        user: str | None = None
        if grant == "password":
            name, password = form.get("username", ""), form.get("password", "")
            user = name if password and self.users.get(name) == password else None
        elif grant == "refresh_token":
            with self.lock:
                user = self._refresh_tokens.get(form.get("refresh_token", ""))
        else:
            return self.json({"error": "unsupported_grant_type"}, status=400)
        if user is None:
            return self.json(
                {"error": "invalid_grant", "error_description": "access_denied"}, status=401
            )
        refresh = form.get("refresh_token") if grant == "refresh_token" else None
        return self.json(self._issue(user, refresh))

    def revoke_access_tokens(self) -> None:
        """Forget every access token (refresh tokens stay), as an instance does when an admin
        revokes them or a node restarts: the next request with one gets 401."""
        with self.lock:
            self._access_tokens.clear()

    def issue_refresh_token(self, user: str) -> str:
        """A refresh token for ``user``, as an admin stores one after a first password grant."""
        return str(self._issue(user)["refresh_token"])

    def _issue(self, user: str, refresh: str | None = None) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        with self.lock:
            self._access_tokens[access] = (user, time.time() + self.oauth_token_ttl_s)
            if refresh is None:
                refresh = secrets.token_urlsafe(24)
                self._refresh_tokens[refresh] = user
        return {
            "access_token": access,
            "refresh_token": refresh,
            "scope": "useraccount",
            "token_type": "Bearer",
            "expires_in": int(self.oauth_token_ttl_s),
        }

    # --- errors --------------------------------------------------------------------------------
    def error(self, status: int, message: str, detail: str | None = "") -> Response:
        """ServiceNow's error body: ``{"error": {"message", "detail"}, "status": "failure"}``."""
        return self.json(
            {"error": {"message": message, "detail": detail}, "status": "failure"}, status=status
        )

    def unauthorized(self) -> Response:
        with self.lock:
            self.unauthorized_count += 1
        response = self.error(401, "User Not Authenticated", "Required to provide Auth information")
        response.headers["WWW-Authenticate"] = 'Basic realm="Service-now"'
        return response

    def _invalid_table(self, table: str) -> Response:
        return self.error(400, f"Invalid table {table}", None)

    def _forbidden(self, user: str, table: str) -> Response | None:
        if user == INTEGRATION_USER and table in self.forbidden_tables:
            return self.error(403, "User Not Authorized", f"Read ACL denies access to {table}")
        return None

    def _no_record(self) -> Response:
        return self.error(
            404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
        )

    # --- reading -------------------------------------------------------------------------------
    def _visible(self, user: str, table: Table, sys_id: str) -> bool:
        return not (
            self.hidden
            and user == INTEGRATION_USER
            and sys_id in self.hidden
            and table.ordered is not None
        )

    def table_list(self, request: Request, table: str) -> Response:
        tbl = self.tables.get(table)
        if tbl is None:
            return self._invalid_table(table)
        denied = self._forbidden(request.environ.get("sandbox.user", ""), table)
        if denied is not None:
            return denied
        args = request.args
        query_text = args.get("sysparm_query", "")
        # Name-value pairs are a shorthand for an equality query (Table API reference).
        pairs = [f"{k}={v}" for k, v in args.items() if not k.startswith("sysparm_")]
        if pairs and not query_text:
            query_text = "^".join(pairs)
        limit = _int(args.get("sysparm_limit"), 10000)
        offset = max(0, _int(args.get("sysparm_offset"), 0))
        user = request.environ.get("sandbox.user", "")
        with self.lock:
            total, window = self._select(tbl, query_text, offset, max(0, limit))
            # sysparm_limit is applied before ACL evaluation: hidden records leave holes.
            page = [sid for sid in window if self._visible(user, tbl, sid)]
            render = self._renderer(tbl, args)
            result = [render(tbl.rows[sid]) for sid in page]
        headers: dict[str, str] = {}
        if not _flag(args.get("sysparm_no_count")):
            headers["X-Total-Count"] = str(total)
        if not _flag(args.get("sysparm_suppress_pagination_header")) and limit > 0:
            headers["Link"] = self._link_header(request, table, offset, limit, total)
        return self.json({"result": result}, headers=headers)

    def table_get(self, request: Request, table: str, sys_id: str) -> Response:
        tbl = self.tables.get(table)
        if tbl is None:
            return self._invalid_table(table)
        user = request.environ.get("sandbox.user", "")
        denied = self._forbidden(user, table)
        if denied is not None:
            return denied
        with self.lock:
            row = tbl.rows.get(sys_id)
            if row is None or not self._visible(user, tbl, sys_id):
                return self._no_record()
            return self.json({"result": self._renderer(tbl, request.args)(row)})

    def _link_header(
        self, request: Request, table: str, offset: int, limit: int, total: int
    ) -> str:
        base = f"{self.base_url}/api/now/table/{table}"
        params = [
            (k, v)
            for k, v in request.args.items(multi=True)
            if k not in ("sysparm_offset", "sysparm_limit")
        ]

        def url(at: int) -> str:
            query = urlencode([*params, ("sysparm_limit", str(limit)), ("sysparm_offset", str(at))])
            return f"<{base}?{query}>"

        last = max(0, ((total - 1) // limit) * limit) if total else 0
        links = [f'{url(0)};rel="first"']
        if offset > 0:
            links.append(f'{url(max(0, offset - limit))};rel="prev"')
        if offset + limit < total:
            links.append(f'{url(offset + limit)};rel="next"')
        links.append(f'{url(last)};rel="last"')
        return ",".join(links)

    # --- query evaluation ----------------------------------------------------------------------
    def _select(
        self, table: Table, query_text: str, offset: int, limit: int
    ) -> tuple[int, list[str]]:
        """(count of all matches, sys_ids of the ``[offset, offset+limit)`` window), in the
        query's order. Fast paths: indexed ``=``/``IN`` lookups and the sorted
        ``(sys_updated_on, sys_id)`` order; anything else scans once and is cached."""
        parsed = parse_query(query_text)
        groups = parsed.simple
        if groups is not None:
            indexed = self._by_index(table, groups, parsed.order)
            if indexed is not None:
                return len(indexed), indexed[offset : offset + limit]
            if table.ordered is not None and _orders_by_updated(parsed.order):
                return self._by_updated(table, groups, offset, limit)
        ids = self._cached(table, query_text, lambda: self._scan(table, parsed))
        return len(ids), ids[offset : offset + limit]

    def _cached(self, table: Table, key_text: str, compute: Callable[[], list[Any]]) -> list[Any]:
        key = (table.name, key_text, table.version)
        cached = self._query_cache.get(key)
        if cached is not None:
            self._query_cache.move_to_end(key)
            return cached
        value = compute()
        self._query_cache[key] = value
        while len(self._query_cache) > 32:
            self._query_cache.popitem(last=False)
        return value

    def _scan(self, table: Table, parsed: ParsedQuery) -> list[str]:
        match = self._matcher(table, parsed)
        ids = [sid for sid, row in table.rows.items() if match(row)]
        return self._ordered(table, ids, parsed.order)

    def _by_index(
        self, table: Table, groups: list[list[Cond]], order: list[tuple[str, bool]]
    ) -> list[str] | None:
        """Candidates from ``sys_id`` or an indexed field compared with ``=`` or ``IN``."""
        for group in groups:
            if len(group) != 1:
                continue
            cond = group[0]
            if cond.op not in ("=", "IN"):
                continue
            values = cond.value.split(",") if cond.op == "IN" else [cond.value]
            if cond.field == "sys_id":
                candidates = [v for v in dict.fromkeys(values) if v in table.rows]
            elif cond.field in table.indexes:
                index = table.indexes[cond.field]
                candidates = list(dict.fromkeys(s for v in values for s in index.get(v, ())))
            else:
                continue
            match = self._matcher(table, ParsedQuery([groups], order))
            ids = [sid for sid in candidates if match(table.rows[sid])]
            return self._ordered(table, ids, order)
        return None

    def _by_updated(
        self, table: Table, groups: list[list[Cond]], offset: int, limit: int
    ) -> tuple[int, list[str]]:
        """Bisect the ``(sys_updated_on, sys_id)`` order for the time window and the keyset
        condition ``sys_updated_on>X^ORsys_id>Y``; other conditions filter a cached list."""
        assert table.ordered is not None
        lower: list[tuple[Callable[..., int], tuple[str, str]]] = []
        upper: list[tuple[Callable[..., int], tuple[str, str]]] = []
        residual: list[list[Cond]] = []
        for group in groups:
            first = group[0]
            if (
                len(group) == 1
                and first.field == "sys_updated_on"
                and first.op in (">=", ">", "<", "<=")
            ):
                value = js_value(first.value)
                if first.op == ">=":
                    lower.append((bisect.bisect_left, (value, "")))
                elif first.op == ">":
                    lower.append((bisect.bisect_right, (value, "\uffff")))
                elif first.op == "<":
                    upper.append((bisect.bisect_left, (value, "")))
                else:
                    upper.append((bisect.bisect_right, (value, "\uffff")))
            elif (
                len(group) == 2
                and {c.field for c in group} == {"sys_updated_on", "sys_id"}
                and all(c.op == ">" for c in group)
                and self._keyset_anchor(groups, group)
            ):
                updated = js_value(next(c.value for c in group if c.field == "sys_updated_on"))
                after = next(c.value for c in group if c.field == "sys_id")
                lower.append((bisect.bisect_right, (updated, after)))
            else:
                residual.append(group)
        keys: list[tuple[str, str]] = table.ordered
        if residual:
            rows = table.rows
            match = self._matcher(table, ParsedQuery([residual], []))
            keys = self._cached(
                table,
                "residual:" + repr(residual),
                lambda: [k for k in table.ordered or () if match(rows[k[1]])],
            )
        lo = max((find(keys, key) for find, key in lower), default=0)
        hi = min((find(keys, key) for find, key in upper), default=len(keys))
        total = max(0, hi - lo)
        start = lo + offset
        return total, [sid for _, sid in keys[start : min(hi, start + limit)]]

    @staticmethod
    def _keyset_anchor(groups: list[list[Cond]], keyset: list[Cond]) -> bool:
        """``sys_updated_on>X OR sys_id>Y`` is a keyset bound only next to ``sys_updated_on>=X``."""
        updated = next(c.value for c in keyset if c.field == "sys_updated_on")
        return any(
            len(g) == 1
            and g[0].field == "sys_updated_on"
            and g[0].op == ">="
            and g[0].value == updated
            for g in groups
        )

    def _ordered(self, table: Table, ids: list[str], order: list[tuple[str, bool]]) -> list[str]:
        """Sort by the ORDERBY fields; without any, keep the table's stored order."""
        if not order:
            return ids
        rows = table.rows
        result = list(ids)
        for fname, desc in reversed(order):
            getter = self._getter(table, fname)
            if getter is None:
                continue  # ordering by an invalid field is ignored
            numeric = self._field_def(table, fname).type == "integer"

            def key(
                sid: str, getter: Callable[[dict[str, str]], str] = getter, numeric: bool = numeric
            ) -> Any:
                value = getter(rows[sid])
                if numeric:
                    try:
                        return (1, float(value))
                    except ValueError:
                        return (0, 0.0)
                return value

            result.sort(key=key, reverse=desc)
        return result

    def _field_def(self, table: Table, path: str) -> FieldDef:
        current = table
        parts = path.split(".")
        for n, part in enumerate(parts):
            fdef = current.schema.get(part)
            if fdef is None:
                return FieldDef("unknown")
            if n == len(parts) - 1:
                return fdef
            target = self.tables.get(fdef.ref)
            if target is None:
                return FieldDef("unknown")
            current = target
        return FieldDef("unknown")

    def _getter(self, table: Table, path: str) -> Callable[[dict[str, str]], str] | None:
        """A function reading ``path`` (maybe dot-walked) from a row; None for invalid fields."""
        parts = path.split(".")
        if parts[0] not in table.schema:
            return None
        if len(parts) == 1:
            name = parts[0]
            return lambda row: row.get(name, "")
        hops: list[tuple[str, Table]] = []
        current = table
        for part in parts[:-1]:
            fdef = current.schema.get(part)
            if fdef is None or fdef.type != "reference" or fdef.ref not in self.tables:
                return None
            hops.append((part, self.tables[fdef.ref]))
            current = self.tables[fdef.ref]
        last = parts[-1]
        if last not in current.schema:
            return None

        def walk(row: dict[str, str]) -> str:
            for part, target in hops:
                ref = row.get(part, "")
                found = target.rows.get(ref) if ref else None
                if found is None:
                    return ""
                row = found
            return row.get(last, "")

        return walk

    def _matcher(self, table: Table, parsed: ParsedQuery) -> Callable[[dict[str, str]], bool]:
        segments = [
            [[self._condition(table, c) for c in group] for group in segment]
            for segment in parsed.segments
        ]
        # Invalid conditions are ignored (None), as on the platform.
        compiled = [
            [[c for c in group if c is not None] for group in segment] for segment in segments
        ]
        compiled = [[g for g in segment if g] for segment in compiled]
        compiled = [s for s in compiled if s] or [[]]

        def match(row: dict[str, str]) -> bool:
            for segment in compiled:
                if all(any(test(row) for test in group) for group in segment):
                    return True
            return False

        return match

    def _condition(self, table: Table, cond: Cond) -> Callable[[dict[str, str]], bool] | None:
        getter = self._getter(table, cond.field)
        if getter is None:
            return None
        fdef = self._field_def(table, cond.field)
        numeric = fdef.type == "integer"
        op = cond.op
        raw = js_value(cond.value)
        if op in ("ISEMPTY", "EMPTYSTRING"):
            return lambda row: getter(row) == ""
        if op == "ISNOTEMPTY":
            return lambda row: getter(row) != ""
        if op == "ANYTHING":
            return lambda row: True
        if op in ("IN", "NOT IN"):
            values = frozenset(raw.split(","))
            if op == "IN":
                return lambda row: getter(row) in values
            return lambda row: getter(row) not in values
        if op in ("LIKE", "NOT LIKE", "NOTLIKE", "STARTSWITH", "ENDSWITH"):
            # String matching is case-insensitive on the platform's database collation.
            needle = raw.lower()
            if op == "LIKE":
                return lambda row: needle in getter(row).lower()
            if op == "STARTSWITH":
                return lambda row: getter(row).lower().startswith(needle)
            if op == "ENDSWITH":
                return lambda row: getter(row).lower().endswith(needle)
            return lambda row: needle not in getter(row).lower()
        if op == "BETWEEN":
            low, _, high = cond.value.partition("@")
            low, high = js_value(low), js_value(high)
            return lambda row: (
                (v := getter(row)) != ""
                and _cmp(v, low, numeric) >= 0
                and _cmp(v, high, numeric) <= 0
            )
        if op == "=":
            if numeric:
                return lambda row: (
                    _cmp(getter(row), raw, True) == 0 if getter(row) != "" else raw == ""
                )
            return lambda row: getter(row) == raw
        if op == "!=":
            if numeric:
                return lambda row: getter(row) == "" or _cmp(getter(row), raw, True) != 0
            return lambda row: getter(row) != raw
        # Ordering comparisons never match empty values (SQL NULL semantics).
        sign = {">": (1,), ">=": (0, 1), "<": (-1,), "<=": (-1, 0)}[op]
        return lambda row: (v := getter(row)) != "" and _cmp(v, raw, numeric) in sign

    # --- rendering -----------------------------------------------------------------------------
    def _renderer(self, table: Table, args: Any) -> Callable[[dict[str, str]], dict[str, Any]]:
        fields_param = (args.get("sysparm_fields") or "").strip()
        if fields_param:
            wanted = [f.strip() for f in fields_param.split(",") if f.strip()]
            # Invalid fields are ignored (Table API reference).
            columns = [
                (f, self._getter(table, f), self._field_def(table, f))
                for f in dict.fromkeys(wanted)
            ]
            columns = [c for c in columns if c[1] is not None]
        else:
            columns = [(f, self._getter(table, f), d) for f, d in table.schema.items()]
        display_mode = (args.get("sysparm_display_value") or "false").strip().lower()
        exclude_link = _flag(args.get("sysparm_exclude_reference_link"))
        base = self.base_url
        choice_labels = self._choice_labels(table)
        plan: list[tuple[str, Callable[[dict[str, str]], str], FieldDef, dict[str, str]]] = [
            (name, getter, fdef, choice_labels.get(name.rsplit(".", 1)[-1], {}))
            for name, getter, fdef in columns
            if getter is not None
        ]

        if display_mode not in ("true", "all"):
            if exclude_link:

                def render_raw(row: dict[str, str]) -> dict[str, Any]:
                    return {name: get(row) for name, get, _, _ in plan}

                return render_raw

            def render_links(row: dict[str, str]) -> dict[str, Any]:
                out: dict[str, Any] = {}
                for name, get, fdef, _ in plan:
                    value = get(row)
                    if fdef.type == "reference" and value:
                        out[name] = {
                            "link": f"{base}/api/now/table/{fdef.ref}/{value}",
                            "value": value,
                        }
                    else:
                        out[name] = value
                return out

            return render_links

        both = display_mode == "all"

        def render_display(row: dict[str, str]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, get, fdef, labels in plan:
                value = get(row)
                shown = self._display(fdef, value, labels)
                if both:
                    entry: dict[str, Any] = {"display_value": shown, "value": value}
                    if fdef.type == "reference" and value and not exclude_link:
                        entry["link"] = f"{base}/api/now/table/{fdef.ref}/{value}"
                    out[name] = entry
                elif fdef.type == "reference" and value and not exclude_link:
                    out[name] = {
                        "display_value": shown,
                        "link": f"{base}/api/now/table/{fdef.ref}/{value}",
                    }
                else:
                    out[name] = shown
            return out

        return render_display

    def _display(self, fdef: FieldDef, value: str, labels: dict[str, str]) -> str:
        if not value:
            return ""
        if fdef.type == "reference":
            target = self.tables.get(fdef.ref)
            row = target.rows.get(value) if target else None
            return row.get(target.display_field, "") if row and target else ""
        return labels.get(value, value)

    def _choice_labels(self, table: Table) -> dict[str, dict[str, str]]:
        """Choice labels by element: the table's own rows win over task's."""
        labels: dict[str, dict[str, str]] = {}
        choice = self.tables["sys_choice"]
        for name in ("task", table.name):
            for row in choice.rows.values():
                if row.get("name") == name:
                    labels.setdefault(row.get("element", ""), {})[row.get("value", "")] = row.get(
                        "label", ""
                    )
        return labels

    # --- writing -------------------------------------------------------------------------------
    def _body(self, request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def table_update(self, request: Request, table: str, sys_id: str) -> Response:
        """PATCH and PUT both update only the fields sent (PUT is not a replace on the Table
        API). ``sys_`` fields and unknown fields are ignored, as the platform ignores them."""
        tbl = self.tables.get(table)
        if tbl is None:
            return self._invalid_table(table)
        body = self._body(request)
        if body is None:
            return self.error(
                400, "Exception while reading request", "The payload is not valid JSON."
            )
        user = request.environ.get("sandbox.user", "")
        with self.lock:
            row = tbl.rows.get(sys_id)
            if row is None or not self._visible(user, tbl, sys_id):
                return self._no_record()
            self.count_write(f"{table}/{sys_id}")
            if self.deny_writes and user == INTEGRATION_USER:
                return self.error(
                    403,
                    "Operation Failed",
                    "ACL Exception Update Failed due to security constraints",
                )
            self._apply(tbl, row, body, user)
            return self.json({"result": self._renderer(tbl, request.args)(row)})

    def _apply(self, tbl: Table, row: dict[str, str], body: dict[str, Any], user: str) -> None:
        now = _ts(dt.datetime.now(dt.UTC))
        old: dict[str, str] = {}
        journal: list[tuple[str, str]] = []
        for key, value in body.items():
            fdef = tbl.schema.get(key)
            if key.startswith("sys_") or fdef is None:
                continue
            text = _as_text(value)
            if fdef.type == "journal_input":
                if text:
                    journal.append((key, text))
                continue
            if row.get(key, "") != text:
                old[key] = row.get(key, "")
                row[key] = text
        if not old and not journal:
            return  # nothing changed: the platform does not touch the record
        sys_id = row["sys_id"]
        table_name = row.get("sys_class_name", tbl.name) if tbl.name == "task" else tbl.name
        audit = self.tables["sys_audit"]
        for fname, before in old.items():
            audit.insert(
                {
                    "sys_id": uuid.uuid4().hex,
                    "documentkey": sys_id,
                    "tablename": table_name,
                    "fieldname": fname,
                    "oldvalue": before,
                    "newvalue": row.get(fname, ""),
                    "user": user,
                    "sys_created_on": now,
                    "sys_created_by": user,
                    "sys_updated_on": now,
                    "sys_updated_by": user,
                    "sys_mod_count": "0",
                }
            )
        for element, text in journal:
            self.tables["sys_journal_field"].insert(
                {
                    "sys_id": uuid.uuid4().hex,
                    "element_id": sys_id,
                    "element": element,
                    "name": table_name,
                    "value": text,
                    "sys_created_on": now,
                    "sys_created_by": user,
                    "sys_updated_on": now,
                    "sys_mod_count": "0",
                }
            )
        old["sys_updated_on"] = row.get("sys_updated_on", "")
        row["sys_updated_on"] = now
        row["sys_updated_by"] = user
        row["sys_mod_count"] = str(_int(row.get("sys_mod_count"), 0) + 1)
        for name in {tbl.name, table_name, "task"}:
            other = self.tables.get(name)
            if other is not None and sys_id in other.rows:
                other.reindex(row, old)

    def table_insert(self, request: Request, table: str) -> Response:
        tbl = self.tables.get(table)
        if tbl is None or table == "task":
            return self._invalid_table(table)
        body = self._body(request)
        if body is None:
            return self.error(
                400, "Exception while reading request", "The payload is not valid JSON."
            )
        user = request.environ.get("sandbox.user", "")
        now = _ts(dt.datetime.now(dt.UTC))
        if table in ADMIN_TABLES and user not in self.admins:
            self.count_write(f"{table}/(refused)")
            return self.error(
                403, "Operation Failed", "ACL Exception Insert Failed due to security constraints"
            )
        with self.lock:
            row = {
                k: _as_text(v)
                for k, v in body.items()
                if k in tbl.schema and not k.startswith("sys_")
            }
            row = {k: v for k, v in row.items() if tbl.schema[k].type != "journal_input"}
            row.update(
                {
                    "sys_id": uuid.uuid4().hex,
                    "sys_created_on": now,
                    "sys_created_by": user,
                    "sys_updated_on": now,
                    "sys_updated_by": user,
                    "sys_mod_count": "0",
                }
            )
            if table in NUMBER_PREFIX and not row.get("number"):
                self._numbers[table] = self._numbers.get(table, 0) + 1
                row["number"] = f"{NUMBER_PREFIX[table]}{self._numbers[table]:07d}"
            if table in TASK_TABLES:
                row["sys_class_name"] = table
                row.setdefault("active", "true")
            tbl.insert(row)
            if table in TASK_TABLES:
                self.tables["task"].insert(row)
            if table == "sys_dictionary":
                self._add_column(row)
            self.count_write(f"{table}/{row['sys_id']}")
            journal = {
                k: _as_text(v)
                for k, v in body.items()
                if tbl.schema.get(k, FieldDef()).type == "journal_input"
            }
            if journal:
                self._apply(tbl, row, journal, user)
            return self.json({"result": self._renderer(tbl, request.args)(row)}, status=201)

    def _add_column(self, row: dict[str, str]) -> None:
        """A new dictionary entry makes its column real: on its table and, for ``task``, on every
        table that extends it (the caller holds the lock). Schemas are replaced, not mutated,
        because tables built without ``missing_fields`` share the module's schema dicts."""
        element, owner = row.get("element", ""), row.get("name", "")
        if not element or owner not in self.tables:
            return
        fdef = FieldDef(row.get("internal_type") or "string", row.get("reference", ""),
                        row.get("column_label", ""))
        targets = [owner, *TASK_TABLES] if owner == "task" else [owner]
        for name in targets:
            table = self.tables.get(name)
            if table is not None and element not in table.schema:
                table.schema = {**table.schema, element: fdef}
                table.version += 1
        self._query_cache.clear()

    def table_delete(self, request: Request, table: str, sys_id: str) -> Response:
        return self.error(
            403, "Operation Failed", "ACL Exception Delete Failed due to security constraints"
        )

    # --- batch ---------------------------------------------------------------------------------
    def batch(self, request: Request) -> Response:
        """The Batch API: each request runs as the caller; bodies are Base64 both ways."""
        user = request.environ.get("sandbox.user", "")
        if self.batch_denied and user == INTEGRATION_USER:
            return self.error(403, "User Not Authorized", "ACL denies access to the Batch API")
        body = self._body(request)
        if body is None or not isinstance(body.get("rest_requests"), list):
            return self.error(400, "Invalid batch request", "rest_requests is required")
        serviced: list[dict[str, Any]] = []
        unserviced: list[str] = []
        for n, item in enumerate(body["rest_requests"]):
            item_id = str(item.get("id", n))
            if self.batch_limit and n >= self.batch_limit:
                unserviced.append(item_id)
                continue
            started = time.perf_counter()
            response = self._run_batch_item(item, user)
            payload = response.get_data()
            entry: dict[str, Any] = {
                "id": item_id,
                "status_code": response.status_code,
                "status_text": response.status.partition(" ")[2],
                "body": base64.b64encode(payload).decode(),
                "headers": []
                if item.get("exclude_response_headers")
                else [{"name": k, "value": v} for k, v in response.headers.items()],
                "execution_time": int((time.perf_counter() - started) * 1000),
            }
            if response.status_code >= 400:
                try:
                    entry["error_message"] = json.loads(payload)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    entry["error_message"] = response.status
            serviced.append(entry)
        return self.json(
            {
                "batch_request_id": body.get("batch_request_id", ""),
                "serviced_requests": serviced,
                "unserviced_requests": unserviced,
            }
        )

    def _run_batch_item(self, item: dict[str, Any], user: str) -> Response:
        url = str(item.get("url", ""))
        method = str(item.get("method", "GET")).upper()
        headers = {
            str(h.get("name")): str(h.get("value"))
            for h in item.get("headers") or []
            if isinstance(h, dict)
        }
        try:
            data = base64.b64decode(item.get("body") or "")
        except ValueError:
            return self.error(400, "Invalid batch item", "body is not Base64")
        path, _, query = url.partition("?")
        builder = EnvironBuilder(
            path=path,
            method=method,
            query_string=query,
            data=data,
            headers=headers,
            base_url=self.base_url or "http://localhost",
        )
        environ = builder.get_environ()
        environ["sandbox.user"] = user
        sub = Request(environ)
        try:
            rule, values = self.url_map.bind_to_environ(environ).match(return_rule=True)
        except MethodNotAllowed:
            return self.error(405, "Method not allowed")
        except (NotFound, HTTPException):
            return self.error(400, "Requested URI does not represent any resource", path)
        if rule.endpoint == "batch":
            return self.error(400, "Batch requests cannot be nested")
        try:
            return getattr(self, str(rule.endpoint))(sub, **values)
        except HTTPException as exc:
            return self.error(exc.code or 500, exc.description or "error")

    # --- for tests and benchmarks ---------------------------------------------------------------
    def table_of(self, item: WorldItem) -> str:
        """The table that holds a world item here (enhancements and project tasks live in
        their own tables, the world knows them as changes and projects)."""
        placed = self.placement.get(item.id)
        return placed[0] if placed else item.container

    def number_of(self, item: WorldItem) -> str:
        placed = self.placement.get(item.id)
        return placed[1] if placed else item.number

    def record(self, table: str, sys_id: str) -> dict[str, str] | None:
        """The stored raw row (a copy), bypassing HTTP."""
        with self.lock:
            row = self.tables[table].rows.get(sys_id)
            return dict(row) if row is not None else None

    def rows(self, table: str) -> Iterator[dict[str, str]]:
        with self.lock:
            snapshot = list(self.tables[table].rows.values())
        return iter(snapshot)

    # --- Attachment API ------------------------------------------------------------------------
    # POST /api/now/attachment/file?table_name=&table_sys_id=&file_name= (raw body),
    # GET /api/now/attachment?sysparm_query=, GET/DELETE /api/now/attachment/{sys_id},
    # GET /api/now/attachment/{sys_id}/file: the shapes of ServiceNow's Attachment API.
    @property
    def attachments(self) -> dict[str, dict[str, Any]]:
        """sys_attachment records by sys_id (with their bytes under ``_data``)."""
        return self.__dict__.setdefault("_attachment_store", {})

    def _attachment_json(self, record: dict[str, Any]) -> dict[str, Any]:
        sys_id = record["sys_id"]
        return {
            **{k: v for k, v in record.items() if not k.startswith("_")},
            "download_link": f"{self.base_url}/api/now/attachment/{sys_id}/file",
        }

    def attachment_upload(self, request: Request) -> Response:
        table = request.args.get("table_name", "")
        target = request.args.get("table_sys_id", "")
        name = request.args.get("file_name", "")
        if not (table and target and name):
            return self.error(400, "Failed to create the attachment",
                              "table_name, table_sys_id and file_name are required")
        user = request.environ.get("sandbox.user", "")
        with self.lock:
            tbl = self.tables.get(table)
            if tbl is None:
                return self._invalid_table(table)
            if target not in tbl.rows or not self._visible(user, tbl, target):
                return self.error(400, "Failed to create the attachment",
                                  f"Record {target} does not exist in {table}")
            data = request.get_data()
            sys_id = uuid.uuid4().hex
            now = _ts(dt.datetime.now(dt.UTC))
            record = {
                "sys_id": sys_id, "table_name": table, "table_sys_id": target,
                "file_name": name,
                "content_type": request.headers.get("Content-Type", "application/octet-stream"),
                "size_bytes": str(len(data)), "hash": hashlib.sha256(data).hexdigest(),
                "sys_created_on": now, "sys_created_by": user, "sys_updated_on": now,
                "_data": data,
            }
            self.attachments[sys_id] = record
            self.count_write(f"sys_attachment/{table}/{target}")
            return self.json({"result": self._attachment_json(record)}, status=201)

    def attachment_list(self, request: Request) -> Response:
        conditions = [c for c in request.args.get("sysparm_query", "").split("^") if c]
        wanted: list[tuple[str, str]] = []
        for condition in conditions:
            name, sep, value = condition.partition("=")
            if not sep:
                return self.error(400, "Invalid query", f"unsupported condition {condition}")
            wanted.append((name, value))
        fields = [f for f in request.args.get("sysparm_fields", "").split(",") if f]
        limit = _int(request.args.get("sysparm_limit"), 1000)
        with self.lock:
            found = [r for r in self.attachments.values()
                     if all(str(r.get(k, "")) == v for k, v in wanted)]
            found.sort(key=lambda r: (r["sys_created_on"], r["sys_id"]))
            out = [self._attachment_json(r) for r in found[:limit]]
        if fields:
            out = [{k: r.get(k, "") for k in fields} for r in out]
        return self.json({"result": out})

    def attachment_get(self, request: Request, sys_id: str) -> Response:
        with self.lock:
            record = self.attachments.get(sys_id)
            if record is None:
                return self._no_record()
            return self.json({"result": self._attachment_json(record)})

    def attachment_content(self, request: Request, sys_id: str) -> Response:
        with self.lock:
            record = self.attachments.get(sys_id)
            if record is None:
                return self._no_record()
            return Response(record["_data"], mimetype=record["content_type"])

    def attachment_delete(self, request: Request, sys_id: str) -> Response:
        with self.lock:
            record = self.attachments.pop(sys_id, None)
            if record is None:
                return self._no_record()
            self.count_write(f"sys_attachment/{record['table_name']}/{record['table_sys_id']}")
            return Response(status=204)


# --- placing the world's items ------------------------------------------------------------------


def _enhancement_prefixes() -> tuple[str, ...]:
    """Lower-cased fixed openings of the world's enhancement titles (the words before the first
    placeholder) that no change title shares: an item titled like an enhancement is one."""
    from momentos.sandbox.world import _TITLES

    def openings(flavor: str) -> set[str]:
        found = set()
        for lang in ("en", "es"):
            for template in _TITLES.get((flavor, lang), ()):
                head = template.split("{", 1)[0].strip().lower()
                if len(head) >= 4:
                    found.add(head)
        return found

    changes = openings("change")
    return tuple(
        sorted(h for h in openings("enhancement") if not any(c.startswith(h) for c in changes))
    )


def _share(item_id: str) -> float:
    digest = hashlib.blake2b(f"place:{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _place(items: list[WorldItem]) -> dict[str, tuple[str, str, str]]:
    """item id → (table, number, parent sys_id) for the world items that a real instance keeps
    in rm_enhancement and pm_project_task, which the world generator does not know.

    Changes titled like an enhancement become enhancements, and a deterministic share of the
    projects become tasks of another project of the same customer. The moment they stand for
    is the one the world meant (evolution, and the project's own), so ground truth holds.
    """
    placed: dict[str, tuple[str, str, str]] = {}
    prefixes = _enhancement_prefixes()
    changes = [i for i in items if i.container == "change_request"]
    enhancements = [i for i in changes if i.title.lower().startswith(prefixes)]
    if not enhancements and len(changes) > 1:
        enhancements = changes[-1:]  # even a tiny world has one
    for item in enhancements:
        placed[item.id] = ("rm_enhancement", _renumber(item.number, "rm_enhancement"), "")

    projects = sorted(
        (i for i in items if i.container == "pm_project"), key=lambda i: (i.created, i.id)
    )
    tasks = [p for p in projects if _share(p.id) < PROJECT_TASK_SHARE]
    parents = [p for p in projects if _share(p.id) >= PROJECT_TASK_SHARE]
    if not parents and tasks:
        parents.append(tasks.pop(0))
    if not tasks and len(parents) > 1:
        tasks.append(parents.pop())
    by_company: dict[str, list[WorldItem]] = {}
    for project in parents:
        by_company.setdefault(project.company_id, []).append(project)
    for task in tasks:
        candidates = by_company.get(task.company_id) or parents
        earlier = [p for p in candidates if p.created <= task.created]
        parent = (earlier or candidates)[-1 if earlier else 0]
        placed[task.id] = ("pm_project_task", _renumber(task.number, "pm_project_task"), parent.id)
    return placed


def _renumber(number: str, table: str) -> str:
    """The same sequence digits under the table's prefix: CHG0010042 → ENHC0010042."""
    digits = number.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return f"{NUMBER_PREFIX[table]}{digits}"


# --- small helpers ------------------------------------------------------------------------------


def _orders_by_updated(order: list[tuple[str, bool]]) -> bool:
    return order in ([("sys_updated_on", False)], [("sys_updated_on", False), ("sys_id", False)])


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _cmp(left: str, right: str, numeric: bool) -> int:
    if numeric:
        try:
            a, b = float(left), float(right)
            return (a > b) - (a < b)
        except ValueError:
            pass
    return (left > right) - (left < right)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        value = value.get("value", "")
    if isinstance(value, (list, tuple)):
        return ",".join(_as_text(v) for v in value)
    return str(value)
