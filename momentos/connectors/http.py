"""The one HTTP policy every connector uses.

Timeouts, retries of 429/5xx/connection errors with capped exponential backoff and jitter,
``Retry-After`` (capped), request counting and rate-limit header logging live here and nowhere
else. The policy is a ``requests`` transport adapter, so it works under any client library that
sends through a ``requests.Session``: pysnow gets a session built here, and the jira library's
own ``ResilientSession`` gets this adapter mounted with its own retry loop switched off, so a
request is never retried in two layers at once.

Errors are classified once, in ``ERROR_TABLE``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.adapters import HTTPAdapter

from momentos.errors import (
    AuthError,
    BudgetExhausted,
    MomentosError,
    NotFoundError,
    PlatformError,
    TLSVerificationError,
    TransientError,
)

log = logging.getLogger("momentos.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
#: A request carrying this header (removed before sending) has an effect that a replay would
#: repeat although its method is idempotent by HTTP's rules: a PATCH of a ServiceNow journal
#: field adds one more work note each time. It is not retried once it may have reached the
#: server; the caller reconciles on a later run instead.
ONCE_HEADER = "X-Momentos-Once"


def _trust_failure(exc: Exception) -> bool:
    """Whether a TLS error says the certificate (or its host name) could not be verified,
    rather than the handshake being cut short."""
    text = str(exc)
    return any(
        mark in text
        for mark in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname",
                     "doesn't match", "self-signed", "self signed", "unable to get local issuer")
    )


class HttpSettings(BaseModel):
    """Per-source HTTP policy settings (YAML key ``http:`` of a source)."""

    model_config = ConfigDict(extra="forbid")

    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    #: Longest ``Retry-After`` honoured; Jira Cloud can ask for minutes, above the jira
    #: library's own 60 s cap (pycontribs/jira ResilientSession ``max_retry_delay``).
    retry_after_max_s: float = Field(300.0, ge=0)
    jitter: float = Field(0.25, ge=0, le=1)


@dataclass
class RequestCounter:
    """Counts every HTTP attempt sent to one platform, retries included."""

    read: int = 0
    write: int = 0
    retries: int = 0
    budget: int | None = None  # max requests per run; None = unlimited
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return self.read + self.write

    def take(self, is_read: bool) -> None:
        with self._lock:
            if self.budget is not None and self.total >= self.budget:
                raise BudgetExhausted(
                    f"request budget of {self.budget} reached",
                    hint="raise max_requests or let the next run continue",
                )
            if is_read:
                self.read += 1
            else:
                self.write += 1

    def as_dict(self) -> dict[str, int]:
        return {"read": self.read, "write": self.write}


#: Paths (suffixes) whose POST only reads, so it counts as a read and may be retried.
READ_POST_SUFFIXES: tuple[str, ...] = (
    "/search",
    "/search/jql",
    "/changelog/bulkfetch",
)


#: POSTs that write but may be replayed: momentos's ServiceNow batches carry only PATCHes of
#: the same values (and GETs), so sending one twice leaves the same record.
IDEMPOTENT_POST_SUFFIXES: tuple[str, ...] = ("/api/now/v1/batch", "/api/now/batch")


def is_read_request(method: str, path: str) -> bool:
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS"):
        return True
    return method == "POST" and path.rstrip("/").endswith(READ_POST_SUFFIXES)


class PolicyAdapter(HTTPAdapter):
    """Transport adapter that applies the retry policy and counts attempts."""

    def __init__(
        self,
        settings: HttpSettings,
        counter: RequestCounter,
        *,
        verify: bool | str = True,
        platform: str = "platform",
        sleep: Callable[[float], None] = time.sleep,
        idempotent_post_suffixes: tuple[str, ...] = (),
        read_post_suffixes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(pool_connections=4, pool_maxsize=8, max_retries=0)
        self.settings = settings
        self.counter = counter
        # requests lets REQUESTS_CA_BUNDLE override a session's ``verify``; the source's own
        # TLS setting must win, so it is applied here, at the transport.
        self.verify = verify
        self.platform = platform
        self._sleep = sleep
        self._rng = random.Random()
        # A connector may name more POST endpoints that only read (ServiceNow's Batch API
        # carrying GETs); they count as reads and, reading nothing twice, may be retried.
        self._read_post = READ_POST_SUFFIXES + tuple(read_post_suffixes)
        self._idempotent_post = self._read_post + tuple(idempotent_post_suffixes)
        # When the platform asks to wait (429 / Retry-After), requests sent meanwhile from
        # other threads (concurrent writers) wait too, instead of spending the limit further.
        self._pause_until = 0.0
        self._paused_by: int | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self.verify
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
        method = (request.method or "GET").upper()
        path = requests.utils.urlparse(request.url or "").path
        is_read = is_read_request(method, path) or (
            method == "POST" and path.rstrip("/").endswith(self._read_post)
        )
        once = request.headers.pop(ONCE_HEADER, None) is not None
        retriable_method = not once and (
            method in IDEMPOTENT_METHODS or path.rstrip("/").endswith(self._idempotent_post)
        )
        attempt = 0
        while True:
            self._wait_for_pause()
            self.counter.take(is_read)
            try:
                response = super().send(request, **kwargs)
            except requests.exceptions.SSLError as exc:
                if _trust_failure(exc):
                    # SSLError is a ConnectionError to requests, but retrying cannot fix trust.
                    raise TLSVerificationError(
                        f"{self.platform}: {method} {path}: the platform's TLS certificate "
                        "could not be verified",
                        hint="for a private CA set ca_bundle: /path/to/ca.pem on this source; "
                        "verify_tls: false only in a lab",
                    ) from None
                # A handshake cut short (EOF, reset behind a proxy) is a connection problem.
                delay = self._connection_failed(exc, attempt, method, path, retriable_method)
            except (requests.ConnectionError, requests.Timeout) as exc:
                delay = self._connection_failed(exc, attempt, method, path, retriable_method)
            else:
                _log_rate_limit(self.platform, response)
                status = response.status_code
                if status not in RETRY_STATUSES or attempt >= self.settings.max_retries:
                    return response
                # 429 is refused before any work; a 503 from a gateway may follow a request the
                # platform applied, which only a repeatable request may risk.
                if not retriable_method and status not in ((429,) if once else (429, 503)):
                    return response
                delay = self._retry_after(response) if status in (429, 503) else None
                if delay is not None:
                    self._pause(delay)
                else:
                    delay = self._backoff(attempt)
                log.info(
                    "%s %s %s: HTTP %d, retry %d in %.1fs",
                    self.platform, method, path, status, attempt + 1, delay,
                )
                response.close()
            attempt += 1
            with self.counter._lock:
                self.counter.retries += 1
            self._sleep(delay)

    def _pause(self, seconds: float) -> None:
        self._pause_until = max(self._pause_until, time.monotonic() + seconds)
        self._paused_by = threading.get_ident()

    def _wait_for_pause(self) -> None:
        """Another thread was told to wait: wait with it (the told thread waits in its retry)."""
        if self._paused_by is None or self._paused_by == threading.get_ident():
            return
        wait = self._pause_until - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def _connection_failed(
        self, exc: Exception, attempt: int, method: str, path: str, retriable_method: bool
    ) -> float:
        """The wait before retrying a request that got no answer, or TransientError when it
        must not (or need not any more) be retried. A POST that may have reached the server is
        not replayed blindly: the caller reconciles instead (a duplicated comment is worse
        than a later retry)."""
        connect_only = isinstance(exc, requests.ConnectTimeout)
        if attempt >= self.settings.max_retries or not (retriable_method or connect_only):
            raise TransientError(
                f"{self.platform}: {method} {path} failed: {type(exc).__name__}",
                hint="the platform was unreachable; the next run retries",
            ) from None
        delay = self._backoff(attempt)
        log.info(
            "%s %s %s: %s, retry %d in %.1fs",
            self.platform, method, path, type(exc).__name__, attempt + 1, delay,
        )
        return delay

    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.backoff_max_s, self.settings.backoff_base_s * (2**attempt))
        return base * (1 + self.settings.jitter * self._rng.random())

    def _retry_after(self, response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        seconds: float | None = None
        if value:
            try:
                seconds = float(value)
            except ValueError:
                try:
                    seconds = parsedate_to_datetime(value).timestamp() - time.time()
                except (TypeError, ValueError):
                    seconds = None
        if seconds is None:
            reset = response.headers.get("X-RateLimit-Reset")
            if reset:
                try:
                    stamp = float(reset)
                    seconds = stamp - time.time() if stamp > 1e9 else stamp
                except ValueError:
                    try:
                        seconds = parsedate_to_datetime(reset).timestamp() - time.time()
                    except (TypeError, ValueError):
                        seconds = None
        if seconds is None:
            return None
        # A little jitter so that many clients told the same moment do not return at once;
        # the cap applies last, so the admin's maximum is a true maximum.
        seconds = max(0.0, seconds) * (1 + self.settings.jitter * self._rng.random() * 0.1)
        return min(seconds, self.settings.retry_after_max_s)


def _log_rate_limit(platform: str, response: requests.Response) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    headers = {k: v for k, v in response.headers.items() if k.lower().startswith("x-ratelimit")}
    if headers:
        log.debug("%s rate limit: %s", platform, headers)


def mount_policy(session: requests.Session, adapter: PolicyAdapter) -> requests.Session:
    """Mount the policy adapter for both schemes and make the source's TLS setting stick."""
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = adapter.verify
    _remember_environment(session)
    return session


def _remember_environment(session: requests.Session) -> None:
    """Read the proxy and CA environment once per host instead of on every request.

    requests re-reads every environment variable on each request (``getproxies_environment``
    walks ``os.environ`` twice): on a first sync of a large Jira that was a tenth of the CPU.
    The variables are the same for a whole run, so the merged settings are kept per scheme,
    host and arguments; the TLS setting is the source's own either way (``PolicyAdapter``)."""
    merge = session.merge_environment_settings
    cache: dict[Any, dict[str, Any]] = {}

    def merged(url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        parts = requests.utils.urlparse(url or "")
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream,
               verify, cert)
        try:
            found = cache[key]
        except (KeyError, TypeError):  # TypeError: an unhashable argument; not cached
            found = merge(url, proxies, stream, verify, cert)
            try:
                cache[key] = found
            except TypeError:
                pass
        return dict(found, proxies=dict(found["proxies"]))

    session.merge_environment_settings = merged  # type: ignore[method-assign]


def build_session(
    settings: HttpSettings,
    counter: RequestCounter,
    *,
    verify: bool | str = True,
    platform: str = "platform",
    auth: Any = None,
    headers: dict[str, str] | None = None,
    idempotent_post_suffixes: tuple[str, ...] = (),
    read_post_suffixes: tuple[str, ...] = (),
) -> requests.Session:
    """A ``requests.Session`` with the policy mounted; the only way connectors get one."""
    session = requests.Session()
    session.auth = auth
    session.headers.update({"Accept": "application/json", "User-Agent": "momentos"})
    if headers:
        session.headers.update(headers)
    adapter = PolicyAdapter(
        settings,
        counter,
        verify=verify,
        platform=platform,
        idempotent_post_suffixes=idempotent_post_suffixes,
        read_post_suffixes=read_post_suffixes,
    )
    return mount_policy(session, adapter)


# --- the error table -------------------------------------------------------------------------

#: status → (error class, admin-facing hint). Anything else ≥ 400 is a PlatformError.
ERROR_TABLE: dict[int, tuple[type[MomentosError], str]] = {
    400: (PlatformError, "the platform rejected the request; see its message"),
    401: (AuthError, "check the user name and password/token for this source"),
    403: (AuthError, "the user lacks a role or permission for this"),
    404: (NotFoundError, "check the URL, table/project name or field in the config"),
    409: (PlatformError, "the record changed meanwhile; the next run retries"),
    429: (TransientError, "rate limited beyond the retry budget; the next run continues"),
    500: (TransientError, "the platform failed; the next run retries"),
    502: (TransientError, "the platform is unreachable behind its proxy; the next run retries"),
    503: (TransientError, "the platform is unavailable; the next run retries"),
    504: (TransientError, "the platform timed out; the next run retries"),
}


def error_for(response: requests.Response, what: str) -> MomentosError:
    """Turn a failed response into the classified error, with the platform's own message."""
    cls, hint = ERROR_TABLE.get(response.status_code, (PlatformError, "unexpected answer"))
    detail = _platform_message(response)
    message = f"{what}: HTTP {response.status_code}"
    if detail:
        message += f": {detail}"
    return cls(message, hint=hint)


def check_response(response: requests.Response, what: str) -> requests.Response:
    if response.status_code >= 400:
        raise error_for(response, what)
    return response


def _platform_message(response: requests.Response) -> str:
    """The human part of a platform's error body (ServiceNow ``error.message``, Jira
    ``errorMessages``/``errors``), never the request or its headers."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or "")[:200].strip()
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    err = body.get("error")
    if isinstance(err, dict):
        parts += [str(err.get("message") or ""), str(err.get("detail") or "")]
    parts += [str(m) for m in body.get("errorMessages") or []]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    return "; ".join(p for p in parts if p)[:500]
