"""Config validation: every problem at once, with file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from momentos.config import json_schema, load_config, parse_config
from momentos.errors import ConfigError

GOOD = """\
version: 1
sources:
  - name: sn
    type: servicenow
    url: https://acme.service-now.com
    auth: {username: momentos, password_env: SN_PASSWORD}
  - name: jira
    type: jira
    url: https://acme.atlassian.net
    auth: {username: bot@acme.com, password_env: JIRA_TOKEN}
    projects: [SD, APP]
moments:
  rules:
    - name: incidents
      container: incident
      moment: operation
    - name: by-type
      map_field: kind
      map: {change: evolution, idea: innovation}
schedule:
  jobs:
    - {name: every-15, type: sync, cron: "*/15 * * * *"}
"""


def test_good_config_parses_with_typed_sources():
    config = parse_config(GOOD)
    assert [s.name for s in config.sources] == ["sn", "jira"]
    assert config.sources[0].type == "servicenow"
    assert config.sources[1].projects == ["SD", "APP"]
    # Writeback fields default to the contract's names.
    assert config.sources[0].writeback.fields["score"] == "u_experience_score"
    assert config.sources[1].writeback.fields["moment"] == "Relationship moment"
    assert config.moments.rules[0].name == "incidents"


BAD = """\
version: 1
sources:
  - name: sn
    type: servicenow
    auth: {username: momentos, password_env: SN_PASSWORD}
    page_size: lots
  - name: jira
    type: jira
    url: https://acme.atlassian.net
    auth: {username: bot@acme.com, password_env: JIRA_TOKEN}
    projects: [SD]
    colour: blue
moments:
  rules:
    - name: bad
      container: incident
      moment: happiness
schedul:
  jobs: []
"""


def test_bad_config_lists_every_problem_with_line_and_key():
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, Path("bad.yaml"))
    problems = info.value.problems
    text = "\n".join(problems)
    # missing URL, wrong type, unknown key, undefined moment, misspelled top-level key
    assert any("sources[0].url" in p and "missing" in p for p in problems), text
    assert any("bad.yaml:6:" in p and "sources[0].page_size" in p for p in problems), text
    assert any("bad.yaml:12:" in p and "unknown key 'colour'" in p for p in problems), text
    assert any("moments.rules[0]" in p and "happiness" in p for p in problems), text
    assert any("bad.yaml:18:" in p and "did you mean 'schedule'" in p for p in problems), text
    assert len(problems) >= 5


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("sources: [{name: a, type: nosuch, url: 'http://x.example'}]", "unknown source type 'nosuch'"),
        ("sources: [{name: a, type: servicenow, url: 'ftp://x', auth: {password_env: X, username: u}}]",
         "http:// or https://"),
        ("sources: [{name: a, type: servicenow, url: 'http://x.example', auth: {username: u}}]",
         "password_env"),
        ("schedule: {jobs: [{name: j, type: sync, cron: 'every minute'}]}", "invalid cron"),
        ("schedule: {jobs: [{name: j, type: sync, cron: '* * * * *', source: ghost}]}", "no source named 'ghost'"),
        ("report: {language: fr}", "report.language"),
        ("sources: [{name: a, type: jira, url: 'http://x.example', auth: {username: u, password_env: P}}]",
         "projects"),
        ("moments: {rules: [{name: r, title_regex: '(', moment: operation}]}", "regex"),
        ("moments: {rule: []}", "did you mean 'rules'"),
        ("- just\n- a list\n", "must be a mapping"),
        ("sources: [\n", "not valid YAML"),
    ],
)
def test_each_problem_is_reported(snippet, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(snippet))
    assert expected in "\n".join(info.value.problems)


def test_duplicate_source_names():
    text = GOOD.replace("name: jira", "name: sn")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert "duplicate source name 'sn'" in "\n".join(info.value.problems)


def test_relative_sqlite_path_is_relative_to_the_config(tmp_path: Path):
    path = tmp_path / "conf" / "m.yaml"
    path.parent.mkdir()
    path.write_text(GOOD + "state: {url: 'sqlite:///state/m.db'}\n")
    config = load_config(path)
    assert config.state_url == f"sqlite:///{tmp_path / 'conf' / 'state' / 'm.db'}"


def test_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read" in info.value.problems[0]


def test_json_schema_covers_both_connectors():
    schema = json_schema()
    refs = {v["$ref"] for v in schema["properties"]["sources"]["items"]["anyOf"]}
    assert len(refs) == 2
    for ref in refs:
        assert ref.split("/")[-1] in schema["$defs"]


@pytest.mark.parametrize("name", ["demo.yaml", "servicenow.example.yaml", "jira.example.yaml"])
def test_shipped_configs_are_valid(name):
    root = Path(__file__).resolve().parents[2] / "config"
    config = load_config(root / name)
    assert config.sources


def test_shipped_schema_is_current():
    import json

    root = Path(__file__).resolve().parents[2] / "config"
    shipped = json.loads((root / "momentos.schema.json").read_text())
    assert shipped == json.loads(json.dumps(json_schema())), (
        "config/momentos.schema.json is stale: run `momentos config schema > config/momentos.schema.json`"
    )


def test_shipped_demo_config_is_what_the_sandbox_writes():
    """config/demo.yaml syncs `momentos sandbox --servicenow-port 8001 --jira-port 8002`."""
    import yaml

    from momentos.demo import sandbox_config

    class FixedPorts:
        servicenow_url = "http://127.0.0.1:8001"
        jira_url = "http://127.0.0.1:8002"
        user = "momentos.integration"
        ca_cert = None

    root = Path(__file__).resolve().parents[2] / "config"
    shipped = yaml.safe_load((root / "demo.yaml").read_text())
    expected = sandbox_config(FixedPorts(), state_url="sqlite:///momentos-state.db", report_out="momentos-report")
    assert shipped == expected, "regenerate config/demo.yaml with momentos.demo.write_config"
