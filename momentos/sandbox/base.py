"""What both sandbox platforms share: basic auth, request statistics, seeded fault injection,
JSON helpers, and a threaded werkzeug server with optional TLS.

A platform app subclasses ``SandboxApp``, declares its routes as a werkzeug ``Map`` whose
endpoints are method names, and calls ``self.count_write(key)`` for every record it changes.
With a ``recorder`` set (``momentos sandbox --data-file``), every request that may change
something runs under the app's lock between ``recorder.begin`` and ``recorder.commit``, which
journals what it changed before the client gets its answer (see ``sandbox/persist.py``).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import random
import socket
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Faults:
    """Per-request fault probabilities, set through ``POST /_sandbox/faults``."""

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    drop_rate: float = 0.0
    delay_rate: float = 0.0  # probability of a slow response (for read-timeout tests)
    delay_s: float = 0.0
    #: Probability that a response is held back ``slow_s`` *after* the request was handled:
    #: a write is applied but its answer may reach the client after its read timeout.
    slow_rate: float = 0.0
    slow_s: float = 0.0


class DropConnection(Exception):
    """Raised inside a handler to close the socket without answering."""


class SandboxApp:
    """Base WSGI application for a simulated platform."""

    platform = "sandbox"
    url_map: Map

    def __init__(self, users: dict[str, str], seed: int = 7) -> None:
        self.users = dict(users)  # username -> password
        self.lock = threading.RLock()
        self.requests: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()  # faults injected, by kind
        self.faults = Faults()
        self._fault_rng = random.Random(seed)
        self.base_url = ""  # set by the server once it knows its port
        #: Journal of changes (``sandbox/persist.py``); None = in memory only.
        self.recorder: Any = None
        self._recording = threading.local()

    # --- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except DropConnection:
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            # werkzeug insists on a status before it writes; writing to the shut socket then
            # fails as a dropped connection, which the server handles quietly.
            start_response("500 Connection dropped", [("Content-Length", "0")])
            return []
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path == "/_sandbox/stats" and request.method == "GET":
            return self.json(self.stats())
        if request.path == "/_sandbox/faults" and request.method == "POST":
            return self.set_faults(request)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            rule, values = adapter.match(return_rule=True)
        except MethodNotAllowed:
            return self.error(405, "Method not allowed")
        except NotFound:
            with self.lock:
                self.requests[f"{request.method} (unmatched)"] += 1
            return self.error(404, f"No resource at {request.path}")
        except HTTPException as exc:  # redirects for trailing slashes, etc.
            return exc.get_response(request.environ)  # type: ignore[return-value]
        with self.lock:
            self.requests[f"{request.method} {rule.rule}"] += 1
        user = self.authenticate(request)
        if user is None:
            return self.unauthorized()
        fault = self.injected_fault(request)
        if fault is not None:
            return fault
        request.environ["sandbox.user"] = user
        handler = getattr(self, rule.endpoint)
        try:
            if self.recorder is not None and request.method not in _READ_METHODS:
                response = self._recorded(handler, request, values)
            else:
                response = handler(request, **values)
        except DropConnection:
            raise
        except HTTPException as exc:
            response = self.error(exc.code or 500, exc.description or "error")
        slow_s = request.environ.get("sandbox.slow_s")
        if slow_s:
            threading.Event().wait(slow_s)
        return response

    def _recorded(self, handler: Any, request: Request, values: dict[str, Any]) -> Response:
        """Run a handler that may change records, and journal the change before answering."""
        with self.lock:
            mark = self.recorder.begin(self)
            self._recording.touched = []
            try:
                return handler(request, **values)
            finally:
                touched, self._recording.touched = self._recording.touched, None
                self.recorder.commit(self, mark, touched)

    # --- auth -------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return user if self.users.get(user) == password and password else None
        if header.startswith("Bearer "):
            token = header[7:]
            for user, password in self.users.items():
                if password == token:
                    return user
        return None

    def unauthorized(self) -> Response:
        response = self.error(401, "User Not Authenticated")
        response.headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
        return response

    # --- faults and stats ------------------------------------------------------------------
    def set_faults(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        with self.lock:
            for key, value in body.items():
                if hasattr(self.faults, key):
                    setattr(self.faults, key, float(value))
            if "seed" in body:
                self._fault_rng.seed(int(body["seed"]))
        return self.json({"faults": self.faults.__dict__})

    def injected_fault(self, request: Request) -> Response | None:
        with self.lock:
            f = self.faults
            roll = self._fault_rng.random()
        kind = self._fault_kind(roll, f)
        if kind:
            with self.lock:
                self.injected[kind] += 1
        if roll < f.drop_rate:
            raise DropConnection()
        roll -= f.drop_rate
        if roll < f.rate_limit_rate:
            response = self.error(429, "Rate limit exceeded")
            response.headers["Retry-After"] = f"{f.retry_after_s:g}"
            response.headers["X-RateLimit-Limit"] = "1000"
            response.headers["X-RateLimit-Remaining"] = "0"
            return response
        roll -= f.rate_limit_rate
        if roll < f.error_rate:
            return self.error(503 if roll < f.error_rate / 2 else 500, "Injected server error")
        roll -= f.error_rate
        if roll < f.delay_rate and f.delay_s > 0:
            threading.Event().wait(f.delay_s)
        roll -= f.delay_rate
        if roll < f.slow_rate and f.slow_s > 0:
            request.environ["sandbox.slow_s"] = f.slow_s  # waited out after the handler
        return None

    @staticmethod
    def _fault_kind(roll: float, f: Faults) -> str:
        """The name of the fault a roll picks in ``injected_fault`` ("" for none)."""
        for kind, rate, active in (
            ("drop", f.drop_rate, True), ("rate_limit", f.rate_limit_rate, True),
            ("error", f.error_rate, True), ("delay", f.delay_rate, f.delay_s > 0),
            ("slow", f.slow_rate, f.slow_s > 0),
        ):
            if roll < rate:
                return kind if active else ""
            roll -= rate
        return ""

    def stats(self) -> dict[str, Any]:
        """The contract's ``requests`` and ``writes``, plus the faults injected so far."""
        with self.lock:
            return {
                "requests": dict(self.requests),
                "writes": dict(self.writes),
                "faults": dict(self.injected),
            }

    def count_write(self, key: str) -> None:
        with self.lock:
            self.writes[key] += 1
            touched = getattr(self._recording, "touched", None)
            if touched is not None:
                touched.append(key)

    # --- helpers ------------------------------------------------------------------------------
    @staticmethod
    def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        response = Response(
            json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            status=status,
            mimetype="application/json",
        )
        for key, value in (headers or {}).items():
            response.headers[key] = value
        return response

    def error(self, status: int, message: str, detail: str = "") -> Response:
        """Platform-shaped error body; subclasses override for their platform's format."""
        return self.json({"error": {"message": message, "detail": detail}}, status=status)


# --- TLS -------------------------------------------------------------------------------------
def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed CA-capable certificate for 127.0.0.1/localhost; returns (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "momentos sandbox")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "sandbox-ca.pem"
    key_path = directory / "sandbox-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class ServerThread:
    """Runs one WSGI app on a loopback port in a daemon thread."""

    def __init__(
        self,
        app: SandboxApp,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        ssl_context = (str(tls[0]), str(tls[1])) if tls else None
        self.server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, ssl_context=ssl_context
        )
        self.server.daemon_threads = True
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://{host}:{self.server.server_port}"
        app.base_url = self.url
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def tls_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="momentos-sandbox-tls-"))
