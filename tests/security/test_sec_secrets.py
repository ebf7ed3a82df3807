"""Secrets never leave the process: not in logs, the state store, the report, the dry-run CSV
or error texts.

One small sandbox, the `momentos` CLI in-process (typer's CliRunner, DEBUG logging): a full
sync, a report, a dry run, ``status``, then a run whose password is wrong (a fake API token).
Every byte written is scanned for the password, the fake token and the Basic-auth header
values built from them. tests/e2e/test_cli.py::test_wrong_password_fails_at_run_time_without_leaking_it
checks the failing run's output alone; the redaction table below checks
``momentos.secrets.redact`` itself.
"""

from __future__ import annotations

import base64
import logging
import secrets as pysecrets
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from momentos.cli import app
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config
from momentos.sandbox import start_sandbox
from momentos.secrets import MASK, RedactingFilter, redact, register_secret

runner = CliRunner()
FAKE_TOKEN = "ATATT3xFfGF0-fake-" + pysecrets.token_hex(12)


def _variants(user: str, secret: str) -> list[str]:
    """The secret as it could appear on the wire or in a dump."""
    return [
        secret,
        urllib.parse.quote(secret, safe=""),
        base64.b64encode(f"{user}:{secret}".encode()).decode(),
        base64.b64encode(secret.encode()).decode(),
    ]


def _invoke(*args: str, env: dict[str, str]) -> Any:
    result = runner.invoke(app, list(args), env=env, catch_exceptions=True)
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        text += "".join(traceback.format_exception(result.exception))
    return result, text


def test_no_secret_in_logs_state_report_csv_or_errors(tmp_path: Path) -> None:
    with start_sandbox(items=80, seed=5) as box:
        raw = sandbox_config(box, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                             report_out=str(tmp_path / "report"))
        raw["logging"] = {"level": "DEBUG"}
        # Two streams keep the run short; every code path (pull, enrich, write, notes) still runs.
        raw["sources"][0]["tables"] = ["incident"]
        raw["sources"][1]["projects"] = ["SD"]
        config = tmp_path / "momentos.yaml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        good = {SANDBOX_PASSWORD_ENV: box.password}
        bad = {SANDBOX_PASSWORD_ENV: FAKE_TOKEN}
        outputs: list[str] = []

        sync, text = _invoke("sync", "--config", str(config), "--json", env=good)
        outputs.append(text)
        assert sync.exit_code == 0, text
        report, text = _invoke("report", "--config", str(config), env=good)
        outputs.append(text)
        assert report.exit_code == 0, text
        dry, text = _invoke("sync", "--config", str(config), "--dry-run", "--full", env=good)
        outputs.append(text)
        assert dry.exit_code == 0, text
        status, text = _invoke("status", "--config", str(config), "--json", env=good)
        outputs.append(text)
        assert status.exit_code == 0, text
        failing, text = _invoke("sync", "--config", str(config), "--json", env=bad)
        outputs.append(text)
        assert failing.exit_code == 1, text
        assert "401" in text
        check, text = _invoke("check", "--config", str(config), env=bad)
        outputs.append(text)
        assert check.exit_code != 0

        user = box.user
        needles = {
            "sandbox password": _variants(user, box.password),
            "fake API token": _variants(user, FAKE_TOKEN),
        }
        assert (tmp_path / "report" / "dry-run-diff.csv").exists()
        haystacks: dict[str, bytes] = {f"output {k}": o.encode("utf-8", "surrogateescape")
                                       for k, o in enumerate(outputs)}
        for path in sorted(tmp_path.rglob("*")):
            if path.is_file():  # state.db (+ -wal/-journal), report files, dry-run CSV, config
                haystacks[str(path.relative_to(tmp_path))] = path.read_bytes()
        assert any(name.startswith("state.db") for name in haystacks)
        assert any(name.startswith("report/") and name.endswith(".html") for name in haystacks)
        for what, forms in needles.items():
            for form in forms:
                for where, data in haystacks.items():
                    assert form.encode() not in data, f"{what} ({form[:6]}…) found in {where}"


def test_connector_errors_do_not_carry_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error a failing request raises (what the engine logs and stores) names the
    problem, not the credentials, for both connectors."""
    from momentos.connectors.jira import JiraConnector, JiraSettings
    from momentos.connectors.servicenow import ServiceNowConnector, ServiceNowSettings
    from momentos.errors import MomentosError

    with start_sandbox(items=60, seed=6) as box:
        monkeypatch.setenv("MOMENTOS_SEC_TOKEN", FAKE_TOKEN)
        auth = {"username": box.user, "password_env": "MOMENTOS_SEC_TOKEN"}
        connectors = [
            ServiceNowConnector(ServiceNowSettings.model_validate({
                "name": "sn", "type": "servicenow", "url": box.servicenow_url, "auth": auth,
                "tables": ["incident"], "http": {"max_retries": 0}})),
            JiraConnector(JiraSettings.model_validate({
                "name": "jira", "type": "jira", "url": box.jira_url, "auth": auth,
                "projects": ["SD"], "http": {"max_retries": 0}})),
        ]
        from datetime import UTC, datetime

        for connector in connectors:
            with pytest.raises(MomentosError) as info:
                list(connector.pull(connector.streams()[0], None, datetime.now(UTC)))
            connector.close()
            text = f"{info.value}\n{info.value!r}\n{info.value.message}\n{info.value.hint}"
            assert "401" in text or "log in" in text.lower(), text
            for form in _variants(box.user, FAKE_TOKEN):
                assert form not in text


# --- redaction table ------------------------------------------------------------------------

SECRET = "p@ss/w0rd+with=odd&chars"
TOKEN = "tok_" + "A1b2C3d4" * 4


@pytest.fixture
def registered() -> None:
    register_secret(SECRET)
    register_secret(TOKEN)


@pytest.mark.parametrize(
    "text",
    [
        f"GET https://jira.example.test/rest/api/3/search?token={TOKEN}&x=1",
        f"https://user:{SECRET}@sn.example.test/api/now/table/incident",
        f"Authorization: Bearer {TOKEN}",
        f"{{'Authorization': 'Bearer {TOKEN}', 'Accept': 'application/json'}}",
        f"password={SECRET}",
        f"failed with {SECRET!r} and {TOKEN}",
        f"url-encoded: https://sn.example.test/oauth_token.do?password={urllib.parse.quote(SECRET, safe='')}",
        f"form body: password={urllib.parse.quote_plus(SECRET)}&grant_type=password",
        f"Authorization: Basic {base64.b64encode(f'svc:{SECRET}'.encode()).decode()}",
        f"headers={{'authorization': 'Basic {base64.b64encode(f'svc:{TOKEN}'.encode()).decode()}'}}",
    ],
)
def test_redact_masks_secrets_in_urls_and_headers(registered: None, text: str) -> None:
    masked = redact(text)
    assert MASK in masked
    for secret in (SECRET, TOKEN):
        for form in (secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)):
            assert form not in masked, masked
    assert "Basic c3Zj" not in masked  # base64 of "svc:…"


def test_redacting_filter_masks_arguments_and_tracebacks(registered: None) -> None:
    """Through a real handler with the plain formatter (which renders tracebacks after the
    filters ran) and with the JSON one."""
    import io

    from momentos.logsetup import JsonFormatter

    for formatter in (logging.Formatter("%(levelname)s %(message)s"), JsonFormatter()):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(RedactingFilter())
        handler.setFormatter(formatter)
        logger = logging.getLogger(f"momentos.test.redact.{type(formatter).__name__}")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.warning("login as %s with %s failed", "svc", SECRET)
            try:
                raise RuntimeError(f"boom {TOKEN} Authorization: Bearer {TOKEN[::-1]}")
            except RuntimeError:
                logger.exception("request failed for %s", urllib.parse.quote(SECRET, safe=""))
        finally:
            logger.removeHandler(handler)
        written = stream.getvalue()
        assert "boom" in written and "RuntimeError" in written, written
        for form in (SECRET, TOKEN, TOKEN[::-1], urllib.parse.quote(SECRET, safe="")):
            assert form not in written, written


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    assert redact("abc def") == "abc def"

