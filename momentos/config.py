"""The typed configuration: one YAML file, validated as a whole, every problem reported at once.

Mapping files are data: sources, moment rules, experience weights, schedules. Secrets never
live here, only the names of the environment variables (or keyring entries) that hold them.
Each error names the file, the line and the key, and unknown keys get a "did you mean".
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from momentos.connectors.base import SourceSettings, registered_connectors
from momentos.enrichment.settings import ExperienceSettings, MomentsSettings, default_rules
from momentos.errors import ConfigError
from momentos.nudges import NudgeSettings


class StateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "sqlite:///momentos-state.db",
        description="SQLAlchemy URL; a relative SQLite path is relative to the config file.",
    )


class PublishServiceNowTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(..., description="Name of the ServiceNow source whose URL and account are used.")
    table: str = Field(..., description="Table of the record that holds the report, e.g. 'kb_knowledge'.")
    sys_id: str = Field(..., min_length=32, max_length=32, description="sys_id of that record.")


class PublishJiraTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(..., description="Name of the Jira source whose URL and account are used.")
    issue: str = Field(..., description="Key of the issue that holds the report, e.g. 'OPS-1'.")


class ReportPublishSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servicenow: PublishServiceNowTarget | None = None
    jira: PublishJiraTarget | None = None
    file_name: str = Field(
        "momentos-report.html",
        description="Attachment name; the previous attachment of this name is replaced.",
    )
    comment: bool = Field(True, description="Also write the headline figures in a short comment.")


class ReportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: str = Field("momentos-report", description="Folder for the report files.")
    language: Literal["en", "es"] = "en"
    title: str = "momentos: the business's experience of IT"
    period_days: int = Field(28, ge=1, le=366, description="Days in the reporting period; compared with the same span before.")
    customers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Canonical customer name -> the names it has on the platforms, "
        "e.g. {'ACME Retail': ['Retail']}; matched ignoring case.",
    )
    publish: ReportPublishSettings = Field(default_factory=ReportPublishSettings)

    @field_validator("customers")
    @classmethod
    def _one_customer_per_alias(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        from momentos.report.tables import customer_aliases

        customer_aliases(value)  # raises ValueError naming an alias listed twice
        return value


class JobSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: Literal["sync", "report", "retrain"] = Field(
        ..., description="sync: one sync cycle; report: the reports; retrain: the learned "
        "moment model, on the instance's rule decisions and human corrections."
    )
    cron: str = Field(..., description="Five-field crontab expression, e.g. '*/15 * * * *'.")
    source: str | None = Field(None, description="Sync one source only; all when omitted.")
    full: bool = False

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value


class ScheduleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    misfire_grace_s: int = Field(300, ge=1)
    settle_first_sync: bool = Field(
        True, description="After a sync job, run one full sync of each source whose first sync "
        "took several batches and that no full sync has settled since (`momentos status` "
        "lists them; docs/DEPLOYMENT.md). Sources with max_requests are left to the admin."
    )
    jobs: list[JobSettings] = Field(default_factory=list)


class LoggingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(False, alias="json")


class MomentosConfig(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    version: Literal[1] = 1
    sources: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Platform sources; each validated by its connector's settings model.",
    )
    moments: MomentsSettings = Field(default_factory=lambda: MomentsSettings(rules=default_rules()))
    experience: ExperienceSettings = Field(default_factory=ExperienceSettings)
    nudges: NudgeSettings = Field(default_factory=NudgeSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)


@dataclass
class Config:
    """A validated configuration with its sources parsed into their connectors' models."""

    path: Path | None
    model: MomentosConfig
    sources: list[SourceSettings]

    @property
    def moments(self) -> MomentsSettings:
        return self.model.moments

    @property
    def experience(self) -> ExperienceSettings:
        return self.model.experience

    def source(self, name: str) -> SourceSettings:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError([f"no source named {name!r}; configured: {[s.name for s in self.sources]}"])

    @property
    def state_url(self) -> str:
        url = self.model.state.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and self.path is not None:
            db = url[len(prefix):]
            if db and db != ":memory:" and not db.startswith("/"):
                return prefix + str((self.path.parent / db).resolve())
        return url

    @property
    def report_dir(self) -> Path:
        out = Path(self.model.report.out)
        if not out.is_absolute() and self.path is not None:
            out = self.path.parent / out
        return out


# --- loading ---------------------------------------------------------------------------------
def load_config(path: str | Path) -> Config:
    """Load and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path | None = None) -> Config:
    name = str(path) if path else "<config>"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    lines = _line_index(node)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{name}:1: the file must be a mapping of keys (sources:, moments:, ...)"])

    problems: list[str] = []
    try:
        model = MomentosConfig.model_validate(data)
    except ValidationError as exc:
        problems += _describe(exc, name, lines, MomentosConfig)
        model = None

    connectors = registered_connectors()
    sources: list[SourceSettings] = []
    raw_sources = data.get("sources") if isinstance(data.get("sources"), list) else []
    seen: set[str] = set()
    for index, raw in enumerate(raw_sources):
        prefix: tuple[Any, ...] = ("sources", index)
        if not isinstance(raw, dict):
            problems.append(_where(name, lines, prefix) + "each source must be a mapping")
            continue
        kind = raw.get("type")
        cls = connectors.get(kind) if isinstance(kind, str) else None
        if cls is None:
            problems.append(
                _where(name, lines, (*prefix, "type"))
                + f"sources[{index}].type: unknown source type {kind!r}; "
                f"installed connectors: {sorted(connectors)}"
            )
            continue
        try:
            settings = cls.Settings.model_validate(raw)
        except ValidationError as exc:
            problems += _describe(exc, name, lines, cls.Settings, prefix)
            continue
        if settings.name in seen:
            problems.append(
                _where(name, lines, (*prefix, "name"))
                + f"sources[{index}].name: duplicate source name {settings.name!r}"
            )
        seen.add(settings.name)
        sources.append(settings)

    if model is not None:
        for j, job in enumerate(model.schedule.jobs):
            if job.source and job.source not in seen:
                problems.append(
                    _where(name, lines, ("schedule", "jobs", j, "source"))
                    + f"schedule.jobs[{j}].source: no source named {job.source!r}"
                )
        publish = model.report.publish
        for platform, target in (("servicenow", publish.servicenow), ("jira", publish.jira)):
            if target is None:
                continue
            kinds = {s.name: s.type for s in sources}
            if kinds.get(target.source) != platform:
                problems.append(
                    _where(name, lines, ("report", "publish", platform, "source"))
                    + f"report.publish.{platform}.source: no {platform} source named "
                    f"{target.source!r}; configured: {sorted(kinds)}"
                )
    if problems:
        raise ConfigError(problems)
    assert model is not None
    return Config(path=path, model=model, sources=sources)


def _line_index(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map every key path in the YAML document to its 1-based line."""
    index: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        index[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                key = key_node.value
                index[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
                index[(*path, key)] = key_node.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, child in enumerate(n.value):
                walk(child, (*path, i))

    if node is not None:
        walk(node, ())
    return index


def _where(name: str, lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> str:
    probe = tuple(loc)
    while probe and probe not in lines:
        probe = probe[:-1]
    return f"{name}:{lines.get(probe, 1)}: "


def _describe(
    exc: ValidationError,
    name: str,
    lines: dict[tuple[Any, ...], int],
    model: type[BaseModel],
    prefix: tuple[Any, ...] = (),
) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        full = (*prefix, *loc)
        dotted = _dotted(full)
        message = err["msg"]
        if err["type"] == "extra_forbidden" and loc:
            message = f"unknown key {loc[-1]!r}"
            suggestion = _suggest(model, loc)
            if suggestion:
                message += f"; did you mean {suggestion!r}?"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] == "literal_error":
            message = f"{message} (got {json.dumps(err.get('input'), default=str)})"
        out.append(f"{_where(name, lines, full)}{dotted}: {message}")
    return out


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _suggest(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The closest known key at the unknown key's level (walks nested models)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
        if current is None:
            return None
    names = list(getattr(current, "model_fields", {}))
    aliases = [f.alias for f in getattr(current, "model_fields", {}).values() if f.alias]
    matches = difflib.get_close_matches(str(loc[-1]), names + aliases, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def check_secrets(config: Config, source: str | None = None) -> None:
    """Resolve every source's credentials now, so a missing secret is reported with the other
    configuration problems (exit 2) instead of failing a run half-way."""
    from momentos.connectors.base import resolve_credentials

    problems: list[str] = []
    for settings in config.sources:
        if source and settings.name != source:
            continue
        try:
            resolve_credentials(settings.auth, settings.name)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, with each installed connector's source model."""
    schema = MomentosConfig.model_json_schema()
    variants = []
    defs = schema.setdefault("$defs", {})
    for kind, cls in sorted(registered_connectors().items()):
        sub = cls.Settings.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        title = sub.get("title", kind)
        defs[title] = sub
        variants.append({"$ref": f"#/$defs/{title}"})
    if variants:
        schema["properties"]["sources"]["items"] = {"anyOf": variants}
    return schema
