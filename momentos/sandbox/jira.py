"""A simulated Jira (Cloud or Data Center) with Jira Service Management, over the sandbox world.

What it reproduces, and where the behaviour comes from (Atlassian's REST reference unless a
comment says otherwise):

* Cloud removed ``/rest/api/{2,3}/search``: it answers 410 with "The requested API has been
  removed. Please migrate to the /rest/api/3/search/jql API…" (CHANGE-2046; body quoted in
  adyscorpius/logseq-jira#34 and jenkinsci/jira-plugin#741). ``/search/jql`` pages with an
  opaque ``nextPageToken`` and ``isLast``, returns only ``id`` unless ``fields`` is given, and
  rejects a query with no restriction: "Unbounded JQL queries are not allowed here. Please add
  a search restriction to your query." (raycast/extensions#21425). Data Center keeps
  ``/rest/api/2/search`` with ``startAt``/``maxResults`` (≤ 1000, default 50)/``total``.
* Cloud search inlines at most 20 comments and 20 changelog histories per issue; the rest is
  read from ``/issue/{key}/comment``, ``/issue/{key}/changelog`` (PageBean, ≤ 100 a page) and
  ``POST /rest/api/3/changelog/bulkfetch`` (``issueIdsOrKeys`` ≤ 1000, ``fieldIds``,
  ``maxResults``, ``nextPageToken`` → ``issueChangeLogs``; Jira Cloud OpenAPI
  BulkChangelogRequestBean/BulkChangelogResponseBean).
* API v3 bodies (description, comments, paragraph fields) are ADF documents; v2 sends strings.
  A v3 write of a paragraph field must be ADF ("Operation value must be an Atlassian Document").
* ``PUT /issue/{key}`` answers 204; a field missing from the project's edit screen gives 400
  ``{"errorMessages":[],"errors":{"customfield_X":"Field 'customfield_X' cannot be set. It is
  not on the appropriate screen, or unknown."}}`` (JRASERVER-67013, tenable/integration-jira-cloud
  #37); ``notifyUsers=false`` without admin rights gives 403 "To discard the user notification
  either admin or project admin permissions are required." (pycontribs/jira users' reports).
* Timestamps are rendered in the requesting user's time zone (``2026-01-02T03:04:05.000-0500``)
  and JQL string dates are read in that zone too; epoch milliseconds are absolute.
* JSM: ``/rest/servicedeskapi/request/{key}/feedback`` (CSAT ``{"type":"csat","rating":n,
  "comment":{"body":...}}``), ``/participant``, ``/organization``.
* Cloud bulk edit: ``POST /rest/api/3/bulk/issues/fields`` with ``selectedIssueIdsOrKeys`` (≤ 1000),
  ``selectedActions`` (field ids, ≤ 200), ``editedFieldsInput`` (``singleSelectFields`` →
  ``option.optionId``, ``clearableNumberFields`` → ``value``, ``richTextFields`` →
  ``richText.adfValue``) and ``sendBulkNotification`` answers ``{"taskId": ...}``; the task is
  polled at ``GET /rest/api/3/bulk/queue/{taskId}`` (``status`` ENQUEUED/RUNNING/COMPLETE/FAILED,
  ``processedAccessibleIssues``, ``failedAccessibleIssues``, ``invalidOrInaccessibleIssueCount``)
  (Jira Cloud OpenAPI IssueBulkEditPayload/JiraIssueFields/BulkOperationProgress, as mirrored by
  MrRefactoring/jira.js ``src/version3/models``). It needs the global "Make bulk changes"
  permission, else 403.
* ``expand=transitions`` adds the transitions available from the issue's status (Singer's
  tap-jira asks for it and reads ``issue["transitions"]`` unconditionally).
* Field administration (what ``momentos fields setup`` uses; "Administer Jira" global
  permission, else 403): ``POST /rest/api/{2,3}/field`` (CustomFieldDefinitionJsonBean ``name``,
  ``description``, ``type``, ``searcherKey``; answers 201 with the field, and Cloud gives the new
  field its global default context); Cloud ``POST /field/{id}/context/{ctx}/option``
  (``{"options": [{"value", "disabled"}]}`` → ``{"options": [...]}``); the screens API
  (``GET /screens``, ``/screens/{id}/tabs``, ``GET``/``POST /screens/{id}/tabs/{tab}/fields``
  with ``{"fieldId"}``) and, Cloud only, how a project reaches its screens:
  ``GET /issuetypescreenscheme/project?projectId=`` → ``/issuetypescreenscheme/mapping?
  issueTypeScreenSchemeId=`` → ``GET /screenscheme?id=`` (``screens.default``/``edit``)
  (developer.atlassian.com/cloud/jira/platform/rest/v3/ api-group-issue-fields,
  -issue-custom-field-options, -screens, -screen-tabs, -screen-tab-fields,
  -issue-type-screen-schemes, -screen-schemes). Each classic project has one screen (one tab,
  "Field Tab") through its own screen scheme and issue type screen scheme; the field set of that
  screen is what ``PUT /issue`` and ``editmeta`` accept. A created field takes the free
  writeback slot of its type (select → moment, float → score, textarea → signals): only those
  store values.
* A 429 carries ``Retry-After``, ``X-RateLimit-*`` and ``RateLimit-Reason`` (Atlassian's "Rate
  limiting" and "Build an app that respects rate limits" pages: ``jira-burst-based``,
  ``jira-per-issue-on-write``, …).

Storage is built for 100k issues: issues are kept in a list sorted by ``(updated, id)``; a search
ordered by ``updated ASC`` is answered by bisecting to its lower bound and scanning only until
the page is full, and issue JSON is built per page (ADF bodies cached per comment).
"""

from __future__ import annotations

import base64
import bisect
import gc
import hashlib
import json
import logging
import random
import re
import sys
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from momentos.sandbox.base import Faults, SandboxApp
from momentos.sandbox.jql import And, Clause, JqlError, Node, Not, Or, Query, Value, parse
from momentos.sandbox.world import (
    HUMAN_USER,
    INTEGRATION_USER,
    User,
    World,
    WorldComment,
    WorldItem,
)

log = logging.getLogger("momentos.sandbox.jira")

__all__ = ["JiraSandbox"]

# --- reference data ------------------------------------------------------------------------------

#: Known projects: key → (name, projectTypeKey, issue types in screen order).
PROJECTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "SD": ("IT Service Desk", "service_desk", ("Incident", "Service Request", "Problem", "Change")),
    "APP": ("Business Applications", "software", ("Story", "Task", "Bug", "Epic")),
    "PMO": ("Project Office", "business", ("Epic", "Idea", "Task")),
}
PRIORITIES: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest")
_DONE_STATUSES = {"done", "resolved", "closed", "canceled", "cancelled", "declined", "completed"}
_NEW_STATUSES = {"open", "to do", "backlog", "new", "waiting for support", "reopened"}
_CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
MOMENT_OPTIONS: tuple[str, ...] = ("operation", "evolution", "innovation")

_SELECT = "com.atlassian.jira.plugin.system.customfieldtypes:select"
_FLOAT = "com.atlassian.jira.plugin.system.customfieldtypes:float"
_TEXTAREA = "com.atlassian.jira.plugin.system.customfieldtypes:textarea"

#: Custom fields: (logical key, name, schema type, custom type, projects whose screens show it
#: as editable; None = every project, () = read-only).
_CUSTOM_FIELDS: tuple[tuple[str, str, str, str, tuple[str, ...] | None], ...] = (
    ("moment", "Relationship moment", "option", _SELECT, None),
    ("score", "Experience score", "number", _FLOAT, None),
    ("signals", "Experience signals", "string", _TEXTAREA, None),
    ("business_area", "Business area", "option", _SELECT, ("APP", "PMO")),
    ("organizations", "Organizations", "array", "com.atlassian.servicedesk:sd-customer-organizations", ("SD",)),
    ("participants", "Request participants", "array", "com.atlassian.servicedesk:sd-request-participants", ("SD",)),
    ("request_type", "Request Type", "sd-customerrequesttype", "com.atlassian.servicedesk:vp-origin", ()),
    ("satisfaction", "Satisfaction", "sd-feedback", "com.atlassian.servicedesk:sd-request-feedback", ()),
    ("sla_resolution", "Time to resolution", "sd-servicelevelagreement", "com.atlassian.servicedesk:sd-sla-field", ()),
    ("team", "Team", "team", "com.atlassian.jira.plugin.system.customfieldtypes:atlassian-team", ()),
)
_WRITEBACK_KEYS = ("moment", "score", "signals")

#: System fields: id → (name, schema, navigable, editable on every screen).
_SYSTEM_FIELDS: dict[str, tuple[str, dict[str, Any], bool, bool]] = {
    "summary": ("Summary", {"type": "string", "system": "summary"}, True, True),
    "description": ("Description", {"type": "string", "system": "description"}, True, True),
    "issuetype": ("Issue Type", {"type": "issuetype", "system": "issuetype"}, True, False),
    "project": ("Project", {"type": "project", "system": "project"}, True, False),
    "status": ("Status", {"type": "status", "system": "status"}, True, False),
    "priority": ("Priority", {"type": "priority", "system": "priority"}, True, True),
    "reporter": ("Reporter", {"type": "user", "system": "reporter"}, True, False),
    "assignee": ("Assignee", {"type": "user", "system": "assignee"}, True, True),
    "creator": ("Creator", {"type": "user", "system": "creator"}, True, False),
    "created": ("Created", {"type": "datetime", "system": "created"}, True, False),
    "updated": ("Updated", {"type": "datetime", "system": "updated"}, True, False),
    "resolutiondate": ("Resolved", {"type": "datetime", "system": "resolutiondate"}, True, False),
    "resolution": ("Resolution", {"type": "resolution", "system": "resolution"}, True, False),
    "labels": ("Labels", {"type": "array", "items": "string", "system": "labels"}, True, True),
    "components": ("Components", {"type": "array", "items": "component", "system": "components"}, True, True),
    "comment": ("Comment", {"type": "comments-page", "system": "comment"}, False, False),
}
_SYSTEM_CLAUSES: dict[str, tuple[str, ...]] = {
    "issuetype": ("issuetype", "type"), "created": ("created", "createdDate"),
    "updated": ("updated", "updatedDate"), "resolutiondate": ("resolved", "resolutiondate"),
    "comment": ("comment",), "labels": ("labels",),
}

#: Fields the sandbox can actually store on PUT (anything else on a screen is refused).
_SETTABLE = {"summary", "description", "labels"}

_CLOUD_INLINE = 20  # comments and histories inlined per issue by Cloud search
_DC_INLINE_HISTORIES = 100
_NOT_ON_SCREEN = "Field '{0}' cannot be set. It is not on the appropriate screen, or unknown."
_NOTIFY_403 = (
    "To discard the user notification either admin or project admin permissions are required."
)
_LEGACY_SEARCH_410 = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
_UNBOUNDED = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)
_BAD_DATE = (
    "Date value '{0}' for field '{1}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
    "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
)
_NO_SUCH_FIELD = "Field '{0}' does not exist or you do not have permission to view it."
#: Cloud's answer to a field or screen administration call by a user without "Administer Jira".
_ADMIN_403 = "You are not authorized to perform this action. Administrator privileges are required."
#: Custom field type → (writeback slot it fills in the sandbox, schema type, searchers allowed).
_CREATABLE = {
    _SELECT: ("moment", "option", {"com.atlassian.jira.plugin.system.customfieldtypes:multiselectsearcher"}),
    _FLOAT: ("score", "number", {"com.atlassian.jira.plugin.system.customfieldtypes:exactnumber",
                                 "com.atlassian.jira.plugin.system.customfieldtypes:numberrange"}),
    _TEXTAREA: ("signals", "string", {"com.atlassian.jira.plugin.system.customfieldtypes:textsearcher"}),
}
_BIG = sys.maxsize // 4  # sort value for an empty date (after every real one)


def _int(value: Any, default: int) -> int:
    """A numeric parameter; a bad one is the client's 400, not the sandbox's 500."""
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _BadRequest([f"'{value}' is not a valid number."]) from None


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


# --- in-memory records -------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _User:
    user: User
    key: str  # Data Center user key, e.g. JIRAUSER10001
    account_id: str
    tz: str
    groups: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Comment:
    id: int
    author: _User
    created_ms: int
    text: str
    internal: bool
    adf: dict[str, Any] | None = None  # cached ADF rendering of ``text``


@dataclass(slots=True, eq=False)
class _History:
    id: int
    author: _User
    created_ms: int
    items: list[dict[str, Any]]  # already in the instance's flavour (ids vs account ids)


@dataclass(slots=True, eq=False)
class _Issue:
    item: WorldItem
    id: int
    key: str
    project: str
    num: int
    proj_rank: int
    issuetype: str
    created_ms: int
    updated_ms: int
    resolved_ms: int | None
    status: str
    priority: str
    reporter: _User | None
    assignee: _User | None
    team: str
    labels: list[str]
    comments: list[_Comment]
    histories: list[_History]
    values: dict[str, Any]  # writeback values by logical key (moment str, score float, signals str)
    participants: list[_User]
    description_adf: dict[str, Any] | None = None

    @property
    def order_key(self) -> tuple[int, int]:
        return (self.updated_ms, self.id)


@dataclass
class _JiraFaults(Faults):
    """The shared faults plus a bare 503 (``POST /_sandbox/faults`` sets any of them)."""

    unavailable_rate: float = 0.0


def text_to_adf(text: str) -> dict[str, Any]:
    """Plain text as ADF the way Jira's e-mail handler and editor produce it: one paragraph per
    blank-line-separated block, hard breaks for single newlines, ``>`` lines as a blockquote."""
    if text and "\n" not in text and not text.lstrip().startswith((">", "- ", "* ")):
        # Most texts are one line: skip the block analysis.
        return {"type": "doc", "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}
    content: list[dict[str, Any]] = []
    for block in re.split(r"\n\s*\n", text or ""):
        if not block.strip():
            continue
        lines = block.split("\n")
        if all(line.lstrip().startswith(">") for line in lines):
            quoted = [line.lstrip()[1:].lstrip() for line in lines]
            content.append({"type": "blockquote", "content": [_paragraph(quoted)]})
        elif all(line.lstrip().startswith(("- ", "* ")) for line in lines):
            content.append({
                "type": "bulletList",
                "content": [
                    {"type": "listItem", "content": [_paragraph([line.lstrip()[2:]])]}
                    for line in lines
                ],
            })
        else:
            content.append(_paragraph(lines))
    return {"type": "doc", "version": 1, "content": content}


def _paragraph(lines: list[str]) -> dict[str, Any]:
    inline: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if index:
            inline.append({"type": "hardBreak"})
        if line:
            inline.append({"type": "text", "text": line})
    return {"type": "paragraph", "content": inline}


def adf_plain_text(doc: Any) -> str:
    """Just the text of an ADF document, for storing a v3 write (the sandbox keeps text)."""
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return ""
    parts: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        kind = node.get("type")
        if kind == "text":
            parts.append(str(node.get("text", "")))
        elif kind == "hardBreak":
            parts.append("\n")
        for child in node.get("content") or []:
            if isinstance(child, dict):
                walk(child)
        if kind in ("paragraph", "heading", "listItem") and parts and parts[-1] != "\n\n":
            parts.append("\n\n")

    walk(doc)
    return "".join(parts).strip()


class _BadRequest(Exception):
    """A 400 with Jira's error body."""

    def __init__(self, messages: list[str], errors: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages
        self.errors = errors or {}


# --- the app -----------------------------------------------------------------------------------


class JiraSandbox(SandboxApp):
    """Jira Cloud (API v2 and v3) or Data Center (API v2) with JSM, serving the world's Jira items.

    Options (all off by default):
      * ``fields_missing_from_screen`` — field names left off edit screens: ``"Experience score"``
        (every project) or ``"SD:Experience score"`` (one project).
      * ``not_admin`` — the integration user is no admin: ``notifyUsers=false`` answers 403, and
        so do the field and screen administration endpoints.
      * ``missing_fields`` — the three writeback custom fields do not exist at all (and so are
        on no screen) until created through ``POST /field`` and added to the screens.
      * ``same_minute`` — that many issues get an ``updated`` inside one minute (groups of them
        on the very same second), for keyset paging tests.
      * ``satisfaction_field`` (default True) — JSM's "Satisfaction" field is present; without
        it the CSAT rating is only readable from the feedback endpoint.
      * ``moment_options`` — the options of the Relationship moment select list.
      * ``user_timezone`` — the integration user's zone (Cloud default America/Bogota, UTC−5).
      * ``clock`` — callable returning "now" (aware datetime), for writes.
      * ``bulk_edit_denied`` — the user lacks the global "Make bulk changes" permission: the
        Cloud bulk edit answers 403.
      * ``bulk_task_polls`` (default 1) — how many polls of ``/bulk/queue/{taskId}`` answer
        RUNNING before the task is COMPLETE.
    Faults beyond the shared ones (``POST /_sandbox/faults``): ``unavailable_rate`` — the
    probability of a bare 503 "Service Unavailable" (no ``Retry-After``), as a Jira node behind
    its load balancer answers while it restarts.
    Unknown options (meant for the other platform, e.g. ``acl_hidden_rate``) are ignored.
    """

    platform = "jira"

    def __init__(
        self,
        world: World,
        users: dict[str, str],
        seed: int = 7,
        flavor: str = "cloud",
        *,
        fields_missing_from_screen: Iterable[str] | None = None,
        not_admin: bool = False,
        missing_fields: bool = False,
        same_minute: int = 0,
        satisfaction_field: bool = True,
        moment_options: Iterable[str] = MOMENT_OPTIONS,
        user_timezone: str | None = None,
        clock: Callable[[], datetime] | None = None,
        bulk_edit_denied: bool = False,
        bulk_task_polls: int = 1,
        **_ignored: Any,
    ) -> None:
        super().__init__(users, seed=seed)
        self.faults = _JiraFaults()
        self.bulk_edit_denied = bulk_edit_denied
        self.bulk_task_polls = max(0, int(bulk_task_polls))
        self._bulk_tasks: dict[str, dict[str, Any]] = {}
        self._next_task = 10600
        self._transitions: dict[str, list[dict[str, Any]]] = {}
        if flavor not in ("cloud", "datacenter"):
            raise ValueError("flavor must be 'cloud' or 'datacenter'")
        self.flavor = flavor
        self.cloud = flavor == "cloud"
        self.world = world
        self.not_admin = not_admin
        self.clock = clock or (lambda: datetime.now(UTC))
        self._version = 0  # bumped on every change; keys the search cache
        self._search_cache: OrderedDict[tuple[Any, ...], tuple[list[_Issue], list[tuple[int, ...]]]] = OrderedDict()
        self._integration_tz = user_timezone or ("America/Bogota" if self.cloud else "America/Los_Angeles")

        self._build_fields(seed, missing_fields, satisfaction_field, list(moment_options))
        self._build_users(world)
        self._build_projects(world)
        self._screens = self._build_screens(fields_missing_from_screen or [])
        # Building 100k issues allocates millions of small objects that all stay alive; the
        # cyclic GC would rescan them again and again (two thirds of the build time).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._build_issues(world)
        finally:
            if was_enabled:
                gc.enable()
        if same_minute:
            self._apply_same_minute(same_minute)
        self.url_map = Map([
            Rule("/rest/api/<ver>/serverInfo", endpoint="server_info", methods=["GET"]),
            Rule("/rest/api/<ver>/myself", endpoint="myself", methods=["GET"]),
            Rule("/rest/api/<ver>/field", endpoint="list_fields", methods=["GET"]),
            Rule("/rest/api/<ver>/field/<field_id>/context", endpoint="field_contexts", methods=["GET"]),
            Rule("/rest/api/<ver>/field", endpoint="create_field", methods=["POST"]),
            Rule("/rest/api/<ver>/field/<field_id>/context/<ctx>/option", endpoint="field_options", methods=["GET"]),
            Rule("/rest/api/<ver>/field/<field_id>/context/<ctx>/option", endpoint="create_options", methods=["POST"]),
            Rule("/rest/api/<ver>/screens", endpoint="list_screens", methods=["GET"]),
            Rule("/rest/api/<ver>/screens/<int:screen_id>/tabs", endpoint="screen_tabs", methods=["GET"]),
            Rule("/rest/api/<ver>/screens/<int:screen_id>/tabs/<int:tab_id>/fields", endpoint="tab_fields", methods=["GET"]),
            Rule("/rest/api/<ver>/screens/<int:screen_id>/tabs/<int:tab_id>/fields", endpoint="add_tab_field", methods=["POST"]),
            Rule("/rest/api/<ver>/issuetypescreenscheme/project", endpoint="itss_projects", methods=["GET"]),
            Rule("/rest/api/<ver>/issuetypescreenscheme/mapping", endpoint="itss_mappings", methods=["GET"]),
            Rule("/rest/api/<ver>/screenscheme", endpoint="screen_schemes", methods=["GET"]),
            Rule("/rest/api/<ver>/project", endpoint="list_projects", methods=["GET"]),
            Rule("/rest/api/<ver>/project/<key>", endpoint="get_project", methods=["GET"]),
            Rule("/rest/api/<ver>/status", endpoint="list_statuses", methods=["GET"]),
            Rule("/rest/api/<ver>/priority", endpoint="list_priorities", methods=["GET"]),
            Rule("/rest/api/<ver>/group/member", endpoint="group_members", methods=["GET"]),
            Rule("/rest/api/<ver>/user", endpoint="get_user", methods=["GET"]),
            Rule("/rest/api/<ver>/search", endpoint="search_legacy", methods=["GET", "POST"]),
            Rule("/rest/api/<ver>/search/jql", endpoint="search_jql", methods=["GET", "POST"]),
            Rule("/rest/api/<ver>/issue/<key>", endpoint="get_issue", methods=["GET"]),
            Rule("/rest/api/<ver>/issue/<key>", endpoint="edit_issue", methods=["PUT"]),
            Rule("/rest/api/<ver>/issue/<key>", endpoint="delete_issue", methods=["DELETE"]),
            Rule("/rest/api/<ver>/issue/<key>/comment", endpoint="get_comments", methods=["GET"]),
            Rule("/rest/api/<ver>/issue/<key>/comment", endpoint="add_comment", methods=["POST"]),
            Rule("/rest/api/<ver>/issue/<key>/attachments", endpoint="add_attachments", methods=["POST"]),
            Rule("/rest/api/<ver>/attachment/<att_id>", endpoint="get_attachment", methods=["GET"]),
            Rule("/rest/api/<ver>/attachment/<att_id>", endpoint="delete_attachment", methods=["DELETE"]),
            Rule("/secure/attachment/<att_id>/<filename>", endpoint="attachment_content", methods=["GET"]),
            Rule("/rest/api/<ver>/issue/<key>/changelog", endpoint="get_changelog", methods=["GET"]),
            Rule("/rest/api/<ver>/issue/<key>/editmeta", endpoint="edit_meta", methods=["GET"]),
            Rule("/rest/api/<ver>/changelog/bulkfetch", endpoint="bulk_changelog", methods=["POST"]),
            Rule("/rest/api/<ver>/bulk/issues/fields", endpoint="bulk_edit", methods=["POST"]),
            Rule("/rest/api/<ver>/bulk/queue/<task_id>", endpoint="bulk_progress", methods=["GET"]),
            Rule("/rest/servicedeskapi/request/<key>/feedback", endpoint="sd_feedback", methods=["GET"]),
            Rule("/rest/servicedeskapi/request/<key>/participant", endpoint="sd_participants", methods=["GET"]),
            Rule("/rest/servicedeskapi/organization", endpoint="sd_organizations", methods=["GET"]),
        ], strict_slashes=False)

    # --- construction ----------------------------------------------------------------------------
    def _build_fields(
        self, seed: int, missing: bool, satisfaction: bool, moment_options: list[str]
    ) -> None:
        """Custom field ids differ per instance (derived from the seed), like real sites."""
        rng = random.Random(seed * 7919 + 17)
        next_id = 10000 + rng.randrange(0, 20000)
        self.field_ids: dict[str, str] = {}  # logical key → customfield_NNNNN
        self.fields: dict[str, dict[str, Any]] = {}  # field id → /field entry
        for fid, (name, schema, navigable, _) in _SYSTEM_FIELDS.items():
            self.fields[fid] = {
                "id": fid, "key": fid, "name": name, "custom": False, "orderable": True,
                "navigable": navigable, "searchable": True,
                "clauseNames": list(_SYSTEM_CLAUSES.get(fid, (fid,))), "schema": schema,
            }
        for key, name, stype, ctype, _ in _CUSTOM_FIELDS:
            next_id += rng.randint(1, 37)
            if missing and key in _WRITEBACK_KEYS:
                continue
            if key == "satisfaction" and not satisfaction:
                continue
            fid = f"customfield_{next_id}"
            self.field_ids[key] = fid
            schema: dict[str, Any] = {"type": stype, "custom": ctype, "customId": next_id}
            if stype == "array":
                schema["items"] = "sd-customerorganization" if key == "organizations" else "user"
            self.fields[fid] = {
                "id": fid, "key": fid, "name": name, "untranslatedName": name, "custom": True,
                "orderable": True, "navigable": True, "searchable": True,
                "clauseNames": [f"cf[{next_id}]", name], "schema": schema,
            }
        self.field_by_key = {v: k for k, v in self.field_ids.items()}  # field id → logical key
        option_base = 10100 + rng.randrange(0, 500)
        self.moment_options = [
            {"value": v, "id": str(option_base + i), "disabled": False}
            for i, v in enumerate(moment_options)
        ]
        if missing:
            self.moment_options = []  # a created select list starts without options
        self._next_option = option_base + 1000
        self._next_field = next_id + 100
        self.context_ids = {fid: str(10300 + i) for i, fid in enumerate(self.field_ids.values())}
        self._next_context = 10300 + 100

    def _build_users(self, world: World) -> None:
        self.user_by_id: dict[str, _User] = {}
        self.user_by_login: dict[str, _User] = {}
        self.user_by_name: dict[str, _User] = {}
        self.user_by_account: dict[str, _User] = {}
        self._login_alias: dict[str, str] = {}  # lower-cased e-mail or login → login
        people = list(world.users)
        known = {u.username for u in people}
        for login, display in ((INTEGRATION_USER, "Momentos Integration"), (HUMAN_USER, "IT Agent")):
            if login not in known:
                digest = hashlib.sha1(login.encode()).hexdigest()
                people.append(User(id=digest[:32], username=login, name=display,
                                   email=f"{login}@example.com", is_agent=True))
        for index, user in enumerate(people):
            account = user.account_id or hashlib.sha1(user.id.encode()).hexdigest()[:24]
            tz = "Europe/Madrid" if user.language == "es" else "America/New_York"
            if user.username == INTEGRATION_USER:
                tz = self._integration_tz
            record = _User(user, f"JIRAUSER{10000 + index}", account, tz)
            if user.is_agent:
                record.groups = ["it-agents", "jira-servicedesk-users"]
            if user.username in (INTEGRATION_USER, HUMAN_USER):
                record.groups = ["jira-administrators", *record.groups]
            self.user_by_id[user.id] = record
            self.user_by_login[user.username] = record
            self.user_by_name.setdefault(user.name, record)
            self.user_by_account[account] = record
            self._login_alias[user.username.lower()] = user.username
            if user.email:
                self._login_alias[user.email.lower()] = user.username
        self.groups: dict[str, list[_User]] = {}
        for record in self.user_by_id.values():
            for group in record.groups:
                self.groups.setdefault(group, []).append(record)
        self.orgs = {o.id: o for o in world.orgs}
        self.org_ids = {o.id: str(i + 1) for i, o in enumerate(world.orgs)}
        self.group_names = {g.id: g.name for g in world.groups}
        self.group_ids = {g.name: g.id for g in world.groups}
        self.area_options = {
            o.name: str(11000 + i) for i, o in enumerate(sorted(world.orgs, key=lambda o: o.name))
        }

    def _build_projects(self, world: World) -> None:
        keys = sorted({i.container for i in world.items if i.platform == "jira"} | set(PROJECTS))
        self.projects: dict[str, dict[str, Any]] = {}
        types: dict[str, set[str]] = {}
        for item in world.items:
            if item.platform == "jira":
                types.setdefault(item.container, set()).add(item.kind)
        statuses = {"Open", "In Progress", "Done"} | {
            i.state for i in world.items if i.platform == "jira" and i.state
        }
        for item in world.items:
            if item.platform == "jira":
                statuses.update(h.old or "" for h in item.history if h.field == "state")
                statuses.update(h.new or "" for h in item.history if h.field == "state")
        statuses.discard("")
        self.status_ids = {name: str(10000 + i) for i, name in enumerate(sorted(statuses))}
        all_types: set[str] = set()
        for index, key in enumerate(keys):
            name, ptype, issue_types = PROJECTS.get(key, (key, "software", ()))
            ordered = list(issue_types) + sorted(types.get(key, set()) - set(issue_types))
            all_types.update(ordered)
            self.projects[key] = {
                "id": str(10000 + index), "key": key, "name": name, "projectTypeKey": ptype,
                "rank": index, "issue_types": ordered,
            }
        self.issuetype_ids = {name: str(10001 + i) for i, name in enumerate(sorted(all_types))}

    def _build_screens(self, missing: Iterable[str]) -> dict[str, set[str]]:
        by_name = {f["name"].lower(): fid for fid, f in self.fields.items()}
        screens: dict[str, set[str]] = {}
        for key in self.projects:
            fields = {fid for fid, spec in _SYSTEM_FIELDS.items() if spec[3]}
            for logical, _, _, _, projects in _CUSTOM_FIELDS:
                fid = self.field_ids.get(logical)
                if fid and (projects is None or key in projects):
                    fields.add(fid)
            screens[key] = fields
        for entry in missing:
            project, _, name = entry.rpartition(":")
            fid = by_name.get(name.strip().lower())
            if fid is None:
                continue
            for key in [project] if project else list(screens):
                screens.get(key, set()).discard(fid)
        # How each (classic) project reaches its screen: issue type screen scheme → screen
        # scheme (default for every issue type) → one screen with one tab. The screen's field
        # set is the very set above, so a field added through the API is editable at once.
        self.screen_defs: dict[int, dict[str, Any]] = {}
        self._screen_scheme_defs: dict[int, dict[str, Any]] = {}
        self.itss: dict[int, dict[str, Any]] = {}
        for index, key in enumerate(self.projects):
            screen_id, tab_id, scheme_id, itss_id = 10000 + index, 10100 + index, 10200 + index, 10300 + index
            self.screen_defs[screen_id] = {
                "name": f"{key}: Default screen", "description": f"The default screen of project {key}",
                "tab": tab_id, "tab_name": "Field Tab", "project": key,
            }
            self._screen_scheme_defs[scheme_id] = {
                "id": scheme_id, "name": f"{key}: Screen Scheme", "description": "",
                "screens": {"default": screen_id},
            }
            self.itss[itss_id] = {
                "id": str(itss_id), "name": f"{key}: Issue Type Screen Scheme", "description": "",
                "project": self.projects[key]["id"], "mappings": [("default", str(scheme_id))],
            }
        return screens

    def _build_issues(self, world: World) -> None:
        self.issues: dict[int, _Issue] = {}
        self.by_key: dict[str, _Issue] = {}
        history_id = 100000
        for item in world.items:
            if item.platform != "jira":
                continue
            project, _, num = item.number.rpartition("-")
            project = project or item.container
            reporter = self.user_by_id.get(item.requester_id)
            comments = [
                _Comment(int(c.id) if c.id.isdigit() else 0, self._user_or_integration(c.author_id),
                         _ms(c.created), c.text, c.internal)
                for c in sorted(item.comments, key=lambda c: c.created)
            ]
            histories: list[_History] = []
            for h in sorted(item.history, key=lambda h: h.at):
                entry = self._history_item(h.field, h.old, h.new)
                if entry is None:
                    continue
                history_id += 1
                histories.append(_History(history_id, self._user_or_integration(h.by_id), _ms(h.at), [entry]))
            values: dict[str, Any] = {}
            for logical in _WRITEBACK_KEYS:
                raw = item.fields.get(logical)
                if raw not in (None, ""):
                    values[logical] = float(raw) if logical == "score" else str(raw)
            issue = _Issue(
                item=item, id=int(item.id), key=item.number, project=project,
                num=int(num) if num.isdigit() else 0,
                proj_rank=self.projects[project]["rank"] if project in self.projects else 0,
                issuetype=item.kind, created_ms=_ms(item.created), updated_ms=_ms(item.updated),
                resolved_ms=_ms(item.resolved) if item.resolved else None,
                status=item.state or "Open", priority=item.priority or "Medium",
                reporter=reporter, assignee=self.user_by_id.get(item.assignee_id),
                team=self.group_names.get(item.group_id, ""), labels=list(item.labels),
                comments=comments, histories=histories, values=values,
                participants=[self.user_by_id[p] for p in item.participants if p in self.user_by_id],
            )
            self.issues[issue.id] = issue
            self.by_key[issue.key] = issue
        self._next_history = history_id + 1
        self._next_comment = max(
            [c.id for i in self.issues.values() for c in i.comments] + [90000]
        ) + 1
        self.order: list[_Issue] = sorted(self.issues.values(), key=lambda i: i.order_key)

    def _user_or_integration(self, user_id: str) -> _User:
        return self.user_by_id.get(user_id) or self.user_by_login[INTEGRATION_USER]

    def _history_item(self, field_name: str, old: str | None, new: str | None) -> dict[str, Any] | None:
        """A world history change as a changelog item of this flavour."""
        if field_name == "assigned_to":
            def ref(name: str | None) -> str | None:
                user = self.user_by_name.get(name or "") or self.user_by_login.get(name or "")
                if user is None:
                    return None
                return user.account_id if self.cloud else user.user.username

            entry = {"field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
                     "from": ref(old), "fromString": old, "to": ref(new), "toString": new}
            if self.cloud:
                entry["tmpFromAccountId"] = entry["from"]
                entry["tmpToAccountId"] = entry["to"]
            return entry
        if field_name == "state":
            return {"field": "status", "fieldtype": "jira", "fieldId": "status",
                    "from": self.status_ids.get(old or ""), "fromString": old,
                    "to": self.status_ids.get(new or ""), "toString": new}
        if field_name == "priority":
            def pid(name: str | None) -> str | None:
                return str(PRIORITIES.index(name) + 1) if name in PRIORITIES else None

            return {"field": "priority", "fieldtype": "jira", "fieldId": "priority",
                    "from": pid(old), "fromString": old, "to": pid(new), "toString": new}
        if field_name == "assignment_group" and "team" in self.field_ids:
            ids = self.group_ids
            return {"field": "Team", "fieldtype": "custom", "fieldId": self.field_ids["team"],
                    "from": ids.get(old or ""), "fromString": old,
                    "to": ids.get(new or ""), "toString": new}
        return None

    def _apply_same_minute(self, count: int) -> None:
        """Move ``count`` consecutive issues into one ``updated`` minute, in same-second groups."""
        count = min(count, len(self.order))
        if not count:
            return
        end = min(len(self.order) - 1, len(self.order) // 2 + count // 2)
        block = self.order[end - count + 1 : end + 1]
        minute_ms = block[-1].updated_ms - block[-1].updated_ms % 60000
        for index, issue in enumerate(block):
            issue.updated_ms = max(minute_ms + (index % 20) * 3000, issue.created_ms)
            issue.item.updated = datetime.fromtimestamp(issue.updated_ms / 1000, tz=UTC)
        self.order.sort(key=lambda i: i.order_key)

    # --- HTTP plumbing ---------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        """Basic with login or e-mail (Cloud API tokens go with the e-mail); Bearer PATs on DC."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                login, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            login = self._login_alias.get(login.lower(), login)
            return login if password and self.users.get(login) == password else None
        if header.startswith("Bearer ") and not self.cloud:
            token = header[7:]
            for login, password in self.users.items():
                if password and password == token:
                    return login
        return None

    def injected_fault(self, request: Request) -> Response | None:
        """The shared faults, Jira's rate-limit headers on a 429, and the bare 503."""
        response = super().injected_fault(request)
        if response is not None and response.status_code == 429:
            # Jira Cloud names which limit was hit; a burst limit is per endpoint and method.
            response.headers["RateLimit-Reason"] = "jira-burst-based"
            response.headers["X-RateLimit-Reset"] = (
                self.clock() + timedelta(seconds=self.faults.retry_after_s)
            ).strftime("%Y-%m-%dT%H:%MZ")
            return response
        faults = self.faults
        if response is None and isinstance(faults, _JiraFaults) and faults.unavailable_rate > 0:
            with self.lock:
                roll = self._fault_rng.random()
            if roll < faults.unavailable_rate:
                return self.error(503, "Service Unavailable")
        return response

    def unauthorized(self) -> Response:
        if self.cloud:
            response = self.error(401, "Client must be authenticated to access this resource.")
        else:
            response = self.error(
                401, "You are not authenticated. Authentication required to perform this operation."
            )
            response.headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
        response.headers["WWW-Authenticate"] = 'Basic realm="protected-area"'
        return response

    def error(self, status: int, message: str, detail: str = "") -> Response:
        """Jira's error body."""
        return self.json({"errorMessages": [message] if message else [], "errors": {}}, status=status)

    def dispatch(self, request: Request) -> Response:
        try:
            return super().dispatch(request)
        except _BadRequest as exc:
            return self.json({"errorMessages": exc.messages, "errors": exc.errors}, status=400)

    def _api(self, ver: str) -> str:
        """The API version a path asks for; DC has no v3 (404 like the real server)."""
        if ver == "latest":
            return "2"
        if ver == "2" or (ver == "3" and self.cloud):
            return ver
        raise NotFound(f"No resource at /rest/api/{ver}")

    def _me(self, request: Request) -> _User:
        return self.user_by_login[request.environ["sandbox.user"]]

    def _tz(self, request: Request) -> ZoneInfo:
        return ZoneInfo(self._me(request).tz)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise _BadRequest(["Unexpected request body: a JSON object was expected."])
        return body

    # --- JSON renderers --------------------------------------------------------------------------
    def _user_json(self, user: _User | None, v: str) -> dict[str, Any] | None:
        if user is None:
            return None
        u = user.user
        if self.cloud:
            return {
                "self": f"{self.base_url}/rest/api/{v}/user?accountId={user.account_id}",
                "accountId": user.account_id, "emailAddress": u.email, "displayName": u.name,
                "active": True, "timeZone": user.tz, "accountType": "atlassian",
            }
        return {
            "self": f"{self.base_url}/rest/api/2/user?username={u.username}",
            "name": u.username, "key": user.key, "emailAddress": u.email,
            "displayName": u.name, "active": True, "timeZone": user.tz,
        }

    @staticmethod
    def _ts(ms: int | None, tz: ZoneInfo) -> str | None:
        """Jira's timestamp format, ``2026-01-02T03:04:05.000-0500`` (hot: one f-string)."""
        if ms is None:
            return None
        m = datetime.fromtimestamp(ms / 1000, tz=tz)
        offset = int(m.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
        sign = "-" if offset < 0 else "+"
        offset = abs(offset)
        return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
                f".{ms % 1000:03d}{sign}{offset // 60:02d}{offset % 60:02d}")

    def _status_json(self, name: str) -> dict[str, Any]:
        category = _CATEGORIES[self._category(name)]
        return {
            "self": f"{self.base_url}/rest/api/2/status/{self.status_ids.get(name, '1')}",
            "id": self.status_ids.get(name, "1"), "name": name,
            "statusCategory": {"self": f"{self.base_url}/rest/api/2/statuscategory/{category['id']}", **category},
        }

    @staticmethod
    def _category(status: str) -> str:
        lowered = status.lower()
        if lowered in _DONE_STATUSES:
            return "done"
        if lowered in _NEW_STATUSES:
            return "new"
        return "indeterminate"

    def _comment_json(self, issue: _Issue, comment: _Comment, v: str, tz: ZoneInfo) -> dict[str, Any]:
        if v == "3":
            if comment.adf is None:
                comment.adf = text_to_adf(comment.text)
            body: Any = comment.adf
        else:
            body = comment.text
        author = self._user_json(comment.author, v)
        created = self._ts(comment.created_ms, tz)
        out: dict[str, Any] = {
            "self": f"{self.base_url}/rest/api/{v}/issue/{issue.id}/comment/{comment.id}",
            "id": str(comment.id), "author": author, "body": body, "updateAuthor": author,
            "created": created, "updated": created,
        }
        jsm = self.projects.get(issue.project, {}).get("projectTypeKey") == "service_desk"
        if jsm:
            out["jsdPublic"] = not comment.internal
        if comment.internal and not (jsm and self.cloud):
            # Outside JSM (and on DC's JSM) a private note is a comment restricted to a role.
            role = "Service Desk Team" if jsm else "Developers"
            out["visibility"] = {"type": "role", "value": role, "identifier": role}
        return out

    def _history_json(self, history: _History, v: str, tz: ZoneInfo, field_ids: set[str] | None = None) -> dict[str, Any] | None:
        items = history.items
        if field_ids is not None:
            items = [i for i in items if i.get("fieldId") in field_ids]
            if not items:
                return None
        return {"id": str(history.id), "author": self._user_json(history.author, v),
                "created": self._ts(history.created_ms, tz), "items": items}

    def _changelog_json(self, issue: _Issue, v: str, tz: ZoneInfo, limit: int | None) -> dict[str, Any]:
        histories = issue.histories
        total = len(histories)
        if limit is not None and total > limit:
            if self.cloud:
                # Cloud: "a list of recent updates to an issue, sorted by date, starting from the
                # most recent" (expand=changelog in the search reference).
                chosen = list(reversed(histories[-limit:]))
            else:
                chosen = histories[:limit]
        else:
            chosen = list(reversed(histories)) if self.cloud else histories
        rendered = [self._history_json(h, v, tz) for h in chosen]
        return {"startAt": 0, "maxResults": len(rendered), "total": total, "histories": rendered}

    def _customer(self, issue: _Issue) -> str:
        # The business area is the company, as on the ServiceNow side (its `company` field), so
        # the demo's customer 360 adds both platforms up per customer.
        org = self.orgs.get(issue.item.company_id) or self.orgs.get(issue.item.department_id)
        return org.name if org else ""

    def _field_value(self, issue: _Issue, fid: str, v: str, tz: ZoneInfo, search: bool) -> Any:
        base = self.base_url
        item = issue.item
        project = self.projects.get(issue.project, {})
        jsm = project.get("projectTypeKey") == "service_desk"
        if fid == "summary":
            return item.title
        if fid == "description":
            if not item.description:
                return None
            if v == "3":
                if issue.description_adf is None:
                    issue.description_adf = text_to_adf(item.description)
                return issue.description_adf
            return item.description
        if fid == "issuetype":
            tid = self.issuetype_ids.get(issue.issuetype, "10000")
            return {"self": f"{base}/rest/api/{v}/issuetype/{tid}", "id": tid, "name": issue.issuetype,
                    "subtask": False, "hierarchyLevel": 1 if issue.issuetype == "Epic" else 0}
        if fid == "project":
            return {"self": f"{base}/rest/api/{v}/project/{project.get('id')}", "id": project.get("id"),
                    "key": issue.project, "name": project.get("name"),
                    "projectTypeKey": project.get("projectTypeKey")}
        if fid == "status":
            return self._status_json(issue.status)
        if fid == "priority":
            pid = str(PRIORITIES.index(issue.priority) + 1) if issue.priority in PRIORITIES else "3"
            return {"self": f"{base}/rest/api/{v}/priority/{pid}", "id": pid, "name": issue.priority}
        if fid in ("reporter", "creator"):
            return self._user_json(issue.reporter, v)
        if fid == "assignee":
            return self._user_json(issue.assignee, v)
        if fid == "created":
            return self._ts(issue.created_ms, tz)
        if fid == "updated":
            return self._ts(issue.updated_ms, tz)
        if fid == "resolutiondate":
            return self._ts(issue.resolved_ms, tz)
        if fid == "resolution":
            if issue.resolved_ms is None:
                return None
            return {"self": f"{base}/rest/api/{v}/resolution/10000", "id": "10000", "name": "Done"}
        if fid == "labels":
            return list(issue.labels)
        if fid == "components":
            if not item.service:
                return []
            cid = str(10000 + zlib.crc32(item.service.encode()) % 90000)
            return [{"self": f"{base}/rest/api/{v}/component/{cid}", "id": cid, "name": item.service}]
        if fid == "comment":
            comments = issue.comments
            shown = comments[:_CLOUD_INLINE] if (self.cloud and search) else comments
            return {
                "comments": [self._comment_json(issue, c, v, tz) for c in shown],
                "self": f"{base}/rest/api/{v}/issue/{issue.id}/comment",
                "maxResults": len(shown), "total": len(comments), "startAt": 0,
            }
        logical = self.field_by_key.get(fid)
        if logical == "moment":
            value = issue.values.get("moment")
            option = next((o for o in self.moment_options if o["value"] == value), None)
            if value is None:
                return None
            return {"self": f"{base}/rest/api/{v}/customFieldOption/{option['id'] if option else 0}",
                    "value": value, "id": option["id"] if option else "0"}
        if logical == "score":
            return issue.values.get("score")
        if logical == "signals":
            text = issue.values.get("signals")
            if text is None:
                return None
            return text_to_adf(text) if v == "3" else text
        if logical == "business_area":
            if jsm:
                return None
            name = self._customer(issue)
            return {"self": f"{base}/rest/api/{v}/customFieldOption/{self.area_options.get(name, '0')}",
                    "value": name, "id": self.area_options.get(name, "0")} if name else None
        if logical == "organizations":
            if not jsm:
                return None
            org = self.orgs.get(item.company_id) or self.orgs.get(item.department_id)
            if org is None:
                return []
            return [{"id": self.org_ids[org.id], "name": org.name,
                     "_links": {"self": f"{base}/rest/servicedeskapi/organization/{self.org_ids[org.id]}"}}]
        if logical == "participants":
            return [self._user_json(u, v) for u in issue.participants] if jsm else None
        if logical == "request_type":
            if not (jsm and item.request_type):
                return None
            rid = str(10 + zlib.crc32(item.request_type.encode()) % 90)
            return {"_links": {"self": f"{base}/rest/servicedeskapi/servicedesk/1/requesttype/{rid}"},
                    "requestType": {"id": rid, "name": item.request_type, "serviceDeskId": "1"},
                    "currentStatus": {"status": issue.status,
                                      "statusCategory": self._category(issue.status).upper()}}
        if logical == "satisfaction":
            if not (jsm and item.survey_score and issue.resolved_ms is not None):
                return None
            return {"self": f"{base}/rest/servicedeskapi/request/{issue.id}/feedback", "rating": item.survey_score}
        if logical == "sla_resolution":
            if not jsm or item.sla_breached is None:
                return None
            cycle = {"breached": bool(item.sla_breached),
                     "goalDuration": {"millis": 86400000, "friendly": "24h"},
                     "startTime": {"iso8601": self._ts(issue.created_ms, tz), "epochMillis": issue.created_ms}}
            sla: dict[str, Any] = {"id": "1", "name": "Time to resolution",
                                   "_links": {"self": f"{base}/rest/servicedeskapi/request/{issue.id}/sla/1"},
                                   "completedCycles": [], "ongoingCycle": None}
            if issue.resolved_ms is not None:
                sla["completedCycles"] = [{**cycle, "stopTime": {"iso8601": self._ts(issue.resolved_ms, tz),
                                                                  "epochMillis": issue.resolved_ms}}]
            else:
                sla["ongoingCycle"] = {**cycle, "paused": False, "withinCalendarHours": True}
            return sla
        if logical == "team":
            if not issue.team:
                return None
            tid = self.group_ids.get(issue.team, "")
            return {"id": tid, "name": issue.team, "title": issue.team, "isVisible": True,
                    "isVerified": False, "isShared": True}
        return None

    def _wanted_fields(self, specs: list[str] | None, default: str) -> list[str]:
        """Resolve a ``fields`` parameter (ids, names, ``*all``, ``*navigable``, ``-x``)."""
        tokens = [t.strip() for spec in (specs or []) for t in spec.split(",") if t.strip()]
        if not tokens:
            tokens = [default]
        by_name = {f["name"].lower(): fid for fid, f in self.fields.items()}
        chosen: list[str] = []
        excluded: set[str] = set()
        for token in tokens:
            if token == "*all":
                chosen.extend(self.fields)
            elif token == "*navigable":
                chosen.extend(fid for fid, f in self.fields.items() if f["navigable"])
            elif token.startswith("-"):
                excluded.add(token[1:])
            elif token in ("id", "key", "*none", ""):
                continue
            elif token in self.fields:
                chosen.append(token)
            elif token.lower() in by_name:
                chosen.append(by_name[token.lower()])
            # Jira ignores fields it does not know.
        seen: set[str] = set()
        out = []
        for fid in chosen:
            if fid not in seen and fid not in excluded:
                seen.add(fid)
                out.append(fid)
        return out

    def _issue_json(
        self, issue: _Issue, fields: list[str], expand: set[str], v: str, tz: ZoneInfo, search: bool
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
            "id": str(issue.id), "self": f"{self.base_url}/rest/api/{v}/issue/{issue.id}", "key": issue.key,
        }
        if fields:
            out["fields"] = {fid: self._field_value(issue, fid, v, tz, search) for fid in fields}
        if "changelog" in expand:
            limit = (_CLOUD_INLINE if search else 100) if self.cloud else _DC_INLINE_HISTORIES
            out["changelog"] = self._changelog_json(issue, v, tz, limit)
        if "transitions" in expand:
            out["transitions"] = self._transitions_json(issue.status)
        return out

    def _transitions_json(self, status: str) -> list[dict[str, Any]]:
        """The workflow's transitions out of ``status`` (a simple open → progress → done loop)."""
        cached = self._transitions.get(status)
        if cached is None:
            targets = (("11", "Reopen", "Open"), ("21", "Start Progress", "In Progress"), ("31", "Done", "Done"))
            cached = [
                {"id": tid, "name": name, "to": self._status_json(target), "hasScreen": False,
                 "isGlobal": True, "isInitial": False, "isAvailable": True, "isConditional": False,
                 "isLooped": False}
                for tid, name, target in targets
                if target != status
            ]
            self._transitions[status] = cached
        return cached

    def prerender(self) -> None:
        """Build the cached ADF of every description and comment now, so that the first client
        of a benchmark does not pay for rendering that later clients get for free."""
        with self.lock:
            for issue in self.issues.values():
                if issue.item.description and issue.description_adf is None:
                    issue.description_adf = text_to_adf(issue.item.description)
                for comment in issue.comments:
                    if comment.adf is None:
                        comment.adf = text_to_adf(comment.text)

    def _find_issue(self, key: str) -> _Issue:
        issue = self.by_key.get(key.upper()) if not key.isdigit() else self.issues.get(int(key))
        if issue is None:
            raise NotFound("Issue does not exist or you do not have permission to see it.")
        return issue

    # --- platform info -----------------------------------------------------------------------------
    def server_info(self, request: Request, ver: str) -> Response:
        self._api(ver)
        now = self.clock().astimezone(UTC)
        if self.cloud:
            info = {"baseUrl": self.base_url, "displayUrl": self.base_url, "version": "1001.0.0-SNAPSHOT",
                    "versionNumbers": [1001, 0, 0], "deploymentType": "Cloud", "buildNumber": 100289,
                    "scmInfo": "sandbox", "serverTitle": "Jira"}
        else:
            info = {"baseUrl": self.base_url, "version": "9.12.15", "versionNumbers": [9, 12, 15],
                    "deploymentType": "Server", "buildNumber": 9120015, "scmInfo": "sandbox",
                    "serverTitle": "Jira"}
        info["serverTime"] = now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        return self.json(info)

    def myself(self, request: Request, ver: str) -> Response:
        v = self._api(ver)
        me = self._me(request)
        body = self._user_json(me, v) or {}
        body["locale"] = "en_US"
        body["groups"] = {"size": len(me.groups), "items": [{"name": g} for g in me.groups]}
        return self.json(body)

    def list_fields(self, request: Request, ver: str) -> Response:
        self._api(ver)
        return self.json(list(self.fields.values()))

    def field_contexts(self, request: Request, ver: str, field_id: str) -> Response:
        self._api(ver)
        if not self.cloud or field_id not in self.context_ids:
            raise NotFound("The custom field was not found.")
        ctx = {"id": self.context_ids[field_id], "name": f"Default Configuration Scheme for {self.fields[field_id]['name']}",
               "isGlobalContext": True, "isAnyIssueType": True}
        return self.json({"maxResults": 50, "startAt": 0, "total": 1, "isLast": True, "values": [ctx]})

    def field_options(self, request: Request, ver: str, field_id: str, ctx: str) -> Response:
        self._api(ver)
        if not self.cloud or self.context_ids.get(field_id) != ctx:
            raise NotFound("The custom field was not found.")
        logical = self.field_by_key.get(field_id)
        if logical == "moment":
            values = list(self.moment_options)
        elif logical == "business_area":
            values = [{"id": oid, "value": name, "disabled": False} for name, oid in self.area_options.items()]
        else:
            return self.json({"errorMessages": ["The custom field doesn't support options."], "errors": {}}, status=400)
        start = _int(request.args.get("startAt"), 0)
        size = min(_int(request.args.get("maxResults"), 100), 100)
        page = values[start : start + size]
        return self.json({"maxResults": size, "startAt": start, "total": len(values),
                          "isLast": start + size >= len(values), "values": page})

    # --- field and screen administration ---------------------------------------------------------
    def _admin_denied(self, request: Request) -> Response | None:
        """403 unless the caller holds "Administer Jira" (the jira-administrators group)."""
        me = self._me(request)
        if self.not_admin or "jira-administrators" not in me.groups:
            return self.json({"errorMessages": [_ADMIN_403], "errors": {}}, status=403)
        return None

    @staticmethod
    def _page_bean(values: list[Any], request: Request, default_size: int = 50) -> dict[str, Any]:
        start = _int(request.args.get("startAt"), 0)
        size = max(1, min(_int(request.args.get("maxResults"), default_size), 100))
        page = values[start : start + size]
        return {"maxResults": size, "startAt": start, "total": len(values),
                "isLast": start + size >= len(values), "values": page}

    @staticmethod
    def _ids(request: Request, name: str) -> list[str]:
        """A repeated id parameter (``id=1&id=2``; a comma list is accepted too)."""
        return [part.strip() for raw in request.args.getlist(name) for part in raw.split(",") if part.strip()]

    def create_field(self, request: Request, ver: str) -> Response:
        """``POST /field``: create a custom field (CustomFieldDefinitionJsonBean); 201 with it."""
        self._api(ver)
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        body = self._body(request)
        name = str(body.get("name") or "").strip()
        ctype = str(body.get("type") or "")
        searcher = body.get("searcherKey")
        errors: dict[str, str] = {}
        if not name:
            errors["name"] = "The custom field name must be specified."
        if ctype not in _CREATABLE:
            errors["type"] = f"The custom field type '{ctype}' is not valid."
        elif searcher is not None and searcher not in _CREATABLE[ctype][2]:
            errors["searcherKey"] = f"The searcher key '{searcher}' is not valid for the custom field type."
        if errors:
            raise _BadRequest([], errors)
        slot, stype, _ = _CREATABLE[ctype]
        with self.lock:
            self._next_field += 1
            number = self._next_field
            fid = f"customfield_{number}"
            entry = {
                "id": fid, "key": fid, "name": name, "untranslatedName": name, "custom": True,
                "orderable": True, "navigable": True, "searchable": True,
                "clauseNames": [f"cf[{number}]", name],
                "schema": {"type": stype, "custom": ctype, "customId": number},
            }
            if body.get("description"):
                entry["description"] = str(body["description"])
            self.fields[fid] = entry
            if slot not in self.field_ids:
                self.field_ids[slot] = fid
                self.field_by_key[fid] = slot
            self.context_ids[fid] = str(self._next_context)  # the global default context
            self._next_context += 1
            self._version += 1
            self._search_cache.clear()
            self.count_write(f"field/{fid}")
        return self.json(entry, status=201)

    def create_options(self, request: Request, ver: str, field_id: str, ctx: str) -> Response:
        """``POST /field/{id}/context/{ctx}/option`` (Cloud): add options to a select list."""
        self._api(ver)
        if not self.cloud or self.context_ids.get(field_id) != ctx:
            raise NotFound("The custom field was not found.")
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        if self.field_by_key.get(field_id) != "moment":
            return self.json({"errorMessages": ["The custom field doesn't support options."], "errors": {}}, status=400)
        options = self._body(request).get("options")
        if not isinstance(options, list) or not options:
            raise _BadRequest(["At least one option must be specified."])
        with self.lock:
            taken = {o["value"].lower() for o in self.moment_options}
            values: list[tuple[str, bool]] = []
            for option in options:
                value = str((option or {}).get("value") or "").strip() if isinstance(option, dict) else ""
                if not value:
                    raise _BadRequest(["The option value must be specified."])
                if value.lower() in taken:
                    raise _BadRequest([f"The option '{value}' already exists."])
                taken.add(value.lower())
                values.append((value, bool(option.get("disabled", False))))
            created = []
            for value, disabled in values:
                self._next_option += 1
                record = {"value": value, "id": str(self._next_option), "disabled": disabled}
                self.moment_options.append(record)
                created.append(dict(record))
            self.count_write(f"field/{field_id}/options")
        return self.json({"options": created})

    def _screen(self, screen_id: int, tab_id: int | None = None) -> dict[str, Any]:
        screen = self.screen_defs.get(screen_id)
        if screen is None:
            raise NotFound(f"The screen with id {screen_id} does not exist.")
        if tab_id is not None and tab_id != screen["tab"]:
            raise NotFound(f"The screen tab with id {tab_id} does not exist.")
        return screen

    def list_screens(self, request: Request, ver: str) -> Response:
        """``GET /screens`` (Cloud; ``id`` filters): a PageBean of screens."""
        self._api(ver)
        if not self.cloud:
            raise NotFound("No resource at /screens")
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        wanted = set(self._ids(request, "id"))
        values = [{"id": sid, "name": s["name"], "description": s["description"]}
                  for sid, s in self.screen_defs.items() if not wanted or str(sid) in wanted]
        return self.json(self._page_bean(values, request, 100))

    def screen_tabs(self, request: Request, ver: str, screen_id: int) -> Response:
        self._api(ver)
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        screen = self._screen(screen_id)
        return self.json([{"id": screen["tab"], "name": screen["tab_name"]}])

    def tab_fields(self, request: Request, ver: str, screen_id: int, tab_id: int) -> Response:
        self._api(ver)
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        screen = self._screen(screen_id, tab_id)
        with self.lock:
            fids = sorted(self._screens.get(screen["project"], set()))
            return self.json([{"id": fid, "name": self.fields[fid]["name"]} for fid in fids if fid in self.fields])

    def add_tab_field(self, request: Request, ver: str, screen_id: int, tab_id: int) -> Response:
        """``POST /screens/{id}/tabs/{tab}/fields`` with ``{"fieldId"}``: 200 ``{"id", "name"}``."""
        self._api(ver)
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        screen = self._screen(screen_id, tab_id)
        fid = str(self._body(request).get("fieldId") or "")
        with self.lock:
            if fid not in self.fields:
                raise _BadRequest([f"The field with id '{fid}' does not exist."])
            on_screen = self._screens.setdefault(screen["project"], set())
            if fid in on_screen:
                raise _BadRequest([f"The field with id '{fid}' already exists on the screen."])
            on_screen.add(fid)
            self.count_write(f"screen/{screen_id}")
        return self.json({"id": fid, "name": self.fields[fid]["name"]})

    def itss_projects(self, request: Request, ver: str) -> Response:
        """``GET /issuetypescreenscheme/project?projectId=`` (Cloud)."""
        self._api(ver)
        if not self.cloud:
            raise NotFound("No resource at /issuetypescreenscheme/project")
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        wanted = set(self._ids(request, "projectId"))
        if not wanted:
            raise _BadRequest(["The projectId parameter must be specified."])
        values = [
            {"issueTypeScreenScheme": {"id": s["id"], "name": s["name"], "description": s["description"]},
             "projectIds": [s["project"]]}
            for s in self.itss.values() if s["project"] in wanted
        ]
        return self.json(self._page_bean(values, request))

    def itss_mappings(self, request: Request, ver: str) -> Response:
        """``GET /issuetypescreenscheme/mapping?issueTypeScreenSchemeId=`` (Cloud)."""
        self._api(ver)
        if not self.cloud:
            raise NotFound("No resource at /issuetypescreenscheme/mapping")
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        wanted = set(self._ids(request, "issueTypeScreenSchemeId"))
        values = [
            {"issueTypeScreenSchemeId": s["id"], "issueTypeId": issue_type, "screenSchemeId": scheme}
            for s in self.itss.values() if not wanted or s["id"] in wanted
            for issue_type, scheme in s["mappings"]
        ]
        return self.json(self._page_bean(values, request))

    def screen_schemes(self, request: Request, ver: str) -> Response:
        """``GET /screenscheme?id=`` (Cloud): screen schemes with their screens by operation."""
        self._api(ver)
        if not self.cloud:
            raise NotFound("No resource at /screenscheme")
        denied = self._admin_denied(request)
        if denied is not None:
            return denied
        wanted = set(self._ids(request, "id"))
        values = [dict(s) for sid, s in self._screen_scheme_defs.items() if not wanted or str(sid) in wanted]
        return self.json(self._page_bean(values, request, 25))

    def _project_json(self, key: str, v: str) -> dict[str, Any]:
        project = self.projects[key]
        return {
            "self": f"{self.base_url}/rest/api/{v}/project/{project['id']}", "id": project["id"],
            "key": key, "name": project["name"], "projectTypeKey": project["projectTypeKey"],
            "simplified": False, "style": "classic",
            "issueTypes": [{"id": self.issuetype_ids.get(t), "name": t, "subtask": False} for t in project["issue_types"]],
        }

    def list_projects(self, request: Request, ver: str) -> Response:
        v = self._api(ver)
        return self.json([self._project_json(key, v) for key in self.projects])

    def get_project(self, request: Request, ver: str, key: str) -> Response:
        v = self._api(ver)
        match = next((k for k, p in self.projects.items() if key.upper() == k or key == p["id"]), None)
        if match is None:
            raise NotFound(f"No project could be found with key '{key}'.")
        return self.json(self._project_json(match, v))

    def list_statuses(self, request: Request, ver: str) -> Response:
        self._api(ver)
        return self.json([self._status_json(name) for name in self.status_ids])

    def list_priorities(self, request: Request, ver: str) -> Response:
        v = self._api(ver)
        return self.json([{"self": f"{self.base_url}/rest/api/{v}/priority/{i + 1}", "id": str(i + 1), "name": p}
                          for i, p in enumerate(PRIORITIES)])

    def group_members(self, request: Request, ver: str) -> Response:
        v = self._api(ver)
        name = request.args.get("groupname") or request.args.get("groupName") or ""
        members = self.groups.get(name)
        if members is None:
            raise NotFound(f"Group '{name}' does not exist." if not self.cloud else "Group not found.")
        start = _int(request.args.get("startAt"), 0)
        size = min(_int(request.args.get("maxResults"), 50), 50)
        page = members[start : start + size]
        is_last = start + size >= len(members)
        body: dict[str, Any] = {
            "self": f"{self.base_url}/rest/api/{v}/group/member?groupname={name}&startAt={start}&maxResults={size}",
            "maxResults": size, "startAt": start, "total": len(members), "isLast": is_last,
            "values": [self._user_json(u, v) for u in page],
        }
        if not is_last:
            body["nextPage"] = (f"{self.base_url}/rest/api/{v}/group/member?groupname={name}"
                                f"&startAt={start + size}&maxResults={size}")
        return self.json(body)

    def get_user(self, request: Request, ver: str) -> Response:
        v = self._api(ver)
        args = request.args
        user = None
        if args.get("accountId"):
            user = self.user_by_account.get(args["accountId"])
        elif not self.cloud and (args.get("username") or args.get("key")):
            wanted = args.get("username") or args.get("key")
            user = self.user_by_login.get(wanted or "") or next(
                (u for u in self.user_by_login.values() if u.key == wanted), None)
        if user is None:
            raise NotFound("The user with the provided identifier was not found." if self.cloud
                           else f"The user named '{args.get('username', '')}' does not exist")
        return self.json(self._user_json(user, v))

    # --- search --------------------------------------------------------------------------------------
    def search_legacy(self, request: Request, ver: str) -> Response:
        v = self._api(ver)
        if self.cloud:
            return self.json({"errorMessages": [_LEGACY_SEARCH_410], "errors": {}}, status=410)
        params = self._search_params(request)
        start = max(0, _int(params.get("startAt"), 0))
        limit = _int(params.get("maxResults"), 50)
        limit = max(0, min(limit, 1000))
        tz = self._tz(request)
        query = self._parse(params.get("jql") or "")
        with self.lock:
            results, _ = self._evaluate_all(query, params.get("jql") or "", tz, request)
            page = results[start : start + limit]
            fields = self._wanted_fields(params.get("fields"), "*navigable")
            expand = set(params.get("expand") or [])
            issues = [self._issue_json(i, fields, expand, v, tz, search=True) for i in page]
        return self.json({"expand": "schema,names", "startAt": start, "maxResults": limit,
                          "total": len(results), "issues": issues})

    def search_jql(self, request: Request, ver: str) -> Response:
        v = self._api(ver)
        if not self.cloud:
            raise NotFound("No resource at /search/jql")
        params = self._search_params(request)
        jql = params.get("jql") or ""
        query = self._parse(jql)
        if query.where is None:
            raise _BadRequest([_UNBOUNDED])
        fields = self._wanted_fields(params.get("fields"), "id")
        ids_only = not fields
        cap = 5000 if ids_only else 100
        limit = _int(params.get("maxResults"), 50)
        limit = max(1, min(limit, cap))
        after = self._decode_token(params.get("nextPageToken"), jql)
        tz = self._tz(request)
        with self.lock:
            page, more = self._page_after(query, jql, tz, after, limit, request)
            expand = set(params.get("expand") or [])
            issues = [
                self._issue_json(i, fields, expand, v, tz, search=True) if not ids_only else {"id": str(i.id)}
                for i in page
            ]
            body: dict[str, Any] = {"issues": issues, "isLast": not more}
            if more and page:
                body["nextPageToken"] = self._encode_token(self._sort_key(query.order)(page[-1]), jql)
        return self.json(body)

    @staticmethod
    def _search_params(request: Request) -> dict[str, Any]:
        """Search parameters from the query string (GET) or the JSON body (POST), normalized:
        ``fields`` and ``expand`` become lists."""
        if request.method == "POST":
            body = request.get_json(silent=True) or {}
            params = dict(body)
            fields = body.get("fields")
            params["fields"] = fields if isinstance(fields, list) else ([fields] if fields else None)
            expand = body.get("expand")
            if isinstance(expand, str):
                expand = expand.split(",")
            params["expand"] = [e.strip() for e in expand or []]
            return params
        args = request.args
        return {
            "jql": args.get("jql"), "startAt": args.get("startAt"), "maxResults": args.get("maxResults"),
            "nextPageToken": args.get("nextPageToken"), "fields": args.getlist("fields") or None,
            "expand": [e.strip() for spec in args.getlist("expand") for e in spec.split(",")],
        }

    @staticmethod
    def _encode_token(key: tuple[int, ...], jql: str) -> str:
        raw = json.dumps({"k": list(key), "q": zlib.crc32(jql.encode())}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_token(token: str | None, jql: str) -> tuple[int, ...] | None:
        if not token:
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if raw["q"] != zlib.crc32(jql.encode()):
                raise ValueError("token for another query")
            return tuple(int(x) for x in raw["k"])
        except (ValueError, KeyError, TypeError):
            raise _BadRequest(["The provided next page token is invalid or expired."]) from None

    def _parse(self, jql: str) -> Query:
        try:
            query = parse(jql)
        except JqlError as exc:
            raise _BadRequest([str(exc)]) from None
        if not query.order:
            query.order = [("created", True), ("key", True)]  # the sandbox's documented default
        for name, _ in query.order:
            if name not in _SORTABLE:
                raise _BadRequest([f"Not able to sort using field '{name}'."])
        return query

    def _sort_key(self, order: list[tuple[str, bool]]) -> Callable[[_Issue], tuple[int, ...]]:
        """An all-integer sort key (descending fields negated), the issue id as tiebreaker."""
        getters = [(_SORTABLE[name], desc) for name, desc in order]

        def key(issue: _Issue) -> tuple[int, ...]:
            out: list[int] = []
            for getter, desc in getters:
                for value in getter(issue):
                    out.append(-value if desc else value)
            out.append(issue.id)
            return tuple(out)

        return key

    def _page_after(
        self, query: Query, jql: str, tz: ZoneInfo, after: tuple[int, ...] | None, limit: int, request: Request
    ) -> tuple[list[_Issue], bool]:
        """One page of a token-paged search: issues whose sort key follows ``after``."""
        sort_key = self._sort_key(query.order)
        predicate = self._compile(query.where, tz, request)
        if query.order[0] == ("updated", False):
            # Fast path: bisect to the lower bound and scan (updated, id) order until the page
            # is full and the ``updated`` group of its last issue is complete.
            lower, upper, ids = self._bounds(query.where, tz)
            if ids is None:
                if after is not None:
                    lower = max(lower, after[0]) if lower is not None else after[0]
                start = bisect.bisect_left(self.order, lower, key=lambda i: i.updated_ms) if lower else 0
                found: list[_Issue] = []
                more = False
                for issue in self.order[start:]:
                    if upper is not None and issue.updated_ms > upper:
                        break
                    if len(found) > limit and issue.updated_ms != found[-1].updated_ms:
                        more = True
                        break
                    if predicate(issue) and (after is None or sort_key(issue) > after):
                        found.append(issue)
                found.sort(key=sort_key)
                if len(found) > limit:
                    more = True
                return found[:limit], more
        results, keys = self._evaluate_all(query, jql, tz, request)
        start = bisect.bisect_right(keys, after) if after is not None else 0
        page = results[start : start + limit]
        return page, start + limit < len(results)

    def _evaluate_all(self, query: Query, jql: str, tz: ZoneInfo, request: Request) -> tuple[list[_Issue], list[tuple[int, ...]]]:
        """Every match in order, cached per (query, user zone, data version)."""
        cache_key = (jql, str(tz), self._version, request.environ["sandbox.user"])
        cached = self._search_cache.get(cache_key)
        if cached is not None:
            self._search_cache.move_to_end(cache_key)
            return cached
        predicate = self._compile(query.where, tz, request)
        lower, upper, ids = self._bounds(query.where, tz)
        if ids is not None:
            candidates: Iterable[_Issue] = [self.issues[i] for i in ids if i in self.issues]
        else:
            start = bisect.bisect_left(self.order, lower, key=lambda i: i.updated_ms) if lower else 0
            end = bisect.bisect_right(self.order, upper, key=lambda i: i.updated_ms) if upper is not None else len(self.order)
            candidates = self.order[start:end]
        sort_key = self._sort_key(query.order)
        results = sorted((i for i in candidates if predicate(i)), key=sort_key)
        entry = (results, [sort_key(i) for i in results])
        self._search_cache[cache_key] = entry
        while len(self._search_cache) > 8:
            self._search_cache.popitem(last=False)
        return entry

    # --- JQL evaluation ------------------------------------------------------------------------------
    def _bounds(self, where: Node | None, tz: ZoneInfo) -> tuple[int | None, int | None, set[int] | None]:
        """From the top-level AND: the ``updated`` window and an id/key candidate set, if any."""
        parts: tuple[Node, ...] = where.parts if isinstance(where, And) else ((where,) if where else ())
        lower: int | None = None
        upper: int | None = None
        ids: set[int] | None = None
        for part in parts:
            if not isinstance(part, Clause):
                continue
            name = _FIELD_ALIASES.get(part.field, part.field)
            if name == "updated" and part.op in (">=", ">", "=", "<=", "<"):
                value = self._date_value(part, tz)
                if part.op in (">=", ">", "="):
                    lower = value if lower is None else max(lower, value)
                if part.op in ("<=", "<", "="):
                    upper = value if upper is None else min(upper, value)
            elif name in ("key", "id") and part.op in ("=", "in"):
                values = part.value.items if part.value.kind == "list" else (part.value,)
                found = set()
                for value in values:
                    issue = self.by_key.get(value.text.upper()) if not value.text.isdigit() else self.issues.get(int(value.text))
                    if issue is not None:
                        found.add(issue.id)
                ids = found if ids is None else ids & found
        return lower, upper, ids

    def _compile(self, node: Node | None, tz: ZoneInfo, request: Request) -> Callable[[_Issue], bool]:
        if node is None:
            return lambda issue: True
        if isinstance(node, And):
            preds = [self._compile(p, tz, request) for p in node.parts]
            return lambda issue: all(p(issue) for p in preds)
        if isinstance(node, Or):
            preds = [self._compile(p, tz, request) for p in node.parts]
            return lambda issue: any(p(issue) for p in preds)
        if isinstance(node, Not):
            inner = self._compile(node.part, tz, request)
            return lambda issue: not inner(issue)
        return self._compile_clause(node, tz, request)

    def _compile_clause(self, clause: Clause, tz: ZoneInfo, request: Request) -> Callable[[_Issue], bool]:
        name = _FIELD_ALIASES.get(clause.field, clause.field)
        op = clause.op
        if name in ("updated", "created", "resolutiondate"):
            getter = {"updated": lambda i: i.updated_ms, "created": lambda i: i.created_ms,
                      "resolutiondate": lambda i: i.resolved_ms}[name]
            if op in ("is", "is not"):
                empty = op == "is"
                return lambda i: (getter(i) is None) == empty
            if op not in ("=", "!=", ">", ">=", "<", "<="):
                raise _BadRequest([f"The operator '{op.upper()}' is not supported by the '{clause.field}' field."])
            value = self._date_value(clause, tz)
            compare = _COMPARE[op]
            return lambda i: getter(i) is not None and compare(getter(i), value)
        text_getters: dict[str, Callable[[_Issue], list[str]]] = {
            "project": lambda i: [i.project.lower()],
            "issuetype": lambda i: [i.issuetype.lower()],
            "status": lambda i: [i.status.lower()],
            "statuscategory": lambda i: [self._category(i.status), _CATEGORIES[self._category(i.status)]["name"].lower()],
            "priority": lambda i: [i.priority.lower()],
            "labels": lambda i: [label.lower() for label in i.labels],
            "key": lambda i: [i.key.lower(), str(i.id)],
            "id": lambda i: [str(i.id), i.key.lower()],
            "resolution": lambda i: ["done"] if i.resolved_ms is not None else [],
            "assignee": lambda i: self._user_refs(i.assignee),
            "reporter": lambda i: self._user_refs(i.reporter),
        }
        if name == "summary" or name == "text":
            if op not in ("~", "!~"):
                raise _BadRequest([f"The operator '{op.upper()}' is not supported by the '{clause.field}' field."])
            needle = clause.value.text.lower().strip("*")
            match = op == "~"
            return lambda i: (needle in (i.item.title or "").lower()) == match
        getter2 = text_getters.get(name)
        if getter2 is None:
            raise _BadRequest([_NO_SUCH_FIELD.format(clause.field)])
        if op in ("is", "is not"):
            empty = op == "is"
            return lambda i: (not getter2(i)) == empty
        values = clause.value.items if clause.value.kind == "list" else (clause.value,)
        wanted: set[str] = set()
        for value in values:
            wanted.update(self._text_values(name, value, request))
        if name in ("key", "id") and self._validating(request):
            # Jira refuses a query naming an issue that does not exist (a deleted one, say)
            # unless validateQuery is off (atlassian-python-api PR #752 quotes the message).
            for value in sorted(wanted):
                issue = self.issues.get(int(value)) if value.isdigit() else self.by_key.get(value.upper())
                if issue is None:
                    shown = value if value.isdigit() else value.upper()
                    raise _BadRequest([f"An issue with key '{shown}' does not exist for field '{clause.field}'."])
        if name == "resolution" and "unresolved" in wanted:
            wanted.discard("unresolved")
            unresolved = True
        else:
            unresolved = False
        if name == "project":
            known = {k.lower() for k in self.projects} | {p["id"] for p in self.projects.values()}
            for value in wanted:
                if value not in known:
                    raise _BadRequest([f"The value '{value.upper()}' does not exist for the field 'project'."])
            ids = {p["id"]: k.lower() for k, p in self.projects.items()}
            wanted = {ids.get(v, v) for v in wanted}
        if name == "issuetype":
            known_types = {t.lower() for t in self.issuetype_ids}
            for value in wanted:
                if value not in known_types:
                    raise _BadRequest([f"The value '{value}' does not exist for the field 'issuetype'."])
        if op in ("=", "in"):
            if name in ("key", "id") and op in ("=", "in"):
                return lambda i: bool(wanted.intersection(getter2(i)))
            return lambda i: bool(wanted.intersection(getter2(i))) or (unresolved and not getter2(i))
        if op in ("!=", "not in"):
            return lambda i: not (wanted.intersection(getter2(i)) or (unresolved and not getter2(i)))
        if name in ("key", "id") and op in (">", ">=", "<", "<="):
            if len(wanted) != 1:
                raise _BadRequest(["Error in the JQL Query: a single issue key is expected."])
            target = self.by_key.get(next(iter(wanted)).upper())
            if target is None:
                raise _BadRequest([f"An issue with key '{next(iter(wanted)).upper()}' does not exist for field 'key'."])
            compare = _COMPARE[op]
            return lambda i: i.project == target.project and compare(i.num, target.num)
        raise _BadRequest([f"The operator '{op.upper()}' is not supported by the '{clause.field}' field."])

    @staticmethod
    def _validating(request: Request) -> bool:
        if request.method == "POST":
            flag = str((request.get_json(silent=True) or {}).get("validateQuery", "strict"))
        else:
            flag = request.args.get("validateQuery", "strict")
        return flag.lower() not in ("false", "none", "warn")

    def _text_values(self, name: str, value: Value, request: Request) -> list[str]:
        if value.kind == "func":
            if value.text == "currentuser" and name in ("assignee", "reporter"):
                me = self._me(request)
                return [me.account_id.lower() if self.cloud else me.user.username.lower()]
            raise _BadRequest([f"Unable to find JQL function '{value.text}()'."])
        if value.kind == "list":
            raise _BadRequest(["Error in the JQL Query: nested lists are not supported."])
        return [value.text.lower()]

    def _user_refs(self, user: _User | None) -> list[str]:
        if user is None:
            return []
        return [user.account_id.lower(), user.user.username.lower(), user.user.email.lower()]

    def _date_value(self, clause: Clause, tz: ZoneInfo) -> int:
        """Epoch ms for a JQL date operand: epoch ms are absolute; strings are read in the
        user's time zone with minute precision; ``-5d``-style periods count back from now."""
        value = clause.value
        if value.kind == "func":
            if value.text in ("now",):
                return _ms(self.clock())
            raise _BadRequest([f"Unable to find JQL function '{value.text}()'."])
        text = value.text.strip()
        if re.fullmatch(r"-?\d{6,}", text):
            return int(text)
        for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                local = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return _ms(local.replace(tzinfo=tz))
        period = re.fullmatch(r"([+-]?)((?:\d+[wdhm]\s*)+)", text)
        if period:
            sign = -1 if period.group(1) == "-" else 1
            units = {"w": 604800, "d": 86400, "h": 3600, "m": 60}
            seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([wdhm])", period.group(2)))
            now = self.clock().replace(second=0, microsecond=0)
            return _ms(now + timedelta(seconds=sign * seconds))
        raise _BadRequest([_BAD_DATE.format(text, clause.field)])

    # --- issues ----------------------------------------------------------------------------------------
    def get_issue(self, request: Request, ver: str, key: str) -> Response:
        v = self._api(ver)
        tz = self._tz(request)
        with self.lock:
            issue = self._find_issue(key)
            fields = self._wanted_fields(request.args.getlist("fields") or None, "*all")
            expand = {e.strip() for spec in request.args.getlist("expand") for e in spec.split(",")}
            body = self._issue_json(issue, fields, expand, v, tz, search=False)
            return self.json(self._with_attachment_field(request, issue, body, v, tz))

    def get_comments(self, request: Request, ver: str, key: str) -> Response:
        v = self._api(ver)
        tz = self._tz(request)
        with self.lock:
            issue = self._find_issue(key)
            start = max(0, _int(request.args.get("startAt"), 0))
            size = max(0, min(_int(request.args.get("maxResults"), 5000), 5000))
            comments = issue.comments
            if request.args.get("orderBy", "created").lstrip("+") == "-created":
                comments = list(reversed(comments))
            page = comments[start : start + size]
            return self.json({
                "startAt": start, "maxResults": size, "total": len(issue.comments),
                "comments": [self._comment_json(issue, c, v, tz) for c in page],
            })

    def get_changelog(self, request: Request, ver: str, key: str) -> Response:
        v = self._api(ver)
        tz = self._tz(request)
        with self.lock:
            issue = self._find_issue(key)
            start = max(0, _int(request.args.get("startAt"), 0))
            size = max(1, min(_int(request.args.get("maxResults"), 100), 100))
            page = issue.histories[start : start + size]
            is_last = start + size >= len(issue.histories)
            body: dict[str, Any] = {
                "self": f"{self.base_url}/rest/api/{v}/issue/{issue.key}/changelog?startAt={start}&maxResults={size}",
                "maxResults": size, "startAt": start, "total": len(issue.histories), "isLast": is_last,
                "values": [self._history_json(h, v, tz) for h in page],
            }
            if not is_last:
                body["nextPage"] = (f"{self.base_url}/rest/api/{v}/issue/{issue.key}/changelog"
                                    f"?startAt={start + size}&maxResults={size}")
            return self.json(body)

    def bulk_changelog(self, request: Request, ver: str) -> Response:
        v = self._api(ver)
        if not self.cloud:
            raise NotFound("No resource at /changelog/bulkfetch")
        body = self._body(request)
        refs = body.get("issueIdsOrKeys") or []
        if not isinstance(refs, list) or not refs or len(refs) > 1000:
            raise _BadRequest(["issueIdsOrKeys must list between 1 and 1000 issues."])
        field_ids = body.get("fieldIds")
        wanted = set(field_ids) if field_ids else None
        limit = max(1, min(_int(body.get("maxResults"), 1000), 10000))
        position = (0, 0)
        token = body.get("nextPageToken")
        if token:
            try:
                raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                position = (int(raw["i"]), int(raw["h"]))
            except (ValueError, KeyError, TypeError):
                raise _BadRequest(["The provided next page token is invalid or expired."]) from None
        tz = self._tz(request)
        out: list[dict[str, Any]] = []
        count = 0
        next_token = None
        with self.lock:
            issues = []
            for ref in refs:
                try:
                    issues.append(self._find_issue(str(ref)))
                except NotFound:
                    continue  # the bulk endpoint skips issues it cannot see
            index, offset = position
            while index < len(issues):
                issue = issues[index]
                histories: list[dict[str, Any]] = []
                h = offset
                while h < len(issue.histories):
                    if count >= limit:
                        break
                    rendered = self._history_json(issue.histories[h], v, tz, wanted)
                    if rendered is not None:
                        histories.append(rendered)
                        count += 1
                    h += 1
                if histories:
                    out.append({"issueId": str(issue.id), "changeHistories": histories})
                if h < len(issue.histories):
                    next_token = base64.urlsafe_b64encode(
                        json.dumps({"i": index, "h": h}).encode()).decode().rstrip("=")
                    break
                index += 1
                offset = 0
        response: dict[str, Any] = {"issueChangeLogs": out}
        if next_token:
            response["nextPageToken"] = next_token
        return self.json(response)

    def edit_meta(self, request: Request, ver: str, key: str) -> Response:
        v = self._api(ver)
        with self.lock:
            issue = self._find_issue(key)
            fields: dict[str, Any] = {}
            for fid in sorted(self._screens.get(issue.project, set())):
                spec = self.fields[fid]
                entry: dict[str, Any] = {
                    "required": fid == "summary", "schema": spec["schema"], "name": spec["name"],
                    "key": fid, "operations": ["set", "add", "remove"] if fid == "labels" else ["set"],
                }
                logical = self.field_by_key.get(fid)
                if logical == "moment":
                    entry["allowedValues"] = [
                        {"self": f"{self.base_url}/rest/api/{v}/customFieldOption/{o['id']}", "value": o["value"], "id": o["id"]}
                        for o in self.moment_options if not o["disabled"]
                    ]
                elif logical == "business_area":
                    entry["allowedValues"] = [{"value": n, "id": i} for n, i in self.area_options.items()]
                elif fid == "priority":
                    entry["allowedValues"] = [{"id": str(i + 1), "name": p} for i, p in enumerate(PRIORITIES)]
                fields[fid] = entry
            return self.json({"fields": fields})

    def edit_issue(self, request: Request, ver: str, key: str) -> Response:
        """PUT /issue/{key}: validate every field first (screen, type), then apply all at once."""
        v = self._api(ver)
        me = self._me(request)
        with self.lock:
            issue = self._find_issue(key)
            # Every PUT that targets an issue counts, refused ones included: the stats show
            # what a client sent, which is what "a retried write is harmless" is about.
            self.count_write(f"{issue.project}/{issue.key}")
            if request.args.get("notifyUsers", "true").lower() == "false" and (
                self.not_admin or "jira-administrators" not in me.groups
            ):
                return self.json({"errorMessages": [_NOTIFY_403], "errors": {}}, status=403)
            body = self._body(request)
            updates = body.get("fields") or {}
            if not isinstance(updates, dict):
                raise _BadRequest(["Field 'fields' must be an object."])
            screen = self._screens.get(issue.project, set())
            errors: dict[str, str] = {}
            changes: list[tuple[str, Any, Any, dict[str, Any]]] = []  # (fid, new stored, item)
            for fid, raw in updates.items():
                if fid not in self.fields or fid not in screen:
                    errors[fid] = _NOT_ON_SCREEN.format(fid)
                    continue
                logical = self.field_by_key.get(fid)
                try:
                    change = self._apply_value(issue, fid, logical, raw, v)
                except ValueError as exc:
                    errors[fid] = str(exc)
                    continue
                if change is not None:
                    changes.append(change)
            if errors:
                raise _BadRequest([], errors)
            self._commit_changes(issue, me, changes)
        return Response(status=204)

    def _commit_changes(self, issue: _Issue, me: _User, changes: list[tuple[str, Any, Any, dict[str, Any]]]) -> None:
        """Store validated changes, as one changelog history by ``me`` (caller holds the lock)."""
        if not changes:
            return
        now = max(_ms(self.clock()), issue.updated_ms + 1)
        items = []
        for fid, logical_key, stored, entry in changes:
            if logical_key in _WRITEBACK_KEYS:
                if stored is None:
                    issue.values.pop(logical_key, None)
                    issue.item.fields.pop(logical_key, None)
                else:
                    issue.values[logical_key] = stored
                    issue.item.fields[logical_key] = (
                        str(int(stored)) if logical_key == "score" and float(stored).is_integer() else str(stored)
                    )
            elif fid == "summary":
                issue.item.title = stored
            elif fid == "description":
                issue.item.description = stored
                issue.description_adf = None
            elif fid == "labels":
                issue.labels = list(stored)
            items.append(entry)
        issue.histories.append(_History(self._next_history, me, now, items))
        self._next_history += 1
        self._touch(issue, now, me)

    # --- Cloud bulk edit ---------------------------------------------------------------------------
    def bulk_edit(self, request: Request, ver: str) -> Response:
        """``POST /rest/api/3/bulk/issues/fields``: validate the payload, apply every issue's
        edit (each issue separately, as Jira does: one bad issue does not fail the rest), and
        answer a task id to poll."""
        v = self._api(ver)
        if not self.cloud:
            raise NotFound("No resource at /bulk/issues/fields")
        me = self._me(request)
        if self.bulk_edit_denied:
            return self.json({"errorMessages": ["You don't have the global permission to make bulk changes."],
                              "errors": {}}, status=403)
        body = self._body(request)
        refs = body.get("selectedIssueIdsOrKeys")
        actions = body.get("selectedActions")
        edited = body.get("editedFieldsInput")
        if not isinstance(refs, list) or not refs or len(refs) > 1000:
            raise _BadRequest(["selectedIssueIdsOrKeys must list between 1 and 1000 issues."])
        if not isinstance(actions, list) or not actions or len(actions) > 200:
            raise _BadRequest(["selectedActions must list between 1 and 200 fields."])
        if not isinstance(edited, dict):
            raise _BadRequest(["editedFieldsInput is required."])
        raw_values = self._bulk_values(edited)
        if set(raw_values) != {str(a) for a in actions}:
            raise _BadRequest(["The fields in selectedActions and editedFieldsInput do not match."])
        processed: list[int] = []
        failed: dict[str, list[str]] = {}
        invalid = 0
        with self.lock:
            for ref in dict.fromkeys(str(r) for r in refs):
                try:
                    issue = self._find_issue(ref)
                except NotFound:
                    invalid += 1
                    continue
                self.count_write(f"{issue.project}/{issue.key}")
                screen = self._screens.get(issue.project, set())
                errors: list[str] = []
                changes = []
                for fid, raw in raw_values.items():
                    if fid not in self.fields or fid not in screen:
                        errors.append(_NOT_ON_SCREEN.format(fid))
                        continue
                    try:
                        change = self._apply_value(issue, fid, self.field_by_key.get(fid), raw, v)
                    except ValueError as exc:
                        errors.append(str(exc))
                        continue
                    if change is not None:
                        changes.append(change)
                if errors:
                    failed[str(issue.id)] = errors
                    continue
                self._commit_changes(issue, me, changes)
                processed.append(issue.id)
            task_id = str(self._next_task)
            self._next_task += 1
            now = self._ts(_ms(self.clock()), self._tz(request))
            self._bulk_tasks[task_id] = {
                "taskId": task_id, "status": "COMPLETE", "progressPercent": 100,
                "processedAccessibleIssues": processed, "failedAccessibleIssues": failed,
                "invalidOrInaccessibleIssueCount": invalid, "totalIssueCount": len(refs),
                "created": now, "started": now, "updated": now,
                "submittedBy": {"accountId": me.account_id}, "_polls_left": self.bulk_task_polls,
            }
        return self.json({"taskId": task_id}, status=201)

    def _bulk_values(self, edited: dict[str, Any]) -> dict[str, Any]:
        """``editedFieldsInput`` → field id → the value ``PUT /issue`` would take."""
        out: dict[str, Any] = {}
        for kind, entries in edited.items():
            if not isinstance(entries, list):
                raise _BadRequest([f"editedFieldsInput.{kind} must be a list."])
            for entry in entries:
                if not isinstance(entry, dict) or not entry.get("fieldId"):
                    raise _BadRequest([f"Every entry of editedFieldsInput.{kind} needs a fieldId."])
                fid = str(entry["fieldId"])
                if kind == "singleSelectFields":
                    option = str((entry.get("option") or {}).get("optionId", ""))
                    out[fid] = None if option == "-1" else {"id": option}
                elif kind == "clearableNumberFields":
                    out[fid] = entry.get("value")
                elif kind == "richTextFields":
                    adf = (entry.get("richText") or {}).get("adfValue")
                    out[fid] = adf if adf else None
                else:
                    raise _BadRequest([f"The sandbox does not bulk edit {kind}."])
        return out

    def bulk_progress(self, request: Request, ver: str, task_id: str) -> Response:
        """``GET /rest/api/3/bulk/queue/{taskId}``: RUNNING for the first polls, then the result."""
        self._api(ver)
        with self.lock:
            task = self._bulk_tasks.get(task_id)
            if task is None:
                raise NotFound(f"Task {task_id} was not found.")
            if task["_polls_left"] > 0:
                task["_polls_left"] -= 1
                return self.json({"taskId": task_id, "status": "RUNNING", "progressPercent": 50,
                                  "created": task["created"], "started": task["started"]})
            return self.json({k: val for k, val in task.items() if not k.startswith("_")})

    def delete_issue(self, request: Request, ver: str, key: str) -> Response:
        """DELETE /issue/{key}: gone from searches and lookups (the world item stays)."""
        self._api(ver)
        with self.lock:
            issue = self._find_issue(key)
            self.count_write(f"{issue.project}/{issue.key}")
            index = bisect.bisect_left(self.order, issue.order_key, key=lambda i: i.order_key)
            if index < len(self.order) and self.order[index] is issue:
                del self.order[index]
            del self.issues[issue.id]
            del self.by_key[issue.key]
            self._version += 1
            self._search_cache.clear()
        return Response(status=204)

    def _apply_value(self, issue: _Issue, fid: str, logical: str | None, raw: Any, v: str
                     ) -> tuple[str, str | None, Any, dict[str, Any]] | None:
        """Validate one field value; return (field id, logical key, stored value, changelog item)
        or None when the value is unchanged. Raise ValueError with Jira's message."""
        name = self.fields[fid]["name"]
        base = {"field": name, "fieldtype": "custom" if fid.startswith("customfield_") else "jira", "fieldId": fid}
        if logical == "moment":
            if raw is None:
                new_option = None
            elif isinstance(raw, dict):
                new_option = next((o for o in self.moment_options
                                   if ("id" in raw and o["id"] == str(raw["id"])) or
                                   ("value" in raw and o["value"] == raw["value"])), None)
                if new_option is None or new_option["disabled"]:
                    wanted = raw.get("value", raw.get("id"))
                    raise ValueError(f"Option value '{wanted}' is not valid")
            else:
                raise ValueError("Could not find valid 'id' or 'value' in the Parent Option object.")
            old = issue.values.get("moment")
            new = new_option["value"] if new_option else None
            if old == new:
                return None
            old_option = next((o for o in self.moment_options if o["value"] == old), None)
            return fid, "moment", new, {**base, "from": old_option["id"] if old_option else None, "fromString": old,
                                       "to": new_option["id"] if new_option else None, "toString": new}
        if logical == "score":
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, (int, float))):
                raise ValueError("Operation value must be a number")
            old = issue.values.get("score")
            new = float(raw) if raw is not None else None
            if old == new:
                return None
            fmt = lambda x: None if x is None else (str(int(x)) if float(x).is_integer() else str(x))
            return fid, "score", new, {**base, "from": None, "fromString": fmt(old), "to": None, "toString": fmt(new)}
        if logical == "signals" or fid in ("description", "summary"):
            if raw is None:
                text = None
            elif v == "3" and fid != "summary":
                if not (isinstance(raw, dict) and raw.get("type") == "doc"):
                    raise ValueError("Operation value must be an Atlassian Document (see the Atlassian Document Format)")
                text = adf_plain_text(raw)
            elif isinstance(raw, str):
                text = raw
            else:
                raise ValueError("Operation value must be a string")
            if fid == "summary":
                if not text:
                    raise ValueError("You must specify a summary of the issue.")
                if text == issue.item.title:
                    return None
                return fid, None, text, {**base, "from": None, "fromString": issue.item.title, "to": None, "toString": text}
            old_text = issue.values.get("signals") if logical == "signals" else issue.item.description
            if old_text == text:
                return None
            return fid, logical, text, {**base, "from": None, "fromString": old_text, "to": None, "toString": text}
        if fid == "labels":
            if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
                raise ValueError("Operation value must be a list of strings")
            if raw == issue.labels:
                return None
            return fid, None, list(raw), {**base, "from": None, "fromString": " ".join(issue.labels),
                                          "to": None, "toString": " ".join(raw)}
        raise ValueError(f"The sandbox cannot set field '{fid}'.")

    def _touch(self, issue: _Issue, now_ms: int, user: _User) -> None:
        """Move an issue to its new ``updated`` in the sorted order and invalidate caches."""
        index = bisect.bisect_left(self.order, issue.order_key, key=lambda i: i.order_key)
        if index < len(self.order) and self.order[index] is issue:
            del self.order[index]
        else:  # pragma: no cover - defensive: the order list is the source of truth
            self.order.remove(issue)
        issue.updated_ms = now_ms
        issue.item.updated = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        issue.item.updated_by_id = user.user.id
        bisect.insort(self.order, issue, key=lambda i: i.order_key)
        self._version += 1
        self._search_cache.clear()

    def add_comment(self, request: Request, ver: str, key: str) -> Response:
        v = self._api(ver)
        me = self._me(request)
        body = self._body(request)
        raw = body.get("body")
        if v == "3":
            if not (isinstance(raw, dict) and raw.get("type") == "doc"):
                raise _BadRequest([], {"comment": "Comment body is not valid!"})
            text = adf_plain_text(raw)
        else:
            if not isinstance(raw, str) or not raw.strip():
                raise _BadRequest([], {"comment": "Comment body can not be empty!"})
            text = raw
        internal = bool(body.get("visibility"))
        for prop in body.get("properties") or []:
            if isinstance(prop, dict) and prop.get("key") == "sd.public.comment":
                internal = bool((prop.get("value") or {}).get("internal"))
        tz = self._tz(request)
        with self.lock:
            issue = self._find_issue(key)
            self.count_write(f"{issue.project}/{issue.key}")
            now = max(_ms(self.clock()), issue.updated_ms + 1)
            comment = _Comment(self._next_comment, me, now, text, internal)
            self._next_comment += 1
            issue.comments.append(comment)
            issue.item.comments.append(WorldComment(str(comment.id), me.user.id,
                                                    datetime.fromtimestamp(now / 1000, tz=UTC), text, internal))
            self._touch(issue, now, me)
            return self.json(self._comment_json(issue, comment, v, tz), status=201)

    # --- Jira Service Management -------------------------------------------------------------------------
    def _sd_error(self, status: int, message: str) -> Response:
        return self.json({"errorMessage": message, "i18nErrorMessage": {"i18nKey": "sd.request.error", "parameters": []}},
                         status=status)

    def _sd_issue(self, key: str) -> _Issue | None:
        try:
            issue = self._find_issue(key)
        except NotFound:
            return None
        if self.projects.get(issue.project, {}).get("projectTypeKey") != "service_desk":
            return None
        return issue

    def sd_feedback(self, request: Request, key: str) -> Response:
        with self.lock:
            issue = self._sd_issue(key)
            if issue is None:
                return self._sd_error(404, "The request could not be found.")
            if not issue.item.survey_score or issue.resolved_ms is None:
                return self._sd_error(404, "No feedback has been given for this request.")
            return self.json({"type": "csat", "rating": int(issue.item.survey_score),
                              "comment": {"body": ""}})

    def sd_participants(self, request: Request, key: str) -> Response:
        with self.lock:
            issue = self._sd_issue(key)
            if issue is None:
                return self._sd_error(404, "The request could not be found.")
            values = [self._user_json(u, "2") for u in issue.participants]
            return self.json({"size": len(values), "start": 0, "limit": 50, "isLastPage": True, "values": values})

    def sd_organizations(self, request: Request) -> Response:
        orgs = sorted(self.orgs.values(), key=lambda o: int(self.org_ids[o.id]))
        start = _int(request.args.get("start"), 0)
        limit = min(_int(request.args.get("limit"), 50), 50)
        page = orgs[start : start + limit]
        return self.json({
            "size": len(page), "start": start, "limit": limit, "isLastPage": start + limit >= len(orgs),
            "values": [{"id": self.org_ids[o.id], "name": o.name} for o in page],
        })

    # --- attachments ------------------------------------------------------------------------------
    # POST /rest/api/{2,3}/issue/{key}/attachments (multipart, part "file", X-Atlassian-Token:
    # no-check), GET/DELETE /rest/api/{2,3}/attachment/{id}, the issue's "attachment" field.
    @property
    def attachments(self) -> dict[str, dict[str, Any]]:
        """Attachments by id (with their bytes under ``_data`` and issue key under ``_issue``)."""
        return self.__dict__.setdefault("_attachment_store", {})

    def _attachment_json(self, record: dict[str, Any], v: str, tz: ZoneInfo) -> dict[str, Any]:
        return {
            "self": f"{self.base_url}/rest/api/{v}/attachment/{record['id']}",
            "id": record["id"], "filename": record["filename"],
            "author": self._user_json(record["_author"], v),
            "created": self._ts(record["_created_ms"], tz), "size": len(record["_data"]),
            "mimeType": record["mimeType"],
            "content": f"{self.base_url}/secure/attachment/{record['id']}/{record['filename']}",
        }

    def _with_attachment_field(
        self, request: Request, issue: _Issue, body: dict[str, Any], v: str, tz: ZoneInfo
    ) -> dict[str, Any]:
        """Add the ``attachment`` field when the request asks for it (or for all fields)."""
        asked = {t.strip() for spec in request.args.getlist("fields") for t in spec.split(",")}
        if asked and not asked & {"attachment", "*all"}:
            return body
        found = [r for r in self.attachments.values() if r["_issue"] == issue.key]
        found.sort(key=lambda r: int(r["id"]))
        body.setdefault("fields", {})["attachment"] = [
            self._attachment_json(r, v, tz) for r in found
        ]
        return body

    def add_attachments(self, request: Request, ver: str, key: str) -> Response:
        v = self._api(ver)
        if request.headers.get("X-Atlassian-Token", "").lower() != "no-check":
            return self.error(403, "XSRF check failed")
        uploads = request.files.getlist("file")
        if not uploads:
            raise _BadRequest(["The multipart/form-data parameter must be named 'file'."])
        me = self._me(request)
        tz = self._tz(request)
        with self.lock:
            issue = self._find_issue(key)
            created = []
            for upload in uploads:
                data = upload.read()
                att_id = str(10000 + len(self.__dict__.setdefault("_attachment_ids", [])))
                self.__dict__["_attachment_ids"].append(att_id)
                record = {
                    "id": att_id, "filename": upload.filename or "attachment",
                    "mimeType": upload.mimetype or "application/octet-stream",
                    "_data": data, "_issue": issue.key, "_author": me,
                    "_created_ms": _ms(self.clock()),
                }
                self.attachments[att_id] = record
                self.count_write(f"{issue.project}/{issue.key}")
                created.append(self._attachment_json(record, v, tz))
            return self.json(created)

    def get_attachment(self, request: Request, ver: str, att_id: str) -> Response:
        v = self._api(ver)
        with self.lock:
            record = self.attachments.get(att_id)
            if record is None:
                raise NotFound(f"The attachment with id '{att_id}' does not exist")
            return self.json(self._attachment_json(record, v, self._tz(request)))

    def delete_attachment(self, request: Request, ver: str, att_id: str) -> Response:
        with self.lock:
            record = self.attachments.pop(att_id, None)
            if record is None:
                raise NotFound(f"The attachment with id '{att_id}' does not exist")
            issue = self._find_issue(record["_issue"])
            self.count_write(f"{issue.project}/{issue.key}")
            return Response(status=204)

    def attachment_content(self, request: Request, att_id: str, filename: str) -> Response:
        with self.lock:
            record = self.attachments.get(att_id)
            if record is None:
                raise NotFound("no such attachment")
            return Response(record["_data"], mimetype=record["mimeType"])


# --- JQL tables --------------------------------------------------------------------------------------

_FIELD_ALIASES = {
    "type": "issuetype", "issuekey": "key", "updateddate": "updated", "createddate": "created",
    "resolved": "resolutiondate", "resolutiondate": "resolutiondate", "statuscategory": "statuscategory",
    "label": "labels",
}
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}
#: ORDER BY fields → integer components of the sort key (key compares project, then number).
_SORTABLE: dict[str, Callable[[_Issue], tuple[int, ...]]] = {
    "updated": lambda i: (i.updated_ms,),
    "updateddate": lambda i: (i.updated_ms,),
    "created": lambda i: (i.created_ms,),
    "createddate": lambda i: (i.created_ms,),
    "key": lambda i: (i.proj_rank, i.num),
    "issuekey": lambda i: (i.proj_rank, i.num),
    "id": lambda i: (i.id,),
    "priority": lambda i: (PRIORITIES.index(i.priority) if i.priority in PRIORITIES else 2,),
    "resolved": lambda i: (i.resolved_ms if i.resolved_ms is not None else _BIG,),
    "resolutiondate": lambda i: (i.resolved_ms if i.resolved_ms is not None else _BIG,),
}
