"""Logging: plain or JSON lines on stderr, secrets redacted in every record."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from momentos.secrets import RedactingFilter, redact


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


def configure(level: str = "INFO", json_format: bool = False) -> None:
    """Route every log record to stderr (stdout is reserved for command output)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_momentos", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._momentos = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # Client libraries are chatty at INFO; their problems surface through our error table.
    for noisy in ("urllib3", "jira", "pysnow", "werkzeug", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
