"""Jira Cloud and Data Center (with Jira Service Management) through the ``jira`` library.

Follow one issue: a paginator asks the search endpoint for a page (Cloud ``/search/jql`` with
``nextPageToken``; Data Center ``/search`` by ``startAt`` over a snapshot of ids) → the context
fetcher completes what the search truncates (comments beyond 20, changelogs beyond 20/100, the
CSAT rating) → ``normalize_issue`` turns the raw JSON into an ``Item`` → the sync engine enriches
it → ``JiraConnector.write`` PUTs only the changed writeback fields.

Every use of the ``jira`` library lives in ``_JiraClient``. Its ``ResilientSession`` runs with
``max_retries=0`` and gets momentos' one HTTP policy mounted (``mount_policy``), so a request is
retried in exactly one layer and every attempt is counted.

Platform facts this module relies on:

* Cloud removed ``/rest/api/{2,3}/search`` (410, CHANGE-2046); ``/rest/api/3/search/jql``
  pages with ``nextPageToken`` and returns only ids unless ``fields`` are listed
  (https://developer.atlassian.com/changelog/#CHANGE-2046; nextcloud/integration_jira#169).
* JQL reads string datetimes in the API user's time zone, so windows use epoch milliseconds
  (``updated >= 1700000000000``), which are absolute.
* Cloud search inlines at most 20 comments and 20 changelog histories per issue;
  ``POST /rest/api/3/changelog/bulkfetch`` returns the rest for up to 1000 issues a call
  (Jira Cloud OpenAPI ``BulkChangelogRequestBean``: issueIdsOrKeys, fieldIds, maxResults,
  nextPageToken).
* ``PUT /issue/{key}?notifyUsers=false`` needs admin or project-admin rights, else 403 "To
  discard the user notification either admin or project admin permissions are required."
  (reported by pycontribs/jira users; Atlassian's editIssue reference); a field missing from
  the edit screen is a 400 "Field 'customfield_X' cannot be set. It is not on the appropriate
  screen, or unknown." (JRASERVER-67013).
* Cloud's bulk edit, ``POST /rest/api/3/bulk/issues/fields``, sets the same values on up to 1000
  issues in one asynchronous task (``selectedIssueIdsOrKeys``, ``selectedActions``,
  ``editedFieldsInput`` with ``singleSelectFields``/``clearableNumberFields``/``richTextFields``,
  ``sendBulkNotification``), polled at ``GET /rest/api/3/bulk/queue/{taskId}`` until ``status``
  is COMPLETE, FAILED, CANCELLED or DEAD (Jira Cloud OpenAPI IssueBulkEditPayload and
  BulkOperationProgress; MrRefactoring/jira.js ``src/version3/models``). It needs the global
  "Make bulk changes" permission.
* Cloud limits writes per issue as well as per endpoint (``RateLimit-Reason:
  jira-per-issue-on-write``, Atlassian's "Build an app that respects rate limits"), so the
  connector counts the writes it sends to each issue and stops at ``max_writes_per_issue``.
* API v3 (Cloud) bodies and paragraph fields are ADF documents; a v3 write of a paragraph
  field must be ADF too. Data Center speaks v2 strings.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import requests
from pydantic import Field, field_validator, model_validator

from momentos.connectors.adf import body_text, clean_comment, text_to_adf
from momentos.connectors.base import (
    CheckProblem,
    Connector,
    FieldChange,
    Page,
    SourceSettings,
    WriteResult,
    resolve_credentials,
)
from momentos.connectors.http import PolicyAdapter, RequestCounter, error_for, mount_policy
from momentos.errors import (
    AuthError,
    BudgetExhausted,
    ConfigError,
    MomentosError,
    NotFoundError,
    PlatformError,
    TransientError,
)
from momentos.models import Comment, HistoryEvent, Item, parse_utc
from momentos.sandbox.world import INTEGRATION_USER

log = logging.getLogger("momentos.jira")

__all__ = ["DEFAULT_WRITEBACK_FIELDS", "JiraConnector", "JiraSettings", "normalize_issue"]

#: Logical writeback field → Jira custom field NAME (ids differ per site and are looked up).
DEFAULT_WRITEBACK_FIELDS: dict[str, str] = {
    "moment": "Relationship moment",
    "score": "Experience score",
    "signals": "Experience signals",
}
#: How an admin creates each writeback field (for ``check`` fixes).
_FIELD_TYPES = {"moment": "Select List (single choice)", "score": "Number", "signals": "Paragraph"}
_MOMENT_OPTIONS = ("operation", "evolution", "innovation")
_SYSTEM_FIELDS = [
    "summary", "description", "issuetype", "project", "status", "priority", "reporter",
    "assignee", "created", "updated", "resolutiondate", "labels", "components", "comment",
]
#: Custom field types read for context, by the tail of their ``schema.custom``.
_SLA_TYPE = "sd-sla-field"
_FEEDBACK_TYPE = "sd-request-feedback"
_PARTICIPANTS_TYPE = "sd-request-participants"
_REQUEST_TYPE_TYPE = "vp-origin"
_TEAM_TYPE = "atlassian-team"
#: Changelog fields that become history events: Jira field id → normalized name.
_TRACKED = {"assignee": "assigned_to", "status": "state", "priority": "priority"}
_NOT_ON_SCREEN = "not on the appropriate screen"
_NOTIFY_DENIED = "discard the user notification"
_CLOUD_PAGE_CAP = 100  # /search/jql returns at most 100 issues a page when fields are asked
_DC_SNAPSHOT_PAGE = 1000  # Data Center's maxResults cap (jira.search.views.default.max)
_BULK_CHANGELOG_ISSUES = 1000
_BULK_EDIT_ISSUES = 1000  # bulk edit takes up to 1000 issues and 200 fields a request


def _unbalanced(jql: str) -> str:
    """Why a JQL fragment cannot be wrapped in parentheses safely ("" when it can): a
    parenthesis closed before it was opened or left open, or a quote left open."""
    depth = 0
    quote = ""
    escaped = False
    for char in jql:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return "closes a parenthesis it did not open"
    if quote:
        return f"leaves a {quote} quote open"
    if depth:
        return "leaves a parenthesis open"
    return ""


class JiraSettings(SourceSettings):
    """A Jira source. Example::

        - name: jira
          type: jira
          url: https://acme.atlassian.net
          auth: {username: momentos@acme.com, password_env: JIRA_API_TOKEN}
          flavor: auto              # auto | cloud | datacenter (auto asks serverInfo)
          projects: [SD, APP, PMO]
          jql: "labels != internal" # optional admin filter, no ORDER BY
    """

    type: Literal["jira"] = "jira"
    flavor: Literal["auto", "cloud", "datacenter"] = Field(
        "auto", description="auto = the server's serverInfo deploymentType decides."
    )
    projects: list[str] = Field(..., min_length=1, description="Project keys to sync.")
    jql: str | None = Field(
        None, description="Extra JQL restriction, ANDed with the project and time window."
    )
    customer_fields: list[str] = Field(
        default_factory=lambda: ["Organizations", "Business area"],
        description="Field names that hold the customer; the first non-empty wins.",
    )
    agent_groups: list[str] = Field(
        default_factory=lambda: ["jira-servicedesk-users", "it-agents"],
        description="Groups whose members are IT agents (comment author roles).",
    )
    page_size: int = Field(100, ge=1, le=1000)
    bulk_edit: bool = Field(
        False,
        description="Cloud only: write issues that get identical values with one bulk edit task "
        "(needs the global 'Make bulk changes' permission); other issues still get a PUT each.",
    )
    bulk_poll_interval_s: float = Field(1.0, gt=0, le=60, description="Wait between task polls.")
    bulk_timeout_s: float = Field(600.0, gt=0, description="Give up waiting for a bulk task.")
    write_workers: int = Field(
        4, ge=1, le=16,
        description="Issues written at the same time, one PUT each (a PUT takes a round trip "
        "of a few hundred milliseconds on Jira Cloud); 1 writes them one after another. When "
        "Jira answers 429, every worker waits for its Retry-After.",
    )
    max_writes_per_issue: int = Field(
        5, ge=1, le=100,
        description="Writes sent to one issue in one run at most (Jira Cloud limits writes per "
        "issue); the rest wait for the next run.",
    )

    @field_validator("projects")
    @classmethod
    def _project_keys(cls, value: list[str]) -> list[str]:
        keys = [v.strip().upper() for v in value]
        bad = [k for k in keys if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,254}", k)]
        if bad:
            raise ValueError(f"not Jira project keys: {bad}")
        return list(dict.fromkeys(keys))

    @field_validator("jql")
    @classmethod
    def _no_order_by(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if re.search(r"\border\s+by\b", value, re.IGNORECASE):
            raise ValueError("must not contain ORDER BY: momentos orders by updated and key itself")
        problem = _unbalanced(value)
        if problem:
            # momentos wraps the filter in parentheses and ANDs it with the project and the
            # time window; a filter that closes them would read outside both.
            raise ValueError(problem)
        return value.strip()

    @model_validator(mode="after")
    def _default_writeback_names(self) -> JiraSettings:
        # An empty mapping means "the documented default names", not "write nothing":
        # turning writes off is ``writeback.enabled: false``.
        if not self.writeback.fields:
            self.writeback.fields = dict(DEFAULT_WRITEBACK_FIELDS)
        return self


# --- the library wrapper ---------------------------------------------------------------------------


def _import_jira() -> Any:
    import jira  # imported lazily: configs without a Jira source never pay for it

    return jira


class _JiraClient:
    """All use of the ``jira`` library: construction, searches and raw JSON calls, with every
    failure turned into a classified ``MomentosError``."""

    def __init__(self, settings: JiraSettings, counter: RequestCounter) -> None:
        jira = _import_jira()
        self._error_cls = jira.JIRAError
        creds = resolve_credentials(settings.auth, settings.name)
        auth: dict[str, Any] = {}
        if creds.token:
            auth["token_auth"] = creds.token
        elif creds.password is not None:
            auth["basic_auth"] = (creds.username or "", creds.password)
        self.base = settings.url
        self.api = "3" if settings.flavor == "cloud" else "2"
        self._library = jira.JIRA(
            server=settings.url,
            options={
                "verify": settings.verify,
                "rest_api_version": self.api,
                "check_update": False,
                "headers": {"User-Agent": "momentos", "Accept": "application/json"},
            },
            # The policy adapter retries; two retry layers would multiply waits and requests.
            max_retries=0,
            # serverInfo is asked below, after the policy is mounted, so it is counted too.
            get_server_info=False,
            timeout=(settings.http.connect_timeout_s, settings.http.read_timeout_s),
            **auth,
        )
        self.session: requests.Session = self._library._session
        mount_policy(
            self.session,
            PolicyAdapter(settings.http, counter, verify=settings.verify, platform="jira"),
        )
        self.server_info: dict[str, Any] = {}

    def connect(self, flavor: str) -> bool:
        """Read serverInfo; return True for Cloud. ``flavor`` "auto" trusts deploymentType."""
        info = self.call("read serverInfo", self._library.server_info)
        self.server_info = info if isinstance(info, dict) else {}
        deployment = str(self.server_info.get("deploymentType") or "")
        cloud = deployment == "Cloud" if flavor == "auto" else flavor == "cloud"
        if flavor != "auto" and (deployment == "Cloud") != cloud:
            log.warning("jira: configured flavor %s but the server reports %r", flavor, deployment)
        # What JIRA(get_server_info=True) would have set: search_issues routes Cloud to
        # /search/jql by deploymentType.
        self._library.deploymentType = deployment or ("Cloud" if cloud else "Server")
        try:
            self._library._version = tuple(self.server_info.get("versionNumbers") or (0, 0, 0))
        except TypeError:
            self._library._version = (0, 0, 0)
        self.api = "3" if cloud else "2"
        self._library._options["rest_api_version"] = self.api
        return cloud

    def prime_field_cache(self, fields: list[dict[str, Any]]) -> None:
        """Hand the library the /field answer we already have, so it does not fetch it again to
        translate field names in searches (same mapping it builds itself: clause name → id)."""
        cache: dict[str, str] = {}
        for f in fields:
            for name in f.get("clauseNames") or []:
                cache[name] = f["id"]
        if cache:
            self._library._fields_cache_value = cache

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._error_cls as exc:
            raise self._classify(exc, what) from None
        except requests.RequestException as exc:
            raise TransientError(f"jira: {what} failed: {type(exc).__name__}") from None

    def _classify(self, exc: Any, what: str) -> MomentosError:
        response = getattr(exc, "response", None)
        if isinstance(response, requests.Response):
            return error_for(response, f"jira: {what}")
        return PlatformError(f"jira: {what} failed: {getattr(exc, 'text', '') or type(exc).__name__}")

    def url(self, path: str) -> str:
        return f"{self.base}/rest/api/{self.api}/{path.lstrip('/')}"

    def get(self, what: str, url: str, params: dict[str, Any] | None = None) -> Any:
        response = self.call(what, self.session.get, url, params=params)
        return response.json() if response.content else None

    def post(self, what: str, url: str, body: dict[str, Any]) -> Any:
        response = self.call(what, self.session.post, url, data=json.dumps(body))
        return response.json() if response.content else None

    def put_raw(self, url: str, body: dict[str, Any], params: dict[str, str]) -> requests.Response:
        """PUT returning the response whatever its status (the writer reads 400/403 bodies)."""
        return self.send_raw("PUT", url, body, params)

    def send_raw(self, method: str, url: str, body: dict[str, Any],
                 params: dict[str, str] | None = None) -> requests.Response:
        """A write returning the response whatever its status (the writer reads 400/403)."""
        try:
            return self.session.request(method, url, data=json.dumps(body), params=params or {})
        except self._error_cls as exc:
            response = getattr(exc, "response", None)
            if isinstance(response, requests.Response):
                return response
            raise PlatformError(f"jira: {method} {url} failed") from None
        except requests.RequestException as exc:
            raise TransientError(f"jira: {method} failed: {type(exc).__name__}") from None

    def search_cloud(self, jql: str, token: str | None, size: int, fields: list[str],
                     expand: str | None) -> dict[str, Any]:
        return self.call(
            "search issues", self._library.enhanced_search_issues, jql, nextPageToken=token,
            maxResults=size, fields=list(fields), expand=expand, json_result=True,
        )

    def search_dc(self, jql: str, start: int, size: int, fields: list[str],
                  expand: str | None, validate: bool = True) -> dict[str, Any]:
        return self.call(
            "search issues", self._library.search_issues, jql, startAt=start, maxResults=size,
            validate_query=validate, fields=list(fields), expand=expand, json_result=True,
        )

    def close(self) -> None:
        self.session.close()


# --- paginators ------------------------------------------------------------------------------------


@dataclass
class _RawPage:
    issues: list[dict[str, Any]]
    total: int | None = None
    #: (updated, id) to commit after this page, when the paginator knows better than the issues
    #: (Data Center: the snapshot's values, immune to edits made while the run pages).
    cursor: tuple[datetime, str] | None = None


class CloudPaginator:
    """``/search/jql`` pages linked by ``nextPageToken``; a token seen twice is a loop."""

    def __init__(self, client: _JiraClient, jql: str, fields: list[str], size: int) -> None:
        self.client = client
        self.jql = jql
        self.fields = fields
        self.size = min(size, _CLOUD_PAGE_CAP)

    def pages(self) -> Iterator[_RawPage]:
        token: str | None = None
        seen: set[str] = set()
        while True:
            data = self.client.search_cloud(self.jql, token, self.size, self.fields, "changelog")
            yield _RawPage(list(data.get("issues") or []))
            nxt = data.get("nextPageToken")
            if data.get("isLast", nxt is None) or not nxt:
                return
            if nxt in seen:
                raise PlatformError(
                    "jira: the search returned a page token it had already returned",
                    hint="the paging did not advance; stopping instead of looping",
                )
            seen.add(nxt)
            token = nxt


class DataCenterPaginator:
    """Data Center pages by offset, and offsets shift when the run's own writes move issues out
    of ``ORDER BY updated``. So the window is first listed as (id, updated) — cheap, 1000 a
    request — and then fetched ``page_size`` ids at a time with ``id in (…)``."""

    def __init__(self, client: _JiraClient, jql: str, fields: list[str], size: int,
                 known: Callable[[list[tuple[str, datetime | None]]], set[str]] | None) -> None:
        self.client = client
        self.jql = jql
        self.fields = fields
        self.size = size
        self.known = known
        self.skipped_known = 0

    def snapshot(self) -> list[tuple[str, datetime | None]]:
        entries: list[tuple[str, datetime | None]] = []
        start = 0
        while True:
            data = self.client.search_dc(self.jql, start, _DC_SNAPSHOT_PAGE, ["updated"], None)
            issues = data.get("issues") or []
            entries.extend((str(i["id"]), parse_utc((i.get("fields") or {}).get("updated"))) for i in issues)
            total = int(data.get("total") or 0)
            # An empty page ends the listing: the offset only ever advances by what came back.
            if not issues or start + len(issues) >= total:
                return entries
            start += len(issues)

    def pages(self) -> Iterator[_RawPage]:
        entries = self.snapshot()
        for offset in range(0, len(entries), self.size):
            chunk = entries[offset : offset + self.size]
            last_id, last_updated = chunk[-1]
            cursor = (last_updated, last_id) if last_updated else None
            known = self.known(chunk) if self.known else set()
            self.skipped_known += len(known)
            wanted = [i for i, _ in chunk if i not in known]
            issues: list[dict[str, Any]] = []
            if wanted:
                jql = f"id in ({', '.join(wanted)}) ORDER BY updated ASC, key ASC"
                # validateQuery off: an issue deleted since the listing would otherwise fail
                # the whole page ("An issue with key … does not exist for field 'id'").
                data = self.client.search_dc(jql, 0, len(wanted), self.fields, "changelog", validate=False)
                by_id = {str(i["id"]): i for i in data.get("issues") or []}
                issues = [by_id[i] for i in wanted if i in by_id]
            yield _RawPage(issues, total=len(entries) - self.skipped_known, cursor=cursor)


# --- normalization -----------------------------------------------------------------------------------


@dataclass
class _Context:
    """What the normalizer needs to know about the site, read once per run."""

    base_url: str
    cloud: bool
    me: str  # my accountId (Cloud) or user name (DC)
    login: str  # how the sync engine names the integration user
    fields: dict[str, dict[str, Any]]  # field id → /field entry
    writeback_ids: dict[str, str]  # logical → field id
    customer_ids: list[str]
    agents: set[str]
    done_statuses: set[str]  # status ids and lower-cased names in the "done" category
    #: Custom field ids by the tail of their type (``sd-sla-field`` → [...]).
    by_type: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.by_type:
            for fid, f in self.fields.items():
                custom = str((f.get("schema") or {}).get("custom") or "")
                if custom:
                    self.by_type.setdefault(custom.rsplit(":", 1)[-1], []).append(fid)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _when(value: Any) -> datetime:
    """A sortable timestamp (unparseable ones first)."""
    return parse_utc(value) or _EPOCH


def _user_ref(user: Any, cloud: bool) -> str:
    if not isinstance(user, dict):
        return ""
    return str(user.get("accountId") if cloud else (user.get("name") or user.get("key")) or "")


def _display(value: Any) -> Any:
    """A custom field value as something a mapping rule can compare: option → its value,
    organizations → names, user → display name, ADF → text."""
    if isinstance(value, list):
        return [_display(v) for v in value]
    if isinstance(value, dict):
        if value.get("type") == "doc":
            return body_text(value)
        if "requestType" in value and isinstance(value["requestType"], dict):
            return value["requestType"].get("name")
        for key in ("value", "displayName", "name", "title", "rating"):
            if key in value:
                return value[key]
        return value
    return value


def _customer(value: Any) -> str:
    shown = _display(value)
    if isinstance(shown, list):
        return ", ".join(str(s) for s in shown if s)
    return "" if shown is None else str(shown).strip()


def _sla_breached(values: list[Any]) -> bool | None:
    breached: bool | None = None
    for sla in values:
        if not isinstance(sla, dict):
            continue
        cycles = list(sla.get("completedCycles") or [])
        if isinstance(sla.get("ongoingCycle"), dict):
            cycles.append(sla["ongoingCycle"])
        for cycle in cycles:
            if isinstance(cycle, dict) and "breached" in cycle:
                breached = bool(breached) or bool(cycle["breached"])
    return breached


def _kind(issuetype: str) -> str:
    lowered = issuetype.strip().lower()
    return "request" if "request" in lowered else lowered


def normalize_issue(
    raw: dict[str, Any],
    ctx: _Context,
    source: str,
    comments: list[dict[str, Any]] | None = None,
    histories: list[dict[str, Any]] | None = None,
    survey_rating: int | None = None,
) -> Item:
    """One raw issue (search JSON) plus its complete comments/histories → an ``Item``."""
    f = raw.get("fields") or {}
    cloud = ctx.cloud
    key = str(raw.get("key") or "")
    project = (f.get("project") or {}).get("key") or key.rpartition("-")[0]
    reporter = f.get("reporter") or {}
    reporter_ref = _user_ref(reporter, cloud)
    by_type = ctx.by_type
    participants: set[str] = set()
    for fid in by_type.get(_PARTICIPANTS_TYPE, []):
        for user in f.get(fid) or []:
            participants.add(_user_ref(user, cloud))

    def role(author: Any) -> str:
        ref = _user_ref(author, cloud)
        if ref and (ref == reporter_ref or ref in participants):
            return "requester"
        if ref and ref in ctx.agents:
            return "agent"
        return "other"

    def login(author: Any) -> str:
        if not isinstance(author, dict):
            return ""
        if _user_ref(author, cloud) == ctx.me:
            return ctx.login  # the engine recognises its own writes by this name
        return str(author.get("name") or author.get("emailAddress") or author.get("accountId") or "")

    raw_comments = comments if comments is not None else ((f.get("comment") or {}).get("comments") or [])
    item_comments = [
        Comment(
            text=clean_comment(c.get("body")),
            author=str((c.get("author") or {}).get("displayName") or ""),
            author_role=role(c.get("author")),  # type: ignore[arg-type]
            created=parse_utc(c.get("created")),
            internal=c.get("jsdPublic") is False or bool(c.get("visibility")),
        )
        for c in sorted(raw_comments, key=lambda c: _when(c.get("created")))
    ]

    raw_histories = histories if histories is not None else ((raw.get("changelog") or {}).get("histories") or [])
    ordered = sorted(raw_histories, key=lambda h: (_when(h.get("created")), str(h.get("id"))))
    field_names = {fid: logical for logical, fid in ctx.writeback_ids.items()}
    team_ids = set(by_type.get(_TEAM_TYPE, []))
    history: list[HistoryEvent] = []
    reopens = assignee_moves = team_moves = 0
    for h in ordered:
        at = parse_utc(h.get("created"))
        by = login(h.get("author"))
        for change in h.get("items") or []:
            fid = str(change.get("fieldId") or change.get("field") or "")
            name = _TRACKED.get(fid) or field_names.get(fid)
            if name is None and (fid in team_ids or change.get("field") == "Team"):
                name = "assignment_group"
            if name is None:
                continue
            old, new = change.get("fromString"), change.get("toString")
            history.append(HistoryEvent(name, old, new, at, by))
            if fid == "status":
                was_done = str(change.get("from")) in ctx.done_statuses or str(old or "").lower() in ctx.done_statuses
                now_done = str(change.get("to")) in ctx.done_statuses or str(new or "").lower() in ctx.done_statuses
                if was_done and not now_done:
                    reopens += 1
            elif fid == "assignee" and (change.get("from") or old):
                assignee_moves += 1
            elif name == "assignment_group" and (change.get("from") or old):
                team_moves += 1
    updated_by = login(ordered[-1].get("author")) if ordered else ""
    # Reassignment means a hand-over between teams where the site tracks teams (as ServiceNow's
    # reassignment_count counts group changes); otherwise between people.
    has_team_history = any(e.field == "assignment_group" for e in history)
    reassignments = team_moves if has_team_history else assignee_moves

    customer = ""
    for fid in ctx.customer_ids:
        customer = _customer(f.get(fid))
        if customer:
            break
    team = ""
    for fid in team_ids:
        team = str(_display(f.get(fid)) or "") if f.get(fid) else ""
        if team:
            break
    request_type = ""
    for fid in by_type.get(_REQUEST_TYPE_TYPE, []):
        shown = _display(f.get(fid))
        if shown:
            request_type = str(shown)
            break
    if survey_rating is None:
        for fid in by_type.get(_FEEDBACK_TYPE, []):
            value = f.get(fid)
            if isinstance(value, dict) and value.get("rating"):
                survey_rating = int(value["rating"])
                break
    components = [c.get("name", "") for c in f.get("components") or [] if isinstance(c, dict)]
    status = f.get("status") or {}
    current: dict[str, Any] = {}
    for logical, fid in ctx.writeback_ids.items():
        value = f.get(fid)
        if logical == "moment":
            current[logical] = value.get("value") if isinstance(value, dict) else value
        elif logical == "signals":
            current[logical] = body_text(value) if value is not None else None
        else:
            current[logical] = value
    custom_values = {
        ctx.fields[fid]["name"]: _display(value)
        for fid, value in f.items()
        if fid.startswith("customfield_") and fid in ctx.fields
    }
    return Item(
        source=source,
        platform="jira",
        container=str(project),
        id=str(raw.get("id") or ""),
        key=key,
        kind=_kind(str((f.get("issuetype") or {}).get("name") or "")),
        url=f"{ctx.base_url}/browse/{key}",
        title=str(f.get("summary") or ""),
        description=clean_comment(f.get("description")),
        requester=str(reporter.get("displayName") or ""),
        customer=customer,
        assignment_group=team,
        assignee=str((f.get("assignee") or {}).get("displayName") or ""),
        service=components[0] if components else "",
        labels=[str(x) for x in f.get("labels") or []],
        request_type=request_type,
        state=str(status.get("name") or ""),
        priority=str((f.get("priority") or {}).get("name") or ""),
        created=parse_utc(f.get("created")),
        updated=parse_utc(f.get("updated")),
        resolved=parse_utc(f.get("resolutiondate")),
        updated_by=updated_by,
        comments=item_comments,
        history=history,
        sla_breached=_sla_breached([f.get(fid) for fid in by_type.get(_SLA_TYPE, [])]),
        survey_score=(survey_rating - 1) / 4 if survey_rating else None,
        reopen_count=reopens,
        reassignment_count=reassignments,
        current=current,
        fields=custom_values,
    )


# --- the connector -----------------------------------------------------------------------------------


@dataclass
class _Site:
    """What a run learns about the site once: flavour, fields, statuses, agents, projects."""

    cloud: bool
    me: dict[str, Any]
    fields: list[dict[str, Any]]
    by_id: dict[str, dict[str, Any]]
    by_name: dict[str, list[dict[str, Any]]]
    done_statuses: set[str] = field(default_factory=set)
    agents: set[str] | None = None
    project_types: dict[str, str] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)  # ambiguous field names already reported


#: An issue key as ``fetch`` accepts it (``OPS-12``): nothing that could extend a JQL query.
_ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")


class JiraConnector(Connector):
    """Pulls Jira issues as items and writes the three writeback fields back."""

    platform = "jira"
    Settings = JiraSettings

    def __init__(self, settings: SourceSettings, counter: RequestCounter | None = None) -> None:
        super().__init__(settings, counter)
        assert isinstance(settings, JiraSettings)
        self.settings: JiraSettings = settings
        self._client: _JiraClient | None = None
        self._site: _Site | None = None
        self._notify_flag = not settings.writeback.notify_users  # send notifyUsers=false
        #: Whether a PUT has answered yet: the first one of a run goes alone, so a user who
        #: may not suppress notifications learns it from one 403 and not one per worker.
        self._put_answered = False
        self._bulk_changelog = True  # Cloud's /changelog/bulkfetch answers (until it 404s)
        self._feedback_readable = True  # JSM's feedback endpoint is allowed (until a 403)
        #: Writes sent per issue key in this run (a retried write shows up here); capped by
        #: ``max_writes_per_issue``.
        self.write_counts: Counter[str] = Counter()
        self._bulk = settings.bulk_edit  # until the site says no (403, or not Cloud)
        self._option_ids: dict[str, dict[str, str]] = {}  # field id → option value → option id
        #: How a bulk task is waited for between polls. Not a retry (the policy retries): the
        #: task runs on the server and only a poll tells when it ends; bounded by bulk_timeout_s.
        self._wait: Callable[[float], None] = time.sleep

    # --- plumbing ---------------------------------------------------------------------------------
    @property
    def client(self) -> _JiraClient:
        if self._client is None:
            self._client = _JiraClient(self.settings, self.counter)
        return self._client

    def site(self) -> _Site:
        """Connect and read what every page needs (once per run)."""
        if self._site is None:
            client = self.client
            cloud = client.connect(self.settings.flavor)
            me = client.get("read myself", client.url("myself")) or {}
            fields = client.get("read fields", client.url("field")) or []
            client.prime_field_cache(fields)
            by_name: dict[str, list[dict[str, Any]]] = {}
            for f in fields:
                by_name.setdefault(str(f.get("name", "")).lower(), []).append(f)
            self._site = _Site(cloud, me, fields, {f["id"]: f for f in fields}, by_name)
        return self._site

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _field(self, name: str) -> dict[str, Any] | None:
        """A field by name; custom fields win over system ones, and a duplicated name warns."""
        site = self.site()
        matches = sorted(site.by_name.get(name.strip().lower(), []), key=lambda f: not f.get("custom"))
        if len(matches) > 1 and name not in site.warned:
            site.warned.add(name)
            log.warning("jira: %d fields are named %r; using %s", len(matches), name, matches[0]["id"])
        return matches[0] if matches else None

    def _writeback_ids(self) -> dict[str, str]:
        """Platform ids of the writeback fields: custom fields only. A system field people own
        (summary, description, labels, assignee) is never a writeback target, whatever the
        config names."""
        ids = {}
        for logical, name in self.settings.writeback.fields.items():
            found = self._field(name)
            if found is not None and found.get("custom"):
                ids[logical] = found["id"]
        return ids

    def _me_ref(self) -> str:
        me = self.site().me
        return str(me.get("accountId") if self.site().cloud else me.get("name") or me.get("key") or "")

    def _context(self) -> _Context:
        site = self.site()
        if not site.done_statuses:
            client = self.client
            statuses = client.get("read statuses", client.url("status")) or []
            for s in statuses:
                if ((s.get("statusCategory") or {}).get("key")) == "done":
                    site.done_statuses.update({str(s.get("id")), str(s.get("name", "")).lower()})
        if site.agents is None:
            site.agents = self._agents()
        customer_ids = [f["id"] for name in self.settings.customer_fields if (f := self._field(name))]
        return _Context(
            base_url=self.settings.url, cloud=site.cloud, me=self._me_ref(),
            # The sync engine names its own account ``auth.username or INTEGRATION_USER`` when it
            # tells our writes from people's; our own changes must carry that same name.
            login=self.settings.auth.username or INTEGRATION_USER,
            fields=site.by_id, writeback_ids=self._writeback_ids(), customer_ids=customer_ids,
            agents=site.agents, done_statuses=site.done_statuses,
        )

    def _agents(self) -> set[str]:
        """Members of the agent groups (account ids on Cloud, user names on DC)."""
        client = self.client
        cloud = self.site().cloud
        agents: set[str] = set()
        for group in self.settings.agent_groups:
            start = 0
            while True:
                try:
                    data = client.get(
                        f"read members of group {group}", client.url("group/member"),
                        {"groupname": group, "startAt": start, "maxResults": 50},
                    ) or {}
                except NotFoundError:
                    log.warning("jira: agent group %r does not exist; check agent_groups", group)
                    break
                except AuthError:
                    # Reading group members needs "Browse users and groups"; without it every
                    # non-requester author is "other", which is worse but not fatal.
                    log.warning("jira: the user may not read members of group %r; comment "
                                "authors outside the request count as 'other'", group)
                    break
                values = data.get("values") or []
                agents.update(_user_ref(u, cloud) for u in values)
                if data.get("isLast", True) or not values:
                    break
                start += len(values)
        agents.discard("")
        return agents

    def _search_fields(self) -> list[str]:
        """The explicit field list for searches (never *all: unread fields cost time)."""
        ids = list(_SYSTEM_FIELDS)
        wanted_types = {_SLA_TYPE, _FEEDBACK_TYPE, _PARTICIPANTS_TYPE, _REQUEST_TYPE_TYPE, _TEAM_TYPE}
        for f in self.site().fields:
            custom = str((f.get("schema") or {}).get("custom") or "")
            if custom.rsplit(":", 1)[-1] in wanted_types:
                ids.append(f["id"])
        ids += list(self._writeback_ids().values())
        ids += [f["id"] for name in self.settings.customer_fields if (f := self._field(name))]
        return list(dict.fromkeys(ids))

    # --- reading ------------------------------------------------------------------------------------
    def streams(self) -> list[str]:
        """One watermarked stream per project, so a slow project never holds back another."""
        return list(self.settings.projects)

    def jql(self, project: str, since: datetime | None, until: datetime | None) -> str:
        """``(<admin jql>) AND project = "X" AND updated >= <ms> AND updated <= <ms>``, ordered
        by a unique key. Epoch milliseconds, because string dates are read in the API user's
        zone. The upper bound keeps issues changed during the run (our own writes included)
        for the next run, whose window starts at or before it."""
        parts = []
        if self.settings.jql:
            parts.append(f"({self.settings.jql})")
        parts.append(f'project = "{project}"')
        if since is not None:
            parts.append(f"updated >= {int(since.timestamp() * 1000)}")
        if until is not None:
            parts.append(f"updated <= {int(until.timestamp() * 1000)}")
        return " AND ".join(parts) + " ORDER BY updated ASC, key ASC"

    def pull(self, stream: str, since: datetime | None, until: datetime) -> Iterator[Page]:
        site = self.site()
        # Statuses, agent groups and the project type are only needed to build items; a run
        # that finds nothing new (the common case every few minutes) never asks for them.
        ctx: _Context | None = None
        fields = self._search_fields()
        jql = self.jql(stream, since, until)
        if site.cloud:
            paginator: CloudPaginator | DataCenterPaginator = CloudPaginator(
                self.client, jql, fields, self.settings.page_size)
        else:
            paginator = DataCenterPaginator(self.client, jql, fields, self.settings.page_size, self.known)
        for raw_page in paginator.pages():
            issues = raw_page.issues
            cursor = raw_page.cursor
            if cursor is None and issues:
                last = issues[-1]
                updated = parse_utc((last.get("fields") or {}).get("updated"))
                cursor = (updated, str(last["id"])) if updated else None
            if site.cloud and self.known is not None and issues:
                pairs = [(str(i["id"]), parse_utc((i.get("fields") or {}).get("updated"))) for i in issues]
                seen = self.known(pairs)
                issues = [i for i in issues if str(i["id"]) not in seen]
            items: list[Item] = []
            rejected: list[tuple[str, str, str]] = []
            if issues:
                ctx = ctx or self._context()
                service_desk = self._project_type(stream, issues[0]) == "service_desk"
                items, rejected = self._normalize_page(issues, ctx, service_desk)
            yield Page(items, cursor, total=raw_page.total, rejected=rejected)

    def fetch(self, key: str) -> Item | None:
        """The issue ``key`` of a configured project (within the admin ``jql``), built as
        ``pull`` builds it. Its existence is asked first (``GET /issue/{key}``, 404 = none),
        because a search naming a missing key is refused; nothing is written."""
        if not _ISSUE_KEY.match(key):
            return None
        site = self.site()
        client = self.client
        try:
            found = client.get(f"read issue {key}", client.url(f"issue/{key}"), {"fields": "project"})
        except NotFoundError:
            return None
        project = str((((found or {}).get("fields") or {}).get("project") or {}).get("key") or "")
        if project not in self.settings.projects:
            return None
        parts = [f"({self.settings.jql})"] if self.settings.jql else []
        parts += [f'project = "{project}"', f'key = "{found["key"]}"']
        jql = " AND ".join(parts)
        fields = self._search_fields()
        if site.cloud:
            data = client.search_cloud(jql, None, 1, fields, "changelog")
        else:
            data = client.search_dc(jql, 0, 1, fields, "changelog")
        issues = list((data or {}).get("issues") or [])
        if not issues:
            return None
        service_desk = self._project_type(project, issues[0]) == "service_desk"
        items, rejected = self._normalize_page(issues[:1], self._context(), service_desk)
        if rejected:
            raise PlatformError(f"jira: issue {key} {rejected[0][2]}")
        return items[0] if items else None

    def _project_type(self, key: str, sample: dict[str, Any] | None = None) -> str:
        """``projectTypeKey`` of a project: from an issue's ``project`` field when the search
        returned it (it does, on both flavours), else from ``/project/{key}``."""
        site = self.site()
        if key not in site.project_types and sample is not None:
            project = (sample.get("fields") or {}).get("project") or {}
            if project.get("key") == key and project.get("projectTypeKey"):
                site.project_types[key] = str(project["projectTypeKey"])
        if key not in site.project_types:
            client = self.client
            data = client.get(f"read project {key}", client.url(f"project/{key}")) or {}
            site.project_types[key] = str(data.get("projectTypeKey") or "")
        return site.project_types[key]

    def _normalize_page(
        self, issues: list[dict[str, Any]], ctx: _Context, service_desk: bool
    ) -> tuple[list[Item], list[tuple[str, str, str]]]:
        comments = self._complete_comments(issues)
        histories = self._complete_histories(issues, ctx)
        ratings = self._ratings(issues, ctx) if service_desk else {}
        items: list[Item] = []
        rejected: list[tuple[str, str, str]] = []
        for raw in issues:
            issue_id = str(raw.get("id"))
            try:
                items.append(normalize_issue(
                    raw, ctx, self.settings.name, comments.get(issue_id), histories.get(issue_id),
                    ratings.get(issue_id),
                ))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                rejected.append((issue_id, str(raw.get("key") or ""), f"cannot normalize: {type(exc).__name__}: {exc}"[:300]))
        return items, rejected

    def _complete_comments(self, issues: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """All comments for issues whose inline list was truncated (Cloud inlines 20)."""
        client = self.client
        out: dict[str, list[dict[str, Any]]] = {}
        for raw in issues:
            inline = (raw.get("fields") or {}).get("comment") or {}
            shown = inline.get("comments") or []
            total = int(inline.get("total") or len(shown))
            if total <= len(shown):
                continue
            collected: list[dict[str, Any]] = []
            while len(collected) < total:
                data = client.get(
                    f"read comments of {raw.get('key')}", client.url(f"issue/{raw['id']}/comment"),
                    {"startAt": len(collected), "maxResults": 1000, "orderBy": "created"},
                ) or {}
                batch = data.get("comments") or []
                if not batch:
                    break
                collected.extend(batch)
                total = int(data.get("total") or total)
            out[str(raw["id"])] = collected
        return out

    def _complete_histories(self, issues: list[dict[str, Any]], ctx: _Context) -> dict[str, list[dict[str, Any]]]:
        """Full changelogs where the inline one was truncated: Cloud's bulk fetch (only the
        fields we track, up to 1000 issues a call) or Data Center's paged changelog."""
        truncated = []
        for raw in issues:
            changelog = raw.get("changelog") or {}
            shown = changelog.get("histories") or []
            if int(changelog.get("total") or len(shown)) > len(shown):
                truncated.append(raw)
        if not truncated:
            return {}
        if ctx.cloud and self._bulk_changelog:
            try:
                return self._bulk_histories(truncated, ctx)
            except NotFoundError:
                log.warning("jira: changelog bulk fetch is not available; reading changelogs one "
                            "issue at a time")
                self._bulk_changelog = False
        return {str(raw["id"]): self._paged_histories(raw) for raw in truncated}

    def _bulk_histories(self, truncated: list[dict[str, Any]], ctx: _Context) -> dict[str, list[dict[str, Any]]]:
        """Cloud: the tracked fields' histories of up to 1000 issues a call, merged with the
        inline (most recent, all-field) histories."""
        client = self.client
        out: dict[str, list[dict[str, Any]]] = {}
        tracked = list(_TRACKED) + list(ctx.writeback_ids.values()) + ctx.by_type.get(_TEAM_TYPE, [])
        for offset in range(0, len(truncated), _BULK_CHANGELOG_ISSUES):
            chunk = truncated[offset : offset + _BULK_CHANGELOG_ISSUES]
            token: str | None = None
            seen: set[str] = set()
            while True:
                body: dict[str, Any] = {
                    "issueIdsOrKeys": [str(r["id"]) for r in chunk],
                    "fieldIds": tracked, "maxResults": 1000,
                }
                if token:
                    body["nextPageToken"] = token
                data = client.post("read changelogs", client.url("changelog/bulkfetch"), body) or {}
                for entry in data.get("issueChangeLogs") or []:
                    out.setdefault(str(entry.get("issueId")), []).extend(entry.get("changeHistories") or [])
                token = data.get("nextPageToken")
                if not token:
                    break
                if token in seen:
                    raise PlatformError("jira: the changelog bulk fetch repeated a page token")
                seen.add(token)
        # The bulk answer holds only tracked fields; the inline histories (the most recent
        # ones) keep every field, so merge both by history id.
        for raw in truncated:
            merged = {str(h.get("id")): h for h in out.get(str(raw["id"]), [])}
            for h in (raw.get("changelog") or {}).get("histories") or []:
                merged[str(h.get("id"))] = h
            out[str(raw["id"])] = list(merged.values())
        return out

    def _paged_histories(self, raw: dict[str, Any]) -> list[dict[str, Any]]:
        """Every history of one issue from ``/issue/{id}/changelog`` (100 a page)."""
        client = self.client
        collected: list[dict[str, Any]] = []
        while True:
            data = client.get(
                f"read changelog of {raw.get('key')}", client.url(f"issue/{raw['id']}/changelog"),
                {"startAt": len(collected), "maxResults": 100},
            ) or {}
            values = data.get("values") or []
            collected.extend(values)
            if data.get("isLast", True) or not values:
                return collected

    def _ratings(self, issues: list[dict[str, Any]], ctx: _Context) -> dict[str, int]:
        """CSAT ratings from JSM's feedback endpoint, only when the Satisfaction field is not
        there to read it inline, and only for resolved requests (the survey is sent then)."""
        if ctx.by_type.get(_FEEDBACK_TYPE) or not self._feedback_readable:
            return {}
        client = self.client
        out: dict[str, int] = {}
        for raw in issues:
            category = (((raw.get("fields") or {}).get("status") or {}).get("statusCategory") or {}).get("key")
            if category != "done":
                continue
            try:
                data = client.get(
                    f"read feedback of {raw.get('key')}",
                    f"{client.base}/rest/servicedeskapi/request/{raw['key']}/feedback",
                ) or {}
            except NotFoundError:
                continue  # no survey answer
            except AuthError:
                log.warning("jira: the user may not read JSM feedback; survey scores stay empty")
                self._feedback_readable = False
                break
            rating = data.get("rating")
            if isinstance(rating, (int, float)) and 1 <= rating <= 5:
                out[str(raw["id"])] = int(rating)
        return out

    # --- writing ---------------------------------------------------------------------------------------
    def write(self, changes: list[FieldChange]) -> list[WriteResult]:
        """Write the changed fields of each issue: a PUT per issue with only its changed fields,
        or (``bulk_edit`` on Cloud) one bulk task per group of issues that get identical values."""
        if not changes:
            return []
        # The allowlist is checked for the whole batch before anything is sent.
        for change in changes:
            self.allowed_field(change.field)
        by_item: dict[str, list[FieldChange]] = {}
        for change in changes:
            by_item.setdefault(change.item.id, []).append(change)
        ids = self._writeback_ids()
        client = self.client
        results: dict[str, WriteResult] = {}
        pending: dict[str, list[FieldChange]] = {}
        for item_id, item_changes in by_item.items():
            missing = [c.field for c in item_changes if c.field not in ids]
            if missing:
                name = self.allowed_field(missing[0])
                results[item_id] = WriteResult(item_id, False, error=f"create custom field '{name}' ({_FIELD_TYPES[missing[0]]})", retriable=False)
            else:
                pending[item_id] = item_changes
        if pending and self._bulk_allowed():
            results.update(self._bulk_write(pending, ids))
        todo = [(i, c) for i, c in pending.items() if i not in results]

        def put(entry: tuple[str, list[FieldChange]]) -> WriteResult:
            item_changes = entry[1]
            body = {"fields": {ids[c.field]: self._value(c.field, c.new) for c in item_changes}}
            return self._put(client, item_changes[0].item, body, [c.field for c in item_changes])

        if todo and not self._put_answered:
            results[todo[0][0]] = put(todo[0])
            self._put_answered = True
            todo = todo[1:]
        workers = min(self.settings.write_workers, len(todo))
        if workers > 1:
            # PUTs to different issues are independent; a few in flight hide the round trips.
            # An exception (the request budget) cancels what has not started and is raised.
            with ThreadPoolExecutor(workers, thread_name_prefix="jira-write") as pool:
                futures = [pool.submit(put, entry) for entry in todo]
                try:
                    for (item_id, _), future in zip(todo, futures):
                        results[item_id] = future.result()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        else:
            for entry in todo:
                results[entry[0]] = put(entry)
        ordered = [results[item_id] for item_id in by_item]
        self._read_back_versions(ordered, by_item)
        return ordered

    def _under_write_limit(self, target: str) -> bool:
        return self.write_counts[target] < self.settings.max_writes_per_issue

    def _limit_reached(self, item: Item, logical: list[str]) -> WriteResult:
        limit = self.settings.max_writes_per_issue
        log.warning("jira: %s already got %d writes this run (max_writes_per_issue); the next "
                    "run writes it", item.key or item.id, limit)
        return WriteResult(item.id, False, logical, retriable=True,
                           error=f"the per-issue write limit ({limit} a run) is reached; the next run writes it")

    def _value(self, logical: str, new: Any) -> Any:
        if new is None or new == "":
            return None
        if logical == "moment":
            return {"value": str(new)}
        if logical == "score":
            number = float(new)
            return int(number) if number.is_integer() else number
        text = str(new)
        return text_to_adf(text) if self.site().cloud else text

    def _put(self, client: _JiraClient, item: Item, body: dict[str, Any], logical: list[str]) -> WriteResult:
        target = item.key or item.id
        url = client.url(f"issue/{target}")
        while True:
            if not self._under_write_limit(target):
                return self._limit_reached(item, logical)
            params = {"notifyUsers": "false"} if self._notify_flag else {}
            self.write_counts[target] += 1
            try:
                response = client.put_raw(url, body, params)
            except BudgetExhausted:
                raise
            except TransientError as exc:
                return WriteResult(item.id, False, logical, error=str(exc), retriable=True)
            if response.status_code < 300:
                return WriteResult(item.id, True, logical)
            text = response.text or ""
            if response.status_code == 403 and self._notify_flag and _NOTIFY_DENIED in text:
                # Suppressing notifications needs admin rights; write anyway (watchers get an
                # e-mail) and stop asking for the rest of the run.
                log.warning(
                    "jira: the integration user may not suppress notifications (needs admin or "
                    "project admin); writing with notifications for the rest of this run"
                )
                self._notify_flag = False
                continue
            return self._failed(item, response, logical)

    def _failed(self, item: Item, response: requests.Response, logical: list[str]) -> WriteResult:
        project = item.container or item.key.rpartition("-")[0]
        if response.status_code == 400 and _NOT_ON_SCREEN in (response.text or ""):
            try:
                errors = (response.json() or {}).get("errors") or {}
            except ValueError:
                errors = {}
            names = [self._name_of(fid) for fid, msg in errors.items() if _NOT_ON_SCREEN in str(msg)]
            fixes = "; ".join(f"add field {n} to the edit screen of project {project}" for n in names)
            return WriteResult(item.id, False, logical, error=fixes or "a field is not on the edit screen", retriable=False)
        err = error_for(response, f"jira: write {item.key}")
        return WriteResult(item.id, False, logical, error=str(err), retriable=err.retriable)

    def _name_of(self, fid: str) -> str:
        return str((self.site().by_id.get(fid) or {}).get("name") or fid)

    # --- Cloud bulk edit -------------------------------------------------------------------------
    def _bulk_allowed(self) -> bool:
        if not self._bulk:
            return False
        if not self.site().cloud:
            log.warning("jira: bulk_edit is a Jira Cloud API; Data Center issues are written one by one")
            self._bulk = False
        return self._bulk

    def _bulk_write(self, pending: dict[str, list[FieldChange]], ids: dict[str, str]) -> dict[str, WriteResult]:
        """Bulk-edit every group of at least two issues that get identical values; return the
        results of the issues it handled (the rest are left for PUT)."""
        groups: dict[str, list[str]] = {}
        for item_id, item_changes in pending.items():
            target = item_changes[0].item.key or item_id
            if not self._under_write_limit(target):
                continue  # the PUT path reports it
            signature = json.dumps(sorted((c.field, str(c.new)) for c in item_changes))
            groups.setdefault(signature, []).append(item_id)
        out: dict[str, WriteResult] = {}
        for members in groups.values():
            # One issue alone gains nothing: a PUT is one request too, and answers at once.
            if len(members) < 2:
                continue
            for offset in range(0, len(members), _BULK_EDIT_ISSUES):
                chunk = members[offset : offset + _BULK_EDIT_ISSUES]
                done = self._bulk_task(chunk, pending, ids)
                if done is None:
                    return out  # bulk edit is off for this run; PUT writes the rest
                out.update(done)
        return out

    def _bulk_fields(self, changes: list[FieldChange], ids: dict[str, str]) -> dict[str, Any] | None:
        """``editedFieldsInput`` for one set of changes, or None when an option has no id."""
        edited: dict[str, list[dict[str, Any]]] = {}
        for change in changes:
            fid = ids[change.field]
            if change.field == "moment":
                if change.new in (None, ""):
                    option = "-1"  # the documented way to clear a single select
                else:
                    option = self._option_id(fid, str(change.new))
                    if option is None:
                        return None
                edited.setdefault("singleSelectFields", []).append(
                    {"fieldId": fid, "option": {"optionId": int(option)}})
            elif change.field == "score":
                edited.setdefault("clearableNumberFields", []).append(
                    {"fieldId": fid, "value": self._value("score", change.new)})
            else:
                value = self._value(change.field, change.new)
                edited.setdefault("richTextFields", []).append(
                    {"fieldId": fid, "richText": {"adfValue": value} if value else {}})
        return edited

    def _option_id(self, fid: str, value: str) -> str | None:
        if fid not in self._option_ids:
            client = self.client
            found: dict[str, str] = {}
            try:
                contexts = client.get("read field contexts", client.url(f"field/{fid}/context")) or {}
                for ctx in contexts.get("values") or []:
                    options = client.get("read field options",
                                         client.url(f"field/{fid}/context/{ctx['id']}/option")) or {}
                    for option in options.get("values") or []:
                        if not option.get("disabled"):
                            found.setdefault(str(option.get("value")), str(option.get("id")))
            except MomentosError as exc:
                log.info("jira: could not read the options of %s for bulk edit: %s", fid, exc)
            self._option_ids[fid] = found
        return self._option_ids[fid].get(value)

    def _bulk_task(self, chunk: list[str], pending: dict[str, list[FieldChange]],
                   ids: dict[str, str]) -> dict[str, WriteResult] | None:
        """Submit one bulk edit and wait for its task. None: bulk edit is refused for the run."""
        client = self.client
        first = pending[chunk[0]]
        logical = [c.field for c in first]
        edited = self._bulk_fields(first, ids)
        if edited is None:
            return {}  # an option without an id: PUT reports the precise error
        body = {
            "selectedIssueIdsOrKeys": chunk,
            "selectedActions": [ids[c.field] for c in first],
            "editedFieldsInput": edited,
            "sendBulkNotification": self.settings.writeback.notify_users,
        }
        items = {item_id: pending[item_id][0].item for item_id in chunk}
        for item in items.values():
            self.write_counts[item.key or item.id] += 1
        try:
            response = client.send_raw("POST", client.url("bulk/issues/fields"), body)
        except BudgetExhausted:
            raise
        except TransientError as exc:
            return {i: WriteResult(i, False, logical, error=str(exc), retriable=True) for i in chunk}
        if response.status_code >= 300:
            for item in items.values():  # nothing was written: these attempts do not count
                self.write_counts[item.key or item.id] -= 1
        if response.status_code in (401, 403, 404):
            # Missing "Make bulk changes" (or an older site): the same writes go by PUT.
            log.warning("jira: bulk edit refused (HTTP %d: %s); writing issue by issue for the rest "
                        "of this run", response.status_code, error_for(response, "bulk edit"))
            self._bulk = False
            return None
        if response.status_code >= 300:
            log.info("jira: bulk edit rejected (%s); writing these issues one by one",
                     error_for(response, "bulk edit"))
            return {}
        task = str((response.json() or {}).get("taskId") or "")
        progress = self._await_task(task)
        status = str(progress.get("status") or "")
        if status != "COMPLETE":
            error = f"jira: bulk edit task {task} ended {status or 'without an answer'}; the next run retries"
            return {i: WriteResult(i, False, logical, error=error, retriable=True) for i in chunk}
        processed = {str(i) for i in progress.get("processedAccessibleIssues") or []}
        failed = {str(k): v for k, v in (progress.get("failedAccessibleIssues") or {}).items()}
        out: dict[str, WriteResult] = {}
        for item_id, item in items.items():
            if item_id in processed:
                out[item_id] = WriteResult(item_id, True, logical)
            elif item_id in failed:
                out[item_id] = self._bulk_failure(item, failed[item_id], logical)
            else:
                out[item_id] = WriteResult(item_id, False, logical, retriable=False,
                                           error="the issue does not exist or is not visible to the user")
        return out

    def _await_task(self, task: str) -> dict[str, Any]:
        client = self.client
        deadline = time.monotonic() + self.settings.bulk_timeout_s
        while True:
            progress = client.get(f"read bulk edit task {task}", client.url(f"bulk/queue/{task}")) or {}
            if str(progress.get("status")) in ("COMPLETE", "FAILED", "CANCELLED", "DEAD"):
                return progress
            if time.monotonic() >= deadline:
                return {"status": "still running after bulk_timeout_s"}
            self._wait(self.settings.bulk_poll_interval_s)

    def _bulk_failure(self, item: Item, reasons: Any, logical: list[str]) -> WriteResult:
        messages = [str(r) for r in (reasons if isinstance(reasons, list) else [reasons])]
        project = item.container or item.key.rpartition("-")[0]
        fixes = []
        for message in messages:
            if _NOT_ON_SCREEN in message:
                fid = message.split("'")[1] if message.count("'") >= 2 else ""
                fixes.append(f"add field {self._name_of(fid)} to the edit screen of project {project}")
        error = "; ".join(fixes) or "; ".join(messages) or "the bulk edit failed for this issue"
        return WriteResult(item.id, False, logical, error=error, retriable=False)


    def _read_back_versions(self, results: list[WriteResult], by_item: dict[str, list[FieldChange]]) -> None:
        """One search for the written issues' new ``updated``, so the engine knows the version it
        wrote and the next run does not re-read our own writes. A version counts only when its
        latest change is ours, so a person's edit right after ours is never mistaken for it."""
        written = [r for r in results if r.ok]
        if not written:
            return
        client = self.client
        site = self.site()
        me = self._me_ref()
        for offset in range(0, len(written), _CLOUD_PAGE_CAP):
            chunk = written[offset : offset + _CLOUD_PAGE_CAP]
            jql = f"id in ({', '.join(r.item_id for r in chunk)})"
            try:
                if site.cloud:
                    data = client.search_cloud(jql, None, len(chunk), ["updated"], "changelog")
                else:
                    data = client.search_dc(jql, 0, len(chunk), ["updated"], "changelog")
            except BudgetExhausted:
                raise
            except MomentosError as exc:
                log.info("jira: could not read back written versions: %s", exc)
                return
            versions: dict[str, datetime] = {}
            for raw in data.get("issues") or []:
                updated = parse_utc((raw.get("fields") or {}).get("updated"))
                histories = (raw.get("changelog") or {}).get("histories") or []
                if not histories or updated is None:
                    continue
                latest = max(histories, key=lambda h: _when(h.get("created")))
                if _user_ref(latest.get("author"), site.cloud) == me and parse_utc(latest.get("created")) == updated:
                    versions[str(raw["id"])] = updated
            for result in chunk:
                result.updated = versions.get(result.item_id)

    # --- checking ---------------------------------------------------------------------------------------
    # --- nudge notes ----------------------------------------------------------------------------------
    def post_note(self, item: Item, text: str) -> datetime | None:
        """An internal note: on a service-desk project a JSM internal comment (the
        ``sd.public.comment`` property), elsewhere a comment restricted to the first agent group.
        See Atlassian's "Add comment" (``properties``, ``visibility``) reference."""
        # The project type first: it connects, and connecting settles the API version
        # (flavor "auto"), which decides between an ADF body (v3) and plain text (v2).
        service_desk = self._project_type(item.container) == "service_desk"
        client = self.client
        body: dict[str, Any] = {"body": text_to_adf(text) if client.api == "3" else text}
        if service_desk:
            body["properties"] = [{"key": "sd.public.comment", "value": {"internal": True}}]
        elif self.settings.agent_groups:
            body["visibility"] = {"type": "group", "value": self.settings.agent_groups[0]}
        answer = client.post(f"post a note on {item.key}", client.url(f"issue/{item.key}/comment"), body)
        # Adding a comment stamps the issue's `updated` with the comment's time.
        return parse_utc((answer or {}).get("created")) if isinstance(answer, dict) else None

    def find_notes(self, items: list[Item], markers: dict[str, str]) -> set[str]:
        """Items whose comments already hold their marker (read only for unconfirmed notes)."""
        client = self.client
        found: set[str] = set()
        for item in items:
            mark = markers.get(item.id)
            if not mark:
                continue
            start = 0
            while True:
                data = client.get(
                    f"read comments of {item.key}", client.url(f"issue/{item.key}/comment"),
                    {"startAt": start, "maxResults": 1000, "orderBy": "created"},
                ) or {}
                batch = data.get("comments") or []
                if any(mark in body_text(c.get("body")) for c in batch):
                    found.add(item.id)
                    break
                start += len(batch)
                if not batch or start >= int(data.get("total") or 0):
                    break
        return found

    def check(self) -> list[CheckProblem]:
        """Reach the site and verify projects, the writeback fields, their options and screens."""
        problems: list[CheckProblem] = []
        url = self.settings.url
        try:
            site = self.site()
        except ConfigError as exc:
            return [CheckProblem(p, "set it before running momentos") for p in exc.problems]
        except AuthError as exc:
            return [CheckProblem(f"cannot log in to Jira at {url}: {exc.message}",
                                 "check the user (e-mail on Cloud) and the password/API token")]
        except MomentosError as exc:
            return [CheckProblem(f"cannot reach Jira at {url}: {exc}", "check the URL, network and TLS settings")]
        if not site.me:
            problems.append(CheckProblem("the user's profile (/myself) is not readable", "check the user's permissions"))
        client = self.client
        sample_issue: dict[str, str] = {}
        for key in self.settings.projects:
            try:
                self._project_type(key)
            except NotFoundError:
                problems.append(CheckProblem(f"project {key} does not exist or is not visible",
                                             f"fix projects, or grant Browse projects on {key} to the user"))
                continue
            except MomentosError as exc:
                problems.append(CheckProblem(f"project {key} is not readable: {exc}", "check the user's permissions"))
                continue
            try:
                found = self._first_issue(key)
            except MomentosError as exc:
                problems.append(CheckProblem(f"searching project {key} failed: {exc}",
                                             "fix the jql setting" if self.settings.jql else "check Browse projects"))
                continue
            if found:
                sample_issue[key] = found

        ids = self._writeback_ids() if self.settings.writeback.enabled else {}
        if self.settings.writeback.enabled:
            for logical, name in self.settings.writeback.fields.items():
                if logical not in ids and self._field(name) is not None:
                    problems.append(CheckProblem(
                        f"'{name}' is a Jira system field; momentos writes only its own custom fields",
                        f"point writeback.fields.{logical} at a custom field ({_FIELD_TYPES[logical]})"))
                elif logical not in ids:
                    problems.append(CheckProblem(f"custom field '{name}' does not exist",
                                                 f"create custom field '{name}' ({_FIELD_TYPES[logical]})"))
        options_checked = False
        for key, issue_key in sample_issue.items():
            if not ids:
                break
            try:
                meta = client.get(f"read edit screen of {issue_key}", client.url(f"issue/{issue_key}/editmeta")) or {}
            except MomentosError as exc:
                problems.append(CheckProblem(f"edit screen of project {key} is not readable: {exc}",
                                             "grant Edit issues on the project to the user"))
                continue
            on_screen = (meta.get("fields") or {})
            for logical, fid in ids.items():
                name = self.settings.writeback.fields[logical]
                if fid not in on_screen:
                    problems.append(CheckProblem(f"field {name} is not on the edit screen of project {key}",
                                                 f"add field {name} to the edit screen of project {key}"))
                elif logical == "moment" and not options_checked:
                    options_checked = True
                    allowed = {str(v.get("value")) for v in on_screen[fid].get("allowedValues") or []}
                    problems += self._option_problems(name, allowed)
        if "moment" in ids and not options_checked and site.cloud:
            problems += self._option_problems(self.settings.writeback.fields["moment"], self._context_options(ids["moment"]))
        existing = [n for n in self.settings.customer_fields if self._field(n)]
        if self.settings.customer_fields and not existing:
            problems.append(CheckProblem(
                f"none of the customer fields {self.settings.customer_fields} exists",
                "set customer_fields to the field that names the business area or organization"))
        agents = self._agents()
        if self.settings.agent_groups and not agents:
            problems.append(CheckProblem(
                f"no members found in agent groups {self.settings.agent_groups}",
                "set agent_groups to the groups of your IT agents"))
        return problems

    def _first_issue(self, project: str) -> str:
        jql = self.jql(project, None, None).split(" ORDER BY")[0]
        if self.site().cloud:
            data = self.client.search_cloud(jql, None, 1, ["summary"], None)
        else:
            data = self.client.search_dc(jql, 0, 1, ["summary"], None)
        issues = data.get("issues") or []
        return str(issues[0].get("key") or issues[0].get("id")) if issues else ""

    def _context_options(self, fid: str) -> set[str]:
        client = self.client
        values: set[str] = set()
        try:
            contexts = client.get("read field contexts", client.url(f"field/{fid}/context")) or {}
            for ctx in contexts.get("values") or []:
                options = client.get("read field options", client.url(f"field/{fid}/context/{ctx['id']}/option")) or {}
                values.update(str(o.get("value")) for o in options.get("values") or [] if not o.get("disabled"))
        except MomentosError as exc:
            log.info("jira: could not read the options of %s: %s", fid, exc)
            return set(_MOMENT_OPTIONS)  # unknown: do not report missing options on a guess
        return values

    @staticmethod
    def _option_problems(name: str, allowed: set[str]) -> list[CheckProblem]:
        return [
            CheckProblem(f"field {name} has no option '{option}'", f"add option '{option}' to field {name}")
            for option in _MOMENT_OPTIONS
            if option not in allowed
        ]

    # -- publishing the report --------------------------------------------------------------------
    def publish_attachment(
        self,
        issue: str,
        path: Any,
        file_name: str,
        *,
        content_type: str = "text/html",
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Attach the file at ``path`` to ``issue`` as ``file_name``, delete the issue's older
        attachments of that name, and (optionally) add ``comment``. Returns
        ``{"attachment": id, "replaced": n}``.

        Jira REST API (Cloud platform v2/v3 and Data Center v2): ``POST
        /rest/api/{2,3}/issue/{issueIdOrKey}/attachments`` takes multipart/form-data with the
        part named ``file`` and needs ``X-Atlassian-Token: no-check`` (the ``jira`` library's
        ``add_attachment`` sends both); the issue's ``attachment`` field lists them; ``DELETE
        /rest/api/{2,3}/attachment/{id}`` removes one (``delete_attachment``). Comments are
        plain text on v2 and ADF on v3. ``content_type`` is unused here: Jira stores the type
        it detects. Uploading before deleting keeps the issue from ever being without a
        report, and also removes a duplicate left by an upload that was sent twice.
        """
        client = self.client
        self.site()  # connect: the API version (2 or 3) comes from the server
        library = client._library
        with open(path, "rb") as handle:
            added = client.call(f"attach {file_name} to {issue}", library.add_attachment,
                                issue, handle, file_name)
        new_id = str(getattr(added, "id", "") or "")
        current = client.get(f"read attachments of {issue}", client.url(f"issue/{issue}"),
                             params={"fields": "attachment"}) or {}
        older = [
            str(a.get("id")) for a in (current.get("fields") or {}).get("attachment") or []
            if a.get("filename") == file_name and str(a.get("id")) != new_id
        ]
        for old in older:
            client.call(f"delete attachment {old}", library.delete_attachment, old)
        if comment:
            body: Any = text_to_adf(comment) if client.api == "3" else comment
            client.post(f"comment on {issue}", client.url(f"issue/{issue}/comment"),
                        {"body": body})
        return {"attachment": new_id, "replaced": len(older)}
