"""Authentication and rate limits of the ServiceNow connector against the sandbox over real
HTTP(S): OAuth 2.0 through ``pysnow.OAuthClient`` (stored refresh token, password grant, a
revoked token), a custom CA bundle per source, and a per-user inbound rate limit."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from momentos.errors import AuthError
from momentos.sandbox.world import INTEGRATION_USER

if TYPE_CHECKING:
    from conftest import SnServer

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _pull(connector: Any, stream: str = "incident") -> list[Any]:
    return [item for page in connector.pull(stream, None, NOW) for item in page.items]


def _token_requests(server: SnServer) -> int:
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10, verify=server.ca_cert)
    return int(stats.json()["requests"].get("POST /oauth_token.do", 0))


@pytest.fixture
def oauth_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Put an OAuth client (and optionally a refresh token) of a sandbox in the environment,
    as an admin would; returns the ``auth`` settings that name the variables."""

    def put(
        server: SnServer, *, refresh_token: bool = True, secret: str | None = None
    ) -> dict[str, Any]:
        app = server.app
        monkeypatch.setenv("MOMENTOS_TEST_SN_CLIENT_ID", app.oauth_client_id)
        monkeypatch.setenv("MOMENTOS_TEST_SN_CLIENT_SECRET", secret or app.oauth_client_secret)
        auth: dict[str, Any] = {
            "username": INTEGRATION_USER,
            "oauth_client_id_env": "MOMENTOS_TEST_SN_CLIENT_ID",
            "oauth_client_secret_env": "MOMENTOS_TEST_SN_CLIENT_SECRET",
        }
        if refresh_token:
            monkeypatch.setenv(
                "MOMENTOS_TEST_SN_REFRESH", app.issue_refresh_token(INTEGRATION_USER)
            )
            auth["oauth_refresh_token_env"] = "MOMENTOS_TEST_SN_REFRESH"
        else:
            monkeypatch.setenv("MOMENTOS_TEST_SN_OAUTH_PASSWORD", server.password)
            auth["password_env"] = "MOMENTOS_TEST_SN_OAUTH_PASSWORD"
        return auth

    return put


def test_oauth_with_a_stored_refresh_token_over_a_custom_ca(
    sn_server_factory: Any,
    sn_connector_factory: Any,
    oauth_env: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    server = sn_server_factory(tls=True)
    assert server.url.startswith("https://") and server.ca_cert
    # A machine-wide CA bundle that does not know the sandbox's CA: the source's ca_bundle
    # must still win (requests would otherwise let REQUESTS_CA_BUNDLE override it).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())
    connector = sn_connector_factory(
        server, auth=oauth_env(server), ca_bundle=server.ca_cert, tables=["incident"]
    )
    items = _pull(connector)
    assert len(items) == len(list(server.app.rows("incident")))
    assert all(i.comments is not None for i in items) and any(i.comments for i in items)
    assert _token_requests(server) == 1  # the refresh grant, once
    # Writes travel with the same token.
    from momentos.connectors.base import FieldChange

    (result,) = connector.write([FieldChange(items[0], "moment", None, "operation")])
    assert result.ok
    assert server.app.record("incident", items[0].id)["sys_updated_by"] == INTEGRATION_USER

    # The instance revokes access tokens: the next request gets 401, refreshes once, goes on.
    server.app.revoke_access_tokens()
    assert len(_pull(connector)) == len(items)
    assert _token_requests(server) == 2 and server.app.unauthorized_count == 1


def test_oauth_password_grant_and_proactive_refresh(
    sn_server_factory: Any, sn_connector_factory: Any, oauth_env: Any
) -> None:
    server = sn_server_factory(tls=True, oauth_token_ttl_s=2)
    connector = sn_connector_factory(
        server,
        auth=oauth_env(server, refresh_token=False),
        ca_bundle=server.ca_cert,
        tables=["problem"],
    )
    first = _pull(connector, "problem")
    assert first and _token_requests(server) >= 1
    import time

    time.sleep(2.1)  # the access token expired; the session refreshes before asking
    assert len(_pull(connector, "problem")) == len(first)
    assert _token_requests(server) >= 2
    assert server.app.unauthorized_count == 0  # refreshed before, never after a 401


def test_oauth_refusals_are_admin_readable(
    sn_server_factory: Any, sn_connector_factory: Any, oauth_env: Any
) -> None:
    server = sn_server_factory(tls=True)
    connector = sn_connector_factory(
        server, auth=oauth_env(server, secret="not-the-secret"), ca_bundle=server.ca_cert
    )
    with pytest.raises(AuthError) as caught:
        _pull(connector)
    assert "refused the stored refresh token: invalid_client" in str(caught.value)
    assert "Application Registry" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)
    plain = sn_server_factory()
    insecure = sn_connector_factory(plain, auth=oauth_env(plain))
    with pytest.raises(AuthError, match="OAuth needs an https:// url"):
        _pull(insecure)


def test_per_user_rate_limit_is_waited_out_and_nothing_is_lost(
    sn_server_factory: Any, sn_connector_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Three requests per (shortened, 2 s) hour per user: the pull must wait for the reset.
    # The pull's nine requests cannot all land in windows of three unless each took 0.7 s,
    # so a slow, loaded machine still meets the limit (with five a second it did not).
    server = sn_server_factory(rate_limit_per_hour=3, rate_limit_window_s=2.0)
    connector = sn_connector_factory(server, tables=["incident"], page_size=50)
    with caplog.at_level(logging.DEBUG, logger="momentos.http"):
        started = datetime.now(UTC)
        items = _pull(connector)
        waited = (datetime.now(UTC) - started).total_seconds()
    assert Counter(i.id for i in items) == Counter(r["sys_id"] for r in server.app.rows("incident"))
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["requests"]
    assert stats.get("GET (rate limited)", 0) + stats.get("POST (rate limited)", 0) > 0
    assert connector.counter.retries > 0 and waited >= 0.5
    # The platform's rate-limit headers are logged at debug level by the HTTP policy.
    assert "X-RateLimit-Limit" in caplog.text and "X-RateLimit-Reset" in caplog.text
    # Requests in a row until one is refused: twenty would have to take 0.6 s each to spread
    # over enough windows of three and all pass.
    for _ in range(20):
        raw = requests.get(
            f"{server.url}/api/now/table/incident",
            params={"sysparm_limit": 1},
            auth=server.auth,
            timeout=10,
        )
        assert raw.headers["X-RateLimit-Limit"] == "3" and raw.headers["X-RateLimit-Rule"]
        if raw.status_code == 429:
            break
    assert raw.status_code == 429
    assert int(raw.headers["Retry-After"]) >= 1
    assert raw.json()["error"]["message"] == "Rate limit exceeded"


def test_a_token_endpoint_that_stays_down_is_transient(
    sn_server_factory: Any, sn_connector_factory: Any, oauth_env: Any
) -> None:
    from momentos.errors import TransientError

    server = sn_server_factory(tls=True)
    requests.post(
        f"{server.url}/_sandbox/faults", json={"error_rate": 1.0}, timeout=10, verify=server.ca_cert
    )
    connector = sn_connector_factory(
        server,
        auth=oauth_env(server),
        ca_bundle=server.ca_cert,
        http={"max_retries": 1, "backoff_base_s": 0.001},
    )
    with pytest.raises(TransientError, match="OAuth token request: HTTP 50"):
        _pull(connector)
    assert connector.counter.read == 2  # the token request and its one retry
