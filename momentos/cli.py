"""The `momentos` command line. Exit codes: 0 success, 1 failure at run time, 2 bad usage or
bad configuration (every problem listed at once, nothing written)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from momentos.errors import ConfigError, MomentosError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Relationship moments and experience signals for ServiceNow and Jira.",
)
config_app = typer.Typer(no_args_is_help=True, help="Configuration helpers.")
app.add_typer(config_app, name="config")

# Piped output keeps full lines: rich would otherwise wrap tables at 80 columns.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
log = logging.getLogger("momentos.cli")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The momentos YAML config file.")]


def _setup_logging(level: str = "INFO", json_format: bool = False) -> None:
    from momentos.logsetup import configure

    configure(level, json_format)


def _load(path: Path, *, secrets: bool = False, source: str | None = None):  # -> Config
    """Load the config (and, for commands that reach platforms, its secrets) or exit 2."""
    from momentos.config import check_secrets, load_config

    try:
        config = load_config(path)
        if source:
            config.source(source)
        if secrets:
            check_secrets(config, source)
    except ConfigError as exc:
        err.print(f"[bold red]{path}: invalid configuration[/] ({len(exc.problems)} problem(s)):", highlight=False)
        for problem in exc.problems:
            err.print(f"  - {problem}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    _setup_logging(config.model.logging.level, config.model.logging.json_format)
    return config


def _fail(message: str, code: int = 1) -> None:
    err.print(message, markup=False, highlight=False)
    raise typer.Exit(code)


# --- demo and sandbox ----------------------------------------------------------------------------
@app.command()
def demo(
    items: Annotated[int, typer.Option(help="Items in the sandbox (both platforms).", min=50)] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 7,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for config, state and report.")] = Path(
        "momentos-demo"
    ),
) -> None:
    """Start sandbox ServiceNow + Jira, sync both (pull, enrich, write back), write the report."""
    from momentos.demo import run_demo

    _setup_logging("WARNING")
    err.print(f"momentos demo: {items} items, seed {seed}; starting sandbox platforms…")
    started = datetime.now(timezone.utc)
    outcome = run_demo(items, seed, out_dir)
    result = outcome["sync"]
    _print_summary(result)
    for line in outcome["headlines"]:
        typer.echo(line)
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    report = outcome["report"]
    typer.echo(f"config: {outcome['config']}")
    typer.echo(f"demo finished in {seconds:.1f}s")
    typer.echo(f"report: {Path(report.html).resolve()}")
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
    servicenow_port: Annotated[int, typer.Option(help="0 = a free port.")] = 0,
    jira_port: Annotated[int, typer.Option(help="0 = a free port.")] = 0,
    items: Annotated[int, typer.Option(min=50, max=1_000_000)] = 2000,
    seed: Annotated[int, typer.Option()] = 7,
    jira_flavor: Annotated[str, typer.Option(help="cloud or datacenter")] = "cloud",
    tls: Annotated[bool, typer.Option("--tls", help="Serve https with a self-signed certificate.")] = False,
    config_out: Annotated[Optional[Path], typer.Option(help="Write a config that syncs this sandbox.")] = None,
    missing_fields: Annotated[
        bool, typer.Option("--missing-fields", help="Start without the three writeback fields.")
    ] = False,
    data_file: Annotated[
        Optional[Path],
        typer.Option(help="Keep every change in this file and resume from it on the next start "
                     "(its seed, items, flavour and passwords win over the options)."),
    ] = None,
) -> None:
    """Serve simulated ServiceNow and Jira until SIGINT/SIGTERM; prints one JSON ready line."""
    from momentos.demo import sandbox_config, write_config
    from momentos.sandbox import start_sandbox

    if jira_flavor not in ("cloud", "datacenter"):
        _fail("--jira-flavor must be cloud or datacenter", 2)
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        _fail("the sandbox serves loopback addresses only", 2)
    _setup_logging("WARNING")
    options = {"missing_fields": True} if missing_fields else None
    try:
        box = start_sandbox(
            items=items, seed=seed, host=host, servicenow_port=servicenow_port, jira_port=jira_port,
            jira_flavor=jira_flavor, tls=tls, options=options, data_file=data_file,
        )
    except ValueError as exc:  # an unreadable --data-file
        _fail(f"momentos sandbox: {exc}", 2)
    if config_out:
        write_config(
            sandbox_config(box, state_url="sqlite:///momentos-state.db", report_out="momentos-report"),
            config_out,
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sys.stdout.write(json.dumps(box.ready_line()) + "\n")
    sys.stdout.flush()
    stop.wait()
    box.stop()


# --- platform commands -------------------------------------------------------------------------
@app.command()
def check(config: ConfigOpt) -> None:
    """Validate the config, reach every source, verify the writeback fields exist and are writable."""
    from momentos.sync import make_connector

    cfg = _load(config, secrets=True)
    failures = 0
    for settings in cfg.sources:
        try:
            connector = make_connector(settings)
            problems = connector.check()
            connector.close()
        except ConfigError as exc:
            for p in exc.problems:
                err.print(f"  - {p}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except MomentosError as exc:
            out.print(f"[red]✗[/] {settings.name}: {exc}", highlight=False)
            failures += 1
            continue
        if problems:
            failures += 1
            out.print(f"[red]✗[/] {settings.name}: {len(problems)} problem(s)", highlight=False)
            for p in problems:
                out.print(f"    - {p.what}\n      fix: {p.fix}", markup=False, highlight=False)
        else:
            out.print(f"[green]✓[/] {settings.name}: reachable, readable, writeback fields ready", highlight=False)
    if failures:
        raise typer.Exit(1)


@app.command()
def sync(
    config: ConfigOpt,
    source: Annotated[Optional[str], typer.Option(help="Sync this source only.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore the watermark: resync everything.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write nothing anywhere; show the diff.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON only.")] = False,
) -> None:
    """One sync cycle: pull what changed, enrich, write back."""
    from momentos.sync import SyncEngine, write_diff_csv

    cfg = _load(config, secrets=True, source=source)
    # SIGTERM (a stopping pod, a service manager) lets the current page finish and commit.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        result = SyncEngine(cfg, stop_requested=stopping.is_set).run(
            source=source, full=full, dry_run=dry_run
        )
    except ConfigError as exc:
        for p in exc.problems:
            err.print(f"  - {p}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if dry_run:
        diff_path = write_diff_csv(result.diff, cfg.report_dir / "dry-run-diff.csv")
        if not as_json:
            _print_diff(result.diff, diff_path)
    if as_json:
        sys.stdout.write(json.dumps(result.contract()) + "\n")
    else:
        _print_summary(result)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def pull(
    config: ConfigOpt,
    out_file: Annotated[Path, typer.Option("--out", help="JSON Lines file to write.")],
    source: Annotated[Optional[str], typer.Option(help="Pull this source only.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore the watermark.")] = False,
) -> None:
    """Pull normalized items (one JSON object a line); no enrichment, no writes, state untouched."""
    from momentos.state import StateStore
    from momentos.sync import make_connector

    cfg = _load(config, secrets=True, source=source)
    sources = [cfg.source(source)] if source else cfg.sources
    state = StateStore(cfg.state_url)
    now = datetime.now(timezone.utc)
    count = 0
    failed = False
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with out_file.open("w", encoding="utf-8") as handle:
        for settings in sources:
            connector = make_connector(settings)
            try:
                for stream in connector.streams():
                    wm = None if full else state.watermark(settings.name, stream)
                    since = wm.updated - timedelta(seconds=settings.overlap_seconds) if wm else None
                    for page in connector.pull(stream, since, now):
                        for item in page.items:
                            handle.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
                            count += 1
            except MomentosError as exc:
                err.print(f"{settings.name}: {exc}", markup=False, highlight=False)
                failed = True
            finally:
                connector.close()
    state.close()
    typer.echo(f"pulled {count} items into {out_file}")
    if failed:
        raise typer.Exit(1)


@app.command()
def enrich(
    input_file: Annotated[Path, typer.Argument(help="CSV or JSON Lines file.")],
    out_file: Annotated[Path, typer.Option("--out", help="Output file (.csv or .jsonl).")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Use this config's rules and weights.")] = None,
) -> None:
    """Enrich a CSV or JSON Lines file offline (no platform needed)."""
    from momentos.enrichment.frame import enrich_file
    from momentos.enrichment.settings import ExperienceSettings, MomentsSettings, default_rules

    if config:
        cfg = _load(config)
        moments, experience = cfg.moments, cfg.experience
    else:
        _setup_logging("WARNING")
        moments, experience = MomentsSettings(rules=default_rules()), ExperienceSettings()
    for path, what in ((input_file, "input"), (out_file, "output")):
        if path.suffix.lower() not in (".csv", ".jsonl", ".json", ".ndjson"):
            _fail(f"{what} {path}: use a .csv or .jsonl file", 2)
    if not input_file.exists():
        _fail(f"input {input_file} does not exist", 2)
    rows = enrich_file(input_file, out_file, moments, experience, now=datetime.now(timezone.utc))
    typer.echo(f"enriched {rows} rows into {out_file}")
    if _scorer_status() != "c":
        typer.echo(f"note: sentiment {_SCORER_NOTE}", err=True)


@app.command()
def report(
    config: ConfigOpt,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for the report files.")] = None,
) -> None:
    """Write the reports from the state store (the last syncs)."""
    from momentos.reporting import build_report_from_state
    from momentos.state import StateStore

    cfg = _load(config)
    state = StateStore(cfg.state_url)
    try:
        files = build_report_from_state(cfg, state, now=datetime.now(timezone.utc), out=out_dir)
    finally:
        state.close()
    typer.echo(f"report: {Path(files.html).resolve()}")


@app.command()
def serve(config: ConfigOpt) -> None:
    """Run the configured scheduled jobs until SIGTERM."""
    from momentos.scheduler import AlreadyRunning, Service

    cfg = _load(config, secrets=True)
    try:
        code = Service(cfg).serve()
    except AlreadyRunning as exc:
        _fail(str(exc), 1)
        return
    raise typer.Exit(code)


@app.command()
def status(
    config: ConfigOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Last run of each job, pending writes, quarantined items and watermarks."""
    from momentos.scheduler import settle_advice
    from momentos.state import StateStore
    from momentos.sync import SETTLE_MARK

    from apscheduler.triggers.cron import CronTrigger

    cfg = _load(config)
    schedule = cfg.model.schedule
    now = datetime.now(timezone.utc)
    jobs = []
    for job in schedule.jobs:
        trigger = CronTrigger.from_crontab(job.cron, timezone=schedule.timezone)
        nxt = trigger.get_next_fire_time(None, now)
        jobs.append({"name": job.name, "type": job.type, "cron": job.cron, "source": job.source,
                     "next_run": nxt.isoformat() if nxt else None})
    state = StateStore(cfg.state_url)
    try:
        payload: dict[str, Any] = {
            "jobs": jobs,
            "runs": state.last_runs(),
            "items": state.count_items(),
            "pending_writes": state.pending_summary(),
            "quarantined": state.quarantined(),
            "moment_model": _model_status(state),
            # Sources whose first sync took several batches and no full sync settled since.
            "settle": state.marks_named(SETTLE_MARK),
            "history": _history_status(cfg, state, now),
            "sentiment_scorer": _scorer_status(),
        }
    finally:
        state.close()
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        return
    table = Table(title="runs")
    for col in ("job", "finished", "status", "duration s"):
        table.add_column(col)
    for job, run in sorted(payload["runs"].items()):
        table.add_row(job, str(run["finished_at"]), run["status"], f"{run['duration_s'] or 0:.1f}")
    out.print(table)
    for job in jobs:
        out.print(f"job {job['name']} ({job['type']}, {job['cron']}): next run {job['next_run']}", highlight=False)
    out.print(f"items processed: {payload['items']}", highlight=False)
    out.print(f"pending writes: {len(payload['pending_writes'])}; quarantined: {len(payload['quarantined'])}")
    for name, since in sorted(payload["settle"].items()):
        todo = settle_advice(cfg, name, f"momentos sync --config {config} --source {name} --full")
        out.print(f"{name}: the first sync of {since} compared its early items with a shorter "
                  f"history; {todo}", highlight=False)
    history = payload["history"]
    if history["capped"]:
        out.print(f"history: {history['advice']}", highlight=False)
    if payload["sentiment_scorer"] != "c":
        out.print(f"sentiment: {_SCORER_NOTE}", highlight=False)
    model = payload["moment_model"]
    if model["trained_at"]:
        out.print(f"moment model: this instance's, trained {model['trained_at']} on {model['labels']} labels "
                  f"(hold-out macro-F1 {model['holdout_macro_f1']}); labels now {model['labels_now']}",
                  highlight=False)
    else:
        out.print(f"moment model: the shipped one (labels collected {model['labels_now']}; a `retrain` "
                  "job trains this instance's)", highlight=False)


_SCORER_NOTE = ("scored in Python, because the C scorer was not built at install (no C "
                "compiler) or MOMENTOS_PURE_PYTHON is set: same results, enrichment 10-20% "
                "slower. Reinstall with a C compiler to build it.")


def _scorer_status() -> str:
    """``"c"`` when requester sentiment is scored by the built extension, else ``"python"``."""
    from momentos.enrichment import sentiment

    return "python" if sentiment._C is None else "c"


def _history_status(cfg: Any, state: Any, now: datetime) -> dict[str, Any]:
    """The history that scores compare items with: the items of the last ``context_days``, and
    whether ``context_items`` cuts it short (then ``advice`` says what that does)."""
    from momentos.sync import history_capped_advice, history_is_capped

    settings = cfg.experience
    total, oldest = state.history_extent(now - timedelta(days=settings.context_days), settings.context_items)
    capped = history_is_capped(oldest, settings, now)
    return {
        "context_days": settings.context_days,
        "context_items": settings.context_items,
        "items_in_window": total,
        "oldest_kept": oldest.isoformat() if oldest else None,
        "capped": capped,
        "advice": history_capped_advice(oldest, settings, now) if capped else None,
    }


def _model_status(state: Any) -> dict[str, Any]:
    """The learned moment model in use: when it was trained and on how many labels."""
    from momentos.enrichment import learn

    stored = state.load_model(learn.MODEL_NAME)
    meta = stored[2] if stored else {}
    return {
        "trained_at": stored[1].isoformat() if stored else None,
        "labels": meta.get("labels"),
        "holdout_macro_f1": meta.get("holdout_macro_f1"),
        "labels_now": state.count_labels(),
    }


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file (for editor autocompletion)."""
    from momentos.config import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@config_app.command("validate")
def config_validate(config: ConfigOpt) -> None:
    """Validate the config file offline; lists every problem at once."""
    _load(config)
    out.print(f"{config}: valid", highlight=False)


# --- fields setup (issue 8) ---------------------------------------------------------------------
fields_app = typer.Typer(no_args_is_help=True, help="Writeback field helpers.")
app.add_typer(fields_app, name="fields")


@fields_app.command("setup")
def fields_setup(
    config: ConfigOpt,
    apply: Annotated[bool, typer.Option("--apply", help="Create what the plan lists.")] = False,
) -> None:
    """Create the three writeback fields where they are missing (prints the plan; --apply runs it)."""
    from momentos.fields import apply_plan, plan_source
    from momentos.sync import make_connector

    cfg = _load(config, secrets=True)
    failures = pending = 0
    for settings in cfg.sources:
        try:
            connector = make_connector(settings)
        except ConfigError as exc:
            for p in exc.problems:
                err.print(f"  - {p}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        try:
            plan = plan_source(connector)
            pending += len(plan.automatic)
            if not plan.steps:
                out.print(f"[green]✓[/] {plan.source}: nothing to do", highlight=False)
            else:
                table = Table(title=f"{plan.source} ({plan.platform}): "
                              f"{'applying' if apply else 'plan'}, {len(plan.steps)} step(s)")
                for col in ("platform", "action", "target", "detail"):
                    table.add_column(col, overflow="fold")
                for step in plan.steps:
                    detail = "by hand, see below" if step.manual else step.detail
                    table.add_row(plan.platform, step.action, step.target, detail)
                out.print(table)
                for step in plan.manual:  # unwrapped, to follow word for word
                    out.print(f"  by hand: {step.detail}", markup=False, highlight=False, soft_wrap=True)
            for note in plan.notes:
                out.print(f"  note: {note}", markup=False, highlight=False)
            if apply and plan.automatic:
                done = apply_plan(plan, lambda s: out.print(
                    f"  [green]✓[/] {s.action} {s.target} {s.detail}", highlight=False))
                out.print(f"{plan.source}: {done} change(s) made", highlight=False)
            if plan.manual:
                out.print(f"{plan.source}: {len(plan.manual)} manual step(s) remain; "
                          "run momentos check after doing them", highlight=False)
        except ConfigError as exc:
            for p in exc.problems:
                err.print(f"  - {p}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except MomentosError as exc:
            err.print(f"{settings.name}: {exc}", markup=False, highlight=False)
            failures += 1
        finally:
            connector.close()
    if not apply and pending:
        out.print("nothing was changed; run again with --apply to make these changes", highlight=False)
    if failures:
        raise typer.Exit(1)


# --- explain one item --------------------------------------------------------------------------
@app.command()
def explain(
    config: ConfigOpt,
    key: Annotated[str, typer.Argument(help="The item's key: INC0012345, OPS-77.")],
    lang: Annotated[
        Optional[str], typer.Option("--lang", help="en or es (default: the report's language).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object only.")] = False,
) -> None:
    """Why an item has its moment and score, its signals' points, the requester texts behind
    its sentiment, human overrides and what momentos last wrote. Reads only; writes nothing."""
    from momentos.explain import LANGUAGES, ItemNotFound, explain_item, render

    if lang is not None and lang not in LANGUAGES:
        _fail(f"--lang must be one of {', '.join(LANGUAGES)}", 2)
    cfg = _load(config, secrets=True)
    try:
        explanation = explain_item(cfg, key, lang=lang)
    except ConfigError as exc:
        for p in exc.problems:
            err.print(f"  - {p}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except ItemNotFound as exc:
        _fail(str(exc), 1)
        return
    if as_json:
        sys.stdout.write(json.dumps(explanation, ensure_ascii=False, default=str) + "\n")
    else:
        render(explanation, out)


# --- init and mapping preview (issue 8) ---------------------------------------------------------
@app.command("init")
def init_config(
    servicenow: Annotated[Optional[str], typer.Option("--servicenow", help="ServiceNow instance URL.")] = None,
    jira: Annotated[Optional[str], typer.Option("--jira", help="Jira site URL (Cloud or Data Center).")] = None,
    out_file: Annotated[Path, typer.Option("--out", help="Config file to write.")] = Path("config/momentos.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    servicenow_user: Annotated[Optional[str], typer.Option(
        help="ServiceNow integration user; default: $MOMENTOS_SN_USER (named in the file).")] = None,
    jira_user: Annotated[Optional[str], typer.Option(
        help="Jira user (Cloud: e-mail); default: $MOMENTOS_JIRA_USER; none: the token is a PAT.")] = None,
    servicenow_password_env: Annotated[str, typer.Option(
        help="Env var holding the ServiceNow password.")] = "MOMENTOS_SN_PASSWORD",
    jira_token_env: Annotated[str, typer.Option(
        help="Env var holding the Jira API token, password or PAT.")] = "MOMENTOS_JIRA_TOKEN",
    ca_bundle: Annotated[Optional[str], typer.Option(help="PEM file of a private CA.")] = None,
) -> None:
    """Discover the platforms (read-only) and write a commented starter config."""
    from momentos.init import InitError, InitOptions, run_init

    _setup_logging("WARNING")
    options = InitOptions(
        servicenow=servicenow, jira=jira, out=out_file, force=force,
        servicenow_user=servicenow_user, jira_user=jira_user,
        servicenow_password_env=servicenow_password_env, jira_token_env=jira_token_env,
        ca_bundle=ca_bundle,
    )
    if not servicenow and not jira:
        _fail("name at least one platform: --servicenow URL and/or --jira URL", 2)
    for url in (servicenow, jira):
        if url and not url.startswith(("http://", "https://")):
            _fail(f"{url}: use an http:// or https:// URL", 2)
    try:
        result = run_init(options)
    except InitError as exc:
        _fail(str(exc), exc.code)
        return
    for warning in result.warnings:
        err.print(f"warning: {warning}; defaults written, see the comments in the file",
                  markup=False, highlight=False)
    if result.servicenow is not None and result.servicenow.readable:
        typer.echo(f"servicenow: {len(result.servicenow.readable)} readable tables")
    if result.jira is not None and result.jira.projects:
        typer.echo(f"jira: {len(result.jira.projects)} projects ({result.jira.flavor})")
    typer.echo(f"wrote {result.path}; next: momentos check --config {result.path}")


mapping_app = typer.Typer(no_args_is_help=True, help="Moment mapping helpers.")
app.add_typer(mapping_app, name="mapping")


@mapping_app.command("preview")
def mapping_preview(
    config: ConfigOpt,
    against: Annotated[Optional[Path], typer.Option(
        help="Compare with this config; default: the moments the last sync stored.")] = None,
    items: Annotated[int, typer.Option("--items", min=1, help="The last N items.")] = 1000,
    out_file: Annotated[Optional[Path], typer.Option(
        "--out", help="CSV of the changed items; default <report.out>/mapping-preview.csv.")] = None,
) -> None:
    """What a new mapping would change over the last N items. Writes nothing to any platform
    or to the state store (the items are pulled again, read-only)."""
    from momentos.preview import run_preview, summary_lines, write_csv

    cfg = _load(config, secrets=True)
    current = _load(against) if against else None
    result = run_preview(cfg, current, items=items)
    write_csv(result, out_file or cfg.report_dir / "mapping-preview.csv")
    for line in summary_lines(result):
        typer.echo(line)
    if result.errors:
        raise typer.Exit(1)


# --- output helpers ------------------------------------------------------------------------------
def _print_summary(result: Any) -> None:
    table = Table(title=f"sync summary ({result.duration_s:.1f}s)")
    for col in ("source", "pulled", "enriched", "written", "unchanged", "manual", "failed", "reads", "writes"):
        table.add_column(col, justify="right" if col != "source" else "left")
    for name, s in result.sources.items():
        table.add_row(
            name, str(s.pulled), str(s.enriched), str(s.written), str(s.unchanged),
            str(s.skipped_manual), str(s.failed), str(s.requests["read"]), str(s.requests["write"]),
        )
    out.print(table)
    for name, s in result.sources.items():
        if s.error:
            err.print(f"{name}: {s.error}", markup=False, highlight=False)


def _print_diff(diff: list[dict[str, Any]], path: Path) -> None:
    table = Table(title=f"dry run: {len(diff)} field change(s) would be written (full list: {path})")
    for col in ("source", "key", "field", "current", "new"):
        table.add_column(col, overflow="fold", max_width=60)
    for row in diff[:50]:
        table.add_row(row["source"], row["key"], row["field"], str(row["current"])[:60], str(row["new"])[:60])
    out.print(table)


def main() -> None:
    try:
        app()
    except MomentosError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
