"""Scores compare an item with the instance history: the items a previous run stored
(``StateStore.recent_items``: created or resolved within ``experience.context_days``) plus
those this run has processed (``SyncEngine._remember``, under the same window and limit). A run
that dies and resumes, or two runs that split the sources, meet the same history as one
uninterrupted run, so they score the same items alike.
"""

from __future__ import annotations

import os

import yaml
from reliability_helpers import Platforms, fields, write_sandbox_config

from momentos.config import load_config
from momentos.demo import SANDBOX_PASSWORD_ENV
from momentos.sandbox import start_sandbox
from momentos.state import StateStore
from momentos.sync import SyncEngine


def _scores(tmp_path, runs: list[str | None], window_days: float | None = None) -> dict[str, tuple[str, int]]:
    with start_sandbox(items=100, seed=1) as box:
        os.environ[SANDBOX_PASSWORD_ENV] = box.password
        path = write_sandbox_config(box, tmp_path, history=True)
        if window_days is not None:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            raw["experience"] = {"context_days": window_days}
            path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        config = load_config(path)
        state = StateStore(config.state_url)
        for source in runs:
            assert SyncEngine(config, state).run(source=source).ok
        state.close()
        return fields(Platforms.of(box))


def test_split_runs_score_like_one_run(tmp_path):
    """The world spans 180 days, beyond the 120-day window: items older than the window must
    count neither in the run that processes them nor in the next."""
    one = _scores(tmp_path / "one", [None])
    split = _scores(tmp_path / "split", ["servicenow", "jira"])
    differ = {k: (one[k], split[k]) for k in one if abs(one[k][1] - split[k][1]) > 1}
    assert not differ, f"{len(differ)} of {len(one)} items score differently: {list(differ.items())[:5]}"


def test_split_runs_score_like_one_run_when_the_window_holds_the_whole_world(tmp_path):
    """With a window wider than the world's 180 days the two cuts agree too."""
    one = _scores(tmp_path / "one", [None], window_days=100_000)
    split = _scores(tmp_path / "split", ["servicenow", "jira"], window_days=100_000)
    differ = {k: (one[k], split[k]) for k in one if abs(one[k][1] - split[k][1]) > 1}
    assert not differ, f"{len(differ)} of {len(one)} items score differently: {list(differ.items())[:5]}"
