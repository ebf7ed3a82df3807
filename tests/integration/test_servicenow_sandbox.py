"""The ServiceNow sandbox speaks the Table API as the platform does, checked with the real
pysnow client and plain requests over real HTTP."""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

import pysnow
import pytest
import requests

from momentos.sandbox.servicenow import ServiceNowSandbox, js_value, parse_query

if TYPE_CHECKING:
    from conftest import SnServer


def _client(server: SnServer, auth: tuple[str, str] | None = None) -> pysnow.Client:
    user, password = auth or server.auth
    host = server.url.split("://", 1)[1]
    return pysnow.Client(host=host, use_ssl=False, user=user, password=password)


def _get(server: SnServer, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params, auth=server.auth, timeout=10)


def _rows(app: ServiceNowSandbox, table: str) -> list[dict[str, str]]:
    return list(app.rows(table))


# --- authentication and errors --------------------------------------------------------------------


def test_no_credentials_is_401_with_the_platform_body(sn_readonly_server: SnServer) -> None:
    response = requests.get(f"{sn_readonly_server.url}/api/now/table/incident", timeout=10)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "User Not Authenticated",
            "detail": "Required to provide Auth information",
        },
        "status": "failure",
    }
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    wrong = _client(sn_readonly_server, ("momentos.integration", "not-the-password"))
    with pytest.raises(requests.HTTPError) as caught:
        wrong.resource(api_path="/table/incident").get(query="", limit=1).all()
    assert caught.value.response.status_code == 401


def test_unknown_table_and_record(sn_readonly_server: SnServer) -> None:
    response = _get(sn_readonly_server, "/api/now/table/u_nothing_here")
    assert response.status_code == 400
    assert response.json() == {
        "error": {"message": "Invalid table u_nothing_here", "detail": None},
        "status": "failure",
    }
    missing = _get(sn_readonly_server, "/api/now/table/incident/" + "0" * 32)
    assert missing.status_code == 404
    assert missing.json()["status"] == "failure"
    assert missing.json()["error"]["message"] == "No Record found"


# --- paging ---------------------------------------------------------------------------------------


def test_pysnow_offset_paging_sees_every_record_once(sn_readonly_server: SnServer) -> None:
    resource = _client(sn_readonly_server).resource(api_path="/table/incident")
    expected = {r["sys_id"] for r in _rows(sn_readonly_server.app, "incident")}
    seen: list[str] = []
    offset = 0
    while True:
        response = resource.get(
            query="ORDERBYsys_updated_on^ORDERBYsys_id", limit=25, offset=offset, fields=["sys_id"]
        )
        page = response.all()
        total = int(response.headers["X-Total-Count"])
        seen += [r["sys_id"] for r in page]
        offset += 25
        if offset >= total:
            break
    assert len(seen) == len(expected) > 100
    assert set(seen) == expected


def test_total_count_and_link_header(sn_readonly_server: SnServer) -> None:
    total = len(_rows(sn_readonly_server.app, "incident"))
    response = _get(
        sn_readonly_server,
        "/api/now/table/incident",
        sysparm_limit=10,
        sysparm_offset=20,
        sysparm_fields="number",
    )
    assert response.headers["X-Total-Count"] == str(total)
    links = {
        rel: url for url, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', response.headers["Link"])
    }
    assert set(links) == {"first", "prev", "next", "last"}
    assert "sysparm_offset=0" in links["first"] and "sysparm_offset=10" in links["prev"]
    assert "sysparm_offset=30" in links["next"]
    assert f"sysparm_offset={((total - 1) // 10) * 10}" in links["last"]
    assert all(
        "sysparm_fields=number" in url and "sysparm_limit=10" in url for url in links.values()
    )
    # Following "next" is how a client pages by the header.
    follow = requests.get(links["next"], auth=sn_readonly_server.auth, timeout=10)
    assert len(follow.json()["result"]) == 10
    first_page = _get(sn_readonly_server, "/api/now/table/incident", sysparm_limit=10)
    assert 'rel="prev"' not in first_page.headers["Link"]
    quiet = _get(
        sn_readonly_server,
        "/api/now/table/incident",
        sysparm_limit=10,
        sysparm_suppress_pagination_header="true",
    )
    assert "Link" not in quiet.headers and quiet.headers["X-Total-Count"] == str(total)


# --- encoded queries ------------------------------------------------------------------------------


def _expect(app: ServiceNowSandbox, table: str, predicate: Any) -> set[str]:
    return {r["sys_id"] for r in _rows(app, table) if predicate(r)}


QUERIES: list[tuple[str, Any]] = [
    ("priority=1", lambda r: r.get("priority") == "1"),
    ("priority!=1", lambda r: r.get("priority") != "1"),
    ("priority<=2", lambda r: r.get("priority", "") != "" and int(r["priority"]) <= 2),
    ("priority>3", lambda r: r.get("priority", "") != "" and int(r["priority"]) > 3),
    ("priority>=4^ORpriority=1", lambda r: r.get("priority") in ("1", "4", "5")),
    (
        "priorityIN1,2^stateIN6,7",
        lambda r: r.get("priority") in ("1", "2") and r.get("state") in ("6", "7"),
    ),
    ("priorityNOT IN1,2,3", lambda r: r.get("priority") not in ("1", "2", "3")),
    ("numberSTARTSWITHinc00100", lambda r: r["number"].startswith("INC00100")),
    ("short_descriptionLIKEvpn", lambda r: "vpn" in r.get("short_description", "").lower()),
    ("resolved_atISEMPTY", lambda r: not r.get("resolved_at")),
    (
        "resolved_atISNOTEMPTY^priority=2",
        lambda r: bool(r.get("resolved_at")) and r.get("priority") == "2",
    ),
    ("caused_byISNOTEMPTY", lambda r: bool(r.get("caused_by"))),
    ("sys_updated_on>=2026-09-01 00:00:00", lambda r: r["sys_updated_on"] >= "2026-09-01 00:00:00"),
    ("sys_updated_on<2026-08-01 00:00:00", lambda r: r["sys_updated_on"] < "2026-08-01 00:00:00"),
    (
        "sys_updated_on>javascript:gs.dateGenerate('2026-09-15','12:00:00')",
        lambda r: r["sys_updated_on"] > "2026-09-15 12:00:00",
    ),
    (
        (
            "opened_atBETWEENjavascript:gs.dateGenerate('2026-08-01','start')"
            "@javascript:gs.dateGenerate('2026-08-31','end')"
        ),
        lambda r: "2026-08-01 00:00:00" <= r.get("opened_at", "") <= "2026-08-31 23:59:59",
    ),
    ("priority=1^NQpriority=5", lambda r: r.get("priority") in ("1", "5")),
    ("u_no_such_field=1^priority=3", lambda r: r.get("priority") == "3"),  # invalid part ignored
]


@pytest.mark.parametrize(("query", "predicate"), QUERIES, ids=[q for q, _ in QUERIES])
def test_encoded_query_operators(sn_readonly_server: SnServer, query: str, predicate: Any) -> None:
    response = _get(
        sn_readonly_server,
        "/api/now/table/incident",
        sysparm_query=query,
        sysparm_fields="sys_id",
        sysparm_limit=10000,
    )
    got = {r["sys_id"] for r in response.json()["result"]}
    expected = _expect(sn_readonly_server.app, "incident", predicate)
    assert got == expected
    assert response.headers["X-Total-Count"] == str(len(expected))


def test_dot_walked_condition_and_field(sn_readonly_server: SnServer) -> None:
    app = sn_readonly_server.app
    users = {r["sys_id"]: r for r in _rows(app, "sys_user")}
    some = next(
        r for r in _rows(app, "incident") if users.get(r.get("caller_id", ""), {}).get("department")
    )
    department = users[some["caller_id"]]["department"]
    response = _get(
        sn_readonly_server,
        "/api/now/table/incident",
        sysparm_query=f"caller_id.department={department}",
        sysparm_fields="number,caller_id.department,caller_id.name",
        sysparm_exclude_reference_link="true",
    )
    result = response.json()["result"]
    expected = _expect(
        app,
        "incident",
        lambda r: users.get(r.get("caller_id", ""), {}).get("department") == department,
    )
    assert len(result) == len(expected) > 0
    assert all(r["caller_id.department"] == department for r in result)
    assert set(result[0]) == {"number", "caller_id.department", "caller_id.name"}


def test_order_by_desc_and_multiple(sn_readonly_server: SnServer) -> None:
    response = _get(
        sn_readonly_server,
        "/api/now/table/incident",
        sysparm_query="ORDERBYDESCpriority^ORDERBYnumber",
        sysparm_fields="number,priority",
    )
    result = [(int(r["priority"]), r["number"]) for r in response.json()["result"]]
    assert result == sorted(result, key=lambda x: (-x[0], x[1]))


def test_query_parser_precedence_and_dates() -> None:
    parsed = parse_query("active=true^priority=1^ORpriority=2^ORDERBYnumber")
    assert [[c.field + c.op + c.value for c in g] for g in parsed.segments[0]] == [
        ["active=true"],
        ["priority=1", "priority=2"],
    ]
    assert parsed.order == [("number", False)]
    assert js_value("javascript:gs.dateGenerate('2024-02-29','23:59:59')") == "2024-02-29 23:59:59"
    assert js_value("javascript:gs.dateGenerate('2024-02-29','end')") == "2024-02-29 23:59:59"


# --- values and references ------------------------------------------------------------------------


def test_reference_links_display_values_and_strings(sn_readonly_server: SnServer) -> None:
    app = sn_readonly_server.app
    record = next(
        r for r in _rows(app, "incident") if r.get("assignment_group") and r.get("priority")
    )
    group = app.record("sys_user_group", record["assignment_group"])
    assert group is not None
    path = f"/api/now/table/incident/{record['sys_id']}"
    fields = "assignment_group,priority,state,number,reassignment_count"

    raw = _get(sn_readonly_server, path, sysparm_fields=fields).json()["result"]
    assert raw["assignment_group"] == {
        "link": f"{sn_readonly_server.url}/api/now/table/sys_user_group/{group['sys_id']}",
        "value": group["sys_id"],
    }
    assert all(isinstance(v, str) for k, v in raw.items() if k != "assignment_group")

    bare = _get(
        sn_readonly_server, path, sysparm_fields=fields, sysparm_exclude_reference_link="true"
    )
    assert bare.json()["result"]["assignment_group"] == group["sys_id"]

    shown = _get(
        sn_readonly_server, path, sysparm_fields=fields, sysparm_display_value="true"
    ).json()["result"]
    assert shown["assignment_group"]["display_value"] == group["name"]
    assert shown["priority"] in {
        "1 - Critical",
        "2 - High",
        "3 - Moderate",
        "4 - Low",
        "5 - Planning",
    }
    shown_bare = _get(
        sn_readonly_server,
        path,
        sysparm_fields=fields,
        sysparm_display_value="true",
        sysparm_exclude_reference_link="true",
    ).json()["result"]
    assert shown_bare["assignment_group"] == group["name"]

    both = _get(
        sn_readonly_server, path, sysparm_fields=fields, sysparm_display_value="all"
    ).json()["result"]
    assert both["assignment_group"]["value"] == group["sys_id"]
    assert both["assignment_group"]["display_value"] == group["name"]
    assert "link" in both["assignment_group"]
    assert both["priority"] == {"display_value": shown["priority"], "value": record["priority"]}
    assert both["number"] == {"display_value": record["number"], "value": record["number"]}


def test_dictionary_rows_live_on_task(sn_readonly_server: SnServer) -> None:
    on_task = _get(
        sn_readonly_server,
        "/api/now/table/sys_dictionary",
        sysparm_query="name=task^element=u_experience_score",
        sysparm_fields="name,element,internal_type",
    ).json()["result"]
    assert on_task == [
        {"name": "task", "element": "u_experience_score", "internal_type": "integer"}
    ]
    on_child = _get(
        sn_readonly_server,
        "/api/now/table/sys_dictionary",
        sysparm_query="name=incident^element=u_experience_score",
    ).json()["result"]
    assert on_child == []  # child tables inherit; the dictionary row is on task only
    choices = _get(
        sn_readonly_server,
        "/api/now/table/sys_choice",
        sysparm_query="name=task^element=u_relationship_moment",
        sysparm_fields="value",
    ).json()["result"]
    assert {c["value"] for c in choices} == {"operation", "evolution", "innovation"}


def test_missing_fields_option(sn_server_factory: Any) -> None:
    server = sn_server_factory(missing_fields=True)
    dictionary = _get(
        server, "/api/now/table/sys_dictionary", sysparm_query="elementSTARTSWITHu_experience"
    ).json()["result"]
    assert dictionary == []
    record = _get(server, "/api/now/table/incident", sysparm_limit=1).json()["result"][0]
    assert "u_experience_score" not in record


# --- writes ---------------------------------------------------------------------------------------


def test_patch_updates_bumps_system_fields_and_audits(sn_server: SnServer) -> None:
    app = sn_server.app
    record = _rows(app, "incident")[0]
    before = dict(record)
    url = f"{sn_server.url}/api/now/table/incident/{record['sys_id']}"
    response = requests.patch(
        url,
        json={
            "u_experience_score": 42,
            "sys_updated_on": "1999-01-01 00:00:00",
            "sys_mod_count": "999",
            "u_not_a_field": "x",
        },
        auth=sn_server.human_auth,
        timeout=10,
    )
    assert response.status_code == 200
    after = app.record("incident", record["sys_id"])
    assert after is not None
    assert after["u_experience_score"] == "42"
    assert after["sys_updated_on"] > before["sys_updated_on"]  # wall clock, not the sent value
    assert after["sys_mod_count"] == str(int(before["sys_mod_count"]) + 1)
    assert after["sys_updated_by"] == "it.agent"
    assert "u_not_a_field" not in after
    audit = _get(
        sn_server,
        "/api/now/table/sys_audit",
        sysparm_query=f"documentkey={record['sys_id']}^fieldname=u_experience_score",
    ).json()["result"]
    assert [(a["oldvalue"], a["newvalue"], a["user"]) for a in audit] == [("", "42", "it.agent")]
    assert app.stats()["writes"] == {f"incident/{record['sys_id']}": 1}

    # Only sys_ fields: ignored, nothing changes, but the write is still received and counted.
    again = requests.put(url, json={"sys_updated_by": "someone"}, auth=sn_server.auth, timeout=10)
    assert again.status_code == 200
    assert app.record("incident", record["sys_id"]) == after
    assert app.stats()["writes"][f"incident/{record['sys_id']}"] == 2


def test_insert_and_journal(sn_server: SnServer) -> None:
    app = sn_server.app
    record = _rows(app, "incident")[1]
    created = requests.post(
        f"{sn_server.url}/api/now/table/sys_journal_field",
        json={
            "element_id": record["sys_id"],
            "element": "comments",
            "name": "incident",
            "value": "hola",
        },
        auth=sn_server.auth,
        timeout=10,
    )
    assert created.status_code == 201
    patched = requests.patch(
        f"{sn_server.url}/api/now/table/incident/{record['sys_id']}",
        json={"work_notes": "internal note"},
        auth=sn_server.auth,
        timeout=10,
    )
    assert patched.status_code == 200
    journal = _get(
        sn_server,
        "/api/now/table/sys_journal_field",
        sysparm_query=f"element_id={record['sys_id']}^ORDERBYDESCsys_created_on^ORDERBYvalue",
        sysparm_fields="element,value,sys_created_by",
    ).json()["result"]
    assert {
        "element": "comments",
        "value": "hola",
        "sys_created_by": "momentos.integration",
    } in journal
    assert {
        "element": "work_notes",
        "value": "internal note",
        "sys_created_by": "momentos.integration",
    } in journal


def test_batch_api_shape(sn_server: SnServer) -> None:
    app = sn_server.app
    first, second = _rows(app, "problem")[:2]
    body = {
        "batch_request_id": "b1",
        "rest_requests": [
            {
                "id": "a",
                "method": "PATCH",
                "url": f"/api/now/table/problem/{first['sys_id']}?sysparm_fields=sys_id",
                "headers": [{"name": "Content-Type", "value": "application/json"}],
                "body": base64.b64encode(
                    json.dumps({"u_relationship_moment": "operation"}).encode()
                ).decode(),
            },
            {
                "id": "b",
                "method": "GET",
                "url": f"/api/now/table/problem/{second['sys_id']}?sysparm_fields=number",
                "exclude_response_headers": True,
            },
            {"id": "c", "method": "GET", "url": "/api/now/table/u_missing"},
        ],
    }
    for path in ("/api/now/v1/batch", "/api/now/batch"):
        response = requests.post(
            f"{sn_server.url}{path}", json=body, auth=sn_server.auth, timeout=10
        )
        answer = response.json()
        assert answer["batch_request_id"] == "b1" and answer["unserviced_requests"] == []
        served = {s["id"]: s for s in answer["serviced_requests"]}
        assert served["a"]["status_code"] == 200
        assert json.loads(base64.b64decode(served["b"]["body"])) == {
            "result": {"number": second["number"]}
        }
        assert served["b"]["headers"] == [] and served["a"]["headers"]
        assert served["c"]["status_code"] == 400
    assert app.record("problem", first["sys_id"])["u_relationship_moment"] == "operation"
    assert app.stats()["writes"][f"problem/{first['sys_id']}"] == 2


def test_enhancements_and_project_tasks_live_in_their_own_tables(
    sn_readonly_server: SnServer, sn_world: Any
) -> None:
    app = sn_readonly_server.app
    enhancements = list(app.rows("rm_enhancement"))
    tasks = list(app.rows("pm_project_task"))
    assert enhancements and tasks and list(app.rows("change_request"))
    assert all(r["number"].startswith("ENHC") for r in enhancements)
    assert all(r["number"].startswith("PRJTASK") for r in tasks)
    projects = {r["sys_id"]: r for r in app.rows("pm_project")}
    for task in tasks:  # each under a project of the same customer, when it has one
        assert task["parent"] in projects
    world = {i.id: i for i in sn_world.items}
    assert {world[r["sys_id"]].container for r in enhancements} == {"change_request"}
    assert {world[r["sys_id"]].container for r in tasks} == {"pm_project"}
    # The task table holds them too, under their own class.
    got = requests.get(
        f"{sn_readonly_server.url}/api/now/table/task",
        params={"sysparm_query": "sys_class_name=rm_enhancement", "sysparm_fields": "number"},
        auth=sn_readonly_server.auth,
        timeout=10,
    )
    assert len(got.json()["result"]) == len(enhancements)


def test_oauth_token_endpoint(sn_server: SnServer) -> None:
    app = sn_server.app
    url = f"{sn_server.url}/oauth_token.do"
    client = {"client_id": app.oauth_client_id, "client_secret": app.oauth_client_secret}
    grant = requests.post(
        url,
        data={
            **client,
            "grant_type": "password",
            "username": "momentos.integration",
            "password": sn_server.password,
        },
        timeout=10,
    )
    token = grant.json()
    assert grant.status_code == 200 and token["token_type"] == "Bearer"
    assert token["expires_in"] == 1800 and token["refresh_token"]
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(f"{sn_server.url}/api/now/table/problem", headers=bearer, timeout=10).ok
    again = requests.post(
        url,
        data={**client, "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        timeout=10,
    ).json()
    assert again["access_token"] != token["access_token"]
    bad = requests.post(
        url, data={**client, "client_secret": "x", "grant_type": "password"}, timeout=10
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    wrong = requests.post(
        url,
        data={
            **client,
            "grant_type": "password",
            "username": "momentos.integration",
            "password": "nope",
        },
        timeout=10,
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_grant"
    app.revoke_access_tokens()
    assert (
        requests.get(
            f"{sn_server.url}/api/now/table/problem", headers=bearer, timeout=10
        ).status_code
        == 401
    )
