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
    config: Config, state: StateStore, *, now: datetime, out: Path | None = None
) -> Any:
    from momentos.report import build_report

    frame = state_frame(state)
    return build_report(
        frame,
        out or config.report_dir,
        now=now,
        language=config.model.report.language,
        title=config.model.report.title,
        levels=config.experience.levels.model_dump(),
    )
