"""`momentos serve`: decides *when* jobs run, nothing else.

APScheduler 3.x runs the configured cron jobs with ``max_instances=1`` (a job never overlaps
itself), coalescing of missed runs and a misfire grace time. One lock per state store stops a
second ``serve`` on the same state from double-running: a file lock beside an SQLite database,
an advisory lock on PostgreSQL. SIGTERM lets the running job finish its current page, commit,
and exit 0.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from momentos.config import Config, JobSettings

log = logging.getLogger("momentos.scheduler")


class AlreadyRunning(RuntimeError):
    pass


@contextmanager
def service_lock(config: Config) -> Iterator[None]:
    """Hold the per-state-store service lock for the life of the service."""
    url = config.state_url
    if url.startswith("sqlite:///"):
        from filelock import FileLock, Timeout

        lock = FileLock(url[len("sqlite:///"):] + ".serve.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise AlreadyRunning(
                f"another `momentos serve` holds {lock.lock_file}; not starting a second one"
            ) from None
        try:
            yield
        finally:
            lock.release()
    elif url.startswith(("postgresql", "postgres")):
        from sqlalchemy import create_engine, text

        key = int(hashlib.sha256(url.encode()).hexdigest()[:15], 16)
        engine = create_engine(url)
        conn = engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if not got:
                raise AlreadyRunning("another `momentos serve` holds this state store's lock")
            yield
        finally:
            conn.close()  # closing the session releases the advisory lock
            engine.dispose()
    else:
        yield


class Service:
    """The scheduler service for one config."""

    def __init__(self, config: Config) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.config = config
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(timezone=config.model.schedule.timezone)
        self._runs: list[dict[str, Any]] = []

    def add_jobs(self) -> None:
        from apscheduler.triggers.cron import CronTrigger

        schedule = self.config.model.schedule
        for job in schedule.jobs:
            self.scheduler.add_job(
                self.run_job,
                CronTrigger.from_crontab(job.cron, timezone=schedule.timezone),
                args=[job],
                id=job.name,
                name=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=schedule.misfire_grace_s,
            )

    def run_job(self, job: JobSettings) -> None:
        from momentos.reporting import build_report_from_state
        from momentos.state import StateStore
        from momentos.sync import SyncEngine

        if self.stopping.is_set():
            return
        started = datetime.now(timezone.utc)
        state = StateStore(self.config.state_url)
        try:
            if job.type == "sync":
                engine = SyncEngine(self.config, state, stop_requested=self.stopping.is_set)
                result = engine.run(source=job.source, full=job.full)
                status = "ok" if result.ok else "failed"
            elif job.type == "retrain":
                from momentos.enrichment import learn

                run_id = state.start_run(f"retrain:{job.name}")
                summary = learn.retrain(state, self.config.moments, now=started)
                state.finish_run(run_id, "ok", summary)
                log.info("moment model retrained on %s labels", summary.get("labels"))
                status = "ok"
            else:
                run_id = state.start_run(f"report:{job.name}")
                files = build_report_from_state(self.config, state, now=started)
                state.finish_run(run_id, "ok", {"html": str(files.html)})
                status = "ok"
        except Exception:  # noqa: BLE001 - a failing job must not kill the service
            log.exception("job %s failed", job.name)
            status = "error"
        finally:
            state.close()
        finished = datetime.now(timezone.utc)
        self._runs.append({"job": job.name, "started": started, "finished": finished, "status": status})
        log.info("job %s finished: %s in %.1fs", job.name, status, (finished - started).total_seconds())

    def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        with service_lock(self.config):
            self.add_jobs()
            if not self.scheduler.get_jobs():
                log.warning("no jobs configured under schedule.jobs; nothing to run")
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
            self.scheduler.start()
            for job in self.scheduler.get_jobs():
                log.info("job %s: next run %s", job.name, job.next_run_time)
            self.stopping.wait()
            log.info("stopping: letting the running job finish its page")
            self.scheduler.shutdown(wait=True)
        return 0
