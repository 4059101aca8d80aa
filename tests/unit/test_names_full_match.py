"""Names given on the command line, to the API or by the controller are matched whole.

``re.match`` with ``$`` accepted a trailing newline (``$`` also matches before a final ``\\n``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from shipyard.adapters.registry import parse_image
from shipyard.agent.localize import host_release, release_number
from shipyard.cli.fleet_cmd import checked_name, release_id
from shipyard.cli.main import app
from shipyard.errors import ConfigError
from shipyard.fleet_api.schemas.admin import LockCreate
from shipyard.fleet_api.schemas.agent import DesiredApp
from shipyard.fleet_api.schemas.deployments import DeploymentCreate
from shipyard.fleet_api.schemas.fleet import EnvironmentCreate
from shipyard.imaging.metadata import image_tags
from shipyard.imaging.scan_cache import CleanLayers
from shipyard.secrets.store import validate_env, validate_secret

runner = CliRunner()
DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("name", ["FOO\n", "FOO\r", "FOO\n\n", "F\nOO", "FOO "])
def test_a_secret_name_with_a_newline_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid secret name"):
        validate_secret(name, "value")


@pytest.mark.parametrize("env", ["prod\n", "prod\r\n", "pr\nod"])
def test_a_secrets_environment_with_a_newline_is_refused(env: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid environment name"):
        validate_env(env)


def test_secrets_set_refuses_a_name_with_a_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yml").write_text("app: web\nimage: 127.0.0.1:5000/web\n")
    result = runner.invoke(
        app, ["secrets", "set", "FOO\n", "--config", str(tmp_path / "shipyard.yml")], input="value"
    )
    assert result.exit_code == 2
    assert "is not a valid secret name" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / ".shipyard").exists()


@pytest.mark.parametrize("name", ["prod\n", "prod\r", " prod", "pr od", "", "x" * 65, "../prod", "-prod"])
def test_fleet_names_are_matched_whole(name: str) -> None:
    with pytest.raises(ConfigError, match=r"--env .* is not a valid name"):
        checked_name(name, "--env")


@pytest.mark.parametrize(
    "argv",
    [
        ["deployments", "--env", "prod\n"],
        ["deployments", "--app", "web\n"],
        ["hosts", "--env", "prod\n"],
        ["lock", "--env", "prod\n", "--reason", "r", "--app", "web"],
        ["unlock", "--env", "prod\n", "--app", "web"],
        ["unlock", "--env", "prod", "--app", "web\n"],
        ["deploy", "127.0.0.1:5000/web:v1", "--env", "prod\n"],
        ["rollback", "--env", "prod\n"],
    ],
)
def test_fleet_commands_refuse_a_name_with_a_newline_before_calling_the_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    (tmp_path / "shipyard.yml").write_text("app: web\nimage: 127.0.0.1:5000/web\n")
    monkeypatch.chdir(tmp_path)
    # An address nothing listens on: had the name passed, the command would fail on the connection.
    monkeypatch.setenv("SHIPYARD_CONTROLLER", "http://127.0.0.1:9")
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "is not a valid name" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("text", ["r²", "r\u0661\u0662", "r12\n", "12 ", "r", "r" + "9" * 30])
def test_release_ids_are_ascii_digits(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a release id"):
        release_id(text)


def test_release_ids_still_parse() -> None:
    assert (release_id("r12"), release_id("7")) == (12, 7)


@pytest.mark.parametrize(
    "body",
    [
        lambda: DeploymentCreate(release_id=1, environment="prod\n"),
        lambda: LockCreate(app="web", environment="prod\n", reason="r"),
        lambda: EnvironmentCreate(name="prod\n"),
    ],
)
def test_the_api_refuses_environment_names_with_a_trailing_newline(body: Any) -> None:
    with pytest.raises(ValidationError, match="should match pattern"):
        body()


def desired(**overrides: Any) -> DesiredApp:
    values: dict[str, Any] = {
        "app": "web",
        "release_id": 12,
        "release": "r12",
        "image": "127.0.0.1:5000/web",
        "digest": DIGEST,
        "spec": {"app": "web", "image": "127.0.0.1:5000/web"},
        "deployment_id": 3,
    }
    return DesiredApp(**{**values, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {"app": "web\n"},
        {"app": "../web"},
        {"release": "r12\n"},
        {"release": "r12-x"},
        {"image": "127.0.0.1:5000/web\n"},
        {"image": "127.0.0.1:5000/web --privileged"},
        {"digest": DIGEST + "\n"},
    ],
)
def test_the_agent_refuses_a_desired_release_with_a_name_out_of_shape(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="nothing was changed on this host"):
        host_release(desired(**overrides), None, datetime.now(UTC))


def test_the_agent_refuses_an_address_with_a_newline() -> None:
    with pytest.raises(ConfigError, match="--address"):
        host_release(desired(), "127.0.1.2\nfrontend x", datetime.now(UTC))


def test_the_agent_accepts_a_well_formed_desired_release() -> None:
    release = host_release(desired(), "127.0.1.2", datetime.now(UTC))
    assert (release.id, release.app_spec.bind) == ("r12", "127.0.1.2")
    assert release_number("r12") == 12
    assert release_number("r²") is None
    assert release_number("r12\n") is None


@pytest.mark.parametrize("tag", ["v1\n", "vé", "v 1"])
def test_extra_image_tags_are_matched_whole(tag: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid tag"):
        image_tags("127.0.0.1:5000/web", "a" * 40, extra=(tag,))


@pytest.mark.parametrize("reference", ["127.0.0.1:5000/web:vé", "127.0.0.1:5000/web@" + DIGEST + "x"])
def test_image_references_are_matched_whole(reference: str) -> None:
    with pytest.raises(ConfigError):
        parse_image(reference)


def test_a_layer_id_with_a_trailing_newline_names_no_file(tmp_path: Path) -> None:
    layers = CleanLayers(tmp_path, ())
    with pytest.raises(ValueError, match="is not a layer diff id"):
        layers.all_clean([DIGEST + "\n"])


def test_init_refuses_an_app_name_that_would_add_keys_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "shipyard.yml"
    argv = ["init", "--app", "web\ncontroller: http://elsewhere:9000", "--config", str(config)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "app: must be 1 to 40 lowercase letters" in result.output
    assert not config.exists()
