"""Fixtures for the Jira tests: the sandbox on a free loopback port and connectors pointed at it.

The real ``jira`` library talks real HTTP to ``JiraSandbox``; nothing is mocked. Fixtures are
named ``jira_*`` so they never clash with the ServiceNow ones.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import yaml

from momentos.config import Config, parse_config
from momentos.connectors.base import Page
from momentos.connectors.jira import JiraConnector, JiraSettings
from momentos.models import Item
from momentos.sandbox.base import ServerThread
from momentos.sandbox.jira import JiraSandbox
from momentos.sandbox.world import HUMAN_USER, INTEGRATION_USER, World, generate_world
from momentos.state import StateStore
from momentos.sync import SyncEngine, SyncResult

PASSWORD_ENV = "MOMENTOS_TEST_JIRA_PASSWORD"
FLAVORS = ("cloud", "datacenter")
#: A fixed "now" keeps worlds identical from run to run.
WORLD_NOW = datetime(2026, 3, 2, tzinfo=UTC)


@dataclass
class JiraSite:
    """A running sandbox and how to reach it."""

    app: JiraSandbox
    url: str
    world: World
    flavor: str
    password: str
    human_password: str

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_sandbox/stats", timeout=10).json()

    def faults(self, **faults: float) -> None:
        requests.post(f"{self.url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()

    def jira_issues(self) -> list[Any]:
        return [i for i in self.world.items if i.platform == "jira"]


def jira_world(items: int = 2000, seed: int = 11) -> World:
    """A generated world (about 45% of its items are Jira issues)."""
    return generate_world(seed=seed, items=items, now=WORLD_NOW)


@contextmanager
def jira_site(world: World, flavor: str = "cloud", **options: Any) -> Iterator[JiraSite]:
    password = secrets.token_urlsafe(12)
    human_password = secrets.token_urlsafe(12)
    app = JiraSandbox(world, {INTEGRATION_USER: password, HUMAN_USER: human_password},
                      seed=world.seed, flavor=flavor, **options)
    server = ServerThread(app).start()
    try:
        yield JiraSite(app, server.url, world, flavor, password, human_password)
    finally:
        server.stop()


def jira_settings(site: JiraSite, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> JiraSettings:
    monkeypatch.setenv(PASSWORD_ENV, site.password)
    data: dict[str, Any] = {
        "name": "jira",
        "type": "jira",
        "url": site.url,
        "auth": {"username": INTEGRATION_USER, "password_env": PASSWORD_ENV},
        "projects": ["SD", "APP", "PMO"],
        "http": {"backoff_base_s": 0.0, "backoff_max_s": 0.0, "max_retries": 8},
    }
    data.update(overrides)
    return JiraSettings.model_validate(data)


def pull_all(
    connector: JiraConnector, since: datetime | None = None, until: datetime | None = None
) -> tuple[list[Item], list[Any]]:
    """Every item of every stream, and the pages they came in."""
    items: list[Item] = []
    pages: list[Any] = []
    for stream in connector.streams():
        for page in connector.pull(stream, since, until or datetime.now(UTC)):
            pages.append(page)
            items.extend(page.items)
    return items, pages


@pytest.fixture(scope="module")
def jira_default_world() -> World:
    return jira_world()


@pytest.fixture
def jira_connector_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., JiraConnector]]:
    made: list[JiraConnector] = []

    def make(site: JiraSite, **overrides: Any) -> JiraConnector:
        connector = JiraConnector(jira_settings(site, monkeypatch, **overrides))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


# --- configs and runs through the sync engine ---------------------------------------------------


def jira_config(site: JiraSite, tmp: Path, **source: Any) -> dict[str, Any]:
    """A Jira-only config for ``site``: ``momentos.demo.sandbox_config``'s Jira source, with
    the password in the environment; ``source`` overrides its settings."""
    raw: dict[str, Any] = {
        "name": "jira", "type": "jira", "url": site.url,
        "auth": {"username": INTEGRATION_USER, "password_env": PASSWORD_ENV},
        "projects": ["SD", "APP", "PMO"], "page_size": 100,
        # Retries without real waits: the tests' sandboxes answer Retry-After 0.
        "http": {"backoff_base_s": 0.0, "backoff_max_s": 0.0, "max_retries": 10},
    }
    raw.update(source)
    return {
        "version": 1, "sources": [raw],
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
        "report": {"out": str(tmp / "report"), "language": "en"},
    }


def load_config_dict(config: dict[str, Any]) -> Config:
    """Validate a config dict the way ``momentos`` validates its YAML file."""
    return parse_config(yaml.safe_dump(config, sort_keys=False))


class RecordingConnector(JiraConnector):
    """The real connector, noting which items its pages carried (nothing else changes)."""

    pulled: ClassVar[list[Item]] = []

    def pull(self, stream: str, since: datetime | None, until: datetime) -> Iterator[Page]:
        for page in super().pull(stream, since, until):
            RecordingConnector.pulled.extend(page.items)
            yield page


def run_sync(config: Config, state: StateStore, now: datetime | None = None,
             record: bool = False) -> SyncResult:
    """One ``SyncEngine`` cycle (``record``: through ``RecordingConnector``)."""
    factory: Callable[[Any], JiraConnector] = RecordingConnector if record else JiraConnector
    return SyncEngine(config, state, connector_factory=factory).run(now=now)


def platform_values(site: JiraSite) -> dict[str, dict[str, Any]]:
    """The writeback values every issue holds on the platform, by issue key."""
    return {issue.key: dict(issue.values) for issue in site.app.issues.values()}
