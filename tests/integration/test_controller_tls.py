"""The controller served over https by its CLI command: trusted with the CA, refused without it, and an
audit log whose source address a forged X-Forwarded-For cannot change."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from controller_fixtures import ServedController, served_controller

from shipyard.errors import ControllerError
from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.tls import client_ssl_context
from shipyard.lab.tls import TlsFiles, make_throwaway_ca

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

FORGED = "203.0.113.7"


@pytest.fixture
def served(tmp_path: Path, controller_tls: TlsFiles) -> Iterator[ServedController]:
    with served_controller(f"sqlite:///{tmp_path / 'controller.db'}", tmp_path, controller_tls) as controller:
        yield controller


def cli(served: ServedController, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SHIPYARD_CONTROLLER": served.url,
        "SHIPYARD_TOKEN": served.admin_token,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_the_client_trusts_the_controller_with_the_ca_only(served: ServedController, tmp_path: Path) -> None:
    with served.client(served.admin_token) as admin:
        assert admin.hosts() == []
    with (
        ControllerClient(served.url, served.admin_token) as system_trust,
        pytest.raises(ControllerError) as refused,
    ):
        system_trust.hosts()
    assert "--ca-file" in refused.value.message
    assert "certificate" in refused.value.message
    stranger = make_throwaway_ca(tmp_path / "stranger")
    with (
        ControllerClient(served.url, served.admin_token, ca_file=stranger.ca_cert) as wrong_ca,
        pytest.raises(ControllerError, match="--ca-file"),
    ):
        wrong_ca.hosts()


def test_plain_http_to_the_https_port_fails_cleanly(served: ServedController) -> None:
    plain = served.url.replace("https://", "http://")
    with ControllerClient(plain, served.admin_token) as client, pytest.raises(ControllerError) as refused:
        client.hosts()
    assert "use an https:// URL" in refused.value.message


def test_the_cli_needs_the_ca_and_says_so_in_one_sentence(served: ServedController) -> None:
    refused = cli(served, "hosts")
    assert refused.returncode == 10, refused.stderr
    assert "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ca-file" in lines[0], lines
    assert served.admin_token not in refused.stdout + refused.stderr
    trusted = cli(served, "hosts", "--json", SHIPYARD_CA_FILE=str(served.ca_file))
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.strip() == "[]"
    flag = cli(served, "audit", "--ca-file", str(served.ca_file))
    assert flag.returncode == 0, flag.stderr


def audited_sources_of_forged_requests(served: ServedController) -> set[str | None]:
    """Create a join token and register a host with it, each request with a forged X-Forwarded-For;
    the source addresses the audit log kept for both."""
    verify = client_ssl_context(served.ca_file)
    with httpx.Client(
        base_url=served.url + "/api/v1", verify=verify, headers={"X-Forwarded-For": FORGED}
    ) as http:
        admin = {"Authorization": f"Bearer {served.admin_token}"}
        created = http.post("/join-tokens", json={"group": "production"}, headers=admin)
        assert created.status_code == 201, created.text
        join = {"Authorization": f"Bearer {created.json()['token']}"}
        registered = http.post("/agent/register", json={"name": "h1"}, headers=join)
        assert registered.status_code == 201, registered.text
    with served.client(served.admin_token) as client:
        entries = [
            entry for entry in client.audit() if entry.action in ("join_token.create", "host.register")
        ]
    assert len(entries) == 2
    return {entry.source_ip for entry in entries}


def test_a_forged_forwarded_for_does_not_change_the_audited_source(served: ServedController) -> None:
    assert audited_sources_of_forged_requests(served) == {"127.0.0.1"}


def test_a_named_proxy_is_believed(tmp_path: Path, controller_tls: TlsFiles) -> None:
    database = f"sqlite:///{tmp_path / 'controller.db'}"
    with served_controller(
        database, tmp_path, controller_tls, "--forwarded-allow-ips", "127.0.0.1"
    ) as served:
        assert audited_sources_of_forged_requests(served) == {FORGED}
