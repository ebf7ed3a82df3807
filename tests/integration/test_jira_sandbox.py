"""The Jira sandbox speaks Jira: auth, removed/kept search endpoints, JQL, paging, bulk changelog.

Driven with the real ``jira`` library (and plain requests where the library has no call) over
real HTTP on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import jira
import pytest
import requests
from jira_fixtures import FLAVORS, JiraSite, jira_default_world, jira_site  # noqa: F401

from momentos.sandbox.world import HUMAN_USER, INTEGRATION_USER, World


# Read-only tests share one sandbox per flavour (a server stop costs half a second).
@pytest.fixture(scope="module", params=FLAVORS)
def jira_any_site(request: pytest.FixtureRequest, jira_default_world: World) -> Iterator[JiraSite]:  # noqa: F811
    with jira_site(jira_default_world, request.param) as site:
        yield site


@pytest.fixture(scope="module")
def jira_cloud_site(jira_default_world: World) -> Iterator[JiraSite]:  # noqa: F811
    with jira_site(jira_default_world, "cloud") as site:
        yield site


def _client(site: JiraSite, user: str = INTEGRATION_USER, password: str | None = None) -> jira.JIRA:
    return jira.JIRA(
        server=site.url, basic_auth=(user, password or site.password), max_retries=0,
        options={"rest_api_version": "3" if site.flavor == "cloud" else "2"},
    )


def test_jira_401_without_or_with_wrong_credentials(jira_any_site: JiraSite) -> None:
    url = f"{jira_any_site.url}/rest/api/2/myself"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["errorMessages"], "Jira's error body shape"
    wrong = requests.get(url, auth=(INTEGRATION_USER, "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    with pytest.raises(jira.JIRAError) as caught:
        _client(jira_any_site, password="wrong-password-123")
    assert caught.value.status_code == 401


def test_jira_login_by_email_and_dc_bearer_pat(jira_any_site: JiraSite) -> None:
    client = _client(jira_any_site, user=f"{INTEGRATION_USER}@example.com")
    assert client.myself()["displayName"] == "Momentos Integration"
    bearer = requests.get(f"{jira_any_site.url}/rest/api/2/myself",
                          headers={"Authorization": f"Bearer {jira_any_site.password}"}, timeout=10)
    assert bearer.status_code == (200 if jira_any_site.flavor == "datacenter" else 401)


def test_jira_server_info_and_myself_time_zone(jira_any_site: JiraSite) -> None:
    client = _client(jira_any_site)
    info = client.server_info()
    me = client.myself()
    if jira_any_site.flavor == "cloud":
        assert info["deploymentType"] == "Cloud"
        assert me["accountId"] and me["timeZone"] == "America/Bogota"
    else:
        assert info["deploymentType"] in ("Server", "DataCenter")
        assert me["name"] == INTEGRATION_USER
    offset = datetime(2026, 1, 15, tzinfo=ZoneInfo(me["timeZone"])).utcoffset()
    assert offset is not None and offset < timedelta(0)


def test_jira_cloud_legacy_search_is_gone_and_unbounded_jql_rejected(jira_cloud_site: JiraSite) -> None:
    auth = (INTEGRATION_USER, jira_cloud_site.password)
    for ver in ("2", "3"):
        gone = requests.get(f"{jira_cloud_site.url}/rest/api/{ver}/search", params={"jql": "project = SD"},
                            auth=auth, timeout=10)
        assert gone.status_code == 410
        assert "/rest/api/3/search/jql" in gone.json()["errorMessages"][0]
    client = _client(jira_cloud_site)
    with pytest.raises(jira.JIRAError) as caught:
        client.enhanced_search_issues("ORDER BY updated ASC", json_result=True)
    assert caught.value.status_code == 400
    assert "Unbounded JQL queries are not allowed here" in caught.value.text


def test_jira_dc_has_no_search_jql(jira_default_world: World) -> None:  # noqa: F811
    with jira_site(jira_default_world, "datacenter") as site:
        response = requests.get(f"{site.url}/rest/api/2/search/jql", params={"jql": "project = SD"},
                                auth=(INTEGRATION_USER, site.password), timeout=10)
        assert response.status_code == 404
        client = _client(site)
        page = client.search_issues("project = SD ORDER BY key ASC", startAt=0, maxResults=5000,
                                    fields=["summary"], json_result=True)
        assert page["maxResults"] == 1000 and page["total"] == len([i for i in site.jira_issues() if i.container == "SD"])


@pytest.mark.parametrize(
    "jql",
    [
        "project = SD AND",
        "project == SD",
        "issuetype = Service Request",
        "nosuchfield = 1",
        "project = NOPE",
        "updated >= '2026-01-02 03:04:05'",
        "project = SD ORDER BY nosuchfield",
        "status in (Open",
    ],
)
def test_jira_bad_jql_answers_400_with_jira_body(jira_cloud_site: JiraSite, jql: str) -> None:
    response = requests.get(f"{jira_cloud_site.url}/rest/api/3/search/jql", params={"jql": jql},
                            auth=(INTEGRATION_USER, jira_cloud_site.password), timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert body["errorMessages"] and body["errors"] == {}


def _search_keys(client: jira.JIRA, site: JiraSite, jql: str) -> list[str]:
    keys: list[str] = []
    if site.flavor == "cloud":
        token = None
        while True:
            page = client.enhanced_search_issues(jql, nextPageToken=token, maxResults=100,
                                                 fields=["updated"], json_result=True)
            keys += [i["key"] for i in page["issues"]]
            token = page.get("nextPageToken")
            if page["isLast"]:
                return keys
    start = 0
    while True:
        page = client.search_issues(jql, startAt=start, maxResults=1000, fields=["updated"], json_result=True)
        keys += [i["key"] for i in page["issues"]]
        start += len(page["issues"])
        if start >= page["total"] or not page["issues"]:
            return keys


def test_jira_jql_subset(jira_any_site: JiraSite) -> None:
    site = jira_any_site
    client = _client(site)
    issues = site.jira_issues()
    sd = [i for i in issues if i.container == "SD"]
    requests_ = [i.number for i in sd if i.kind == "Service Request"]
    assert sorted(_search_keys(client, site, 'project = SD AND issuetype = "Service Request"')) == sorted(requests_)
    both = _search_keys(client, site, "project in (APP, PMO) AND NOT issuetype in (Epic, Idea)")
    assert sorted(both) == sorted(i.number for i in issues if i.container in ("APP", "PMO")
                                  and i.kind not in ("Epic", "Idea"))
    unresolved = _search_keys(client, site, "project = SD AND resolution = Unresolved")
    assert sorted(unresolved) == sorted(i.number for i in sd if i.resolved is None)
    some = [i.number for i in sd[:3]]
    ordered = _search_keys(client, site, f"key in ({', '.join(some)}) OR (project = SD AND labels = nosuchlabel) "
                                         "ORDER BY key DESC")
    assert ordered == sorted(some, key=lambda k: int(k.split("-")[1]), reverse=True)


def test_jira_string_dates_are_read_in_the_users_zone(jira_any_site: JiraSite) -> None:
    """``updated >= "yyyy-MM-dd HH:mm"`` means local time of the API user (UTC−5 on Cloud);
    the same instant as epoch milliseconds selects exactly the same issues."""
    site = jira_any_site
    client = _client(site)
    zone = ZoneInfo(client.myself()["timeZone"])
    pivot = sorted(i.updated for i in site.jira_issues())[len(site.jira_issues()) // 2]
    local = pivot.astimezone(zone).replace(second=0, microsecond=0)
    by_string = _search_keys(client, site, f'project in (SD, APP, PMO) AND updated >= "{local:%Y-%m-%d %H:%M}"')
    by_slash = _search_keys(client, site, f'project in (SD, APP, PMO) AND updated >= "{local:%Y/%m/%d %H:%M}"')
    by_ms = _search_keys(client, site, f"project in (SD, APP, PMO) AND updated >= {int(local.timestamp() * 1000)}")
    assert sorted(by_string) == sorted(by_ms) == sorted(by_slash)
    utc_reading = local.replace(tzinfo=ZoneInfo("UTC"))
    expected = sorted(i.number for i in site.jira_issues() if i.updated >= local)
    assert sorted(by_ms) == expected
    assert expected != sorted(i.number for i in site.jira_issues() if i.updated >= utc_reading)


def test_jira_search_pages_only_ids_without_fields_and_caps_pages(jira_cloud_site: JiraSite) -> None:
    client = _client(jira_cloud_site)
    bare = client.enhanced_search_issues("project = SD", maxResults=5000, fields="", json_result=True)
    assert bare["issues"] and set(bare["issues"][0]) == {"id"}
    full = client.enhanced_search_issues("project = SD", maxResults=5000, fields=["summary"], json_result=True)
    assert len(full["issues"]) == 100 and full["isLast"] is False and full["nextPageToken"]


def test_jira_bulk_changelog_pages_and_filters(jira_cloud_site: JiraSite) -> None:
    site = jira_cloud_site
    issues = sorted(site.jira_issues(), key=lambda i: -len(i.history))[:40]
    url = f"{site.url}/rest/api/3/changelog/bulkfetch"
    auth = (INTEGRATION_USER, site.password)
    body = {"issueIdsOrKeys": [i.id for i in issues], "fieldIds": ["status"], "maxResults": 7}
    got: dict[str, int] = {}
    tokens = set()
    while True:
        page = requests.post(url, json=body, auth=auth, timeout=10).json()
        for entry in page["issueChangeLogs"]:
            for history in entry["changeHistories"]:
                assert all(item["fieldId"] == "status" for item in history["items"])
            got[entry["issueId"]] = got.get(entry["issueId"], 0) + len(entry["changeHistories"])
        token = page.get("nextPageToken")
        if not token:
            break
        assert token not in tokens
        tokens.add(token)
        body["nextPageToken"] = token
    expected = {i.id: sum(1 for h in i.history if h.field == "state") for i in issues}
    assert got == {k: v for k, v in expected.items() if v}


def test_jira_edit_requires_screen_and_admin_for_notify(jira_default_world: World) -> None:  # noqa: F811
    with jira_site(jira_default_world, "cloud", fields_missing_from_screen=["SD:Experience score"],
                   not_admin=True) as site:
        client = _client(site)
        fields = {f["name"]: f["id"] for f in client.fields()}
        sd_key = next(i.number for i in site.jira_issues() if i.container == "SD")
        auth = (INTEGRATION_USER, site.password)
        url = f"{site.url}/rest/api/3/issue/{sd_key}"
        denied = requests.put(url, params={"notifyUsers": "false"}, auth=auth, timeout=10,
                              json={"fields": {fields["Relationship moment"]: {"value": "operation"}}})
        assert denied.status_code == 403 and "discard the user notification" in denied.text
        score = fields["Experience score"]
        refused = requests.put(url, auth=auth, timeout=10, json={"fields": {score: 50}})
        assert refused.status_code == 400
        assert refused.json()["errors"][score] == (
            f"Field '{score}' cannot be set. It is not on the appropriate screen, or unknown.")
        not_adf = requests.put(url, auth=auth, timeout=10, json={"fields": {fields["Experience signals"]: "x"}})
        assert not_adf.status_code == 400
        ok = requests.put(url, auth=(HUMAN_USER, site.human_password), timeout=10,
                          json={"fields": {fields["Relationship moment"]: {"value": "evolution"}}})
        assert ok.status_code == 204
        issue = client.issue(sd_key, expand="changelog")
        assert issue.raw["fields"][fields["Relationship moment"]]["value"] == "evolution"
        last = issue.raw["changelog"]["histories"][0]
        assert last["author"]["displayName"] == "IT Agent" and last["items"][0]["toString"] == "evolution"
        assert site.stats()["writes"][f"SD/{sd_key}"] == 4


def test_jira_comments_post_and_search_by_post(jira_default_world: World) -> None:  # noqa: F811
    with jira_site(jira_default_world, "cloud") as site:
        issue = next(i for i in site.jira_issues() if i.container == "SD")
        auth = (HUMAN_USER, site.human_password)
        body = {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "internal note"}]}]}
        posted = requests.post(f"{site.url}/rest/api/3/issue/{issue.number}/comment", auth=auth, timeout=10,
                               json={"body": body, "properties": [{"key": "sd.public.comment",
                                                                  "value": {"internal": True}}]})
        assert posted.status_code == 201 and posted.json()["jsdPublic"] is False
        found = requests.post(f"{site.url}/rest/api/3/search/jql", auth=auth, timeout=10,
                              json={"jql": f"key = {issue.number}", "fields": ["comment", "updated"]}).json()
        fields = found["issues"][0]["fields"]
        assert fields["comment"]["comments"][-1]["body"] == body
        assert fields["comment"]["total"] == len(issue.comments)
        assert site.stats()["writes"] == {f"SD/{issue.number}": 1}


def test_jira_search_expands_transitions_as_tap_jira_asks(jira_cloud_site: JiraSite) -> None:
    """Singer's tap-jira sends ``expand=changelog,transitions`` and pops ``transitions``."""
    response = requests.get(
        f"{jira_cloud_site.url}/rest/api/2/search/jql", auth=(INTEGRATION_USER, jira_cloud_site.password),
        params={"jql": "updated >= '2000-01-01 00:00' order by updated asc", "fields": "*all",
                "expand": "changelog,transitions", "validateQuery": "strict"}, timeout=10)
    assert response.status_code == 200
    issues = response.json()["issues"]
    assert len(issues) == 50, "the default page"
    for issue in issues:
        status = issue["fields"]["status"]["name"]
        assert issue["transitions"] and all(t["to"]["name"] != status for t in issue["transitions"])
        assert {"id", "name", "to", "hasScreen", "isGlobal"} <= set(issue["transitions"][0])


def test_jira_cloud_bulk_edit_task_and_its_errors(jira_default_world: World) -> None:  # noqa: F811
    with jira_site(jira_default_world, "cloud", bulk_task_polls=1,
                   fields_missing_from_screen=["PMO:Experience score"]) as site:
        auth = (INTEGRATION_USER, site.password)
        url = f"{site.url}/rest/api/3"
        fields = {f["name"]: f["id"] for f in requests.get(f"{url}/field", auth=auth, timeout=10).json()}
        score = fields["Experience score"]
        keys = [next(w.number for w in site.jira_issues() if w.container == p) for p in ("SD", "APP", "PMO")]
        body = {"selectedIssueIdsOrKeys": [*keys, "NOPE-1"], "selectedActions": [score],
                "editedFieldsInput": {"clearableNumberFields": [{"fieldId": score, "value": 77}]},
                "sendBulkNotification": False}
        submitted = requests.post(f"{url}/bulk/issues/fields", json=body, auth=auth, timeout=10)
        assert submitted.status_code == 201
        task = submitted.json()["taskId"]
        first = requests.get(f"{url}/bulk/queue/{task}", auth=auth, timeout=10).json()
        done = requests.get(f"{url}/bulk/queue/{task}", auth=auth, timeout=10).json()
        assert first["status"] == "RUNNING" and done["status"] == "COMPLETE"
        pmo = site.app.by_key[keys[2]]
        assert sorted(done["processedAccessibleIssues"]) == sorted(site.app.by_key[k].id for k in keys[:2])
        assert done["failedAccessibleIssues"] == {
            str(pmo.id): [f"Field '{score}' cannot be set. It is not on the appropriate screen, or unknown."]}
        assert done["invalidOrInaccessibleIssueCount"] == 1 and done["totalIssueCount"] == 4
        assert site.app.by_key[keys[0]].values["score"] == 77.0
        mismatched = requests.post(f"{url}/bulk/issues/fields", auth=auth, timeout=10,
                                   json={**body, "selectedActions": [fields["Relationship moment"]]})
        assert mismatched.status_code == 400
    with jira_site(jira_default_world, "cloud", bulk_edit_denied=True) as site:
        denied = requests.post(f"{site.url}/rest/api/3/bulk/issues/fields", json=body,
                               auth=(INTEGRATION_USER, site.password), timeout=10)
        assert denied.status_code == 403
