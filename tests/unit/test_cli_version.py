"""`shipyard --version` and `shipyard version` print the package's version and exit 0."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from shipyard import __version__
from shipyard.cli.main import app


def test_version_flag_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == __version__


def test_version_command_still_prints_the_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == __version__


def test_version_flag_from_the_console_entry_point() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "shipyard", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == __version__
