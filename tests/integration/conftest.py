"""Shared fixtures for the integration tier: sandbox platforms on free loopback ports.

ServiceNow fixtures are named ``sn_*``; they run the real ``ServiceNowSandbox`` in a
``ServerThread`` and the real connector (pysnow over requests) against it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from momentos.sandbox.base import ServerThread
from momentos.sandbox.world import HUMAN_USER, INTEGRATION_USER, World, generate_world


@dataclass
class SnServer:
    """A running ServiceNow sandbox and the accounts that can log in to it."""

    app: Any  # ServiceNowSandbox
    url: str
    password: str
    human_password: str
    thread: ServerThread

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


def _start_sn(world: World, **options: Any) -> SnServer:
    from momentos.sandbox.servicenow import ServiceNowSandbox

    password = secrets.token_urlsafe(12)
    human_password = secrets.token_urlsafe(12)
    users = {INTEGRATION_USER: password, HUMAN_USER: human_password}
    app = ServiceNowSandbox(world, users, seed=11, **options)
    thread = ServerThread(app).start()
    return SnServer(app, thread.url, password, human_password, thread)


@pytest.fixture
def sn_server_factory(sn_world: World) -> Iterator[Callable[..., SnServer]]:
    """Start a ServiceNow sandbox with the given options; stopped after the test."""
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
