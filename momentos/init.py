"""`momentos init`: discover what the platforms offer, then write a commented starter config.

Discovery only reads, through the one HTTP policy (``connectors/http.py``), with the
credentials the environment variables named in the file hold:

* ServiceNow: which of the connector's default task tables the user can read (one record
  each, ``sysparm_limit=1``); candidate customer fields (``company``, the requester's
  ``department``/``company``, ``u_`` fields found in ``sys_dictionary``) with how often the
  newest records fill them; whether the three writeback fields exist.
* Jira: the projects the user sees and their issue types (with the shipped rule that would
  tag each); custom fields named like company/department/customer/organization, with how
  often the newest issues fill them; JSM organizations; the writeback fields.

Whatever cannot be discovered (unreachable, refused credentials, a variable not set) is left at
its default and the file says so in a comment, so ``init`` always leaves a valid file behind.
The file is rendered as text (YAML with comments) and validated with the config loader before
it is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from momentos.connectors.http import HttpSettings, RequestCounter, build_session, error_for
from momentos.errors import AuthError, MomentosError, NotFoundError, TransientError
from momentos.secrets import register_secret

log = logging.getLogger("momentos.init")

#: Environment variables init reads (and names in the file) unless told otherwise.
SN_USER_ENV = "MOMENTOS_SN_USER"
SN_PASSWORD_ENV = "MOMENTOS_SN_PASSWORD"
JIRA_USER_ENV = "MOMENTOS_JIRA_USER"
JIRA_TOKEN_ENV = "MOMENTOS_JIRA_TOKEN"

#: Records sampled per table / issues per search to measure how often a field is filled.
SAMPLE_SIZE = 50
#: Projects written out at most; an admin prunes the list anyway.
MAX_PROJECTS = 60
#: Jira field names that may hold the customer (business area, organization, ...).
CUSTOMER_NAME = re.compile(
    r"compan|department|customer|organi[sz]ation|business[ _-]?area|business[ _-]?unit"
    r"|cliente|departamento|empresa|organizaci[oó]n|[aá]rea",
    re.IGNORECASE,
)
#: Discovery gives up on a platform quickly: a setup wizard should not wait minutes.
DISCOVERY_HTTP = HttpSettings(connect_timeout_s=5.0, read_timeout_s=30.0, max_retries=1,
                              backoff_base_s=0.2, backoff_max_s=1.0, retry_after_max_s=5.0)


class InitError(MomentosError):
    """Nothing could be written: bad usage or an existing file without --force (``code`` 2), or
    a path that cannot be written (1)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class InitOptions:
    servicenow: str | None = None
    jira: str | None = None
    out: Path = Path("config/momentos.yaml")
    force: bool = False
    servicenow_user: str | None = None
    jira_user: str | None = None
    servicenow_password_env: str = SN_PASSWORD_ENV
    jira_token_env: str = JIRA_TOKEN_ENV
    ca_bundle: str | None = None


@dataclass
class _Auth:
    """What the file says about credentials, and what discovery may use."""

    yaml: dict[str, str]  # the auth mapping written in the file
    username: str | None  # resolved login, or None
    secret: str | None  # resolved password/token (never written, never printed)
    bearer: bool = False
    missing: list[str] = field(default_factory=list)  # variables that are not set


@dataclass
class ServiceNowFindings:
    reached: bool = False
    problem: str = ""  # why discovery stopped, in plain words
    readable: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # table → why
    #: table → [(field, filled share)], best first
    customer: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    writeback: dict[str, str] = field(default_factory=dict)  # column → "found (type)" / "missing"


@dataclass
class JiraProject:
    key: str
    name: str
    type: str
    issue_types: list[str]


@dataclass
class JiraFindings:
    reached: bool = False
    problem: str = ""
    flavor: str = "auto"
    projects: list[JiraProject] = field(default_factory=list)
    customer_fields: list[tuple[str, float | None]] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)
    organizations_total: int = 0
    fields_read: bool = False  # /field answered: writeback_missing is known
    writeback_missing: list[str] = field(default_factory=list)


@dataclass
class InitResult:
    path: Path
    text: str
    warnings: list[str]
    servicenow: ServiceNowFindings | None = None
    jira: JiraFindings | None = None


# --- the command -----------------------------------------------------------------------------
def run_init(options: InitOptions) -> InitResult:
    """Discover, render, validate and write the starter config; raise InitError when nothing
    can be written. Discovery problems become warnings and comments, never failures."""
    from momentos.config import parse_config

    if not options.servicenow and not options.jira:
        raise InitError("name at least one platform: --servicenow URL and/or --jira URL")
    out = options.out
    if out.exists() and not options.force:
        raise InitError(f"{out} exists; momentos init never overwrites a file without --force")
    warnings: list[str] = []
    sn_auth = jira_auth = None
    sn = jira = None
    if options.servicenow:
        sn_auth = _servicenow_auth(options)
        sn = discover_servicenow(options.servicenow, sn_auth, options.ca_bundle)
        if sn.problem:
            warnings.append(f"servicenow: could not discover everything: {sn.problem}")
    if options.jira:
        jira_auth = _jira_auth(options)
        jira = discover_jira(options.jira, jira_auth, options.ca_bundle)
        if jira.problem:
            warnings.append(f"jira: could not discover everything: {jira.problem}")
    text = render(options, sn_auth, sn, jira_auth, jira)
    # The file must load: a rendering bug is caught here, before anything is written.
    parse_config(text, out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InitError(f"cannot write {out}: {exc.strerror}", code=1) from None
    return InitResult(out, text, warnings, sn, jira)


def _env(name: str) -> str | None:
    value = os.environ.get(name) or None
    if value:
        register_secret(value)
    return value


def _servicenow_auth(options: InitOptions) -> _Auth:
    missing: list[str] = []
    if options.servicenow_user:
        user: str | None = options.servicenow_user
        auth = {"username": user}
    else:
        user = os.environ.get(SN_USER_ENV) or None
        auth = {"username_env": SN_USER_ENV}
        if not user:
            missing.append(SN_USER_ENV)
    auth["password_env"] = options.servicenow_password_env
    secret = _env(options.servicenow_password_env)
    if not secret:
        missing.append(options.servicenow_password_env)
    return _Auth(auth, user, secret, missing=missing)


def _jira_auth(options: InitOptions) -> _Auth:
    """Cloud: e-mail + API token; Data Center: user + password. Without any user the token is
    a Data Center personal access token, sent as a bearer token."""
    user = options.jira_user or os.environ.get(JIRA_USER_ENV) or None
    secret = _env(options.jira_token_env)
    missing = [] if secret else [options.jira_token_env]
    if options.jira_user:
        return _Auth({"username": options.jira_user, "password_env": options.jira_token_env},
                     user, secret, missing=missing)
    if user:
        return _Auth({"username_env": JIRA_USER_ENV, "password_env": options.jira_token_env},
                     user, secret, missing=missing)
    return _Auth({"token_env": options.jira_token_env}, None, secret, bearer=True, missing=missing)


def _session(platform: str, auth: _Auth, ca_bundle: str | None) -> requests.Session:
    headers = {"Authorization": f"Bearer {auth.secret}"} if auth.bearer else None
    basic = None if auth.bearer else (auth.username or "", auth.secret or "")
    return build_session(
        DISCOVERY_HTTP, RequestCounter(), verify=ca_bundle or True, platform=platform,
        auth=basic, headers=headers,
    )


def _get(session: requests.Session, url: str, what: str, params: dict[str, Any] | None = None) -> requests.Response:
    """GET through the policy; connection failures become TransientError (never a traceback)."""
    try:
        return session.get(url, params=params, timeout=(DISCOVERY_HTTP.connect_timeout_s,
                                                        DISCOVERY_HTTP.read_timeout_s))
    except MomentosError:
        raise
    except requests.RequestException as exc:
        raise TransientError(f"{what}: {type(exc).__name__}") from None


def _json(response: requests.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise error_for(response, what)
    try:
        return response.json()
    except ValueError:
        raise MomentosError(f"{what}: the answer is not JSON (is the URL right?)") from None


def _filled(records: list[dict[str, Any]], name: str) -> float:
    """Share of the records whose field ``name`` holds a value."""
    if not records:
        return 0.0
    return sum(1 for r in records if str(r.get(name) or "").strip()) / len(records)


# --- ServiceNow ----------------------------------------------------------------------------------
def discover_servicenow(url: str, auth: _Auth, ca_bundle: str | None = None) -> ServiceNowFindings:
    """Readable default tables, customer field candidates and writeback fields; stops at the
    first sign that the instance cannot be reached or refuses the credentials."""
    from momentos.connectors.servicenow import DEFAULT_TABLES, DEFAULT_WRITEBACK, REQUESTER_BY_TABLE

    found = ServiceNowFindings()
    if auth.missing:
        found.problem = f"environment variable(s) {', '.join(auth.missing)} not set"
        return found
    base = url.rstrip("/")
    session = _session("servicenow", auth, ca_bundle)
    try:
        for table in DEFAULT_TABLES:
            what = f"read table {table}"
            response = _get(session, f"{base}/api/now/table/{table}", what,
                            {"sysparm_limit": 1, "sysparm_fields": "sys_id"})
            status = response.status_code
            if status == 401:
                raise AuthError(f"ServiceNow refused the credentials of {auth.username or 'the user'} (HTTP 401)")
            found.reached = True
            if status < 400:
                found.readable.append(table)
            elif status == 403:
                found.unreadable[table] = "the user may not read it (HTTP 403)"
            elif status in (400, 404):
                found.unreadable[table] = "the table does not exist on this instance"
            else:
                found.unreadable[table] = str(error_for(response, what))

        dictionary = _dictionary(session, base, found.readable)
        u_fields = sorted(
            {r["element"] for r in dictionary if r.get("name") in ("task", *found.readable)
             and str(r.get("element", "")).startswith("u_")
             and r["element"] not in DEFAULT_WRITEBACK.values()}
        )
        present = {r.get("element"): r.get("internal_type") for r in dictionary
                   if r.get("element") in DEFAULT_WRITEBACK.values()}
        if dictionary:
            for column in DEFAULT_WRITEBACK.values():
                found.writeback[column] = f"found ({present[column]})" if column in present else "missing"
        for table in found.readable:
            requester = REQUESTER_BY_TABLE.get(table, "opened_by")
            candidates = ["company", *u_fields, f"{requester}.department", f"{requester}.company"]
            response = _get(
                session, f"{base}/api/now/table/{table}", f"sample table {table}",
                {"sysparm_limit": SAMPLE_SIZE, "sysparm_fields": ",".join(candidates),
                 "sysparm_query": "ORDERBYDESCsys_updated_on", "sysparm_exclude_reference_link": "true"},
            )
            records = (_json(response, f"sample table {table}") or {}).get("result") or []
            shares = [(c, _filled(records, c)) for c in candidates]
            # Best filled first; on a tie the earlier (simpler) candidate wins.
            found.customer[table] = sorted(shares, key=lambda s: -s[1])
    except AuthError as exc:
        found.problem = exc.message
    except TransientError as exc:
        found.problem = f"{base} is unreachable: {exc.message}"
    except MomentosError as exc:
        found.problem = str(exc)
    finally:
        session.close()
    return found


def _dictionary(session: requests.Session, base: str, tables: list[str]) -> list[dict[str, Any]]:
    """sys_dictionary rows of task and the readable tables: u_ fields and the writeback fields.
    An empty list when the user may not read the dictionary."""
    from momentos.connectors.servicenow import DEFAULT_WRITEBACK

    names = ",".join(["task", *tables])
    query = (f"nameIN{names}^elementSTARTSWITHu_^active=true"
             f"^NQnameIN{names}^elementIN{','.join(DEFAULT_WRITEBACK.values())}")
    response = _get(session, f"{base}/api/now/table/sys_dictionary", "read sys_dictionary",
                    {"sysparm_query": query, "sysparm_fields": "name,element,internal_type",
                     "sysparm_limit": 1000})
    if response.status_code in (403, 404):
        return []
    return (_json(response, "read sys_dictionary") or {}).get("result") or []


# --- Jira ------------------------------------------------------------------------------------------
def discover_jira(url: str, auth: _Auth, ca_bundle: str | None = None) -> JiraFindings:
    """Flavour, projects and their issue types, customer field candidates, JSM organizations
    and the writeback fields."""
    from momentos.connectors.jira import DEFAULT_WRITEBACK_FIELDS

    found = JiraFindings()
    if auth.missing:
        found.problem = f"environment variable(s) {', '.join(auth.missing)} not set"
        return found
    base = url.rstrip("/")
    api = f"{base}/rest/api/2"
    session = _session("jira", auth, ca_bundle)
    try:
        info = _json(_get(session, f"{api}/serverInfo", "read serverInfo"), "read serverInfo") or {}
        found.reached = True
        deployment = str(info.get("deploymentType") or "")
        found.flavor = "cloud" if deployment == "Cloud" else ("datacenter" if deployment else "auto")
        # /myself proves the credentials (serverInfo answers anonymous callers too).
        _json(_get(session, f"{api}/myself", "read myself"), "log in")
        projects = _json(_get(session, f"{api}/project", "list projects", {"expand": "issueTypes"}),
                         "list projects") or []
        for raw in projects[:MAX_PROJECTS]:
            types = raw.get("issueTypes")
            if types is None:  # not expanded: ask the project itself
                detail = _json(_get(session, f"{api}/project/{raw['key']}", f"read project {raw['key']}"),
                               f"read project {raw['key']}") or {}
                types = detail.get("issueTypes") or []
            found.projects.append(JiraProject(
                key=str(raw.get("key")), name=str(raw.get("name") or ""),
                type=str(raw.get("projectTypeKey") or ""),
                issue_types=[str(t.get("name")) for t in types if not t.get("subtask")]
                + [str(t.get("name")) for t in types if t.get("subtask")],
            ))
        if len(projects) > MAX_PROJECTS:
            found.problem = f"{len(projects)} projects are visible; only the first {MAX_PROJECTS} are listed"

        fields = _json(_get(session, f"{api}/field", "list fields"), "list fields") or []
        names = {str(f.get("name", "")).lower() for f in fields}
        found.fields_read = True
        found.writeback_missing = [n for n in DEFAULT_WRITEBACK_FIELDS.values() if n.lower() not in names]
        candidates = [f for f in fields if f.get("custom") and CUSTOMER_NAME.search(str(f.get("name", "")))
                      and str(f.get("name")) not in DEFAULT_WRITEBACK_FIELDS.values()]
        shares = _jira_fill(session, api, found, candidates)
        found.customer_fields = sorted(
            ((str(f["name"]), shares.get(str(f["id"]))) for f in candidates),
            key=lambda s: -(s[1] or 0.0),
        )
        _organizations(session, base, found)
    except AuthError as exc:
        found.problem = f"Jira refused the credentials: {exc.message}"
    except TransientError as exc:
        found.problem = f"{base} is unreachable: {exc.message}"
    except MomentosError as exc:
        found.problem = str(exc)
    finally:
        session.close()
    return found


def _jira_fill(session: requests.Session, api: str, found: JiraFindings,
               candidates: list[dict[str, Any]]) -> dict[str, float]:
    """Share of the newest issues of the discovered projects that fill each candidate field."""
    if not candidates or not found.projects:
        return {}
    keys = ", ".join(f'"{p.key}"' for p in found.projects)
    params = {"jql": f"project in ({keys}) ORDER BY updated DESC", "maxResults": SAMPLE_SIZE,
              "fields": ",".join(str(f["id"]) for f in candidates)}
    path = "search/jql" if found.flavor == "cloud" else "search"
    try:
        data = _json(_get(session, f"{api}/{path}", "sample issues", params), "sample issues") or {}
    except (NotFoundError, AuthError) as exc:
        log.info("jira: cannot sample issues (%s)", exc)
        return {}
    issues = data.get("issues") or []
    if not issues:
        return {}
    shares = {}
    for f in candidates:
        fid = str(f["id"])
        filled = sum(1 for i in issues if (i.get("fields") or {}).get(fid) not in (None, "", [], {}))
        shares[fid] = filled / len(issues)
    return shares


def _organizations(session: requests.Session, base: str, found: JiraFindings) -> None:
    """JSM organizations (first page); a site without Jira Service Management has none."""
    response = _get(session, f"{base}/rest/servicedeskapi/organization", "list organizations",
                    {"start": 0, "limit": 50})
    if response.status_code >= 400:
        return
    try:
        body = response.json() or {}
    except ValueError:
        return
    values = body.get("values") or []
    found.organizations = [str(v.get("name")) for v in values]
    found.organizations_total = len(values) if body.get("isLastPage", True) else max(len(values), 50)


# --- rendering -------------------------------------------------------------------------------------
_YAML_WORDS = frozenset({"yes", "no", "true", "false", "null", "on", "off", "y", "n", "~"})
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/@ ]*$")


def _q(value: Any) -> str:
    """A YAML scalar: plain when that is unambiguous, else a double-quoted (JSON) string."""
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS and not text.endswith(" "):
        return text
    return json.dumps(text, ensure_ascii=False)


def _pct(share: float | None) -> str:
    return "not sampled" if share is None else f"{share:.0%} filled"


def _shipped_rules(kinds: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(project, issue type) → what the shipped rules decide, e.g. "jira-operation → operation"."""
    import pandas as pd

    from momentos.connectors.jira import _kind
    from momentos.enrichment.moments import assign_moments
    from momentos.enrichment.settings import MomentsSettings

    if not kinds:
        return {}

    class _Undecided:  # stands in for the learned model: "decided from the text"
        def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame({"moment": "auto", "confidence": 0.0, "reason": ""}, index=frame.index)

    frame = pd.DataFrame({
        "platform": "jira", "source": "jira", "container": [p for p, _ in kinds],
        "kind": [_kind(t) for _, t in kinds], "title": "",
    })
    tags = assign_moments(frame, MomentsSettings(model_can_override_below=0.0), _Undecided())
    out = {}
    for (project, issue_type), rule, moment in zip(kinds, tags["moment_rule"], tags["moment"]):
        decided = "decided from the text" if moment == "auto" else moment
        out[(project, issue_type)] = f"{rule or 'no rule'} → {decided}"
    return out


def render(
    options: InitOptions,
    sn_auth: _Auth | None,
    sn: ServiceNowFindings | None,
    jira_auth: _Auth | None,
    jira: JiraFindings | None,
) -> str:
    """The starter config as commented YAML."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = options.out
    lines = [
        f"# momentos configuration, written by `momentos init` on {now}.",
        "#",
        "# What init discovered is noted next to each setting; what it could not discover is",
        "# marked \"could not discover\" and left at momentos's default. Secrets are never written",
        "# here: only the names of the environment variables that hold them. Next steps:",
        f"#   momentos config validate --config {out}",
        f"#   momentos check --config {out}",
        f"#   momentos sync --config {out} --dry-run",
        "# The full schema: `momentos config schema`; examples: config/*.example.yaml.",
        "version: 1",
        "",
        "# Platforms to read. Each source is pulled incrementally (a watermark per table or project)",
        "# and gets three fields written back: the relationship moment, the experience score and",
        "# the signals behind it.",
        "sources:",
    ]
    if options.servicenow and sn_auth is not None and sn is not None:
        lines += _render_servicenow(options, sn_auth, sn)
    if options.jira and jira_auth is not None and jira is not None:
        lines += _render_jira(options, jira_auth, jira)
    lines += _render_rest(jira)
    return "\n".join(lines) + "\n"


def _auth_lines(auth: _Auth, indent: str, platform: str) -> list[str]:
    notes = {
        "username": "the integration user (not a secret)" if platform == "servicenow"
        else "Cloud: the account's e-mail; Data Center: the user name",
        "username_env": "the user name is read from this environment variable",
        "password_env": "the password is read from this environment variable" if platform == "servicenow"
        else "Cloud: an API token; Data Center: the password (read from this variable)",
        "token_env": "a Data Center personal access token (bearer) is read from this variable",
    }
    lines = [f"{indent}auth:"]
    for key, value in auth.yaml.items():
        lines.append(f"{indent}  {key}: {_q(value)}    # {notes[key]}")
    return lines


def _render_servicenow(options: InitOptions, auth: _Auth, sn: ServiceNowFindings) -> list[str]:
    from momentos.connectors.servicenow import DEFAULT_TABLES, DEFAULT_WRITEBACK

    lines = [
        "  # --- ServiceNow ---------------------------------------------------------------------",
        "  - name: servicenow                  # used in state, logs and reports",
        "    type: servicenow",
        f"    url: {_q(options.servicenow.rstrip('/'))}",  # type: ignore[union-attr]
        *_auth_lines(auth, "    ", "servicenow"),
    ]
    if options.ca_bundle:
        lines.append(f"    ca_bundle: {_q(options.ca_bundle)}   # the CA that signs the instance")
    lines += [
        "    page_size: 500                    # records per Table API request",
        "    overlap_seconds: 120              # re-read this much before the watermark",
    ]
    discovered = bool(sn.readable)
    if discovered:
        lines += [
            "    # Tables to pull: the readable ones of momentos's default set (each was read with",
            "    # sysparm_limit=1). customer_field names who the item is for (the business area);",
            f"    # the shares are over the newest {SAMPLE_SIZE} records of each table.",
            "    tables:",
        ]
        for table in sn.readable:
            shares = sn.customer.get(table) or []
            best = shares[0] if shares and shares[0][1] > 0 else ("company", 0.0)
            entry = f"{{name: {table}}}" if best[0] == "company" else \
                f"{{name: {table}, customer_field: {_q(best[0])}}}"
            others = ", ".join(f"{c} {s:.0%}" for c, s in shares if c != best[0] and s > 0)
            note = f"customer: {best[0]} {_pct(best[1])}" + (f"; also filled: {others}" if others else "")
            lines.append(f"      - {entry:<50} # {note}")
        for table, why in sn.unreadable.items():
            lines.append(f"      # - {{name: {table}}}   # not pulled: {why}")
    else:
        why = sn.problem or "no table of the default set is readable"
        lines += [
            f"    # could not discover the readable tables: {why};",
            "    # the default set is listed: remove the tables this instance lacks.",
            "    tables:",
            *[f"      - {{name: {t}}}" for t in DEFAULT_TABLES],
        ]
    lines += [
        "    writeback:",
        "      enabled: true                   # false: enrich and report, write nothing back",
        "      fields:                         # logical name -> field on task; only these are ever written",
    ]
    types = {"moment": "Choice: operation, evolution, innovation", "score": "Integer",
             "signals": "String, 2,000"}
    for logical, column in DEFAULT_WRITEBACK.items():
        status = sn.writeback.get(column)
        if status is None:
            note = "could not discover (sys_dictionary not read)" if sn.reached else "could not discover"
        elif status == "missing":
            note = f"MISSING: create {column} ({types[logical]}) on task"
        else:
            note = status
        lines.append(f"        {logical}: {column:<26}# {note}")
    if sn.problem:
        lines.append(f"    # could not discover everything: {sn.problem}")
    lines.append("")
    return lines


def _render_jira(options: InitOptions, auth: _Auth, jira: JiraFindings) -> list[str]:
    from momentos.connectors.jira import DEFAULT_WRITEBACK_FIELDS

    lines = [
        "  # --- Jira ---------------------------------------------------------------------------",
        "  - name: jira",
        "    type: jira",
        f"    url: {_q(options.jira.rstrip('/'))}",  # type: ignore[union-attr]
        f"    flavor: {jira.flavor:<29}# "
        + ("from serverInfo" if jira.reached else "could not discover: auto asks serverInfo at each run"),
        *_auth_lines(auth, "    ", "jira"),
    ]
    if options.ca_bundle:
        lines.append(f"    ca_bundle: {_q(options.ca_bundle)}   # the CA that signs the site")
    if jira.projects:
        rules = _shipped_rules([(p.key, t) for p in jira.projects for t in p.issue_types])
        lines += [
            "    # Projects the user can see (remove those momentos should not read), with their issue",
            "    # types and what the shipped moment rules decide for each (see moments: below).",
            "    projects:",
        ]
        for p in jira.projects:
            lines.append(f"      - {_q(p.key):<12}# {p.name} ({p.type or 'unknown type'})")
            for issue_type in p.issue_types:
                lines.append(f"      #     {issue_type}: {rules.get((p.key, issue_type), '')}")
    else:
        why = jira.problem or "the user sees no project"
        lines += [
            f"    # could not discover the projects: {why}.",
            "    # Put your project keys here.",
            "    projects: [CHANGEME]",
        ]
    if jira.customer_fields:
        names = [n for n, _ in jira.customer_fields]
        lines += [
            "    # Fields that name the customer (business area, organization); the first non-empty one",
            f"    # wins. Found, over the newest {SAMPLE_SIZE} issues: "
            + ", ".join(f"{n} ({_pct(s)})" for n, s in jira.customer_fields),
            f"    customer_fields: [{', '.join(_q(n) for n in names)}]",
        ]
    else:
        note = "could not discover" if not jira.reached else "no field named like company, department, customer or organization"
        lines += [f"    # customer fields: {note}; the defaults are kept",
                  "    customer_fields: [Organizations, Business area]"]
    if jira.organizations:
        shown = ", ".join(jira.organizations[:8]) + (", ..." if len(jira.organizations) > 8 else "")
        lines.append(f"    # JSM organizations ({jira.organizations_total}{'+' if jira.organizations_total >= 50 else ''}): {shown}")
    elif jira.reached:
        lines.append("    # JSM organizations: none found (no Jira Service Management, or none defined)")
    lines += [
        "    agent_groups: [jira-servicedesk-users, it-agents] # members' comments count as IT's",
        "    page_size: 100",
        "    overlap_seconds: 120              # JQL has minute precision: keep at least 60",
        "    writeback:",
        "      enabled: true",
        "      fields:                         # logical name -> custom field NAME (ids are looked up)",
    ]
    types = {"moment": "select list: operation, evolution, innovation", "score": "number",
             "signals": "paragraph"}
    for logical, name in DEFAULT_WRITEBACK_FIELDS.items():
        if not jira.fields_read:
            note = "could not discover"
        elif name in jira.writeback_missing:
            note = f"MISSING: create custom field '{name}' ({types[logical]})"
        else:
            note = "found"
        lines.append(f"        {logical}: {_q(name):<26}# {note}")
    if jira.problem:
        lines.append(f"    # could not discover everything: {jira.problem}")
    lines.append("")
    return lines


def _render_rest(jira: JiraFindings | None) -> list[str]:
    return [
        "# Relationship moments: an ordered list of rules, the first match wins. The shipped rules",
        "# (ServiceNow tables, Jira issue types; printed by `momentos config schema` and shown in",
        "# config/demo.yaml) run after the rules listed here; a rule with a shipped rule's name",
        "# replaces it. Jira Task, Story and Sub-task are decided from the text (moment: auto).",
        "# Preview a change before it goes live: momentos mapping preview --config NEW.yaml",
        "moments:",
        "  review_threshold: 0.6               # below this confidence an item is flagged for review",
        "  rules: []",
        "  # rules:",
        "  #   - name: pmo-tasks-are-innovation",
        "  #     platform: jira",
        "  #     container: PMO",
        "  #     kind: [task, story]",
        "  #     moment: innovation",
        "",
        "# Experience: each signal's weight per moment (points it can take away at full severity),",
        "# the level thresholds and the language of the reasons. Unlisted weights keep the defaults.",
        "experience:",
        "  language: en                        # reasons in English (en) or Spanish (es)",
        "  levels: {good: 75, fair: 55, at_risk: 35}   # below at_risk is poor",
        "  # weights:",
        "  #   operation: {chasers: 35, sla_breached: 25}",
        "",
        "# Where momentos remembers watermarks, written values and run history.",
        "state:",
        "  url: sqlite:///momentos-state.db    # relative to this file; or postgresql+psycopg://user@host/db",
        "",
        "report:",
        "  out: momentos-report                # folder for the HTML and CSV reports",
        "  language: en",
        "",
        "# Jobs for `momentos serve` (five-field cron expressions).",
        "schedule:",
        "  timezone: UTC",
        "  jobs:",
        "    - {name: sync-all, type: sync, cron: \"*/15 * * * *\"}",
        "    - {name: daily-report, type: report, cron: \"0 7 * * 1-5\"}",
        "",
        "logging:",
        "  level: INFO",
        "  json: false                         # true: one JSON object per log line",
    ]
