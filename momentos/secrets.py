"""Secret redaction: every secret read from the environment or a keyring is registered here and
masked in every log record, whatever logger or handler emits it."""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***"

#: The credential of an ``Authorization`` header, however it is printed (``Authorization: Basic
#: …``, ``'authorization': 'Bearer …'``): a Basic value is base64 of ``user:password``, which
#: the literal secrets never match.
_AUTH_VALUE = re.compile(
    r"(?i)(\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?\s*(?:basic|bearer|token)\s+)"
    r"[A-Za-z0-9._~+/=-]+"
)


def register_secret(value: str) -> None:
    # Very short values would mask ordinary words; real passwords and tokens are longer.
    if value and len(value) >= 4:
        with _lock:
            # As typed, and as it travels in a URL or a form body (OAuth password grant).
            _secrets.update({value, quote(value, safe=""), quote_plus(value)})


def redact(text: str) -> str:
    if not text:
        return text
    text = _AUTH_VALUE.sub(lambda m: m.group(1) + MASK, text)
    if not _secrets:
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
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not kill logging
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters render the traceback after the filters ran, unredacted: render it
            # now (they reuse ``exc_text``), so a secret in an exception message is masked too.
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
