"""The ServiceNow connector: Table API reads through pysnow, writes by PATCH or the Batch API.

One item flows like this: ``_TableApi.page`` (the only code that touches pysnow) returns raw
records of one table in ascending ``(sys_updated_on, sys_id)`` order; ``KeysetPaginator``
decides the next query; ``_Context`` fetches everything else the page needs in bulk (journal,
audit, SLAs, surveys, display values of references) in two batched rounds per page;
``_item`` turns one raw record plus its context into an ``Item``. ``_Writer`` sends only
the changed writeback fields back, ``_Checker`` verifies a configuration against an instance.

Platform behaviour relied on (ServiceNow API reference, ``ServiceNow/ServiceNowDocs``
``c_TableAPI.md`` / ``batch-api.md``):

* ``sysparm_limit`` "is applied before ACL evaluation", so a page can come back short or even
  empty while more records follow; only ``X-Total-Count`` says where the query ends.
* Invalid names in ``sysparm_fields`` are ignored, so asking every table for ``resolved_at``
  or ``reopen_count`` is harmless.
* The Batch API takes Base64 bodies and answers per request with ``serviced_requests`` and the
  ids it could not process in ``unserviced_requests``; it carries any REST call, GETs included
  (its own cURL example batches two GETs and a POST), with response headers unless
  ``exclude_response_headers`` is set.

Requests per record. A page's related rows are fetched by id lists (``element_idIN...``), not
by time window: a record updated today can hold comments from months ago, so a window around
the page's ``sys_updated_on`` would lose them. Id lists are chunked to keep each URL under
~8 kB (about 200 sys_ids), which makes five or more GETs per related table for a page of
1,000 records. Those GETs travel together in one Batch API call per round (round 1: journal,
audit, SLAs, survey instances, display values of the records' references; round 2: survey
answers and the references found in round 1), so a page costs its own GET plus two HTTP
requests whatever its size. ServiceNow counts inbound REST rate limits per REST API resource
and user ("Inbound REST API rate limiting", ServiceNowDocs ``inbound-REST-API-rate-limiting.md``):
a batch is one request to the Batch API resource; whether an instance's Table API rules also
count the GETs inside it is not documented, so an admin who limits the Table API should allow
for them. Read batches go to ``/api/now/batch`` and write batches to ``/api/now/v1/batch`` (the
default-version and the versioned URL of the same endpoint), so the shared HTTP policy can
count the first as reads and replay the second safely (PATCHes of absolute values).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode, urlsplit

import pysnow
import requests
from oauthlib.oauth2 import LegacyApplicationClient, OAuth2Error
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from requests_oauthlib import OAuth2Session

from momentos.connectors.base import (
    CheckProblem,
    Connector,
    Credentials,
    FieldChange,
    Page,
    SourceSettings,
    WriteResult,
    resolve_credentials,
)
from momentos.connectors.http import (
    ERROR_TABLE,
    ONCE_HEADER,
    RequestCounter,
    build_session,
    error_for,
    mount_policy,
)
from momentos.errors import (
    AuthError,
    MomentosError,
    NotFoundError,
    PlatformError,
    TransientError,
)
from momentos.models import Comment, HistoryEvent, Item, parse_utc, sn_datetime
from momentos.secrets import register_secret

log = logging.getLogger("momentos.connectors.servicenow")

# --- settings -----------------------------------------------------------------------------------

#: Normalized kind of each well-known table.
KIND_BY_TABLE: dict[str, str] = {
    "incident": "incident",
    "sc_req_item": "request",
    "problem": "problem",
    "change_request": "change",
    "rm_enhancement": "enhancement",
    "dmn_demand": "demand",
    "pm_project": "project",
    "pm_project_task": "project_task",
}
#: Who an item is for, by table; every other task table has ``opened_by``.
REQUESTER_BY_TABLE: dict[str, str] = {
    "incident": "caller_id",
    "sc_req_item": "requested_for",
}
#: Fields some tables add to ``BASE_FIELDS``: the change an incident was caused by (the
#: link behind "incidents caused by the change"), a change's close code (failed / backed out).
TABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "incident": ("caused_by",),
    "change_request": ("close_code",),
}
DEFAULT_TABLES: tuple[str, ...] = (
    "incident",
    "sc_req_item",
    "problem",
    "change_request",
    "rm_enhancement",
    "dmn_demand",
    "pm_project",
    "pm_project_task",
)
#: Batch API paths: reads and writes use the two documented URL forms, so the HTTP policy
#: counts a batch of GETs as a read; the token endpoint only issues tokens.
READ_BATCH_PATH = "/api/now/batch"
WRITE_BATCH_PATH = "/api/now/v1/batch"
TOKEN_PATH = "/oauth_token.do"
DEFAULT_WRITEBACK: dict[str, str] = {
    "moment": "u_relationship_moment",
    "score": "u_experience_score",
    "signals": "u_experience_signals",
}
#: Dictionary types accepted for each writeback field, and the type named in the fix.
WRITEBACK_TYPES: dict[str, tuple[frozenset[str], str]] = {
    "moment": (frozenset({"choice", "string"}), "Choice"),
    "score": (frozenset({"integer"}), "Integer"),
    "signals": (frozenset({"string"}), "String, max length 4000"),
}
#: Reference fields whose target table is known without asking sys_dictionary.
KNOWN_REFERENCES: dict[str, str] = {
    "caller_id": "sys_user",
    "requested_for": "sys_user",
    "requested_by": "sys_user",
    "opened_by": "sys_user",
    "assigned_to": "sys_user",
    "resolved_by": "sys_user",
    "closed_by": "sys_user",
    "project_manager": "sys_user",
    "assignment_group": "sys_user_group",
    "company": "core_company",
    "department": "cmn_department",
    "business_service": "cmdb_ci_service",
    "service_offering": "service_offering",
    "cmdb_ci": "cmdb_ci",
    "location": "cmn_location",
    "caused_by": "change_request",
    "problem_id": "problem",
}
#: Fields every pull asks for; invalid ones for a table are ignored by the platform.
BASE_FIELDS: tuple[str, ...] = (
    "sys_id",
    "number",
    "short_description",
    "description",
    "opened_by",
    "company",
    "assignment_group",
    "assigned_to",
    "business_service",
    "category",
    "state",
    "priority",
    "opened_at",
    "resolved_at",
    "closed_at",
    "sys_created_on",
    "sys_updated_on",
    "sys_updated_by",
    "reassignment_count",
    "reopen_count",
)
#: Raw fields that become first-class ``Item`` attributes (and so stay out of ``Item.fields``).
_CONSUMED: frozenset[str] = frozenset(
    {
        "sys_id",
        "number",
        "short_description",
        "description",
        "assignment_group",
        "assigned_to",
        "business_service",
        "category",
        "opened_at",
        "resolved_at",
        "closed_at",
        "sys_created_on",
        "sys_updated_on",
        "sys_updated_by",
        "reassignment_count",
        "reopen_count",
    }
)
#: Audited fields turned into ``HistoryEvent`` (plus the writeback fields).
HISTORY_FIELDS: tuple[str, ...] = ("assignment_group", "assigned_to", "state", "priority")

_CUSTOM_COLUMN = re.compile(r"^(u_|x_[a-z0-9]+_)[a-z0-9_]+$")
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")
#: A record number as `fetch` accepts it: nothing that could extend an encoded query.
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class TableSettings(BaseModel):
    """One table to pull (YAML: an entry of ``tables:``, or just its name)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$", description="Table name, e.g. incident.")
    kind: str = Field("", description="Normalized kind; defaults from the table name.")
    fields: list[str] = Field(default_factory=list, description="Extra fields to fetch.")
    filter: str | None = Field(None, description="Encoded query ANDed into every pull.")
    customer_field: str = Field("company", description="May be dot-walked: caller_id.department.")
    requester_field: str = Field("", description="Defaults to caller_id/requested_for/opened_by.")

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: list[str]) -> list[str]:
        bad = [f for f in value if not _FIELD_NAME.match(f)]
        if bad:
            raise ValueError(f"not ServiceNow field names: {bad}")
        return value

    @field_validator("customer_field", "requester_field")
    @classmethod
    def _one_field(cls, value: str) -> str:
        if value and not _FIELD_NAME.match(value):
            raise ValueError(f"not a ServiceNow field name: {value!r}")
        return value

    @field_validator("filter")
    @classmethod
    def _no_order(cls, value: str | None) -> str | None:
        # The pull owns the order (ascending sys_updated_on, sys_id); a filter that re-orders
        # would break paging.
        if value and "ORDERBY" in value:
            raise ValueError("must not contain ORDERBY: momentos orders by sys_updated_on, sys_id")
        cleaned = value.strip().strip("^") if value else ""
        # The filter is ANDed with the time window. ^NQ starts a new query OR-ed with
        # everything before it, and a leading OR would attach to the window's last condition:
        # either would read records outside the window (and outside the filter).
        segments = cleaned.split("^")
        if any(part.startswith("NQ") for part in segments):
            raise ValueError("must not contain ^NQ (a new query would be read outside the time window)")
        if segments[0].startswith("OR"):
            raise ValueError("must not start with OR (it would attach to momentos' time window)")
        return cleaned or None

    @model_validator(mode="after")
    def _defaults(self) -> TableSettings:
        if not self.kind:
            self.kind = KIND_BY_TABLE.get(self.name, self.name)
        if not self.requester_field:
            self.requester_field = REQUESTER_BY_TABLE.get(self.name, "opened_by")
        return self


class ServiceNowSettings(SourceSettings):
    """A ServiceNow source.

    Example::

        - name: itsm
          type: servicenow
          url: https://acme.service-now.com
          auth: {username: momentos.integration, password_env: SN_PASSWORD}
          tables:
            - incident
            - {name: sc_req_item, customer_field: requested_for.department}
            - {name: change_request, filter: "active=true", fields: [type, risk]}
          writeback:
            fields: {moment: u_relationship_moment, score: u_experience_score,
                     signals: u_experience_signals}
          batch_size: 50
    """

    type: Literal["servicenow"]
    #: Bigger than the generic default: a page costs its GET plus two batched context
    #: requests whatever its size, and 500 records keep each batch well inside the platform's
    #: 30 s Batch API transaction quota (ServiceNowDocs ``batch-api.md``).
    page_size: int = Field(500, ge=1, le=10000)
    tables: list[TableSettings] = Field(
        default_factory=lambda: [TableSettings(name=name) for name in DEFAULT_TABLES]
    )
    batch_size: int = Field(50, ge=1, le=200, description="Writes per Batch API call.")
    use_batch_api: bool = Field(True, description="Send writes through /api/now/v1/batch.")
    batch_reads: bool = Field(
        True,
        description="Fetch each page's related rows (journal, audit, SLAs, surveys, display "
        "values) in Batch API calls instead of one GET per query.",
    )

    @field_validator("tables", mode="before")
    @classmethod
    def _names_allowed(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("tables")
    @classmethod
    def _unique(cls, value: list[TableSettings]) -> list[TableSettings]:
        names = [t.name for t in value]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"tables listed twice: {duplicated}")
        if not value:
            raise ValueError("list at least one table")
        return value

    @model_validator(mode="after")
    def _writeback_defaults(self) -> ServiceNowSettings:
        if not self.writeback.fields:
            self.writeback.fields = dict(DEFAULT_WRITEBACK)
        # Only custom columns (u_..., or x_<scope>_... of a scoped app): a platform column
        # people own (short_description, comments, priority) is never a writeback target.
        owned = {k: v for k, v in self.writeback.fields.items() if not _CUSTOM_COLUMN.match(v)}
        if owned:
            raise ValueError(
                "writeback.fields must name custom columns (u_... or x_<scope>_...), not "
                + ", ".join(f"{k}: {v}" for k, v in sorted(owned.items()))
            )
        return self

    def table(self, name: str) -> TableSettings:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)


# --- the one place pysnow is used -----------------------------------------------------------------


class MissingTable(NotFoundError):
    """The instance answered ``Invalid table``: the table is not installed."""


class Forbidden(AuthError):
    """HTTP 403: the credentials are fine, a role or ACL is missing (401 stays AuthError)."""


@dataclass
class RawPage:
    records: list[dict[str, Any]]
    total: int | None


@dataclass(frozen=True)
class Query:
    """One bulk read: every record of ``table`` matching ``query``, with ``fields``."""

    table: str
    query: str
    fields: tuple[str, ...]


class _OAuthSession(OAuth2Session):
    """requests-oauthlib's session, refreshing the access token itself.

    Its built-in auto refresh forwards the request's own keyword arguments (``params``,
    ``json``) into the token request's body, so momentos refreshes before a request when the
    token is (about to be) expired, and once more when the instance answers 401 to a token it
    revoked early. Retries of faults stay in the policy adapter mounted on this session.
    """

    def __init__(
        self, *, token_url: str, client_id: str, client_secret: str, source: str, **kwargs: Any
    ) -> None:
        super().__init__(client=LegacyApplicationClient(client_id=client_id), **kwargs)
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.source = source
        #: Told every new token, so pysnow's client holds the one in use.
        self.on_token: Callable[[dict[str, Any]], None] = lambda token: None
        for hook in ("access_token_response", "refresh_token_response"):
            self.register_compliance_hook(hook, self._transient_first)

    def _transient_first(self, response: requests.Response) -> requests.Response:
        """A token endpoint that is down (after the policy's retries) is a transient problem,
        not a refusal of the credentials: classify it before oauthlib parses the body."""
        if response.status_code == 429 or response.status_code >= 500:
            raise error_for(response, f"ServiceNow source {self.source}: OAuth token request")
        return response

    def password_grant(self, username: str, password: str) -> dict[str, Any]:
        try:
            token = self.fetch_token(
                self.token_url,
                username=username,
                password=password,
                client_secret=self._client_secret,
                include_client_id=True,
            )
        except OAuth2Error as exc:
            raise self._refused("the password grant", exc) from None
        return self._remember(dict(token))

    def refresh(self) -> dict[str, Any]:
        try:
            token = self.refresh_token(
                self.token_url, client_id=self._client_id, client_secret=self._client_secret
            )
        except OAuth2Error as exc:
            raise self._refused("the stored refresh token", exc) from None
        return self._remember(dict(token))

    def _remember(self, token: dict[str, Any]) -> dict[str, Any]:
        for key in ("access_token", "refresh_token"):
            if token.get(key):
                register_secret(str(token[key]))
        self.on_token(token)
        return token

    def _refused(self, what: str, exc: OAuth2Error) -> AuthError:
        return AuthError(
            f"ServiceNow source {self.source}: the OAuth token endpoint refused {what}: "
            f"{exc.error}" + (f" ({exc.description})" if exc.description else ""),
            hint="check the OAuth client id and secret (System OAuth > Application Registry) "
            "and create a new refresh token for the integration user",
        )

    def _expiring(self) -> bool:
        if not self.token:
            return False
        expires_at = float(self.token.get("expires_at") or 0)
        # The client learns the expiry a moment after the instance set it: refresh a little
        # early (ten seconds, or a quarter of a very short life).
        margin = min(10.0, float(self.token.get("expires_in") or 0) / 4)
        return expires_at - margin <= time.time()

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, withhold_token: bool = False, **kwargs: Any
    ) -> requests.Response:
        if not withhold_token and self._expiring():
            self.refresh()
        response = super().request(method, url, *args, withhold_token=withhold_token, **kwargs)
        if response.status_code == 401 and not withhold_token and self.token.get("refresh_token"):
            response.close()
            self.refresh()
            response = super().request(method, url, *args, withhold_token=withhold_token, **kwargs)
        return response


class _PolicyOAuthClient(pysnow.OAuthClient):
    """``pysnow.OAuthClient`` whose one OAuth session carries the HTTP policy.

    pysnow 0.7.17 builds a new ``OAuth2Session`` on every ``resource()`` call, with requests'
    default transport (no retries, no counting, ``REQUESTS_CA_BUNDLE`` over the source's CA),
    and its ``resource()`` drops request options such as the timeout; both are overridden.
    """

    def __init__(self, oauth_session: _OAuthSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._oauth_session = oauth_session
        self.session = oauth_session

    def _get_oauth_session(self) -> _OAuthSession:
        self._oauth_session.token = self.token
        return self._oauth_session

    def resource(  # type: ignore[override]
        self,
        api_path: str | None = None,
        base_path: str = "/api/now",
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        if not isinstance(self.token, dict):
            raise pysnow.exceptions.MissingToken("set_token() first")
        self.session = self._get_oauth_session()
        return pysnow.Client.resource(self, api_path, base_path, chunk_size, **kwargs)


def _oauth_client(
    settings: ServiceNowSettings, credentials: Credentials, policy: requests.Session
) -> _PolicyOAuthClient:
    """OAuth 2.0 through ``pysnow.OAuthClient``: a stored refresh token when there is one,
    else the password grant (``/oauth_token.do`` with grant_type=password, then
    grant_type=refresh_token, as ServiceNow documents for integrations)."""
    parts = urlsplit(settings.url)
    if parts.scheme != "https":
        raise AuthError(
            f"ServiceNow source {settings.name}: OAuth needs an https:// url",
            hint="tokens must not travel in clear text; use the instance's https address",
        )
    client_id = credentials.oauth_client_id or ""
    client_secret = credentials.oauth_client_secret or ""
    session = _OAuthSession(
        token_url=f"{settings.url}{TOKEN_PATH}",
        client_id=client_id,
        client_secret=client_secret,
        source=settings.name,
    )
    # The same policy adapter (retries, counting, the source's TLS) as every other request.
    mount_policy(session, policy.get_adapter(settings.url))  # type: ignore[arg-type]
    session.headers.update(policy.headers)
    if credentials.oauth_refresh_token:
        # Expired on purpose: the first request refreshes it.
        session.token = {
            "access_token": "",
            "refresh_token": credentials.oauth_refresh_token,
            "token_type": "Bearer",
            "expires_in": 0,
            "expires_at": 0,
        }
    elif credentials.password:
        session.password_grant(credentials.username or "", credentials.password)
    else:
        raise AuthError(
            f"ServiceNow source {settings.name}: OAuth needs a refresh token or a password",
            hint="set auth.oauth_refresh_token_env, or auth.username with password_env",
        )
    client = _PolicyOAuthClient(
        session, client_id=client_id, client_secret=client_secret, host=parts.netloc, use_ssl=True
    )
    client.set_token(_full_token(dict(session.token)))
    session.on_token = lambda token: client.set_token(_full_token(token))
    return client


def _full_token(token: dict[str, Any]) -> dict[str, Any]:
    """pysnow's ``set_token`` insists on all six keys; ServiceNow sends five of them."""
    return {"scope": "", "expires_in": 0, "expires_at": 0, "token_type": "Bearer", **token}


class _TableApi:
    """Table and Batch API calls through a pysnow client whose session carries the HTTP
    policy (basic auth, a bearer token, or OAuth 2.0 through ``pysnow.OAuthClient``)."""

    related_page_size: ClassVar[int] = 5000
    #: GETs per read batch; a page of 500 needs about 20 in its first round.
    reads_per_batch: ClassVar[int] = 50

    def __init__(self, settings: ServiceNowSettings, counter: RequestCounter) -> None:
        credentials = resolve_credentials(settings.auth, settings.name)
        self.source = settings.name
        self.settings = settings
        parts = urlsplit(settings.url)
        if parts.path not in ("", "/"):
            log.warning(
                "%s: ignoring the path in url %s; the Table API lives at the root",
                settings.name,
                settings.url,
            )
        auth = None
        headers: dict[str, str] = {}
        oauth = settings.auth.oauth  # then the OAuth session adds the bearer token itself
        if not oauth and credentials.password:
            auth = (credentials.username or "", credentials.password)
        elif not oauth and credentials.token:
            headers["Authorization"] = f"Bearer {credentials.token}"
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        session = build_session(
            settings.http,
            counter,
            verify=settings.verify,
            platform="servicenow",
            auth=auth,
            headers=headers,
            # A batch of PATCHes with absolute values can be replayed safely; a batch of GETs
            # and a token request only read.
            idempotent_post_suffixes=(WRITE_BATCH_PATH,),
            read_post_suffixes=(READ_BATCH_PATH, TOKEN_PATH),
        )
        self.user = credentials.username or ""
        if oauth:
            self.client: Any = _oauth_client(settings, credentials, session)
            self.session: requests.Session = self.client.session
        else:
            self.client = pysnow.Client(
                host=parts.netloc, use_ssl=parts.scheme == "https", session=session
            )
            self.session = session
        # pysnow stamps its own User-Agent on the session; the platform's logs should name us.
        self.session.headers["User-Agent"] = "momentos"
        # pysnow passes its own 60 s timeout to every request, which would override the policy's
        # connect/read timeouts, so hand it the configured ones.
        self._timeout = (settings.http.connect_timeout_s, settings.http.read_timeout_s)
        self._read: dict[str, Any] = {}
        self._write: dict[str, Any] = {}
        self.batch_reads = settings.batch_reads

    def _resource(self, table: str, *, write: bool = False) -> Any:
        # pysnow's request objects share one parameter dict per resource, so reads and writes
        # get separate resources and a write never carries a read's sysparm_query.
        cache = self._write if write else self._read
        if table not in cache:
            resource = self.client.resource(api_path=f"/table/{table}", timeout=self._timeout)
            if write:
                resource.parameters.add_custom({"sysparm_fields": "sys_id,sys_updated_on"})
            cache[table] = resource
        return cache[table]

    def page(
        self, table: str, query: str, fields: Iterable[str], limit: int, offset: int
    ) -> RawPage:
        """One ``GET /api/now/table/<table>`` page with raw values and no reference links."""
        response = self._resource(table).get(
            query=query,
            limit=limit,
            offset=offset,
            fields=list(fields),
            exclude_reference_link=True,
        )
        records = self._result(
            response, f"ServiceNow source {self.source}: reading table {table}", table
        )
        total_header = response.headers.get("X-Total-Count")
        total = int(total_header) if total_header and total_header.isdigit() else None
        return RawPage(records, total)

    def fetch_all(self, table: str, query: str, fields: Iterable[str]) -> list[dict[str, Any]]:
        """Every record of a (small, bulk) query, paged by offset against X-Total-Count."""
        fields = list(fields)
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.page(table, query, fields, self.related_page_size, offset)
            found.extend(page.records)
            offset += self.related_page_size
            if page.total is None:
                if not page.records:
                    return found
            elif offset >= page.total:
                return found

    # -- many bulk reads at once ------------------------------------------------------------
    def fetch_many(self, queries: list[Query]) -> list[list[dict[str, Any]] | MomentosError]:
        """Every record of each query, or the error that query met (a missing or forbidden
        table is the caller's to judge). Through the Batch API, all first pages travel in one
        HTTP request and further pages (rare: more than ``related_page_size`` rows) in the
        next; without it, one GET per page."""
        results: list[list[dict[str, Any]] | MomentosError] = [[] for _ in queries]
        if not queries:
            return results
        if not self.batch_reads:
            for n, q in enumerate(queries):
                results[n] = self._fetch_one(q)
            return results
        pending = [(n, 0) for n in range(len(queries))]
        while pending:
            chunk, pending = pending[: self.reads_per_batch], pending[self.reads_per_batch :]
            answers = self._read_batch([(queries[n], offset) for n, offset in chunk])
            if answers is None:  # no Batch API for this user: plain GETs from here on
                self.batch_reads = False
                done = {n for n, _ in pending + chunk}
                for n in sorted(done):
                    results[n] = self._fetch_one(queries[n])
                return results
            for (n, offset), answer in zip(chunk, answers, strict=True):
                if isinstance(results[n], MomentosError):
                    continue
                if answer is None:
                    # Unserviced (the batch met a size or time limit) or refused for a
                    # transient reason: read this query directly, through the policy's
                    # retries and Retry-After waits.
                    results[n] = self._fetch_one(queries[n], offset, results[n])
                    continue
                if isinstance(answer, MomentosError):
                    results[n] = answer
                    continue
                rows, total = answer
                gathered = results[n]
                assert isinstance(gathered, list)
                gathered.extend(rows)
                following = offset + self.related_page_size
                # Without a count (a proxy may drop the header), only a short page ends it.
                more = (
                    following < total if total is not None else len(rows) == self.related_page_size
                )
                if more:
                    pending.append((n, following))
        return results

    def _fetch_one(
        self, q: Query, offset: int = 0, gathered: Any = None
    ) -> list[dict[str, Any]] | MomentosError:
        found = list(gathered) if isinstance(gathered, list) else []
        try:
            while True:
                page = self.page(q.table, q.query, q.fields, self.related_page_size, offset)
                found.extend(page.records)
                offset += self.related_page_size
                if (page.total is None and not page.records) or (
                    page.total is not None and offset >= page.total
                ):
                    return found
        except (MissingTable, Forbidden) as exc:
            return exc

    def _read_batch(
        self, wanted: list[tuple[Query, int]]
    ) -> list[tuple[list[dict[str, Any]], int | None] | MomentosError | None] | None:
        """One Batch API call of GETs. Per GET: (rows, X-Total-Count), a table error, or None
        to read it again directly. None for the whole call when the instance has no Batch API
        for this user."""
        rest = []
        for n, (q, offset) in enumerate(wanted):
            params = {
                "sysparm_query": q.query,
                "sysparm_fields": ",".join(q.fields),
                "sysparm_limit": str(self.related_page_size),
                "sysparm_offset": str(offset),
                "sysparm_exclude_reference_link": "true",
                "sysparm_suppress_pagination_header": "true",
            }
            rest.append(
                {
                    "id": str(n),
                    "method": "GET",
                    "url": f"/api/now/table/{q.table}?{urlencode(params)}",
                    "headers": [{"name": "Accept", "value": "application/json"}],
                }
            )
        response = self.batch(
            {"batch_request_id": uuid.uuid4().hex, "rest_requests": rest}, read=True
        )
        what = f"ServiceNow source {self.source}: Batch API read"
        if response.status_code == 401:
            raise error_for(response, what)
        if response.status_code in (400, 403, 404, 405):
            log.warning(
                "%s: Batch API answered HTTP %d (%s); reading related rows one GET at a time",
                self.source,
                response.status_code,
                _error_message(response),
            )
            return None
        if response.status_code >= 400:
            raise error_for(response, what)
        try:
            served = {str(s.get("id")): s for s in response.json().get("serviced_requests") or []}
        except (ValueError, AttributeError):
            raise PlatformError(f"{what}: the answer is not JSON") from None
        answers: list[tuple[list[dict[str, Any]], int | None] | MomentosError | None] = []
        for n, (q, _) in enumerate(wanted):
            answers.append(self._sub_answer(served.get(str(n)), q.table))
        return answers

    def _sub_answer(
        self, entry: dict[str, Any] | None, table: str
    ) -> tuple[list[dict[str, Any]], int | None] | MomentosError | None:
        if entry is None:
            return None
        status = int(entry.get("status_code") or 0)
        try:
            body = json.loads(base64.b64decode(entry.get("body") or b"") or b"{}")
        except ValueError:
            body = {}
        if status == 200 and isinstance(body, dict) and isinstance(body.get("result"), list):
            headers = {
                str(h.get("name", "")).lower(): str(h.get("value", ""))
                for h in entry.get("headers") or []
                if isinstance(h, dict)
            }
            count = headers.get("x-total-count", "")
            return body["result"], int(count) if count.isdigit() else None
        message = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message") or "")
        if status == 400 and message.startswith("Invalid table"):
            return MissingTable(
                f"ServiceNow has no table {table}",
                hint="remove it from tables, or install the plugin that provides it",
            )
        if status == 403:
            return Forbidden(
                f"ServiceNow source {self.source}: reading table {table}: HTTP 403: {message}",
                hint=f"grant the integration user read access to {table}",
            )
        if status == 404:
            return [], 0  # "No Record found": nothing visible matches
        if status == 401:
            raise AuthError(
                f"ServiceNow source {self.source}: reading table {table}: HTTP 401",
                hint=ERROR_TABLE[401][1],
            )
        return None  # 429, 5xx or an unexpected answer: read it directly

    def patch(
        self, table: str, sys_id: str, payload: dict[str, str], *, once: bool = False
    ) -> tuple[requests.Response | None, datetime | None]:
        """PATCH only the given fields; returns (failed response or None, the record's new
        sys_updated_on), so the engine knows that version is our own write. ``once``: the
        PATCH appends (a journal field) and must not be replayed by the HTTP policy."""
        response = self._resource(table, write=True).request(
            "PATCH", path_append=f"/{sys_id}", json=payload,
            headers={ONCE_HEADER: "1"} if once else None,
        )
        try:
            record = response.one()
        except requests.HTTPError as exc:
            return exc.response, None
        except (pysnow.exceptions.PysnowException, ValueError) as exc:
            raise PlatformError(f"PATCH {table}/{sys_id}: unexpected answer: {exc}") from None
        return None, parse_utc(record.get("sys_updated_on")) if isinstance(record, dict) else None

    def batch(self, body: dict[str, Any], *, read: bool = False) -> requests.Response:
        """POST to the Batch API. pysnow's response parser only knows ``result`` bodies, so
        this one goes through the client's own session (same policy, same counter)."""
        path = READ_BATCH_PATH if read else WRITE_BATCH_PATH
        return self.session.post(
            f"{self.base_url}{path}",
            json=body,
            timeout=self._timeout,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    @staticmethod
    def _result(response: Any, what: str, table: str) -> list[dict[str, Any]]:
        try:
            return list(response.all())
        except requests.HTTPError as exc:
            failed = exc.response
            if failed is None:
                raise PlatformError(f"{what}: no response") from None
            if failed.status_code == 400 and _error_message(failed).startswith("Invalid table"):
                raise MissingTable(
                    f"ServiceNow has no table {table}",
                    hint="remove it from tables, or install the plugin that provides it",
                ) from None
            error = error_for(failed, what)
            if failed.status_code == 403:
                raise Forbidden(
                    error.message,
                    hint=f"grant the integration user read access to {table} "
                    "(role itil or snc_read_only, or an ACL for this table)",
                ) from None
            raise error from None
        except (pysnow.exceptions.PysnowException, ValueError) as exc:
            raise PlatformError(f"{what}: unexpected answer: {exc}") from None

    def close(self) -> None:
        self.session.close()


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message") or "") if isinstance(error, dict) else ""


# --- paging ---------------------------------------------------------------------------------------


@dataclass
class KeysetPaginator:
    """Ascending ``(sys_updated_on, sys_id)`` pages.

    The next query starts after the last record returned (keyset), so a record updated while
    the pull runs moves behind the cursor instead of shifting every later offset. ``offset``
    only steps over windows whose records were all removed by ACLs: the platform applies
    ``sysparm_limit`` before ACLs, so an empty page does not mean the end; ``X-Total-Count``
    does.
    """

    page_size: int
    since: str | None = None
    #: Upper bound of the window (raw UTC): the second the sync started, included, so an edit
    #: made just before a sync is in it (our own writes of that second come back as known).
    until: str | None = None
    cursor: tuple[str, str] | None = None
    offset: int = 0

    def conditions(self) -> list[str]:
        bound = [f"sys_updated_on<={self.until}"] if self.until else []
        if self.cursor is not None:
            updated, sys_id = self.cursor
            # updated > U OR (updated = U AND sys_id > S); ^OR binds to the condition before it.
            return [
                f"sys_updated_on>={updated}",
                f"sys_updated_on>{updated}^ORsys_id>{sys_id}",
                *bound,
            ]
        if self.since:
            return [f"sys_updated_on>={self.since}", *bound]
        return bound

    def advance(self, records: list[dict[str, Any]], total: int | None) -> bool:
        """Move past a page; False when the query is exhausted. Raises when it cannot move."""
        window_end = self.offset + self.page_size
        if records:
            last = records[-1]
            cursor = (str(last.get("sys_updated_on", "")), str(last.get("sys_id", "")))
            if self.cursor is not None and cursor <= self.cursor:
                raise PlatformError(
                    f"paging did not advance past {self.cursor}",
                    hint="the instance ignored the keyset condition; report this as a bug",
                )
            self.cursor = cursor
            self.offset = 0
        else:
            self.offset = window_end
        if total is None:
            # Without a count only an empty page can end the query.
            return bool(records)
        return window_end < total


# --- per-page context -----------------------------------------------------------------------------


def _chunks(values: Iterable[str], budget: int = 7000) -> Iterator[list[str]]:
    """Split values for ``<field>IN`` queries so each URL stays well under 8 kB."""
    chunk: list[str] = []
    used = 0
    for value in values:
        if chunk and used + len(value) + 1 > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(value)
        used += len(value) + 1
    if chunk:
        yield chunk


@dataclass
class PageContext:
    """Everything a page's items need beyond their own record."""

    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audit: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sla: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    survey: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class _Read:
    """A bulk read and what to do with its rows."""

    query: Query
    take: Callable[[list[dict[str, Any]]], None]


def _grouped(
    target: dict[str, list[dict[str, Any]]], key: str
) -> Callable[[list[dict[str, Any]]], None]:
    def take(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            target.setdefault(str(row.get(key, "")), []).append(row)

    return take


class _Context:
    """Bulk lookups with per-run caches: display values of references, users, agents, choice
    labels and reference tables of fields.

    Reads are gathered into rounds and each round goes out at once (one Batch API call, see
    the module docstring); what a round reveals (authors, audited groups, survey instances)
    is read in the next.
    """

    def __init__(self, api: _TableApi, tables: list[str]) -> None:
        self.api = api
        self.tables = tables
        self._unavailable: set[str] = set()
        self._display: dict[str, dict[str, dict[str, str]]] = {}  # table → sys_id → row
        self._logins: dict[str, dict[str, str]] = {}  # user_name → sys_user row ({} = unknown)
        self._agents: set[str] | None = None
        self._choices: dict[tuple[str, str], dict[str, str]] | None = None
        self._ref_tables: dict[tuple[str, str], str] = {}

    # -- running reads --------------------------------------------------------------------------
    def run(self, reads: list[_Read]) -> None:
        """Send a round of reads. A table the instance lacks (no Surveys plugin) or hides from
        the integration user (sys_audit often needs a role) only thins the items: warn once
        and carry on without it."""
        reads = [r for r in reads if r.query.table not in self._unavailable]
        if not reads:
            return
        for read, result in zip(reads, self.api.fetch_many([r.query for r in reads]), strict=True):
            if isinstance(result, (MissingTable, Forbidden)):
                if read.query.table not in self._unavailable:
                    self._unavailable.add(read.query.table)
                    log.warning(
                        "%s: items are pulled without %s data: %s (%s)",
                        self.api.source,
                        read.query.table,
                        result.message,
                        result.hint,
                    )
                read.take([])
            elif isinstance(result, MomentosError):
                raise result
            else:
                read.take(result)

    # -- related records of a page -----------------------------------------------------------
    def page(
        self, ids: list[str], history_fields: list[str], references: dict[str, set[str]]
    ) -> PageContext:
        """The page's journal, audit, SLA and survey rows, with the display values of the
        references of its records and of its history, and the run's agents and labels.
        Nothing is read for an empty page."""
        context = PageContext()
        if not ids:
            return context
        instances: dict[str, str] = {}  # assessment instance → the record it is about

        def take_instances(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                if row.get("sys_id"):
                    instances[str(row["sys_id"])] = str(row.get("trigger_id", ""))

        reads: list[_Read] = []
        for chunk in _chunks(ids):
            listed = ",".join(chunk)
            reads += [
                _Read(
                    Query(
                        "sys_journal_field",
                        f"element_idIN{listed}^elementINcomments,work_notes^ORDERBYsys_created_on",
                        ("element_id", "element", "value", "sys_created_on", "sys_created_by"),
                    ),
                    _grouped(context.comments, "element_id"),
                ),
                _Read(
                    Query(
                        "sys_audit",
                        f"documentkeyIN{listed}^fieldnameIN{','.join(history_fields)}"
                        "^ORDERBYsys_created_on",
                        (
                            "documentkey",
                            "fieldname",
                            "oldvalue",
                            "newvalue",
                            "user",
                            "sys_created_on",
                        ),
                    ),
                    _grouped(context.audit, "documentkey"),
                ),
                _Read(
                    Query(
                        "task_sla",
                        f"taskIN{listed}^ORDERBYplanned_end_time",
                        ("task", "has_breached", "stage", "planned_end_time"),
                    ),
                    _grouped(context.sla, "task"),
                ),
                _Read(
                    Query(
                        "asmt_assessment_instance",
                        f"trigger_idIN{listed}^state=complete",
                        ("sys_id", "trigger_id"),
                    ),
                    take_instances,
                ),
            ]
        reads += self._run_wide_reads()
        for target, wanted in references.items():
            reads += self._display_reads(target, wanted)
        self.run(reads)

        # Round 2: survey answers, the groups and people named in the history, comment authors.
        def take_results(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                value = _number(row.get("actual_value"))
                owner = instances.get(str(row.get("instance", "")))
                if owner and value is not None and 1 <= value <= 5:
                    context.survey.setdefault(owner, []).append(value)

        reads = [
            _Read(
                Query(
                    "asmt_metric_result",
                    f"instanceIN{','.join(chunk)}",
                    ("instance", "actual_value"),
                ),
                take_results,
            )
            for chunk in _chunks(instances)
        ]
        later: dict[str, set[str]] = {}
        for events in context.audit.values():
            for event in events:
                fname = str(event.get("fieldname", ""))
                if fname in ("assignment_group", "assigned_to"):
                    for value in (event.get("oldvalue"), event.get("newvalue")):
                        if value:
                            later.setdefault(KNOWN_REFERENCES[fname], set()).add(str(value))
        for target, wanted in later.items():
            reads += self._display_reads(target, wanted)
        reads += self._login_reads(
            {str(c.get("sys_created_by", "")) for rows in context.comments.values() for c in rows}
        )
        self.run(reads)
        return context

    def _run_wide_reads(self) -> list[_Read]:
        """Agents and choice labels, read with the first page of a run."""
        reads = []
        if self._agents is None:
            reads.append(self._agents_read())
        if self._choices is None:
            reads.append(self._choices_read())
        return reads

    # -- references ---------------------------------------------------------------------------
    def _display_reads(self, table: str, ids: Iterable[str]) -> list[_Read]:
        cache = self._display.setdefault(table, {})
        missing = sorted({i for i in ids if i and i not in cache})

        def take(chunk: list[str]) -> Callable[[list[dict[str, Any]]], None]:
            def store(rows: list[dict[str, Any]]) -> None:
                for row in rows:
                    cache[str(row.get("sys_id", ""))] = row
                    if table == "sys_user" and row.get("user_name"):
                        self._logins[str(row["user_name"])] = row
                for sys_id in chunk:
                    cache.setdefault(sys_id, {})  # unknown or hidden: shown as its sys_id

            return store

        return [
            _Read(
                Query(
                    table,
                    f"sys_idIN{','.join(chunk)}",
                    ("sys_id", "name", "number", "user_name", "preferred_language"),
                ),
                take(chunk),
            )
            for chunk in _chunks(missing)
        ]

    def resolve(self, table: str, ids: Iterable[str]) -> None:
        """Fetch display rows for any ids of ``table`` not cached yet, in bulk."""
        self.run(self._display_reads(table, ids))

    def display(self, table: str, sys_id: str) -> str:
        if not sys_id:
            return ""
        row = self._display.get(table, {}).get(sys_id) or {}
        return str(row.get("name") or row.get("number") or row.get("user_name") or sys_id)

    def user(self, sys_id: str) -> dict[str, str]:
        return self._display.get("sys_user", {}).get(sys_id) or {}

    def _login_reads(self, logins: Iterable[str]) -> list[_Read]:
        missing = sorted({u for u in logins if u and u not in self._logins})

        def take(chunk: list[str]) -> Callable[[list[dict[str, Any]]], None]:
            def store(rows: list[dict[str, Any]]) -> None:
                for row in rows:
                    self._logins[str(row.get("user_name", ""))] = row
                    self._display.setdefault("sys_user", {}).setdefault(
                        str(row.get("sys_id", "")), row
                    )
                for login in chunk:
                    self._logins.setdefault(login, {})

            return store

        return [
            _Read(
                Query("sys_user", f"user_nameIN{','.join(chunk)}", ("sys_id", "name", "user_name")),
                take(chunk),
            )
            for chunk in _chunks(missing)
        ]

    def resolve_logins(self, logins: Iterable[str]) -> None:
        self.run(self._login_reads(logins))

    def login_name(self, login: str) -> str:
        return str((self._logins.get(login) or {}).get("name") or login)

    def _agents_read(self) -> _Read:
        def take(rows: list[dict[str, Any]]) -> None:
            self._agents = {str(r["user.user_name"]) for r in rows if r.get("user.user_name")}

        # Without group members, comment authors cannot be told apart from agents: the warning
        # of ``run`` names the table, and the fix is read access to sys_user_grmember.
        return _Read(Query("sys_user_grmember", "", ("user.user_name",)), take)

    def agents(self) -> set[str]:
        """User names of every member of any group: IT's agents. Fetched once per run."""
        if self._agents is None:
            self.run([self._agents_read()])
            if self._agents is None:  # the table was already known to be unavailable
                self._agents = set()
        return self._agents

    def _choices_read(self) -> _Read:
        def take(rows: list[dict[str, Any]]) -> None:
            choices: dict[tuple[str, str], dict[str, str]] = {}
            for row in rows:
                if row.get("language", "en") not in ("en", ""):
                    continue
                key = (str(row.get("name", "")), str(row.get("element", "")))
                choices.setdefault(key, {})[str(row.get("value", ""))] = str(row.get("label", ""))
            self._choices = choices

        return _Read(
            Query(
                "sys_choice",
                f"nameINtask,{','.join(self.tables)}^elementINstate,priority^inactive=false",
                ("name", "element", "value", "label", "language"),
            ),
            take,
        )

    def choice_labels(self) -> dict[tuple[str, str], dict[str, str]]:
        """(table, element) → value → label for state and priority, read once per run."""
        if self._choices is None:
            self.run([self._choices_read()])
            if self._choices is None:
                self._choices = {}
        return self._choices

    def label(self, table: str, element: str, value: str) -> str:
        choices = self.choice_labels()
        for owner in (table, "task"):
            labels = choices.get((owner, element))
            if labels and value in labels:
                return labels[value]
        return value

    def reference_table(self, table: str, path: str) -> str:
        """The table a (maybe dot-walked) field points to, or "" when it is not a reference."""
        owner = table
        target = ""
        for part in path.split("."):
            target = KNOWN_REFERENCES.get(part) or self._dictionary_reference(owner, part)
            if not target:
                return ""
            owner = target
        return target

    def _dictionary_reference(self, table: str, element: str) -> str:
        key = (table, element)
        if key not in self._ref_tables:
            try:
                rows = self.api.fetch_all(
                    "sys_dictionary",
                    f"nameIN{table},task^element={element}",
                    ("name", "internal_type", "reference"),
                )
            except (Forbidden, MissingTable):
                rows = []
            reference = next(
                (
                    str(r.get("reference"))
                    for r in rows
                    if r.get("internal_type") == "reference" and r.get("reference")
                ),
                "",
            )
            self._ref_tables[key] = reference
        return self._ref_tables[key]


# --- building items -------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


# --- writing --------------------------------------------------------------------------------------


def wire_value(logical: str, value: Any) -> str:
    """The string sent for a writeback field: scores as integers, signals compact JSON."""
    if value is None:
        return ""
    if logical == "score" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(round(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return str(value)


@dataclass
class _Pending:
    item_id: str
    table: str
    payload: dict[str, str]
    logical: list[str]


def _failed(pending: _Pending, status: int, message: str, what: str) -> WriteResult:
    cls, hint = ERROR_TABLE.get(status, (PlatformError, "unexpected answer"))
    if status == 403:
        hint = (
            f"grant the integration user write access to {', '.join(pending.payload)} on "
            f"{pending.table} (role itil or the role your write ACL requires), or remove the ACL"
        )
    elif status == 404:
        hint = "the record was deleted or is hidden from the integration user by an ACL"
    text = f"{what}: HTTP {status}" + (f": {message}" if message else "") + f" ({hint})"
    return WriteResult(
        pending.item_id, ok=False, fields=pending.logical, error=text, retriable=cls.retriable
    )


class _Writer:
    """Sends only changed fields: one PATCH per item, or up to ``batch_size`` PATCHes per
    Batch API call. A PATCH of the same values again is harmless, so retries are safe."""

    def __init__(self, api: _TableApi, settings: ServiceNowSettings) -> None:
        self.api = api
        self.settings = settings
        self._batch_unavailable = False

    def write(self, pending: list[_Pending]) -> list[WriteResult]:
        if self.settings.use_batch_api and len(pending) > 1 and not self._batch_unavailable:
            results: list[WriteResult] = []
            size = self.settings.batch_size
            for start in range(0, len(pending), size):
                results.extend(self._batch(pending[start : start + size]))
            return results
        return [self._patch(p) for p in pending]

    def _patch(self, pending: _Pending) -> WriteResult:
        what = f"updating {pending.table} {pending.item_id}"
        try:
            failed, updated = self.api.patch(pending.table, pending.item_id, pending.payload)
        except TransientError as exc:
            return WriteResult(pending.item_id, ok=False, fields=pending.logical, error=str(exc))
        if failed is None:
            return WriteResult(pending.item_id, ok=True, fields=pending.logical, updated=updated)
        if failed.status_code == 401:
            raise error_for(failed, f"ServiceNow source {self.settings.name}: {what}")
        return _failed(pending, failed.status_code, _error_message(failed), what)

    def _batch(self, chunk: list[_Pending]) -> list[WriteResult]:
        if self._batch_unavailable:
            return [self._patch(p) for p in chunk]
        requests_ = [
            {
                "id": str(n),
                "method": "PATCH",
                "url": f"/api/now/table/{p.table}/{p.item_id}?sysparm_fields=sys_id,sys_updated_on",
                "headers": [
                    {"name": "Content-Type", "value": "application/json"},
                    {"name": "Accept", "value": "application/json"},
                ],
                "body": base64.b64encode(
                    json.dumps(p.payload, ensure_ascii=False).encode()
                ).decode(),
                "exclude_response_headers": True,
            }
            for n, p in enumerate(chunk)
        ]
        body = {"batch_request_id": uuid.uuid4().hex, "rest_requests": requests_}
        try:
            response = self.api.batch(body)
        except TransientError as exc:
            return [
                WriteResult(p.item_id, ok=False, fields=p.logical, error=str(exc)) for p in chunk
            ]
        if response.status_code == 401:
            raise error_for(response, f"ServiceNow source {self.settings.name}: Batch API")
        if response.status_code in (400, 403, 404, 405):
            # No Batch API on this instance, or not for this user: PATCH one by one instead.
            log.warning(
                "%s: Batch API answered HTTP %d (%s); writing one record per request",
                self.settings.name,
                response.status_code,
                _error_message(response),
            )
            self._batch_unavailable = True
            return [self._patch(p) for p in chunk]
        if response.status_code >= 400:
            error = str(error_for(response, "Batch API"))
            return [WriteResult(p.item_id, ok=False, fields=p.logical, error=error) for p in chunk]
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        served = {str(s.get("id")): s for s in answer.get("serviced_requests") or []}
        results: list[WriteResult] = []
        for n, pending in enumerate(chunk):
            entry = served.get(str(n))
            what = f"updating {pending.table} {pending.item_id}"
            if entry is None:
                # Unserviced: the batch hit the platform's size or time limit.
                results.append(
                    WriteResult(
                        pending.item_id,
                        ok=False,
                        fields=pending.logical,
                        error=f"{what}: not processed, the batch reached the platform's limit; "
                        "the next run retries",
                    )
                )
                continue
            status = int(entry.get("status_code") or 0)
            if 200 <= status < 300:
                results.append(
                    WriteResult(
                        pending.item_id,
                        ok=True,
                        fields=pending.logical,
                        updated=_batch_updated(entry),
                    )
                )
                continue
            if status == 401:
                raise AuthError(
                    f"ServiceNow source {self.settings.name}: {what}: HTTP 401",
                    hint=ERROR_TABLE[401][1],
                )
            results.append(_failed(pending, status, _batch_message(entry), what))
        return results


def _batch_updated(entry: dict[str, Any]) -> datetime | None:
    """sys_updated_on from a serviced batch request's base64 body, when present."""
    try:
        body = json.loads(base64.b64decode(entry.get("body") or b"") or b"{}")
    except ValueError:
        return None
    result = body.get("result") if isinstance(body, dict) else None
    return parse_utc(result.get("sys_updated_on")) if isinstance(result, dict) else None


def _batch_message(entry: dict[str, Any]) -> str:
    try:
        body = json.loads(base64.b64decode(entry.get("body") or ""))
        error = body.get("error") or {}
        return "; ".join(str(p) for p in (error.get("message"), error.get("detail")) if p)
    except (ValueError, TypeError, AttributeError):
        return str(entry.get("error_message") or "")


# --- the connector --------------------------------------------------------------------------------


class ServiceNowConnector(Connector):
    """Pulls task tables through the Table API and writes the three writeback fields."""

    platform = "servicenow"
    Settings = ServiceNowSettings

    def __init__(self, settings: SourceSettings, counter: RequestCounter | None = None) -> None:
        if not isinstance(settings, ServiceNowSettings):
            raise TypeError(
                f"ServiceNowConnector needs ServiceNowSettings, not {type(settings).__name__}"
            )
        super().__init__(settings, counter)
        self.settings: ServiceNowSettings = settings
        self._api: _TableApi | None = None
        self._context: _Context | None = None
        self._writer: _Writer | None = None
        self._run: datetime | None = None

    # -- wiring -----------------------------------------------------------------------------------
    @property
    def api(self) -> _TableApi:
        # Built on first use so an offline command never needs credentials.
        if self._api is None:
            self._api = _TableApi(self.settings, self.counter)
        return self._api

    @property
    def context(self) -> _Context:
        if self._context is None:
            self._context = _Context(self.api, [t.name for t in self.settings.tables])
        return self._context

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    def streams(self) -> list[str]:
        return [t.name for t in self.settings.tables]

    # -- reading ----------------------------------------------------------------------------------
    def fields_for(self, table: TableSettings) -> list[str]:
        wanted = [
            *BASE_FIELDS,
            *TABLE_FIELDS.get(table.name, ()),
            table.requester_field,
            table.customer_field,
            *self.settings.writeback.fields.values(),
            *table.fields,
        ]
        return list(dict.fromkeys(f for f in wanted if f))

    def pull(self, stream: str, since: datetime | None, until: datetime) -> Iterator[Page]:
        """Pages of one table updated at or after ``since`` and up to ``until``'s second (the
        sync's start), ascending by (sys_updated_on, sys_id).

        The window ends where the run began, as the watermark does: a record updated later in
        the run (our own writes included) falls after it and comes with the next run, instead
        of coming back behind the cursor to be read and dropped again. The start's own second
        is included, so an edit made just before the sync is not kept waiting. The window's
        X-Total-Count, taken with the first page and carried as ``Page.total`` on every page,
        is what the engine compares with the records it processed (ACLs hide records from it;
        a record updated meanwhile moves out). ``until`` also marks a run: display-value
        caches last one run.
        """
        if until != self._run:
            self._run = until
            self._context = None
        table = self.settings.table(stream)
        fields = self.fields_for(table)
        paginator = KeysetPaginator(
            page_size=self.settings.page_size,
            since=sn_datetime(since) if since else None,
            until=sn_datetime(until),
        )
        first_total: int | None = None
        while True:
            query = _and_query(paginator.conditions(), table.filter)
            query += "^ORDERBYsys_updated_on^ORDERBYsys_id"
            try:
                raw = self.api.page(
                    table.name, query, fields, paginator.page_size, paginator.offset
                )
            except MissingTable as exc:
                log.warning("%s: skipping table %s: %s", self.settings.name, table.name, exc)
                return
            if first_total is None:
                first_total = raw.total
            if raw.records:
                fresh = raw.records
                if self.known is not None:
                    # Versions already processed (typically our own writes of the last run)
                    # need no context and no enrichment: drop them before the bulk queries.
                    seen = self.known(
                        [(str(r.get("sys_id")), parse_utc(r.get("sys_updated_on"))) for r in fresh]
                    )
                    fresh = [r for r in fresh if str(r.get("sys_id")) not in seen]
                items = self.build_items(table, fresh) if fresh else []
                last = raw.records[-1]
                updated = parse_utc(last.get("sys_updated_on"))
                cursor = (updated, str(last.get("sys_id"))) if updated else None
                yield Page(items=items, cursor=cursor, total=first_total)
            if not paginator.advance(raw.records, raw.total):
                return

    def fetch(self, key: str) -> Item | None:
        """The record numbered ``key`` in the first configured table that has it (within the
        table's filter), built as ``pull`` builds it: one read per table tried, then its
        context; nothing is written."""
        if not _KEY.match(key):
            return None
        for table in self.settings.tables:
            query = _and_query([f"number={key}"], table.filter)
            try:
                raw = self.api.page(table.name, query, self.fields_for(table), 1, 0)
            except MissingTable:
                continue
            if raw.records:
                return self.build_items(table, raw.records[:1])[0]
        return None

    def build_items(self, table: TableSettings, records: list[dict[str, Any]]) -> list[Item]:
        """Fetch the page's context in bulk (two rounds) and build its items."""
        wb = self.settings.writeback.fields
        ctx = self.context
        ids = [str(r.get("sys_id")) for r in records if r.get("sys_id")]
        history_fields = [*HISTORY_FIELDS, *wb.values()]
        paths = {
            table.requester_field,
            table.customer_field,
            "assignment_group",
            "assigned_to",
            "business_service",
        }
        targets = {path: ctx.reference_table(table.name, path) for path in paths}
        refs: dict[str, set[str]] = {}
        for record in records:
            for path, target in targets.items():
                value = record.get(path)
                if target and value:
                    refs.setdefault(target, set()).add(str(value))
        page = ctx.page(ids, history_fields, refs)
        return [self._item(table, record, page) for record in records]

    def _item(self, table: TableSettings, raw: dict[str, Any], page: PageContext) -> Item:
        ctx = self.context
        sys_id = str(raw.get("sys_id", ""))
        wb = self.settings.writeback.fields
        requester_id = str(raw.get(table.requester_field) or "")
        requester_table = ctx.reference_table(table.name, table.requester_field)
        requester = ctx.user(requester_id) if requester_table == "sys_user" else {}
        requester_login = str(requester.get("user_name") or "")
        agents = ctx.agents()

        def shown(path: str) -> str:
            value = str(raw.get(path) or "")
            target = ctx.reference_table(table.name, path)
            return ctx.display(target, value) if target else value

        comments = []
        for row in page.comments.get(sys_id, []):
            author = str(row.get("sys_created_by", ""))
            if requester_login and author == requester_login:
                role = "requester"
            elif author in agents:
                role = "agent"
            else:
                role = "other"
            comments.append(
                Comment(
                    text=str(row.get("value", "")),
                    author=ctx.login_name(author),
                    author_role=role,
                    created=parse_utc(row.get("sys_created_on")),
                    internal=row.get("element") == "work_notes",
                )
            )
        logical_of = {column: logical for logical, column in wb.items()}
        history = []
        for row in page.audit.get(sys_id, []):
            fname = str(row.get("fieldname", ""))
            old, new = str(row.get("oldvalue") or ""), str(row.get("newvalue") or "")
            if fname in ("assignment_group", "assigned_to"):
                target = KNOWN_REFERENCES[fname]
                old, new = ctx.display(target, old), ctx.display(target, new)
            elif fname in ("state", "priority"):
                old, new = ctx.label(table.name, fname, old), ctx.label(table.name, fname, new)
            history.append(
                HistoryEvent(
                    field=logical_of.get(fname, fname),
                    old=old or None,
                    new=new or None,
                    at=parse_utc(row.get("sys_created_on")),
                    by=str(row.get("user", "")),
                )
            )
        slas = page.sla.get(sys_id)
        scores = page.survey.get(sys_id)
        state = str(raw.get("state") or "")
        priority = str(raw.get("priority") or "")
        fields = {k: v for k, v in raw.items() if k not in _CONSUMED and k not in logical_of}
        if slas:
            # The SLA due first says where the item stands; rules may match on it.
            fields["sla_stage"] = str(slas[0].get("stage") or "")
            fields["sla_planned_end"] = str(slas[0].get("planned_end_time") or "")
        return Item(
            source=self.settings.name,
            platform=self.platform,
            container=table.name,
            id=sys_id,
            key=str(raw.get("number") or sys_id),
            kind=table.kind,
            url=f"{self.api.base_url}/nav_to.do?uri={table.name}.do?sys_id={sys_id}",
            title=str(raw.get("short_description") or ""),
            description=str(raw.get("description") or ""),
            requester=shown(table.requester_field),
            customer=shown(table.customer_field),
            assignment_group=shown("assignment_group"),
            assignee=shown("assigned_to"),
            service=shown("business_service"),
            category=str(raw.get("category") or ""),
            state=ctx.label(table.name, "state", state) if state else "",
            priority=ctx.label(table.name, "priority", priority) if priority else "",
            created=parse_utc(raw.get("opened_at") or raw.get("sys_created_on")),
            updated=parse_utc(raw.get("sys_updated_on")),
            resolved=parse_utc(raw.get("resolved_at") or raw.get("closed_at")),
            updated_by=str(raw.get("sys_updated_by") or ""),
            comments=comments,
            history=history,
            sla_breached=any(str(s.get("has_breached")) == "true" for s in slas) if slas else None,
            survey_score=((sum(scores) / len(scores)) - 1) / 4 if scores else None,
            reopen_count=_int_or_none(raw.get("reopen_count")),
            reassignment_count=_int_or_none(raw.get("reassignment_count")),
            language=str(requester.get("preferred_language") or ""),
            current={
                logical: raw[column]
                for logical, column in wb.items()
                if raw.get(column) not in (None, "")
            },
            fields=fields,
        )

    # -- writing ----------------------------------------------------------------------------------
    def write(self, changes: list[FieldChange]) -> list[WriteResult]:
        """One WriteResult per item. Every field is checked against the allowlist before
        anything is sent: a field off the list is a bug, not data, and raises."""
        pending: dict[str, _Pending] = {}
        for change in changes:
            column = self.allowed_field(change.field)
            item = change.item
            entry = pending.get(item.id)
            if entry is None:
                entry = pending[item.id] = _Pending(item.id, item.container, {}, [])
            entry.payload[column] = wire_value(change.field, change.new)
            if change.field not in entry.logical:
                entry.logical.append(change.field)
        if not pending:
            return []
        if self._writer is None:
            self._writer = _Writer(self.api, self.settings)
        return self._writer.write(list(pending.values()))

    # -- checking ---------------------------------------------------------------------------------
    # -- nudge notes ------------------------------------------------------------------------------
    def post_note(self, item: Item, text: str) -> datetime | None:
        """A work note: PATCH the record's ``work_notes`` journal field, which ServiceNow stores
        as a sys_journal_field entry visible to IT only. Returns the new sys_updated_on."""
        # Each PATCH of work_notes adds a note: a lost answer must not make the policy send it
        # again (the engine looks for the note's marker on the next run instead).
        failed, updated = self.api.patch(item.container, item.id, {"work_notes": text}, once=True)
        if failed is not None:
            raise error_for(failed, f"ServiceNow source {self.settings.name}: work note on {item.key}")
        return updated

    def find_notes(self, items: list[Item], markers: dict[str, str]) -> set[str]:
        """Items whose work notes already hold their marker: one journal query per chunk."""
        found: set[str] = set()
        ids = [i.id for i in items if i.id in markers]
        for chunk in _chunks(ids):
            rows = self.api.fetch_all(
                "sys_journal_field",
                f"element_idIN{','.join(chunk)}^element=work_notes^valueLIKEmomentos-nudge",
                ["element_id", "value"],
            )
            for row in rows:
                item_id = str(row.get("element_id") or "")
                if markers.get(item_id) and markers[item_id] in str(row.get("value") or ""):
                    found.add(item_id)
        return found

    def check(self) -> list[CheckProblem]:
        return _Checker(self).run()

    # -- publishing the report --------------------------------------------------------------------
    def publish_attachment(
        self,
        table: str,
        sys_id: str,
        path: Any,
        file_name: str,
        *,
        content_type: str = "text/html",
        comment: str | None = None,
        comment_field: str = "work_notes",
    ) -> dict[str, Any]:
        """Attach the file at ``path`` to ``table``/``sys_id`` as ``file_name``, delete the
        record's older attachments of that name, and (optionally) add ``comment`` to the
        record's ``comment_field`` journal. Returns ``{"attachment": sys_id, "replaced": n}``.

        Attachment API (ServiceNow docs, "Attachment API", Zurich):
        ``POST /api/now/attachment/file?table_name=&table_sys_id=&file_name=`` with the raw
        bytes and their Content-Type; ``GET /api/now/attachment?sysparm_query=...`` lists
        sys_attachment records; ``DELETE /api/now/attachment/{sys_id}`` removes one. The calls
        go through the client's own session (same HTTP policy, same request counter) as the
        Batch API calls do: pysnow's Attachment helper reads a path and guesses the type with
        python-magic, and its delete issues an extra GET first. Uploading before deleting
        keeps the record from ever being without a report, and also removes a duplicate left
        by an upload that was sent twice.
        """
        from pathlib import Path

        api = self.api
        data = Path(path).read_bytes()
        what = f"attach {file_name} to {table}/{sys_id}"
        try:
            response = api.session.post(
                f"{api.base_url}/api/now/attachment/file",
                params={"table_name": table, "table_sys_id": sys_id, "file_name": file_name},
                data=data,
                headers={"Content-Type": content_type, "Accept": "application/json"},
                timeout=api._timeout,
            )
        except requests.RequestException as exc:
            raise TransientError(f"{self.settings.name}: {what}: {type(exc).__name__}") from None
        if not response.ok:
            raise error_for(response, f"{self.settings.name}: {what}")
        new_id = str((response.json().get("result") or {}).get("sys_id") or "")

        query = f"table_name={table}^table_sys_id={sys_id}^file_name={file_name}"
        listed = api.session.get(
            f"{api.base_url}/api/now/attachment",
            params={"sysparm_query": query, "sysparm_fields": "sys_id,file_name"},
            headers={"Accept": "application/json"},
            timeout=api._timeout,
        )
        if not listed.ok:
            raise error_for(listed, f"{self.settings.name}: list attachments of {table}/{sys_id}")
        older = [
            str(r.get("sys_id"))
            for r in listed.json().get("result") or []
            if r.get("file_name") == file_name and str(r.get("sys_id")) != new_id
        ]
        for old in older:
            gone = api.session.delete(
                f"{api.base_url}/api/now/attachment/{old}", timeout=api._timeout
            )
            if not gone.ok and gone.status_code != 404:  # 404: someone removed it already
                raise error_for(gone, f"{self.settings.name}: delete attachment {old}")
        if comment:
            failed, _ = api.patch(table, sys_id, {comment_field: comment}, once=True)
            if failed is not None:
                raise error_for(failed, f"{self.settings.name}: comment on {table}/{sys_id}")
        return {"attachment": new_id, "replaced": len(older)}


class _Checker:
    """``momentos check`` for one ServiceNow source: reach it, read every table, find the
    writeback fields in sys_dictionary with the right types, and try a no-op write."""

    def __init__(self, connector: ServiceNowConnector) -> None:
        self.connector = connector
        self.settings = connector.settings
        self.problems: list[CheckProblem] = []

    def add(self, what: str, fix: str) -> None:
        self.problems.append(CheckProblem(what=f"{self.settings.name}: {what}", fix=fix))

    def run(self) -> list[CheckProblem]:
        try:
            api = self.connector.api
            samples = self._tables(api)
            if samples is None:
                return self.problems
            present = self._dictionary(api)
            self._writable(samples, present)
        except TransientError as exc:
            self.add(
                f"cannot reach {self.settings.url}: {exc.message}",
                "check the url, the network or proxy, and TLS (ca_bundle)",
            )
        except MomentosError as exc:
            self.add(str(exc), exc.hint or "see the message")
        return self.problems

    def _tables(self, api: _TableApi) -> dict[str, dict[str, Any]] | None:
        """Read one record of each table; None when the credentials are refused."""
        samples: dict[str, dict[str, Any]] = {}
        columns = ["sys_id", *self.settings.writeback.fields.values()]
        for table in self.settings.tables:
            try:
                page = api.page(table.name, "ORDERBYDESCsys_updated_on", columns, 1, 0)
            except MissingTable:
                self.add(
                    f"table {table.name} does not exist",
                    f"remove {table.name} from tables, or install the plugin that adds it",
                )
                continue
            except Forbidden:
                self.add(
                    f"cannot read table {table.name}",
                    f"grant {api.user or 'the integration user'} read access to "
                    f"{table.name} (role itil or snc_read_only)",
                )
                continue
            except AuthError:
                self.add(
                    f"ServiceNow refused the credentials of {api.user or 'the user'}",
                    "check auth.username and the password environment variable",
                )
                return None
            if page.records:
                samples[table.name] = page.records[0]
        return samples

    def _dictionary(self, api: _TableApi) -> set[str]:
        """Writeback fields found with an acceptable type and not read-only."""
        wb = self.settings.writeback.fields
        owners = ["task", *(t.name for t in self.settings.tables)]
        try:
            rows = api.fetch_all(
                "sys_dictionary",
                f"nameIN{','.join(owners)}^elementIN{','.join(wb.values())}",
                ("name", "element", "internal_type", "read_only", "active"),
            )
        except Forbidden:
            self.add(
                "cannot read sys_dictionary to verify the writeback fields",
                "grant the integration user read access to sys_dictionary "
                "(role personalize_dictionary), or verify the fields by hand",
            )
            return set(wb.values())
        present: set[str] = set()
        for logical, column in wb.items():
            found = [r for r in rows if r.get("element") == column and r.get("active") != "false"]
            accepted, type_name = WRITEBACK_TYPES[logical]
            if not found:
                self.add(
                    f"field {column} is missing", f"create field {column} ({type_name}) on task"
                )
                continue
            row = found[0]
            internal = str(row.get("internal_type", ""))
            if internal not in accepted:
                self.add(
                    f"field {column} on {row.get('name')} is {internal}, not {type_name}",
                    f"change {column} to {type_name}, or point writeback.fields.{logical} "
                    f"at {'an' if type_name[0] in 'AEIOU' else 'a'} {type_name} field",
                )
                continue
            if str(row.get("read_only")) == "true":
                self.add(
                    f"field {column} on {row.get('name')} is read only",
                    f"clear Read only on the dictionary entry of {column}",
                )
                continue
            present.add(column)
        if wb.get("moment") in present:
            self._moment_choices(api, wb["moment"], owners)
        return present

    def _moment_choices(self, api: _TableApi, column: str, owners: list[str]) -> None:
        try:
            rows = api.fetch_all(
                "sys_choice",
                f"nameIN{','.join(owners)}^element={column}^inactive=false",
                ("value",),
            )
        except Forbidden:
            return
        values = {str(r.get("value")) for r in rows}
        if rows and not {"operation", "evolution", "innovation"} <= values:
            missing = sorted({"operation", "evolution", "innovation"} - values)
            self.add(
                f"choice list of {column} lacks {', '.join(missing)}",
                f"add choices {', '.join(missing)} (lower case values) to {column}",
            )

    def _writable(self, samples: dict[str, dict[str, Any]], present: set[str]) -> None:
        """PATCH each table's newest record with its own values: a no-op that still runs the
        platform's write ACLs."""
        if not present:
            return
        api = self.connector.api
        for table, record in samples.items():
            payload = {c: str(record.get(c) or "") for c in present}
            failed, _ = api.patch(table, str(record.get("sys_id")), payload)
            if failed is None:
                continue
            if failed.status_code == 403:
                self.add(
                    f"{api.user or 'the integration user'} cannot update "
                    f"{', '.join(sorted(present))} on {table}",
                    "grant role itil (or the role your write ACL requires) on these fields, "
                    "or remove the ACL that blocks them",
                )
            else:
                self.add(
                    f"a test update on {table} failed: HTTP {failed.status_code} "
                    f"{_error_message(failed)}",
                    "see the platform's message",
                )


def _and_query(conditions: list[str], filter_: str | None) -> str:
    """AND conditions into a filter. ``^NQ`` starts a new OR-ed query, so the conditions go
    into every one of its segments."""
    prefix = "^".join(conditions)
    if not filter_:
        return prefix
    return "^NQ".join(
        "^".join(p for p in (prefix, segment) if p) for segment in filter_.split("^NQ")
    )
