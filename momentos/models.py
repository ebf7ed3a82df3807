"""The normalized item model that every connector produces and enrichment consumes.

One ``Item`` is one ticket, change, demand, project or Jira issue, whatever platform it came
from. Connectors fill it from raw platform records; nothing downstream knows which client
library produced it. Timestamps are timezone-aware UTC ``datetime`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Literal

AuthorRole = Literal["requester", "agent", "other"]

MOMENTS: tuple[str, ...] = ("operation", "evolution", "innovation")
LEVELS: tuple[str, ...] = ("good", "fair", "at_risk", "poor")

#: Logical names of the three writeback fields; each source maps them to platform field names.
WRITEBACK_FIELDS: tuple[str, ...] = ("moment", "score", "signals")


@dataclass(slots=True)
class Comment:
    """One comment or work note on an item."""

    text: str
    author: str = ""
    author_role: AuthorRole = "other"
    created: datetime | None = None
    internal: bool = False  # work note / restricted comment, not visible to the requester


@dataclass(slots=True)
class HistoryEvent:
    """One change of a tracked field (assignment group, assignee, state, priority, writeback)."""

    field: str
    old: str | None
    new: str | None
    at: datetime | None
    by: str = ""  # user name of whoever made the change


@dataclass(slots=True)
class Item:
    """A normalized work item from any platform."""

    source: str  # name of the configured source
    platform: str  # "servicenow" | "jira" | third-party connector name
    container: str  # ServiceNow table or Jira project key
    id: str  # platform id: sys_id or Jira numeric id
    key: str  # human key: INC0010001 or OPS-12
    kind: str = ""  # normalized lower-case kind: incident, request, change, story, ...
    url: str = ""  # opens the item in its own tool
    title: str = ""
    description: str = ""
    requester: str = ""
    customer: str = ""
    assignment_group: str = ""
    assignee: str = ""
    service: str = ""
    category: str = ""
    labels: list[str] = field(default_factory=list)
    request_type: str = ""
    state: str = ""
    priority: str = ""
    created: datetime | None = None
    updated: datetime | None = None
    resolved: datetime | None = None
    updated_by: str = ""
    comments: list[Comment] = field(default_factory=list)
    history: list[HistoryEvent] = field(default_factory=list)
    sla_breached: bool | None = None
    survey_score: float | None = None  # normalized to 0..1
    reopen_count: int | None = None
    reassignment_count: int | None = None
    language: str = ""
    #: Current values of the writeback fields on the platform, by logical name (moment/score/signals).
    current: dict[str, Any] = field(default_factory=dict)
    #: Any other platform field a mapping rule may match on, by platform field name.
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable dict (datetimes as ISO 8601 UTC strings).

        Written out by hand: ``dataclasses.asdict`` deep-copies every value, which made it half
        of the cost of `momentos pull`.
        """
        return {name: _jsonable(getattr(self, name)) for name in _ITEM_FIELDS}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, (Comment, HistoryEvent)):
        return {name: _jsonable(getattr(value, name)) for name in value.__slots__}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_ITEM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Item))


def parse_utc(value: Any) -> datetime | None:
    """Parse a platform timestamp into an aware UTC datetime; ``None`` when empty or invalid
    (out-of-range epochs included: a bad date in one record must not stop a page).

    Accepts ServiceNow's ``YYYY-MM-DD HH:MM:SS`` (always UTC in raw values), ISO 8601 with an
    offset or ``Z`` (Jira sends ``2024-01-02T03:04:05.000+0000``), and epoch seconds or millis.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        try:
            seconds = value / 1000.0 if value > 1e11 else float(value)
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):  # NaN, inf, or beyond year 1..9999
            return None
    text = str(value).strip()
    if not text:
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Jira's "+0000" offset has no colon; fromisoformat accepts it since 3.11.
    try:
        parsed = datetime.fromisoformat(text)
        # In UTC, as documented; an offset that moves the time past year 1..9999 is invalid.
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def sn_datetime(value: datetime) -> str:
    """Format an aware datetime as ServiceNow's raw UTC ``YYYY-MM-DD HH:MM:SS``."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
