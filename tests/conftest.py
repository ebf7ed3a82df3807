"""Shared fixtures for every test tier."""

from __future__ import annotations

import pytest

from tests.pg import postgres_url


@pytest.fixture(scope="session")
def pg_url():
    """URL of a throwaway PostgreSQL database (see tests/pg.py)."""
    with postgres_url() as url:
        yield url
