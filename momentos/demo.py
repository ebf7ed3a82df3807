"""The demo: sandbox platforms, a config that syncs them, one sync, one report."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from momentos.sandbox import Sandbox

#: Environment variable that holds the sandbox integration password in generated configs.
SANDBOX_PASSWORD_ENV = "MOMENTOS_SANDBOX_PASSWORD"


def sandbox_config(sandbox: Sandbox, *, state_url: str, report_out: str) -> dict[str, Any]:
    """A config that syncs both sandbox platforms; the password stays in the environment."""
    tls: dict[str, Any] = {"ca_bundle": sandbox.ca_cert} if sandbox.ca_cert else {}
    auth = {"username": sandbox.user, "password_env": SANDBOX_PASSWORD_ENV}
    return {
        "version": 1,
        "sources": [
            {
                "name": "servicenow",
                "type": "servicenow",
                "url": sandbox.servicenow_url,
                "auth": dict(auth),
                "page_size": 500,
                **tls,
            },
            {
                "name": "jira",
                "type": "jira",
                "url": sandbox.jira_url,
                "auth": dict(auth),
                "projects": ["SD", "APP", "PMO"],
                "page_size": 100,
                **tls,
            },
        ],
        "nudges": {"enabled": True},
        "state": {"url": state_url},
        "report": {"out": report_out, "language": "en"},
        "schedule": {
            "jobs": [
                {"name": "sync-all", "type": "sync", "cron": "*/15 * * * *"},
                {"name": "daily-report", "type": "report", "cron": "0 7 * * *"},
                {"name": "nightly-learn", "type": "retrain", "cron": "30 2 * * *"},
            ]
        },
    }


def write_config(config: dict[str, Any], path: Path) -> Path:
    header = (
        "# momentos config for the sandbox platforms (generated).\n"
        f"# The integration password is read from ${SANDBOX_PASSWORD_ENV}; it is printed in the\n"
        "# sandbox's ready line. Secrets never go in this file.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def run_demo(items: int, seed: int, out: Path) -> dict[str, Any]:
    """Start the sandbox in-process, sync both platforms, write the report; return a summary."""
    from momentos.config import load_config
    from momentos.reporting import build_report_from_state
    from momentos.sandbox import start_sandbox
    from momentos.state import StateStore
    from momentos.sync import SyncEngine

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "state.db"
    if state_path.exists():
        state_path.unlink()  # each demo starts from a fresh sandbox, so from fresh state too
    for suffix in ("-wal", "-shm"):
        Path(str(state_path) + suffix).unlink(missing_ok=True)
    with start_sandbox(items=items, seed=seed) as sandbox:
        os.environ[SANDBOX_PASSWORD_ENV] = sandbox.password
        config_path = write_config(
            sandbox_config(sandbox, state_url=f"sqlite:///{state_path}", report_out=str(out / "report")),
            out / "momentos.yaml",
        )
        config = load_config(config_path)
        state = StateStore(config.state_url)
        try:
            result = SyncEngine(config, state).run()
            files = build_report_from_state(config, state, now=datetime.now(timezone.utc))
            headlines = _headlines(state, files)
        finally:
            state.close()
    return {"sync": result, "report": files, "config": config_path, "headlines": headlines}


def _headlines(state: Any, files: Any) -> list[str]:
    """A few lines on what the business is living, for the terminal: the moments of every item
    synced, then the report's own figures for its period and its first cells to act on (the
    same ranking as the report's "where attention is needed first")."""
    import json

    from momentos.reporting import state_frame

    frame = state_frame(state)
    if frame.empty:
        return ["no items were processed"]
    lines = [
        f"moments of the {len(frame)} items: "
        + ", ".join(f"{m} {int((frame['moment'] == m).sum())}" for m in ("operation", "evolution", "innovation"))
    ]
    head = files.summary
    if head.get("items"):
        lines.append(
            f"last {head['period_days']:.0f} days (the report): {head['items']} items, mean experience "
            f"{head['mean_score']:.1f}, at risk {head['at_risk']} ({head['at_risk_share']:.0%})"
        )
    cells = json.loads(Path(files.json).read_text(encoding="utf-8"))["tables"]["customer_moment"]
    worst = sorted(
        (c for c in cells if (c.get("at_risk") or 0) > 0),
        key=lambda c: (-c["at_risk"], c.get("mean_score") or 0.0, str(c.get("customer") or "")),
    )
    for cell in worst[:3]:
        lines.append(
            f"attention: {cell.get('customer') or '(no customer)'} in {cell['moment']}: "
            f"{cell['at_risk']} of {cell['items']} items at risk"
        )
    return lines
