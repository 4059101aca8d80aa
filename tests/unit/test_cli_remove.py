"""`shipyard remove APP`: refused without --yes or with a bad name, before anything is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.entry import HOST_COMMANDS, host_app


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def remove(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(host_app(), ["remove", *args])
    return done.exit_code, done.output


def test_remove_is_a_host_command() -> None:
    assert "remove" in HOST_COMMANDS


def test_remove_without_yes_is_refused_in_one_sentence(home: Path) -> None:
    code, output = remove("web")
    assert code != 0 and "run it again with --yes" in output and "Traceback" not in output
    assert not home.exists()  # nothing was opened, let alone changed


def test_a_bad_app_name_is_refused(home: Path) -> None:
    code, output = remove("Web;rm", "--yes")
    assert code != 0 and "is not an app name" in output
    assert not home.exists()


def test_without_app_or_config_the_user_is_told_to_name_it(home: Path) -> None:
    code, output = remove("--dry-run")
    assert code != 0 and "name the app to remove" in output
