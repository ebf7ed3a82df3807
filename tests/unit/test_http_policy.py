"""The shared HTTP policy against a real local HTTP server (no mocked transport)."""

from __future__ import annotations

import collections
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from momentos.connectors.http import (
    HttpSettings,
    RequestCounter,
    build_session,
    check_response,
    is_read_request,
)
from momentos.errors import AuthError, BudgetExhausted, NotFoundError, PlatformError, TLSVerificationError, TransientError
from momentos.sandbox.base import make_self_signed_cert


class Scripted:
    """Answers each path with the next status from its script (then 200)."""

    def __init__(self) -> None:
        self.scripts: dict[str, collections.deque[tuple[int, dict[str, str]]]] = {}
        self.hits: collections.Counter[str] = collections.Counter()

    def script(self, path: str, *answers: int | tuple[int, dict[str, str]]) -> None:
        self.scripts[path] = collections.deque(
            a if isinstance(a, tuple) else (a, {}) for a in answers
        )

    def __call__(self, environ, start_response):  # noqa: ANN001
        request = Request(environ)
        self.hits[f"{request.method} {request.path}"] += 1
        queue = self.scripts.get(request.path)
        status, headers = queue.popleft() if queue else (200, {})
        body = '{"errorMessages": ["nope"], "errors": {"customfield_1": "not on screen"}}'
        response = Response(body if status >= 400 else '{"ok": true}', status=status,
                            mimetype="application/json", headers=headers)
        return response(environ, start_response)


@pytest.fixture
def server():
    app = Scripted()
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def _session(counter: RequestCounter, sleeps: list[float], **settings):
    s = build_session(HttpSettings(**settings), counter, platform="test")
    adapter = s.get_adapter("http://")
    adapter._sleep = sleeps.append  # record instead of sleeping
    return s


def test_retries_5xx_then_succeeds_and_counts_every_attempt(server):
    app, url = server
    app.script("/a", 503, 500, 200)
    counter, sleeps = RequestCounter(), []
    response = _session(counter, sleeps).get(url + "/a")
    assert response.status_code == 200
    assert app.hits["GET /a"] == 3
    assert counter.read == 3 and counter.retries == 2
    assert len(sleeps) == 2 and sleeps[1] >= sleeps[0] * 1.5  # exponential


def test_retry_after_is_honoured_and_capped(server):
    app, url = server
    app.script("/r", (429, {"Retry-After": "7"}), (429, {"Retry-After": "9999"}), 200)
    counter, sleeps = RequestCounter(), []
    _session(counter, sleeps, retry_after_max_s=120).get(url + "/r")
    assert 7 <= sleeps[0] < 7.5
    assert sleeps[1] == 120  # capped


def test_gives_up_after_max_retries_and_returns_last_answer(server):
    app, url = server
    app.script("/x", 500, 500, 500, 500)
    counter, sleeps = RequestCounter(), []
    response = _session(counter, sleeps, max_retries=2).get(url + "/x")
    assert response.status_code == 500
    assert app.hits["GET /x"] == 3
    with pytest.raises(TransientError):
        check_response(response, "reading x")


def test_post_that_creates_is_not_replayed_on_500(server):
    app, url = server
    app.script("/comment", 500, 200)
    counter, sleeps = RequestCounter(), []
    response = _session(counter, sleeps).post(url + "/comment", json={})
    assert response.status_code == 500
    assert app.hits["POST /comment"] == 1
    assert counter.write == 1


def test_search_post_counts_as_read_and_is_retried(server):
    app, url = server
    app.script("/rest/api/3/search/jql", 502, 200)
    counter, sleeps = RequestCounter(), []
    _session(counter, sleeps).post(url + "/rest/api/3/search/jql", json={})
    assert app.hits["POST /rest/api/3/search/jql"] == 2
    assert counter.read == 2 and counter.write == 0


def test_connection_refused_becomes_transient_error():
    counter, sleeps = RequestCounter(), []
    with pytest.raises(TransientError) as info:
        _session(counter, sleeps, max_retries=1).get("http://127.0.0.1:9/none")
    assert "unreachable" in str(info.value)
    assert counter.read == 2


def test_budget_stops_cleanly(server):
    _, url = server
    counter, sleeps = RequestCounter(budget=2), []
    s = _session(counter, sleeps)
    s.get(url + "/1")
    s.get(url + "/2")
    with pytest.raises(BudgetExhausted):
        s.get(url + "/3")


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthError), (403, AuthError), (404, NotFoundError), (400, PlatformError), (503, TransientError)],
)
def test_error_table(server, status, error):
    app, url = server
    app.script("/e", status, status, status, status, status, status)
    counter, sleeps = RequestCounter(), []
    response = _session(counter, sleeps, max_retries=0).get(url + "/e")
    with pytest.raises(error) as info:
        check_response(response, "reading e")
    # The platform's own message is kept; request headers never are.
    assert "nope" in str(info.value) and "customfield_1: not on screen" in str(info.value)


@pytest.mark.parametrize(
    ("method", "path", "read"),
    [("GET", "/api/now/table/incident", True), ("PATCH", "/api/now/table/incident/1", False),
     ("POST", "/rest/api/3/changelog/bulkfetch", True), ("POST", "/rest/api/2/issue/A-1/comment", False)],
)
def test_read_or_write(method, path, read):
    assert is_read_request(method, path) is read


def test_source_ca_bundle_wins_over_requests_ca_bundle_env(tmp_path: Path, monkeypatch):
    cert, key = make_self_signed_cert(tmp_path)
    app = Scripted()
    srv = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=(str(cert), str(key)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{srv.server_port}/tls"
    # The machine-wide bundle does not know the sandbox CA; requests would let it override.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    try:
        ok = build_session(HttpSettings(), RequestCounter(), verify=str(cert)).get(url)
        assert ok.status_code == 200
        strict = build_session(HttpSettings(max_retries=0), RequestCounter(), verify=True)
        with pytest.raises(TLSVerificationError, match="certificate could not be verified"):
            strict.get(url)
    finally:
        srv.shutdown()


def test_a_request_marked_once_is_not_replayed_on_503_but_waits_out_429(server):
    """A work-note PATCH appends: a 503 may follow a PATCH the platform applied, so it is not
    replayed; a 429 is refused before any work and is retried. The marker never leaves."""
    from momentos.connectors.http import ONCE_HEADER

    app, url = server
    app.script("/note", 503)
    app.script("/note2", 429, 200)
    counter, sleeps = RequestCounter(), []
    session = _session(counter, sleeps)
    assert session.patch(url + "/note", json={}, headers={ONCE_HEADER: "1"}).status_code == 503
    assert app.hits["PATCH /note"] == 1
    assert session.patch(url + "/note2", json={}, headers={ONCE_HEADER: "1"}).status_code == 200
    assert app.hits["PATCH /note2"] == 2
    # An unmarked PATCH is replayed on 503 as before.
    app.script("/plain", 503, 200)
    assert session.patch(url + "/plain", json={}).status_code == 200
    assert app.hits["PATCH /plain"] == 2


def test_a_handshake_cut_short_is_retried_but_an_untrusted_certificate_is_not(tmp_path):
    """Only a verification failure is a trust problem; an EOF in the handshake is a
    connection problem, retried like any other."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted = []

    def hang_up() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()  # closes during the TLS handshake

    threading.Thread(target=hang_up, daemon=True).start()
    counter, sleeps = RequestCounter(), []
    session = build_session(HttpSettings(max_retries=2), counter, platform="test")
    session.get_adapter("https://")._sleep = sleeps.append
    try:
        with pytest.raises(TransientError):
            session.get(f"https://127.0.0.1:{port}/x")
    finally:
        listener.close()
    assert len(accepted) == 3 and len(sleeps) == 2


def test_a_429_makes_requests_from_other_threads_wait_too(server):
    """Concurrent writers share one source's limit: after a 429 with Retry-After in one
    thread, a request from another thread waits out the rest of that pause before it is sent;
    the thread that got the 429 waits only in its own retry (not twice)."""
    app, url = server
    app.script("/limited", (429, {"Retry-After": "30"}), 200)
    counter, sleeps = RequestCounter(), []
    session = _session(counter, sleeps, jitter=0)
    assert session.get(url + "/limited").status_code == 200
    assert len(sleeps) == 1 and 29 <= sleeps[0] <= 30  # its own retry, nothing more
    session.get(url + "/other")  # same thread: no second wait
    assert len(sleeps) == 1
    other: list[int] = []
    worker = threading.Thread(target=lambda: other.append(session.get(url + "/other").status_code))
    worker.start()
    worker.join(10)
    assert other == [200]
    assert len(sleeps) == 2 and 25 < sleeps[1] <= 30  # the rest of the pause
