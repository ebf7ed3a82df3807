"""Secret redaction: every secret read from the environment or a keyring is registered here and
masked in every log record, whatever logger or handler emits it."""

from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***"


def register_secret(value: str) -> None:
    # Very short values would mask ordinary words; real passwords and tokens are longer.
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    if not _secrets or not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Formats the message once, redacts it, and freezes it on the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string must not kill logging
                message = str(record.msg)
            record.msg = redact(message)
            record.args = None
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True
