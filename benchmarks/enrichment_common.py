"""Shared helpers for the enrichment benchmarks: sandbox worlds pulled through the real
connectors, with the generator's ground truth kept aside (enrichment never sees it).

Run by hand; nothing here is imported by the package or the tests.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: A fixed "now" so that every run of a seed sees the same world (open items, ages, SLAs).
BENCH_NOW = datetime(2025, 6, 2, tzinfo=UTC)
#: Seeds used to tune weights and thresholds; the evaluation seeds are never tuned on.
TUNE_SEEDS: tuple[int, ...] = (1, 2, 3)
EVAL_SEEDS: tuple[int, ...] = (7, 11, 13)
CACHE_DIR = Path(os.environ.get("MOMENTOS_BENCH_CACHE", Path(tempfile.gettempdir()) / "momentos-bench"))


def pull_world(seed: int, items: int = 2000, now: datetime = BENCH_NOW) -> list[dict[str, Any]]:
    """Items of one sandbox world as JSON objects (``Item.to_json()``), each with a ``_truth``
    key holding the generator's intent, pulled over HTTP by the real connectors.

    Cached under ``CACHE_DIR`` per (seed, items, now): pulling 2,000 items takes a while.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache = CACHE_DIR / f"world-{seed}-{items}-{now:%Y%m%d}.jsonl"
    if cache.exists():
        with cache.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    import yaml

    from momentos.config import parse_config
    from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config
    from momentos.sandbox import start_sandbox
    from momentos.sandbox.world import generate_world
    from momentos.sync import make_connector

    world = generate_world(seed=seed, items=items, now=now)
    truth = {(w.platform, w.id): dict(w.truth) for w in world.items}
    caused = {(w.platform, w.id): w.caused_by for w in world.items}
    company = {o.id: o.name for o in world.orgs}
    owner = {(w.platform, w.id): company.get(w.company_id, "") for w in world.items}
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, start_sandbox(world=world, seed=seed) as sandbox:
        os.environ[SANDBOX_PASSWORD_ENV] = sandbox.password
        raw = sandbox_config(sandbox, state_url=f"sqlite:///{tmp}/s.db", report_out=tmp)
        config = parse_config(yaml.safe_dump(raw), Path(tmp) / "c.yaml")
        for settings in config.sources:
            connector = make_connector(settings)
            try:
                for stream in connector.streams():
                    for page in connector.pull(stream, None, now):
                        for item in page.items:
                            record = item.to_json()
                            key = (item.platform, item.id)
                            record["_truth"] = truth[key]
                            record["_truth"]["caused_by"] = caused[key]
                            record["_truth"]["company"] = owner[key]
                            out.append(record)
            finally:
                connector.close()
    with cache.open("w", encoding="utf-8") as handle:
        for record in out:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out


def records_to_items(records: list[dict[str, Any]]) -> list[Any]:
    """``Item`` objects back from ``pull_world`` records (the truth key is dropped)."""
    from momentos.models import Comment, HistoryEvent, Item, parse_utc

    items = []
    for r in records:
        data = {k: v for k, v in r.items() if not k.startswith("_")}
        for name in ("created", "updated", "resolved"):
            data[name] = parse_utc(data.get(name))
        data["comments"] = [
            Comment(**{**c, "created": parse_utc(c.get("created"))}) for c in data["comments"]
        ]
        data["history"] = [HistoryEvent(**{**h, "at": parse_utc(h.get("at"))}) for h in data["history"]]
        items.append(Item(**data))
    return items


_VADER_SCRIPT = r"""
import json, sys, time
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
texts = json.load(open(sys.argv[1], encoding="utf-8"))
analyzer = SentimentIntensityAnalyzer()
start = time.perf_counter()
scores = [analyzer.polarity_scores(t)["compound"] for t in texts]
elapsed = time.perf_counter() - start
json.dump({"scores": scores, "seconds": elapsed}, open(sys.argv[2], "w"))
"""


def vader_scores(texts: list[str], venv_dir: Path | None = None) -> tuple[list[float], float]:
    """VADER compound scores for ``texts`` and the seconds VADER took to score them.

    VADER is not a momentos dependency: it is installed with pip into its own throw-away
    virtual environment (a temporary folder, or ``venv_dir`` to reuse one) and run there in a
    subprocess on exactly the same texts. Only the scoring loop is timed.
    """
    import subprocess
    import venv

    own = venv_dir is None
    root = Path(tempfile.mkdtemp(prefix="momentos-vader-")) if own else Path(venv_dir)
    python = root / "bin" / "python"
    try:
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(root)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "vaderSentiment"],
                           check=True, capture_output=True)
        script, data, result = root / "score.py", root / "texts.json", root / "scores.json"
        script.write_text(_VADER_SCRIPT, encoding="utf-8")
        data.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        subprocess.run([str(python), str(script), str(data), str(result)], check=True)
        out = json.loads(result.read_text(encoding="utf-8"))
        return out["scores"], float(out["seconds"])
    finally:
        if own:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
