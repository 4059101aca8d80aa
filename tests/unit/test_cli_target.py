"""`deploy`/`rollback` say what they act on: --env is the fleet (its controller), without it this host."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.fleet_cmd import fleet_target
from shipyard.cli.main import app
from shipyard.domain.spec import parse_spec
from shipyard.errors import ConfigError

runner = CliRunner()


@pytest.fixture
def no_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SHIPYARD_CONTROLLER", raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    config = tmp_path / "shipyard.yml"
    config.write_text("app: web\nimage: 127.0.0.1:5000/web\n")
    return config


@pytest.mark.parametrize(
    "args",
    [
        ["deploy", "127.0.0.1:5000/web:v2", "--env", "staging"],
        ["deploy", "127.0.0.1:5000/web:v2", "--env", "staging", "--dry-run"],
        ["rollback", "--env", "staging"],
        ["rollback", "--env", "staging", "--dry-run"],
    ],
)
def test_a_fleet_command_without_a_controller_says_so_and_acts_nowhere(
    no_controller: Path, args: list[str]
) -> None:
    result = runner.invoke(app, [*args, "-c", str(no_controller)])

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"'{args[0]} --env staging' acts on the fleet, but no controller is configured" in lines[0]
    assert "leave out --env" in lines[0]
    assert result.stdout == ""  # not even "this host": nothing ran here
    assert not (no_controller.parent / "home").exists()


def test_without_env_the_first_line_says_this_host(no_controller: Path) -> None:
    result = runner.invoke(app, ["deploy", "127.0.0.1:5000/web:v2", "--dry-run", "-c", str(no_controller)])

    assert result.stdout.splitlines()[0] == "this host"
    assert result.exit_code != 0  # no engine here; the point is which meaning it took


def test_under_json_the_first_line_goes_to_stderr(no_controller: Path) -> None:
    result = runner.invoke(app, ["rollback", "--json", "-c", str(no_controller)])

    assert result.stderr.splitlines()[0] == "this host"
    assert "this host" not in result.stdout


def test_the_fleet_line_names_the_environment_and_the_controller_without_credentials() -> None:
    spec = parse_spec({"app": "web", "image": "127.0.0.1:5000/web", "controller": "https://ctl.example:8700"})
    assert fleet_target(spec, "production", "deploy") == "fleet: production via https://ctl.example:8700"
    with_login = parse_spec(
        {"app": "web", "image": "127.0.0.1:5000/web", "controller": "https://ops:hunter2@ctl.example:8700"}
    )
    assert "hunter2" not in fleet_target(with_login, "production", "deploy")
    with pytest.raises(ConfigError, match="not a valid name"):
        fleet_target(spec, "prod\n", "deploy")
