"""What every connector is: its settings model, how it pulls pages, how it writes fields.

A connector is registered under the ``momentos.connectors`` entry-point group, so a third party
can add a platform without forking. The sync engine only talks to this interface.

Readers and writers are separate: ``pull`` never writes and ``write`` never searches.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from momentos.connectors.http import HttpSettings, RequestCounter
from momentos.errors import ConfigError
from momentos.models import WRITEBACK_FIELDS, Item
from momentos.secrets import register_secret


class AuthSettings(BaseModel):
    """Credentials are never written in mapping files: only the names of environment variables
    (or a keyring entry) that hold them."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(None, description="Login or e-mail (not a secret).")
    username_env: str | None = Field(None, description="Env var holding the login instead.")
    password_env: str | None = Field(
        None, description="Env var holding the password or Jira Cloud API token."
    )
    token_env: str | None = Field(
        None, description="Env var holding a bearer token (Jira Data Center PAT)."
    )
    keyring_service: str | None = Field(
        None, description="Read the password from this keyring service (needs `keyring`)."
    )
    oauth_client_id_env: str | None = Field(
        None, description="Env var holding the OAuth client id (ServiceNow OAuth 2.0)."
    )
    oauth_client_secret_env: str | None = Field(
        None, description="Env var holding the OAuth client secret."
    )
    oauth_refresh_token_env: str | None = Field(
        None,
        description="Env var holding a stored OAuth refresh token; without one, the password "
        "grant gets a token from username and password.",
    )

    @model_validator(mode="after")
    def _one_secret(self) -> AuthSettings:
        if not (
            self.password_env or self.token_env or self.keyring_service
            or self.oauth_refresh_token_env
        ):
            raise ValueError(
                "set password_env, token_env, keyring_service or oauth_refresh_token_env"
            )
        if self.password_env and not (self.username or self.username_env):
            raise ValueError("password_env needs username or username_env")
        oauth = (self.oauth_client_id_env, self.oauth_client_secret_env)
        if (any(oauth) or self.oauth_refresh_token_env) and not all(oauth):
            raise ValueError("OAuth needs both oauth_client_id_env and oauth_client_secret_env")
        return self

    @property
    def oauth(self) -> bool:
        return bool(self.oauth_client_id_env and self.oauth_client_secret_env)


@dataclass(frozen=True)
class Credentials:
    username: str | None
    password: str | None
    token: str | None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    oauth_refresh_token: str | None = None


def resolve_credentials(auth: AuthSettings, source: str) -> Credentials:
    """Read the secrets now; missing ones are configuration problems (listed, never echoed)."""
    problems: list[str] = []
    username = auth.username
    if auth.username_env:
        username = os.environ.get(auth.username_env) or None
        if not username:
            problems.append(f"sources.{source}.auth: environment variable {auth.username_env} is not set")
    password = token = None
    if auth.password_env:
        password = os.environ.get(auth.password_env) or None
        if not password:
            problems.append(f"sources.{source}.auth: environment variable {auth.password_env} is not set")
    if auth.token_env:
        token = os.environ.get(auth.token_env) or None
        if not token:
            problems.append(f"sources.{source}.auth: environment variable {auth.token_env} is not set")
    if auth.keyring_service and not password:
        try:
            import keyring  # optional dependency
        except ImportError:
            problems.append(f"sources.{source}.auth: keyring_service needs `pip install keyring`")
        else:
            password = keyring.get_password(auth.keyring_service, username or "")
            if not password:
                problems.append(
                    f"sources.{source}.auth: no keyring entry for service {auth.keyring_service!r}"
                )
    oauth: dict[str, str | None] = {}
    for key, env in (
        ("oauth_client_id", auth.oauth_client_id_env),
        ("oauth_client_secret", auth.oauth_client_secret_env),
        ("oauth_refresh_token", auth.oauth_refresh_token_env),
    ):
        if env:
            oauth[key] = os.environ.get(env) or None
            if not oauth[key]:
                problems.append(f"sources.{source}.auth: environment variable {env} is not set")
    if problems:
        raise ConfigError(problems)
    for secret in (password, token, oauth.get("oauth_client_secret"), oauth.get("oauth_refresh_token")):
        if secret:
            register_secret(secret)
    return Credentials(username=username, password=password, token=token, **oauth)


class WritebackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Logical field (moment/score/signals) → platform field name. Only these are ever written.
    fields: dict[str, str] = Field(default_factory=dict)
    notify_users: bool = False

    @field_validator("fields")
    @classmethod
    def _known_logical_names(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(WRITEBACK_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown writeback field(s) {unknown}; allowed: {list(WRITEBACK_FIELDS)}"
            )
        return value


class SourceSettings(BaseModel):
    """Settings common to every source; each connector extends this with its own model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    type: str
    url: str = Field(..., description="Base URL, e.g. https://acme.service-now.com")
    auth: AuthSettings
    verify_tls: bool = Field(True, description="Turn off only for a lab instance.")
    ca_bundle: str | None = Field(None, description="PEM file of the CA that signs the server.")
    page_size: int = Field(200, ge=1, le=10000)
    overlap_seconds: int = Field(120, ge=0, le=86400)
    max_requests: int | None = Field(None, ge=1, description="Request budget per run.")
    writeback: WritebackSettings = Field(default_factory=WritebackSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @property
    def verify(self) -> bool | str:
        if not self.verify_tls:
            return False
        return self.ca_bundle or True


@dataclass
class Page:
    """One page of pulled items and the cursor to commit once they are processed."""

    items: list[Item]
    #: (updated, id) of the last record of this page in the query's order.
    cursor: tuple[datetime, str] | None
    #: Records the server counted for the whole query window (X-Total-Count / total), if known.
    total: int | None = None
    #: Records that could not be normalized: (id, key, reason). They are quarantined.
    rejected: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class FieldChange:
    """One field to write on one item."""

    item: Item
    field: str  # logical name: moment | score | signals
    old: Any
    new: Any


@dataclass
class WriteResult:
    item_id: str
    ok: bool
    fields: list[str] = field(default_factory=list)
    error: str = ""
    retriable: bool = True
    #: The platform's ``updated`` after this write, when the answer tells it (ServiceNow does).
    updated: datetime | None = None


@dataclass
class CheckProblem:
    what: str
    fix: str


class Connector(ABC):
    """A platform connector. Subclasses set ``platform`` and ``Settings``."""

    platform: ClassVar[str]
    Settings: ClassVar[type[SourceSettings]]

    def __init__(self, settings: SourceSettings, counter: RequestCounter | None = None) -> None:
        self.settings = settings
        self.counter = counter or RequestCounter(budget=settings.max_requests)
        #: Set by the sync engine: ``known([(item_id, updated), ...])`` returns the ids whose
        #: exact version was already processed (e.g. the version is our own write). A connector
        #: may drop those records from a page before fetching their context, to save requests.
        self.known: Callable[[list[tuple[str, datetime | None]]], set[str]] | None = None

    @abstractmethod
    def streams(self) -> list[str]:
        """Names of the independently watermarked streams (tables, or one Jira search)."""

    @abstractmethod
    def pull(self, stream: str, since: datetime | None, until: datetime) -> Iterator[Page]:
        """Yield pages of items updated at or after ``since`` (None = everything), ascending by
        (updated, id). ``until`` is the sync's start time."""

    @abstractmethod
    def write(self, changes: list[FieldChange]) -> list[WriteResult]:
        """Write the given fields; refuses any field not on the writeback allowlist."""

    @abstractmethod
    def check(self) -> list[CheckProblem]:
        """Reach the platform and verify reading and the writeback fields."""

    def post_note(self, item: Item, text: str) -> datetime | None:
        """Post an internal note on the item (ServiceNow work note, Jira internal/restricted
        comment), seen by IT only; returns the item's new ``updated`` when the answer tells it,
        so the next pull knows that version is ours. Raises a MomentosError when refused."""
        raise NotImplementedError(f"{self.platform} connector cannot post notes")

    def find_notes(self, items: list[Item], markers: dict[str, str]) -> set[str]:
        """Ids of the given items that already carry a note containing their marker
        (``markers``: item id → marker). Used to reconcile after a crash."""
        raise NotImplementedError(f"{self.platform} connector cannot read notes")

    def fetch(self, key: str) -> Item | None:
        """Read one item by its human key (INC0010001, OPS-12), built as ``pull`` builds it,
        without writing anything; None when this source has no such item."""
        raise NotImplementedError(f"{self.platform} connector cannot fetch one item")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions."""

    def allowed_field(self, logical: str) -> str:
        """The platform field for a logical writeback field, or raise: the allowlist is
        enforced in code, not only in config."""
        platform_field = self.settings.writeback.fields.get(logical)
        if logical not in WRITEBACK_FIELDS or not platform_field:
            raise PermissionError(f"field {logical!r} is not on the writeback allowlist")
        return platform_field


def registered_connectors() -> dict[str, type[Connector]]:
    """Connector classes by ``type`` name, from the ``momentos.connectors`` entry points."""
    from importlib.metadata import entry_points

    found: dict[str, type[Connector]] = {}
    for ep in entry_points(group="momentos.connectors"):
        found[ep.name] = ep.load()
    return found
