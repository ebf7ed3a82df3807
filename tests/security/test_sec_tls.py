"""TLS verification is on by default, and only the source's own settings relax it.

A sandbox served over https with a self-signed CA: `momentos sync` without ``ca_bundle``
fails clearly (exit 1, a message about certificate verification, no traceback); with the CA
it passes. ``REQUESTS_CA_BUNDLE`` is set on this machine and would override ``verify=`` in
plain requests, so each case runs with it unset and with it set:

* set to the system bundle (which does not know the sandbox CA): same results as unset;
* set to the sandbox's own CA while the config names no CA: still refused. momentos applies
  the source's setting at the transport (``PolicyAdapter``), so the environment variable never
  widens or replaces what the config trusts; a private CA goes in ``ca_bundle``.

tests/unit/test_http_policy.py::test_source_ca_bundle_wins_over_requests_ca_bundle_env and
tests/integration/test_jira_connector.py::test_jira_tls_uses_the_sources_ca_even_with_requests_ca_bundle_set
check the session alone; these run the whole command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from momentos.cli import app
from momentos.demo import SANDBOX_PASSWORD_ENV, sandbox_config
from momentos.sandbox import start_sandbox

runner = CliRunner()
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def tls_box() -> Iterator[Any]:
    with start_sandbox(items=60, seed=8, tls=True) as box:
        assert box.servicenow_url.startswith("https://") and box.ca_cert
        yield box


def _config(box: Any, folder: Path, **tls: Any) -> Path:
    raw = sandbox_config(box, state_url=f"sqlite:///{folder / 'state.db'}",
                         report_out=str(folder / "report"))
    for source in raw["sources"]:
        source.pop("ca_bundle", None)
        source.update(tls)
        source["http"] = {"max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02}
    raw["sources"][0]["tables"] = ["incident"]
    raw["sources"][1]["projects"] = ["SD"]
    raw["nudges"] = {"enabled": False}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "momentos.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _sync(box: Any, config: Path) -> tuple[int, str, Any]:
    result = runner.invoke(app, ["sync", "--config", str(config), "--json"],
                           env={SANDBOX_PASSWORD_ENV: box.password})
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result.exit_code, text, result.exception


def _refused(code: int, text: str, exception: Any) -> None:
    """Exit 1, no traceback, each source names its own failure, nothing pulled."""
    assert code == 1, text
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    assert "Traceback" not in text
    for name in ("servicenow", "jira"):
        assert f"{name}:" in text, f"the {name} source names its own failure:\n{text}"
    assert '"pulled": 0' in text


def _clean_env(monkeypatch: pytest.MonkeyPatch, bundle: str | None) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    if bundle:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)


ENV_CASES = pytest.mark.parametrize("env_bundle", [None, SYSTEM_BUNDLE], ids=["unset", "system-bundle"])


@ENV_CASES
def test_without_the_ca_the_sync_is_refused(
    tls_box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_bundle: str | None
) -> None:
    _clean_env(monkeypatch, env_bundle)
    _refused(*_sync(tls_box, _config(tls_box, tmp_path / "default")))
    _refused(*_sync(tls_box, _config(tls_box, tmp_path / "explicit", verify_tls=True)))


def test_a_certificate_failure_says_so_and_is_not_retried(
    tls_box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin must read that the certificate could not be verified (and how to fix it),
    not that the platform was unreachable; retrying cannot help."""
    _clean_env(monkeypatch, None)
    code, text, _ = _sync(tls_box, _config(tls_box, tmp_path))
    assert code == 1
    lowered = text.lower()
    assert "certificate" in lowered and "verif" in lowered, text
    assert "ca_bundle" in text, "the message names the setting that fixes it"
    assert "retry 1" not in text, "a certificate problem is not transient"


@ENV_CASES
def test_with_the_sources_ca_bundle_the_sync_passes(
    tls_box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env_bundle: str | None
) -> None:
    _clean_env(monkeypatch, env_bundle)
    code, text, _ = _sync(tls_box, _config(tls_box, tmp_path, ca_bundle=tls_box.ca_cert))
    assert code == 0, text
    assert "SSLError" not in text and "certificate" not in text.lower()


def test_requests_ca_bundle_does_not_replace_the_sources_setting(
    tls_box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment names the sandbox CA, the config names none: momentos still verifies
    against the default trust store only, so the run is refused (documented behaviour)."""
    _clean_env(monkeypatch, tls_box.ca_cert)
    _refused(*_sync(tls_box, _config(tls_box, tmp_path)))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_tls_false_is_the_only_way_to_skip_verification(
    tls_box: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch, None)
    code, text, _ = _sync(tls_box, _config(tls_box, tmp_path, verify_tls=False))
    assert code == 0, text
