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


def settles_itself(config: Config, source: str) -> bool:
    """Whether ``serve`` runs the full sync that settles ``source``'s first sync on its own:
    on unless ``schedule.settle_first_sync`` is off, for a configured source without a
    request budget that one of the sync jobs syncs incrementally."""
    settings = next((s for s in config.sources if s.name == source), None)
    return (
        settings is not None
        and config.model.schedule.settle_first_sync
        and settings.max_requests is None
        and any(
            job.type == "sync" and not job.full and job.source in (None, source)
            for job in config.model.schedule.jobs
        )
    )


def settle_advice(config: Config, source: str, command: str = "momentos sync --full") -> str:
    """What settles ``source``'s first sync, in words: ``serve`` on its own, or ``command``."""
    if settles_itself(config, source):
        return "`momentos serve` settles their values with one full sync after its next sync job"
    return f"run `{command}` once to settle their values"


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
                # Read before the sync: the run that makes the mark (the first sync itself)
                # ends, and the next one catches up on what changed meanwhile, then settles.
                settle = self._to_settle(state, job)
                result = engine.run(source=job.source, full=job.full)
                ok = result.ok
                for name in settle:
                    if self.stopping.is_set():
                        break
                    if result.sources[name].error:
                        continue  # the platform failed this run: the settle waits for the next
                    log.info(
                        "%s: its first sync compared its early items with part of the history; "
                        "running one full sync to settle their values (schedule."
                        "settle_first_sync: false leaves this to you; docs/DEPLOYMENT.md)", name,
                    )
                    ok = engine.run(source=name, full=True).ok and ok
                status = "ok" if ok else "failed"
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

    def _to_settle(self, state: Any, job: JobSettings) -> list[str]:
        """The job's sources whose first sync still waits for its settling full sync.

        It runs after the job's own sync, so that a settle cut short (a restart during the
        hour a million items take) never holds back the changes of the next run. Sources
        with a request budget are left out: a full sync would restart, budget after budget,
        and never finish; ``momentos status`` keeps listing them for the admin."""
        from momentos.sync import SETTLE_MARK

        if job.full:
            return []
        pending = state.marks_named(SETTLE_MARK)
        names = [job.source] if job.source else [s.name for s in self.config.sources]
        return [name for name in names if name in pending and settles_itself(self.config, name)]

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
