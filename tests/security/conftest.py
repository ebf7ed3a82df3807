"""Shared by the security tests."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    """`momentos sync` installs a SIGTERM handler and a root log handler; put both back."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_momentos", False):
            root.removeHandler(handler)
