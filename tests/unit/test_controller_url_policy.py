"""The URL policy: https anywhere, plain http only to loopback unless --insecure-http; nothing connects.

Non-loopback addresses here come from the documentation ranges (192.0.2.0/24, 2001:db8::/32); a refused
URL is refused before any client is opened, so no test sends a packet to them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from shipyard.cli.main import app
from shipyard.errors import ConfigError
from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.url_policy import check_controller_url, is_loopback

runner = CliRunner()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.1.7", "127.255.255.254", "::1", "[::1]", "localhost", "LOCALHOST", "localhost."],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    [
        "192.0.2.10",
        "0.0.0.0",
        "::",
        "2001:db8::1",
        "localhost.example.com",
        "127.0.0.1.nip.io",
        "",
        "10.0.0.1",
    ],
)
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8700",
        "http://127.0.1.3:8700/",
        "http://localhost:8700",
        "http://[::1]:8700",
        "https://127.0.0.1:8700",
        "https://controller.example.com",
        "https://192.0.2.10:8700/",
    ],
)
def test_allowed_without_insecure_http(url: str) -> None:
    assert check_controller_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["http://192.0.2.10:8700", "http://controller.example.com", "http://[2001:db8::1]:8700"]
)
def test_plain_http_to_a_network_address_is_refused_naming_the_flag(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_controller_url(url)
    assert "--insecure-http" in refused.value.message
    assert "https://" in refused.value.message
    assert check_controller_url(url, insecure_http=True) == url


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1", "127.0.0.1:8700", "https://", "http://127.0.0.1:99999", "unix:///tmp/sock"]
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="https://HOST:PORT"):
        check_controller_url(url, insecure_http=True)


def test_credentials_in_the_url_are_refused_and_never_echoed() -> None:
    with pytest.raises(ConfigError) as refused:
        check_controller_url("https://admin:hunter2@controller.example.com")
    assert "hunter2" not in refused.value.message
    with pytest.raises(ConfigError) as malformed:
        check_controller_url("http://admin:hunter2@127.0.0.1:port")
    assert "hunter2" not in malformed.value.message


def test_the_client_applies_the_policy_before_opening_anything() -> None:
    with pytest.raises(ConfigError, match="--insecure-http"):
        ControllerClient("http://192.0.2.10:8700", "sya_x")


def test_the_client_refuses_an_unreadable_ca_bundle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--ca-file"):
        ControllerClient("https://127.0.0.1:8700", ca_file=tmp_path / "missing.pem")


def assert_one_sentence(result: Result, exit_code: int, *needles: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0]


def test_fleet_command_refuses_plain_http_to_a_network_address() -> None:
    env = {"SHIPYARD_CONTROLLER": "http://192.0.2.10:8700", "SHIPYARD_TOKEN": "sya_x"}
    assert_one_sentence(runner.invoke(app, ["hosts"], env=env), 2, "--insecure-http", "192.0.2.10")


def test_insecure_http_from_the_environment_lets_the_url_pass(tmp_path: Path) -> None:
    # The URL policy passes, so the next check (the CA bundle) is what stops it: nothing connects.
    env = {
        "SHIPYARD_CONTROLLER": "http://192.0.2.10:8700",
        "SHIPYARD_INSECURE_HTTP": "1",
        "SHIPYARD_CA_FILE": str(tmp_path / "missing.pem"),
    }
    assert_one_sentence(runner.invoke(app, ["hosts"], env=env), 2, "--ca-file")
    only_flags = {**env, "SHIPYARD_INSECURE_HTTP": None, "SHIPYARD_CA_FILE": None}  # None: unset
    flag = runner.invoke(
        app, ["audit", "--insecure-http", "--ca-file", str(tmp_path / "missing.pem")], env=only_flags
    )
    assert_one_sentence(flag, 2, "--ca-file")


def test_fleet_deploy_refuses_plain_http_before_asking_the_registry(tmp_path: Path) -> None:
    config = tmp_path / "shipyard.yml"
    config.write_text("app: web\nimage: 192.0.2.20:5000/web\ncontroller: http://192.0.2.10:8700\n")
    result = runner.invoke(
        app, ["deploy", "192.0.2.20:5000/web:v1", "--env", "production", "-c", str(config)]
    )
    assert_one_sentence(result, 2, "--insecure-http")


def test_agent_refuses_plain_http_before_anything_runs(tmp_path: Path) -> None:
    args = [
        "agent",
        "--controller",
        "http://192.0.2.10:8700",
        "--join-token",
        "syj_x",
        "--home",
        str(tmp_path),
    ]
    assert_one_sentence(runner.invoke(app, args), 2, "--insecure-http")
    assert list(tmp_path.iterdir()) == [], "nothing was written"


def test_agent_refuses_a_missing_ca_file_before_anything_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ["agent", "--controller", "https://127.0.0.1:1", "--join-token", "syj_x", "--home", str(home)]
    result = runner.invoke(app, args, env={"SHIPYARD_CA_FILE": str(tmp_path / "nope.pem")})
    assert_one_sentence(result, 2, "--ca-file", "nope.pem")
    assert not home.exists()
