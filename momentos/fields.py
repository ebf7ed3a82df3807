"""``momentos fields setup``: create the three writeback fields where they are missing.

For each source the platform is read first and a plan is made of only what is missing; nothing
is written unless the plan is applied, and a second run finds nothing to do. Every request goes
through the connector's own session, so the one HTTP policy (timeouts, retries, counting, TLS)
applies here too.

* ServiceNow: dictionary entries on ``task`` (so every task table has them), created through
  the Table API on ``sys_dictionary``, and the moment's choice list in ``sys_choice``. Both
  need the admin role.
* Jira Cloud: ``POST /rest/api/3/field``, the moment's options on the field's context, and the
  fields added to the screens each project edits with (issue type screen scheme → screen scheme
  → screen → tab). Needs the "Administer Jira" global permission.
* Jira Data Center: the fields through ``POST /rest/api/2/field``; select options and screens
  have no REST API there, so the plan says exactly what to do by hand.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from momentos.connectors.http import error_for
from momentos.errors import AuthError, PlatformError, TransientError

log = logging.getLogger("momentos.fields")

MOMENT_VALUES: tuple[str, ...] = ("operation", "evolution", "innovation")

#: Column label of each writeback field, whatever its configured name.
LABELS: dict[str, str] = {
    "moment": "Relationship moment",
    "score": "Experience score",
    "signals": "Experience signals",
}
DESCRIPTIONS: dict[str, str] = {
    "moment": "Written by momentos: the relationship moment (operation, evolution, innovation).",
    "score": "Written by momentos: the experience score, 0-100 (higher is better).",
    "signals": "Written by momentos: the experience signals behind the score.",
}


class AdminRequired(AuthError):
    """The platform refused an administration call: the user lacks the admin role."""


@dataclass
class Step:
    """One change of the plan: what it does, and how (``run`` is None for a manual step)."""

    source: str
    action: str  # create field | add options | add to screen | manual
    target: str
    detail: str = ""
    run: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def manual(self) -> bool:
        return self.run is None


@dataclass
class Plan:
    """What one source needs; ``notes`` are problems that setup does not change (a field of
    the wrong type, an inactive choice), for the admin to decide."""

    source: str
    platform: str
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def automatic(self) -> list[Step]:
        return [s for s in self.steps if not s.manual]

    @property
    def manual(self) -> list[Step]:
        return [s for s in self.steps if s.manual]


def plan_source(connector: Any) -> Plan:
    """Read the platform behind ``connector`` and return the plan for its writeback fields."""
    platform = getattr(connector, "platform", "")
    settings = connector.settings
    if not settings.writeback.enabled:
        plan = Plan(settings.name, platform)
        plan.notes.append("writeback is disabled for this source; nothing to set up")
        return plan
    if platform == "servicenow":
        return ServiceNowFields(connector).plan()
    if platform == "jira":
        return JiraFields(connector).plan()
    plan = Plan(settings.name, platform)
    plan.notes.append(f"momentos cannot create fields on {platform or 'this platform'}")
    return plan


def apply_plan(plan: Plan, on_done: Callable[[Step], None] | None = None) -> int:
    """Run the plan's automatic steps in order; return how many ran. Stops at the first error."""
    done = 0
    for step in plan.automatic:
        assert step.run is not None
        step.run()
        done += 1
        if on_done is not None:
            on_done(step)
    return done


# --- ServiceNow --------------------------------------------------------------------------------

#: Dictionary definition of each writeback field: internal type, max length, choice mode.
#: ``choice=1`` is "Dropdown with -- None --": records stay empty until momentos tags them
#: (``3``, "without -- None --", would force a default value on every task).
SN_DEFINITIONS: dict[str, dict[str, str]] = {
    "moment": {"internal_type": "choice", "max_length": "40", "choice": "1"},
    "score": {"internal_type": "integer"},
    "signals": {"internal_type": "string", "max_length": "4000"},
}
SN_ACCEPTED: dict[str, frozenset[str]] = {
    "moment": frozenset({"choice", "string"}),
    "score": frozenset({"integer"}),
    "signals": frozenset({"string"}),
}


class ServiceNowFields:
    """Plan and create the writeback dictionary entries and choices of one ServiceNow source."""

    def __init__(self, connector: Any) -> None:
        self.connector = connector
        self.settings = connector.settings
        self.name = self.settings.name

    @property
    def api(self) -> Any:
        return self.connector.api

    def plan(self) -> Plan:
        plan = Plan(self.name, "servicenow")
        wb = dict(self.settings.writeback.fields)
        owners = ["task", *(t.name for t in self.settings.tables)]
        rows = self._read(
            "sys_dictionary",
            f"nameIN{','.join(owners)}^elementIN{','.join(wb.values())}",
            ("name", "element", "internal_type", "active"),
        )
        moment_owner: str | None = None
        for logical, column in wb.items():
            found = [r for r in rows if r.get("element") == column]
            if not found:
                spec = SN_DEFINITIONS[logical]
                size = f", max length {spec['max_length']}" if "max_length" in spec else ""
                plan.steps.append(Step(
                    self.name, "create field", f"sys_dictionary task.{column}",
                    f"{spec['internal_type']}{size}, label '{LABELS[logical]}'",
                    run=self._creator(logical, column),
                ))
                if logical == "moment":
                    moment_owner = "task"
                continue
            row = found[0]
            internal = str(row.get("internal_type") or "")
            if str(row.get("active")) == "false":
                plan.notes.append(f"{row.get('name')}.{column} exists but is inactive: make it active")
            elif internal not in SN_ACCEPTED[logical]:
                plan.notes.append(
                    f"{row.get('name')}.{column} exists as {internal}, not "
                    f"{SN_DEFINITIONS[logical]['internal_type']}: change its type or point "
                    f"writeback.fields.{logical} at another field"
                )
            if logical == "moment":
                moment_owner = str(row.get("name") or "task")
        if moment_owner is not None and "moment" in wb:
            self._plan_choices(plan, moment_owner, wb["moment"])
        return plan

    def _plan_choices(self, plan: Plan, owner: str, column: str) -> None:
        existing = self._read(
            "sys_choice", f"name={owner}^element={column}", ("value", "inactive")
        )
        inactive = {str(r.get("value")) for r in existing if str(r.get("inactive")) == "true"}
        present = {str(r.get("value")) for r in existing}
        for value in sorted(inactive & set(MOMENT_VALUES)):
            plan.notes.append(f"choice '{value}' of {owner}.{column} is inactive: make it active")
        missing = [v for v in MOMENT_VALUES if v not in present]
        if missing:
            plan.steps.append(Step(
                self.name, "add options", f"sys_choice {owner}.{column}", ", ".join(missing),
                run=lambda: self._add_choices(owner, column, missing),
            ))

    def _read(self, table: str, query: str, fields: tuple[str, ...]) -> list[dict[str, Any]]:
        from momentos.connectors.servicenow import Forbidden

        try:
            return self.api.fetch_all(table, query, fields)
        except Forbidden:
            raise AuthError(
                f"{self.name}: the ServiceNow user {self.api.user or '(integration user)'} "
                f"cannot read {table}",
                hint="fields setup needs the admin role (it reads and writes the dictionary)",
            ) from None

    def _creator(self, logical: str, column: str) -> Callable[[], None]:
        def create() -> None:
            payload = {
                "name": "task",
                "element": column,
                "column_label": LABELS[logical],
                "active": "true",
                "read_only": "false",
                "mandatory": "false",
                **SN_DEFINITIONS[logical],
            }
            self._insert("sys_dictionary", payload, f"create task.{column}")

        return create

    def _add_choices(self, owner: str, column: str, values: list[str]) -> None:
        for value in values:
            self._insert(
                "sys_choice",
                {
                    "name": owner,
                    "element": column,
                    "value": value,
                    "label": value.capitalize(),
                    "language": "en",
                    "inactive": "false",
                    "sequence": str(MOMENT_VALUES.index(value)),
                },
                f"add choice {value} to {owner}.{column}",
            )

    def _insert(self, table: str, payload: dict[str, str], what: str) -> None:
        api = self.api
        try:
            response = api.session.post(
                f"{api.base_url}/api/now/table/{table}",
                json=payload,
                params={"sysparm_fields": "sys_id"},
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
        except requests.RequestException as exc:
            raise TransientError(f"{self.name}: {what}: {type(exc).__name__}") from None
        if response.status_code == 403:
            raise AdminRequired(
                f"{self.name}: the ServiceNow user {api.user or '(integration user)'} needs the "
                f"admin role to create dictionary entries ({what} was refused)",
                hint="grant the admin role for the setup, or have an admin run it",
            )
        if response.status_code >= 400:
            raise error_for(response, f"{self.name}: {what}")


# --- Jira ---------------------------------------------------------------------------------------

_CF = "com.atlassian.jira.plugin.system.customfieldtypes:"
#: Custom field type, searcher and a readable kind of each writeback field (Jira REST
#: CustomFieldDefinitionJsonBean; the searcher must suit the type: select → multiselectsearcher,
#: float → exactnumber/numberrange, textarea → textsearcher).
JIRA_DEFINITIONS: dict[str, tuple[str, str, str]] = {
    "moment": (f"{_CF}select", f"{_CF}multiselectsearcher", "select list"),
    "score": (f"{_CF}float", f"{_CF}numberrange", "number"),
    "signals": (f"{_CF}textarea", f"{_CF}textsearcher", "paragraph"),
}
#: How the admin does by hand what Data Center has no REST API for.
_DC_OPTIONS = (
    "Jira administration > Issues > Custom fields > '{name}' > Configure > Edit Options: "
    "add {values}"
)
_DC_SCREEN = (
    "Project {key} > Project settings > Screens: on the screen used to edit issues, add {names}"
)


@dataclass
class _Screen:
    id: int
    name: str
    tabs: list[int]
    fields: set[str]
    projects: list[str]


class JiraFields:
    """Plan and create the writeback custom fields, options and screen entries of one Jira
    source (Cloud through REST; Data Center partly by hand)."""

    def __init__(self, connector: Any) -> None:
        self.connector = connector
        self.settings = connector.settings
        self.name = self.settings.name
        self.created: dict[str, str] = {}  # logical → field id created by this run

    @property
    def client(self) -> Any:
        return self.connector.client

    def _user(self) -> str:
        return self.settings.auth.username or "(token user)"

    def _admin_error(self, what: str) -> AdminRequired:
        return AdminRequired(
            f"{self.name}: the Jira user {self._user()} needs the 'Administer Jira' global "
            f"permission to create custom fields and edit screens ({what} was refused)",
            hint="grant it for the setup (jira-administrators), or have a Jira admin run it",
        )

    def _call(self, method: str, path: str, what: str, *, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> Any:
        """One REST call through the connector's session (the HTTP policy); JSON or None."""
        from jira import JIRAError

        client = self.client
        try:
            response = client.session.request(
                method, client.url(path), params=params or {},
                data=json.dumps(body) if body is not None else None,
            )
        except JIRAError as exc:  # the library's session raises on error statuses
            response = exc.response
            if not isinstance(response, requests.Response):
                raise PlatformError(f"{self.name}: {what} failed") from None
        except requests.RequestException as exc:
            raise TransientError(f"{self.name}: {what} failed: {type(exc).__name__}") from None
        if response.status_code == 403:
            raise self._admin_error(what)
        if response.status_code >= 400:
            raise error_for(response, f"{self.name}: {what}")
        return response.json() if response.content else None

    # -- the plan -----------------------------------------------------------------------------
    def plan(self) -> Plan:
        plan = Plan(self.name, "jira")
        site = self.connector.site()
        cloud = site.cloud
        wb = dict(self.settings.writeback.fields)
        ids: dict[str, str] = {}
        wrong_type: set[str] = set()
        for logical, fname in wb.items():
            ctype, _, kind = JIRA_DEFINITIONS[logical]
            matches = site.by_name.get(fname.strip().lower(), [])
            custom = [f for f in matches if f.get("custom")]
            if custom:
                found = custom[0]
                ids[logical] = str(found["id"])
                actual = str((found.get("schema") or {}).get("custom") or "")
                if actual != ctype:
                    wrong_type.add(logical)
                    plan.notes.append(
                        f"field '{fname}' ({found['id']}) is {actual.rpartition(':')[2] or 'another type'}, "
                        f"not {ctype.rpartition(':')[2]}: change writeback.fields.{logical} or the field"
                    )
                continue
            plan.steps.append(Step(
                self.name, "create field", f"'{fname}'", f"{kind} ({ctype.rpartition(':')[2]})",
                run=self._creator(logical, fname),
            ))
        # A field of another type is the admin's to decide: no options (a paragraph field has
        # none, and Jira answers 400 for them) and no screens for it.
        if "moment" in wb and "moment" not in wrong_type:
            self._plan_options(plan, wb["moment"], ids.get("moment"), cloud)
        wb = {k: v for k, v in wb.items() if k not in wrong_type}
        ids = {k: v for k, v in ids.items() if k not in wrong_type}
        if cloud:
            self._plan_screens_cloud(plan, wb, ids)
        else:
            self._plan_screens_dc(plan, wb, ids)
        return plan

    def _field_id(self, logical: str, known: str | None) -> str:
        fid = known or self.created.get(logical)
        if not fid:
            raise PlatformError(f"{self.name}: field for {logical} was not created")
        return fid

    def _creator(self, logical: str, fname: str) -> Callable[[], None]:
        def create() -> None:
            ctype, searcher, _ = JIRA_DEFINITIONS[logical]
            # POST /rest/api/{2,3}/field (Cloud: api-group-issue-fields "Create custom field";
            # Data Center: the same resource on API 2). Cloud gives the field a global context.
            created = self._call(
                "POST", "field", f"create custom field '{fname}'",
                body={"name": fname, "description": DESCRIPTIONS[logical], "type": ctype,
                      "searcherKey": searcher},
            ) or {}
            fid = str(created.get("id") or "")
            if not fid:
                raise PlatformError(f"{self.name}: creating '{fname}' answered no field id")
            self.created[logical] = fid

        return create

    def _plan_options(self, plan: Plan, fname: str, fid: str | None, cloud: bool) -> None:
        if not cloud:
            present = self._dc_allowed_values(fid) if fid else None
            missing = [v for v in MOMENT_VALUES if present is None or v not in present]
            if missing:
                plan.steps.append(Step(
                    self.name, "manual", f"options of '{fname}'",
                    _DC_OPTIONS.format(name=fname, values=", ".join(missing)),
                ))
            return
        if fid is None:
            plan.steps.append(Step(
                self.name, "add options", f"'{fname}'", ", ".join(MOMENT_VALUES),
                run=lambda: self._add_options(fname, None, list(MOMENT_VALUES)),
            ))
            return
        # GET /rest/api/3/field/{fieldId}/context (api-group-issue-custom-field-contexts) and
        # GET .../context/{contextId}/option (api-group-issue-custom-field-options).
        contexts = self._call("GET", f"field/{fid}/context", f"read the contexts of '{fname}'") or {}
        values = contexts.get("values") or []
        if not values:
            plan.notes.append(f"field '{fname}' has no context: add one in its field settings")
            return
        context = str((next((c for c in values if c.get("isGlobalContext")), values[0])).get("id"))
        options = self._call(
            "GET", f"field/{fid}/context/{context}/option", f"read the options of '{fname}'",
            params={"maxResults": 100},
        ) or {}
        existing = {str(o.get("value")): bool(o.get("disabled")) for o in options.get("values") or []}
        for value, disabled in sorted(existing.items()):
            if disabled and value in MOMENT_VALUES:
                plan.notes.append(f"option '{value}' of '{fname}' is disabled: enable it")
        missing = [v for v in MOMENT_VALUES if v not in existing]
        if missing:
            plan.steps.append(Step(
                self.name, "add options", f"'{fname}'", ", ".join(missing),
                run=lambda: self._add_options(fname, fid, missing, context),
            ))

    def _add_options(self, fname: str, fid: str | None, values: list[str],
                     context: str | None = None) -> None:
        fid = self._field_id("moment", fid)
        if context is None:
            contexts = self._call("GET", f"field/{fid}/context", f"read the contexts of '{fname}'") or {}
            found = contexts.get("values") or []
            if not found:
                raise PlatformError(f"{self.name}: the new field '{fname}' has no context")
            context = str(found[0].get("id"))
        # POST /rest/api/3/field/{fieldId}/context/{contextId}/option with {"options": [...]}
        # (api-group-issue-custom-field-options "Create custom field options (context)").
        self._call(
            "POST", f"field/{fid}/context/{context}/option", f"add options to '{fname}'",
            body={"options": [{"value": v, "disabled": False} for v in values]},
        )

    def _dc_allowed_values(self, fid: str) -> set[str] | None:
        """The options Data Center shows on an edit screen, from any project's sample issue;
        None when no screen shows the field (then nothing can be verified over REST)."""
        for key in self.settings.projects:
            meta = self._editmeta(key)
            if meta and fid in meta:
                return {str(v.get("value")) for v in meta[fid].get("allowedValues") or []}
        return None

    def _editmeta(self, key: str) -> dict[str, Any] | None:
        issue = self.connector._first_issue(key)
        if not issue:
            return None
        meta = self._call("GET", f"issue/{issue}/editmeta", f"read the edit screen of {issue}") or {}
        return meta.get("fields") or {}

    def _plan_screens_dc(self, plan: Plan, wb: dict[str, str], ids: dict[str, str]) -> None:
        for key in self.settings.projects:
            meta = self._editmeta(key)
            missing = [wb[l] for l in wb if meta is None or l not in ids or ids[l] not in meta]
            if missing:
                names = ", ".join(f"'{n}'" for n in missing)
                plan.steps.append(Step(
                    self.name, "manual", f"edit screen of project {key}",
                    _DC_SCREEN.format(key=key, names=names),
                ))

    def _plan_screens_cloud(self, plan: Plan, wb: dict[str, str], ids: dict[str, str]) -> None:
        screens = self._edit_screens(plan)
        for screen in screens:
            for logical, fname in wb.items():
                fid = ids.get(logical)
                if fid is not None and fid in screen.fields:
                    continue
                plan.steps.append(Step(
                    self.name, "add to screen", f"'{fname}'",
                    f"screen '{screen.name}' (project {', '.join(screen.projects)})",
                    run=self._screen_adder(logical, fid, fname, screen),
                ))

    def _edit_screens(self, plan: Plan) -> list[_Screen]:
        """The screens the configured projects edit issues with: issue type screen scheme →
        screen schemes of its mappings → each scheme's ``edit`` screen (else ``default``)."""
        by_id: dict[int, _Screen] = {}
        for key in self.settings.projects:
            project = self._call("GET", f"project/{key}", f"read project {key}") or {}
            # GET /rest/api/3/issuetypescreenscheme/project?projectId= (api-group-issue-type-
            # screen-schemes "Get issue type screen schemes for projects").
            assoc = self._call(
                "GET", "issuetypescreenscheme/project", "read issue type screen schemes",
                params={"projectId": project.get("id")},
            ) or {}
            schemes = [str((v.get("issueTypeScreenScheme") or {}).get("id")) for v in assoc.get("values") or []]
            if not schemes:
                plan.steps.append(Step(
                    self.name, "manual", f"screens of project {key}",
                    f"project {key} has no issue type screen scheme (team-managed?): add the "
                    "fields in Project settings > Issue types",
                ))
                continue
            # GET /rest/api/3/issuetypescreenscheme/mapping?issueTypeScreenSchemeId=
            mapping = self._call(
                "GET", "issuetypescreenscheme/mapping", "read issue type screen scheme items",
                params={"issueTypeScreenSchemeId": schemes, "maxResults": 100},
            ) or {}
            scheme_ids = sorted({str(m.get("screenSchemeId")) for m in mapping.get("values") or []})
            # GET /rest/api/3/screenscheme?id= (api-group-screen-schemes)
            found = self._call(
                "GET", "screenscheme", "read screen schemes",
                params={"id": scheme_ids, "maxResults": 25},
            ) if scheme_ids else {}
            for scheme in (found or {}).get("values") or []:
                screens = scheme.get("screens") or {}
                screen_id = screens.get("edit") or screens.get("default")
                if screen_id is None:
                    continue
                screen = by_id.get(int(screen_id))
                if screen is None:
                    screen = by_id[int(screen_id)] = self._read_screen(int(screen_id))
                if key not in screen.projects:
                    screen.projects.append(key)
        return list(by_id.values())

    def _read_screen(self, screen_id: int) -> _Screen:
        # GET /rest/api/3/screens?id= (api-group-screens), /screens/{id}/tabs (api-group-screen-
        # tabs) and /screens/{id}/tabs/{tabId}/fields (api-group-screen-tab-fields).
        listed = self._call("GET", "screens", "read screens", params={"id": screen_id}) or {}
        names = [s.get("name") for s in listed.get("values") or [] if int(s.get("id", -1)) == screen_id]
        tabs = self._call("GET", f"screens/{screen_id}/tabs", f"read the tabs of screen {screen_id}") or []
        fields: set[str] = set()
        for tab in tabs:
            on_tab = self._call(
                "GET", f"screens/{screen_id}/tabs/{tab['id']}/fields",
                f"read the fields of screen {screen_id}",
            ) or []
            fields.update(str(f.get("id")) for f in on_tab)
        return _Screen(screen_id, str(names[0] if names else screen_id),
                       [int(t["id"]) for t in tabs], fields, [])

    def _screen_adder(self, logical: str, fid: str | None, fname: str, screen: _Screen) -> Callable[[], None]:
        def add() -> None:
            if not screen.tabs:
                raise PlatformError(f"{self.name}: screen '{screen.name}' has no tab to add '{fname}' to")
            field_id = self._field_id(logical, fid)
            # POST /rest/api/3/screens/{screenId}/tabs/{tabId}/fields with {"fieldId"}.
            self._call(
                "POST", f"screens/{screen.id}/tabs/{screen.tabs[0]}/fields",
                f"add '{fname}' to screen '{screen.name}'", body={"fieldId": field_id},
            )

        return add


__all__ = [
    "AdminRequired",
    "JiraFields",
    "Plan",
    "ServiceNowFields",
    "Step",
    "apply_plan",
    "plan_source",
]
