"""Progress of long runs: a rich bar on a terminal, plain periodic log lines everywhere else.

Syncs, backfills and report builds can run for minutes. A person at a terminal wants a live bar;
a cron job, a container or a CI log wants a line every so often that says how far the run got and
how long is left, and nothing else (a bar redrawn into a log file is noise). One helper serves
both, so every long loop reports progress the same way::

    with progress("jira: pull", total=expected, unit="items") as tracker:
        for page in pages:
            ...
            tracker.advance(len(page))

The tracker is also a plain callable (``tracker(n)`` advances by ``n``), so code that should not
know about progress can take an ``on_progress: Callable[[int], None]`` callback instead.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

log = logging.getLogger("momentos.progress")

#: Seconds between two log lines when not on a terminal: often enough to see a run is alive,
#: rare enough that a long backfill does not flood the log.
LOG_INTERVAL_S = 15.0


class Tracker:
    """Counts work done and shows it; created by :func:`progress`, not directly."""

    def __init__(
        self,
        description: str,
        total: int | None,
        unit: str,
        *,
        logger: logging.Logger,
        interval_s: float,
        clock: Callable[[], float],
        bar: Any | None = None,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = 0
        self._logger = logger
        self._interval = interval_s
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._bar = bar  # (rich Progress, task id) on a terminal, else None
        # Sync pages can be processed by worker threads; counts must not be lost.
        self._lock = threading.Lock()

    def __call__(self, n: int = 1) -> None:
        """Advance by ``n``: lets the tracker be passed where a callback is expected."""
        self.advance(n)

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more units of work done."""
        with self._lock:
            self.completed += n
            self._show()

    def update(
        self,
        completed: int | None = None,
        *,
        total: int | None = None,
        description: str | None = None,
    ) -> None:
        """Set the absolute count, the total (when it becomes known) or the description."""
        with self._lock:
            if completed is not None:
                self.completed = completed
            if total is not None:
                self.total = total
            if description is not None:
                self.description = description
            self._show()

    @property
    def elapsed_s(self) -> float:
        """Seconds since the tracker started."""
        return self._clock() - self._started

    def _show(self) -> None:
        if self._bar is not None:
            bar, task = self._bar
            bar.update(task, completed=self.completed, total=self.total,
                       description=self.description)
            return
        now = self._clock()
        if now - self._last_line >= self._interval:
            self._last_line = now
            self._logger.info(self.line())

    def line(self) -> str:
        """One plain line: done so far, share, rate and time left when the total is known."""
        elapsed = max(self.elapsed_s, 1e-9)
        rate = self.completed / elapsed
        text = f"{self.description}: {self.completed:,}"
        if self.total:
            share = min(self.completed / self.total, 1.0)
            text += f"/{self.total:,} {self.unit} ({share:.0%})"
        else:
            text += f" {self.unit}"
        text += f", {rate:,.0f}/s"
        if self.total and rate > 0 and self.completed < self.total:
            text += f", about {_duration((self.total - self.completed) / rate)} left"
        return text

    def _finish(self, failed: bool) -> None:
        if self._bar is None:
            verb = "stopped" if failed else "done"
            self._logger.info(
                f"{self.description}: {verb}, {self.completed:,} {self.unit} "
                f"in {_duration(self.elapsed_s)}"
            )


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 2 min``: how people read remaining time."""
    seconds = max(round(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def on_terminal(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default stderr) is an interactive terminal that can draw a bar."""
    stream = stream if stream is not None else sys.stderr
    if os.environ.get("TERM") == "dumb" or os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def progress(
    description: str,
    total: int | None = None,
    *,
    unit: str = "items",
    logger: logging.Logger | None = None,
    interval_s: float = LOG_INTERVAL_S,
    terminal: bool | None = None,
    stream: IO[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Tracker]:
    """Track a long run: a rich progress bar on a terminal, log lines otherwise.

    ``total`` may be unknown (``None``) and set later with ``tracker.update(total=...)``.
    ``terminal`` forces the mode (default: :func:`on_terminal` of ``stream``). Without a
    terminal one line is logged at the start, one every ``interval_s`` seconds while work
    advances, and one at the end (also when the block raises, saying it stopped).
    """
    logger = logger or log
    use_bar = on_terminal(stream) if terminal is None else terminal
    if not use_bar:
        tracker = Tracker(description, total, unit, logger=logger, interval_s=interval_s,
                          clock=clock)
        size = f" ({total:,} {unit})" if total else ""
        logger.info(f"{description}: started{size}")
        failed = True
        try:
            yield tracker
            failed = False
        finally:
            tracker._finish(failed)
        return

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=stream if stream is not None else sys.stderr)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        tracker = Tracker(description, total, unit, logger=logger, interval_s=interval_s,
                          clock=clock, bar=(bar, task))
        yield tracker
