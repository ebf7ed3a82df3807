"""Shared fixtures for the integration tier: sandbox platforms on free loopback ports.

ServiceNow fixtures are named ``sn_*``; they run the real ``ServiceNowSandbox`` in a
``ServerThread`` and the real connector (pysnow over requests) against it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from momentos.sandbox.base import ServerThread, make_self_signed_cert, tls_dir
from momentos.sandbox.world import HUMAN_USER, INTEGRATION_USER, World, generate_world


@dataclass
class SnServer:
    """A running ServiceNow sandbox and the accounts that can log in to it."""

    app: Any  # ServiceNowSandbox
    url: str
    password: str
    human_password: str
    thread: ServerThread
    ca_cert: str | None = None

    @property
    def auth(self) -> tuple[str, str]:
        return (INTEGRATION_USER, self.password)

    @property
    def human_auth(self) -> tuple[str, str]:
        return (HUMAN_USER, self.human_password)


@pytest.fixture(scope="session")
def sn_world() -> World:
    """A small deterministic world (about 330 ServiceNow items over six tables)."""
    return generate_world(seed=11, items=600, now=datetime(2026, 11, 1, tzinfo=UTC))


def _start_sn(world: World, *, tls: bool = False, **options: Any) -> SnServer:
    from momentos.sandbox.servicenow import ServiceNowSandbox

    password = secrets.token_urlsafe(12)
    human_password = secrets.token_urlsafe(12)
    users = {INTEGRATION_USER: password, HUMAN_USER: human_password}
    app = ServiceNowSandbox(world, users, seed=11, **options)
    cert = make_self_signed_cert(tls_dir()) if tls else None
    thread = ServerThread(app, tls=cert).start()
    return SnServer(
        app, thread.url, password, human_password, thread, str(cert[0]) if cert else None
    )


@pytest.fixture
def sn_server_factory(sn_world: World) -> Iterator[Callable[..., SnServer]]:
    """Start a ServiceNow sandbox with the given options (``tls=True`` serves https with a
    self-signed CA in ``server.ca_cert``); stopped after the test."""
    started: list[SnServer] = []

    def start(world: World | None = None, **options: Any) -> SnServer:
        server = _start_sn(world or sn_world, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.thread.stop()


@pytest.fixture(scope="session")
def sn_readonly_server(sn_world: World) -> Iterator[SnServer]:
    """One default sandbox shared by tests that only read (each server costs a 0.5 s stop)."""
    server = _start_sn(sn_world)
    yield server
    server.thread.stop()


@pytest.fixture
def sn_server(sn_server_factory: Callable[..., SnServer]) -> SnServer:
    """The default sandbox: no ACL hiding, no faults, every writeback field present."""
    return sn_server_factory()


@pytest.fixture
def sn_connector_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Any]]:
    """Build a ``ServiceNowConnector`` for a sandbox; extra kwargs go into the settings."""
    from momentos.connectors.servicenow import ServiceNowConnector, ServiceNowSettings

    made: list[Any] = []

    def make(server: SnServer, **overrides: Any) -> Any:
        # One variable per server: credentials are read lazily, at the first request.
        password_env = f"MOMENTOS_TEST_SN_PASSWORD_{server.url.rsplit(':', 1)[1]}"
        monkeypatch.setenv(password_env, server.password)
        raw: dict[str, Any] = {
            "name": "itsm",
            "type": "servicenow",
            "url": server.url,
            "auth": {"username": INTEGRATION_USER, "password_env": password_env},
            # Fast retries: the fault tests must not sleep the real backoff.
            "http": {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "max_retries": 8},
        }
        raw.update(overrides)
        connector = ServiceNowConnector(ServiceNowSettings.model_validate(raw))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def sn_config_factory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    """A momentos ``Config`` that syncs one ServiceNow sandbox (built like
    ``momentos.demo.sandbox_config``, ServiceNow only); kwargs go into the source. Each call
    gets its own SQLite state file unless ``state`` names one."""
    from momentos.config import parse_config

    made = {"n": 0}

    def make(server: SnServer, *, state: str | None = None, **source: Any) -> Any:
        password_env = f"MOMENTOS_TEST_SN_PASSWORD_{server.url.rsplit(':', 1)[1]}"
        monkeypatch.setenv(password_env, server.password)
        made["n"] += 1
        raw = sn_config_dict(server, password_env, tmp_path, state or f"state{made['n']}.db")
        raw["sources"][0].update(source)
        return parse_config(yaml.safe_dump(raw))

    return make


def sn_config_dict(server: SnServer, password_env: str, folder: Path, state: str) -> dict[str, Any]:
    """The config as data, also written to YAML for CLI runs."""
    tls: dict[str, Any] = {"ca_bundle": server.ca_cert} if server.ca_cert else {}
    return {
        "version": 1,
        "sources": [
            {
                "name": "servicenow",
                "type": "servicenow",
                "url": server.url,
                "auth": {"username": INTEGRATION_USER, "password_env": password_env},
                "page_size": 500,
                # Fast retries: the fault tests must not sleep the real backoff.
                "http": {"backoff_base_s": 0.001, "backoff_max_s": 0.01, "max_retries": 8},
                **tls,
            }
        ],
        "state": {"url": f"sqlite:///{folder / state}"},
        "report": {"out": str(folder / "report"), "language": "en"},
    }


@pytest.fixture
def sn_config_file(tmp_path: Path) -> Callable[..., tuple[Path, dict[str, str]]]:
    """Write a config file for ``momentos`` CLI runs against a sandbox; returns its path and
    the environment (with the password variable) to run the CLI in."""
    import os

    def write(server: SnServer, **source: Any) -> tuple[Path, dict[str, str]]:
        password_env = "MOMENTOS_TEST_SN_CLI_PASSWORD"
        raw = sn_config_dict(server, password_env, tmp_path, "state.db")
        raw["sources"][0].update(source)
        path = tmp_path / "momentos.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return path, {**os.environ, password_env: server.password}

    return write
