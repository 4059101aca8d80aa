"""`shipyard init --ci github|gitlab|circleci`: a CI config that builds with build --push and ships with
release create, for the branches of shipyard.yml's pipelines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shipyard.cli.ci_templates import PATHS
from shipyard.cli.main import app as cli

SPEC = """\
app: web
image: registry.example.com/acme/web
pipelines:
  - branch: release
    environment: production
  - branch: main
    environment: staging
"""


def strings_of(value: object) -> list[str]:
    """Every string of the parsed config: the shell each CI runs is among them, wherever it keeps it."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_of(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_of(item)]
    return []


@pytest.mark.parametrize("ci", sorted(PATHS))
def test_each_ci_config_builds_pushes_and_creates_the_release(
    ci: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("shipyard.yml").write_text(SPEC)
    result = CliRunner().invoke(cli, ["init", "--ci", ci])
    assert result.exit_code == 0, result.output
    assert "--role ci --app web" in result.output
    written = tmp_path / PATHS[ci]
    document = yaml.safe_load(written.read_text())
    text = "\n".join(strings_of(document))
    assert "shipyard build --push --ref" in text
    assert 'shipyard release create --image "registry.example.com/acme/web@$DIGEST" --git-sha "$SHA"' in text
    assert '--deploy "$ENVIRONMENT" --follow' in text
    assert "release) ENVIRONMENT=production" in text and "main) ENVIRONMENT=staging" in text
    assert "SHIPYARD_TOKEN" in written.read_text() and "sya_" not in written.read_text()
    again = CliRunner().invoke(cli, ["init", "--ci", ci])
    assert again.exit_code != 0 and "already exists" in again.output


def test_the_options_the_config_uses_exist(tmp_path: Path) -> None:
    help_text = CliRunner().invoke(cli, ["release", "create", "--help"], terminal_width=200).output
    for option in ("--image", "--git-sha", "--deploy", "--follow"):
        assert option in help_text
    build_help = CliRunner().invoke(cli, ["build", "--help"], terminal_width=200).output
    for option in ("--push", "--ref", "--json"):
        assert option in build_help


def test_unknown_ci_or_missing_config_is_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = CliRunner().invoke(cli, ["init", "--ci", "github"])
    assert missing.exit_code != 0 and "run 'shipyard init' first" in missing.output
    Path("shipyard.yml").write_text(SPEC)
    unknown = CliRunner().invoke(cli, ["init", "--ci", "jenkins"])
    assert unknown.exit_code != 0 and "github, gitlab, circleci" in unknown.output
    assert "Traceback" not in missing.output + unknown.output
