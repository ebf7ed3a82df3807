"""A throwaway PostgreSQL server for the tests that run the state store on PostgreSQL.

Uses ``MOMENTOS_TEST_PG_URL`` when set; otherwise starts a private cluster from Debian's
``postgresql`` binaries (``.ci/run`` installs them) on a free loopback port. In CI a missing
server is a failure, never a silent skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; Debian's package creates the `postgres` user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextmanager
def postgres_url() -> Iterator[str]:
    env_url = os.environ.get("MOMENTOS_TEST_PG_URL")
    if env_url:
        yield env_url
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        message = (
            "PostgreSQL is not installed: `apt-get install postgresql` (as .ci/run does) "
            "or set MOMENTOS_TEST_PG_URL"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    bindir = os.path.dirname(bins[-1])
    data = tempfile.mkdtemp(prefix="momentos-pg-")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([f"{bindir}/initdb", "-D", data, "-U", "momentos", "--auth=trust", "-E", "UTF8"]),
        check=True, capture_output=True,
    )
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = subprocess.run(
        _as_postgres([f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-l", f"{data}/log", "-w", "start"]),
        capture_output=True, text=True,
    )
    if start.returncode != 0:
        pytest.fail(f"PostgreSQL did not start: {start.stdout}{start.stderr}")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [f"{bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            time.sleep(0.2)
        subprocess.run(
            [f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "momentos", "momentos"],
            check=True, capture_output=True,
        )
        yield f"postgresql+psycopg://momentos@127.0.0.1:{port}/momentos"
    finally:
        subprocess.run(_as_postgres([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
