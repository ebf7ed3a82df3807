"""Reports from the state store: load the enriched items, hand them to the report builder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from momentos.config import Config
from momentos.state import StateStore


def state_frame(state: StateStore) -> pd.DataFrame:
    """Every processed item as a DataFrame with aware UTC timestamps."""
    frame = pd.DataFrame.from_records(list(state.iter_items()))
    if frame.empty:
        return frame
    for column in ("created", "resolved", "updated"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    return frame


def build_report_from_state(
    config: Config,
    state: StateStore,
    *,
    now: datetime,
    out: Path | None = None,
    until: datetime | None = None,
    publish: bool = True,
) -> Any:
    """Build the report from every stored item; attach it where ``report.publish`` says."""
    from momentos.progress import progress
    from momentos.report import build_report
    from momentos.report.load import report_frame

    settings = config.model.report
    total = sum(state.count_items().values())
    # Rows are reduced chunk by chunk (report_frame), not loaded whole: a million stored rows
    # with their signals dicts would not fit in memory at once.
    with progress("report", total=total, unit="items") as tracker:
        frame = report_frame(state.iter_items(), on_progress=tracker)
        files = build_report(
            frame,
            out or config.report_dir,
            now=now,
            language=settings.language,
            title=settings.title,
            levels=config.experience.levels.model_dump(),
            period_days=settings.period_days,
            until=until,
            customers=settings.customers,
            stall_days=config.experience.stall_days,
            tracker=tracker,
        )
    if publish and (settings.publish.servicenow or settings.publish.jira):
        from momentos.report.publish import publish_report

        # The files are written first: a platform that cannot be reached fails the run
        # (exit 1) but never costs the report itself.
        publish_report(files, settings.publish, config.sources, language=settings.language)
    return files
