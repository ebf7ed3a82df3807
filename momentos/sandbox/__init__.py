"""Simulated ServiceNow and Jira platforms on loopback, for the demo, tests and benchmarks.

``start_sandbox`` generates the world, starts both platform servers in daemon threads and
returns a handle with their URLs and credentials. ``momentos sandbox`` wraps it for the CLI.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from momentos.sandbox.base import ServerThread, make_self_signed_cert, tls_dir
from momentos.sandbox.world import HUMAN_USER, INTEGRATION_USER, World

# werkzeug's development server logs every request at INFO; the sandbox is not the subject.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@dataclass
class Sandbox:
    world: World
    servicenow: Any  # ServiceNowSandbox app
    jira: Any  # JiraSandbox app
    servicenow_url: str
    jira_url: str
    user: str
    password: str
    human_user: str
    human_password: str
    ca_cert: str | None
    _threads: list[ServerThread] = field(default_factory=list, repr=False)
    _recorder: Any = field(default=None, repr=False)

    def ready_line(self) -> dict[str, Any]:
        """The contract's ready line, as a dict."""
        return {
            "servicenow": self.servicenow_url,
            "jira": self.jira_url,
            "user": self.user,
            "password": self.password,
            "human_user": self.human_user,
            "human_password": self.human_password,
            "ca_cert": self.ca_cert,
        }

    def stop(self) -> None:
        for thread in self._threads:
            thread.stop()
        self._threads.clear()
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(
    *,
    items: int = 2000,
    seed: int = 7,
    host: str = "127.0.0.1",
    servicenow_port: int = 0,
    jira_port: int = 0,
    jira_flavor: str = "cloud",
    tls: bool = False,
    now: datetime | None = None,
    world: World | None = None,
    options: dict[str, Any] | None = None,
    data_file: Path | None = None,
) -> Sandbox:
    """Generate (or reuse) a world and serve it as ServiceNow and Jira on loopback.

    ``options`` are passed to both platform apps (e.g. ``{"acl_hidden_rate": 0.1}``).
    ``data_file`` keeps the platforms' changes across restarts (``sandbox/persist.py``): a new
    file records this world's seed, size, "now", flavour, options and passwords; an existing
    one overrides those arguments and its changes are replayed before serving.
    """
    from momentos.sandbox.jira import JiraSandbox
    from momentos.sandbox.persist import Header, Recorder, read_data_file, replay
    from momentos.sandbox.servicenow import ServiceNowSandbox
    from momentos.sandbox.world import generate_world

    header, entries = read_data_file(data_file) if data_file else (None, [])
    if header is not None:
        if world is not None:
            raise ValueError("start_sandbox: pass either a world or an existing data_file")
        seed, items, jira_flavor = header.seed, header.items, header.jira_flavor
        now, options = datetime.fromisoformat(header.now), header.options
    world = world or generate_world(seed=seed, items=items, now=now)
    password = header.password if header else secrets.token_urlsafe(16)
    human_password = header.human_password if header else secrets.token_urlsafe(16)
    users = {INTEGRATION_USER: password, HUMAN_USER: human_password}
    options = options or {}
    sn_app = ServiceNowSandbox(world, users, seed=seed, **options)
    jira_app = JiraSandbox(world, users, seed=seed, flavor=jira_flavor, **options)
    recorder = None
    if data_file is not None:
        replay({"servicenow": sn_app, "jira": jira_app}, entries)
        fresh = None if header else Header(
            seed=seed, items=len(world.items), now=world.now.isoformat(), jira_flavor=jira_flavor,
            password=password, human_password=human_password, options=options,
        )
        recorder = Recorder(data_file, fresh)
        sn_app.recorder = jira_app.recorder = recorder
    cert: tuple[Path, Path] | None = make_self_signed_cert(tls_dir()) if tls else None
    threads = [
        ServerThread(sn_app, host, servicenow_port, cert).start(),
        ServerThread(jira_app, host, jira_port, cert).start(),
    ]
    return Sandbox(
        world=world,
        servicenow=sn_app,
        jira=jira_app,
        servicenow_url=threads[0].url,
        jira_url=threads[1].url,
        user=INTEGRATION_USER,
        password=password,
        human_user=HUMAN_USER,
        human_password=human_password,
        ca_cert=str(cert[0]) if cert else None,
        _threads=threads,
        _recorder=recorder,
    )
