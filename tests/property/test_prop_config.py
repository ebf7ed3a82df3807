"""Property tests: invalid configs are refused with every problem listed, never a traceback.

Each generated config is a valid one with one to six injected problems (wrong types, unknown
keys, missing required keys, bad enum values), each on its own key. ``momentos config
validate`` (in-process through typer's CliRunner) and ``momentos check`` (subprocess, a few
fixed cases) must exit 2 and name every injected problem by its key path.
tests/unit/test_config.py checks single problems and one hand-written multi-problem file;
tests/e2e/test_cli.py::test_bad_config_lists_every_problem_exits_2_and_writes_nothing one
`sync` run.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from momentos.cli import app

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

BASE: dict[str, Any] = {
    "version": 1,
    "sources": [
        {
            "name": "sn",
            "type": "servicenow",
            "url": "https://sn.example.test",
            "auth": {"username": "u", "password_env": "MOMENTOS_FUZZ_SN"},
            "tables": ["incident", {"name": "change_request", "filter": "active=true"}],
        },
        {
            "name": "jira",
            "type": "jira",
            "url": "https://jira.example.test",
            "auth": {"username": "u", "password_env": "MOMENTOS_FUZZ_JIRA"},
            "projects": ["SD"],
        },
    ],
    "moments": {"rules": [{"name": "incidents", "container": "incident", "moment": "operation"}]},
    "nudges": {"enabled": False},
    "state": {"url": "sqlite:///state.db"},
    "report": {"out": "report", "language": "en"},
    "schedule": {"jobs": [{"name": "sync-all", "type": "sync", "cron": "*/15 * * * *"}]},
    "logging": {"level": "INFO"},
}


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(config: dict[str, Any]) -> None:
        node: Any = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return apply


def _drop(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def apply(config: dict[str, Any]) -> None:
        node: Any = config
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return apply


#: name → (mutation, what the output must contain for it). Each touches a different key.
PROBLEMS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "wrong type page_size": (_set(("sources", 0, "page_size"), "many"), "sources[0].page_size"),
    "unknown source key": (_set(("sources", 0, "colour"), "red"), "unknown key 'colour'"),
    "missing url": (_drop(("sources", 0, "url")), "sources[0].url"),
    "bad url": (_set(("sources", 1, "url"), "ftp://jira"), "sources[1].url"),
    "missing projects": (_drop(("sources", 1, "projects")), "sources[1].projects"),
    "bad flavor": (_set(("sources", 1, "flavor"), "onprem"), "sources[1].flavor"),
    "bad verify_tls": (_set(("sources", 0, "verify_tls"), "perhaps"), "sources[0].verify_tls"),
    "bad table name": (_set(("sources", 0, "tables", 0), {"name": "Bad Table"}),
                       "sources[0].tables[0].name"),
    "ORDERBY in filter": (_set(("sources", 0, "tables", 1, "filter"), "active=true^ORDERBYnumber"),
                          "sources[0].tables[1].filter"),
    "unknown writeback field": (_set(("sources", 1, "writeback"), {"fields": {"mood": "Mood"}}),
                                "sources[1].writeback.fields"),
    "auth without secret": (_set(("sources", 1, "auth"), {"username": "u"}), "sources[1].auth"),
    "bad language": (_set(("report", "language"), "fr"), "report.language"),
    "bad period": (_set(("report", "period_days"), 0), "report.period_days"),
    "bad log level": (_set(("logging", "level"), "LOUD"), "logging.level"),
    "wrong type state url": (_set(("state", "url"), [1, 2]), "state.url"),
    "bad cron": (_set(("schedule", "jobs", 0, "cron"), "every minute"), "schedule.jobs[0].cron"),
    "bad job type": (_set(("schedule", "jobs", 0, "type"), "dance"), "schedule.jobs[0].type"),
    "bad moment": (_set(("moments", "rules", 0, "moment"), "happiness"), "moments.rules[0]"),
    "unknown top-level key": (_set(("sourcez",), []), "unknown key 'sourcez'"),
    "bad version": (_set(("version",), 2), "version"),
    "wrong type nudges": (_set(("nudges", "enabled"), "yes please"), "nudges.enabled"),
}

runner = CliRunner()


def _write(tmp: Path, config: dict[str, Any], name: str = "fuzz.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _broken(names: list[str]) -> tuple[dict[str, Any], list[str]]:
    config = copy.deepcopy(BASE)
    for name in names:
        PROBLEMS[name][0](config)
    return config, [PROBLEMS[name][1] for name in names]


@pytest.fixture(autouse=True)
def _no_stale_log_handler():
    """The CLI attaches a stderr handler to the root logger; CliRunner closes that stream."""
    import logging

    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_momentos", False):
            root.removeHandler(handler)


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "validate", "--config", str(_write(tmp_path, BASE))])
    assert result.exit_code == 0, result.output


@PROPERTY
@given(names=st.lists(st.sampled_from(sorted(PROBLEMS)), min_size=1, max_size=6, unique=True))
def test_every_injected_problem_is_listed(tmp_path: Path, names: list[str]) -> None:
    config, expected = _broken(names)
    path = _write(tmp_path, config)
    result = runner.invoke(app, ["config", "validate", "--config", str(path)])
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    # rich may wrap long lines; compare without line breaks.
    flat = " ".join(output.split())
    for name, needle in zip(names, expected, strict=True):
        assert needle in flat, f"{name}: {needle!r} missing from:\n{output}"
    # Each problem line names the file and a line number.
    listed = [line for line in output.splitlines() if line.lstrip().startswith("- ")]
    assert len(listed) >= len(names), output
    assert all(f"{path}:" in line for line in listed if "fuzz.yaml" in line)


def test_check_and_sync_exit_2_listing_every_problem(tmp_path: Path) -> None:
    """The real console script, as a scheduler would run it: exit 2, no traceback, nothing
    reached (the URLs do not resolve) and no state written."""
    names = ["missing url", "bad flavor", "bad cron", "unknown source key", "auth without secret",
             "bad moment", "unknown top-level key", "wrong type nudges"]
    config, expected = _broken(names)
    config["state"] = {"url": f"sqlite:///{tmp_path / 'never.db'}"}
    path = _write(tmp_path, config)
    env = {**os.environ, "MOMENTOS_FUZZ_SN": "x" * 12, "MOMENTOS_FUZZ_JIRA": "y" * 12}
    for command in (["check"], ["sync", "--json"]):
        run = subprocess.run(
            [sys.executable, "-m", "momentos", *command, "--config", str(path)],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )
        assert run.returncode == 2, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
        flat = " ".join(run.stderr.split())
        for needle in expected:
            assert needle in flat, f"{command}: {needle!r} missing from:\n{run.stderr}"
        assert run.stdout == ""
    assert not (tmp_path / "never.db").exists()


def test_not_yaml_and_not_a_mapping_are_config_errors(tmp_path: Path) -> None:
    for name, text in (("a.yaml", "sources: [\n  - {name: x\n"), ("b.yaml", "- 1\n- 2\n"),
                       ("c.yaml", "\x00\x01 binary"), ("d.yaml", "version: !!python/object:os.system x\n")):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        result = runner.invoke(app, ["config", "validate", "--config", str(path)])
        assert result.exit_code == 2, (name, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), name
