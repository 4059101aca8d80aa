"""status / maintenance / logs refusals: one sentence, a non-zero exit, nothing sent or touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.domain.commands import EnterMaintenance, StopContainer
from shipyard.domain.host_plan import plan_maintenance
from shipyard.domain.maintenance_page import page_with_message
from shipyard.domain.models import AppState, ContainerInfo
from shipyard.errors import ConfigError


@pytest.fixture(autouse=True)
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    # A controller nobody listens on: a refusal must come before anything is sent to it.
    monkeypatch.setenv("SHIPYARD_CONTROLLER", "http://127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, list(args))
    assert "Traceback" not in done.output
    return done.exit_code, done.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["status", "--env", "prod uction"], "--env 'prod uction' is not a valid name"),
        (["maintenance", "on", "--env", "production"], "name the app with --app"),
        (["maintenance", "off", "--env", "production", "--app", "web", "-m", "x"], "--message goes with"),
        (
            ["maintenance", "on", "--env", "production", "--app", "web", "-m", "a\nb"],
            "--message must be one line",
        ),
        (["logs", "--grep", "GET"], "--grep go with --env"),
        (
            ["logs", "--env", "production", "--app", "web", "--since", "ten"],
            "--since 'ten' is not a duration",
        ),
        (["logs", "--env", "production", "--app", "web", "--grep", "("], "is not a regular expression"),
        (["logs", "--env", "production", "--app", "web", "--process", "Web;"], "--process is not valid"),
        (["logs", "--env", "production", "--app", "web", "--release", "r1"], "--release is for this host"),
    ],
)
def test_bad_options_are_refused_in_one_sentence_before_the_controller_is_called(
    args: list[str], says: str, nowhere: Path
) -> None:
    code, output = run(*args)
    assert code != 0 and says in " ".join(output.split()), output
    assert not (nowhere / "home").exists()


def test_the_keep_running_maintenance_plan_stops_nothing_and_carries_the_page() -> None:
    running = ContainerInfo("1", "shipyard-web-r2-blue", "web", "blue", "r2", "sha256:1", "running")
    state = AppState("web", True, True, "blue", "r2", False, containers=(running,))
    page = page_with_message("back at <10:00>")
    assert plan_maintenance(state, 5, keep_running=True, page=page).steps == (
        EnterMaintenance("web", "app_web", page),
    )
    assert "back at &lt;10:00&gt;" in page  # escaped: the message cannot add markup
    stopping = plan_maintenance(state, 5).steps
    assert any(isinstance(step, StopContainer) for step in stopping)  # `shipyard stop` as before
    resting = AppState("web", True, True, "blue", "r2", True, containers=(running,))
    assert plan_maintenance(resting, 5, keep_running=True).empty
    assert plan_maintenance(resting, 5, keep_running=True, page=page).steps  # a new message shows
    with pytest.raises(ConfigError):
        page_with_message("x" * 501)
