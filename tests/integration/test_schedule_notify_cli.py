"""`shipyard hooks add gitlab`, `schedule add`, `schedules`, `notify ...` against a served controller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import served_controller
from typer.testing import CliRunner

from shipyard.cli.main import app as cli
from shipyard.lab.tls import TlsFiles

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

SHA = "f" * 40
PATH_TOKEN = "B000-path-token-XXXXXXXXXX"


@pytest.fixture
def served(tmp_path: Path, controller_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with served_controller(f"sqlite:///{tmp_path / 'controller.db'}", tmp_path, controller_tls) as controller:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("SHIPYARD_CONTROLLER", controller.url)
        monkeypatch.setenv("SHIPYARD_CA_FILE", str(controller.ca_file))
        monkeypatch.setenv("SHIPYARD_TOKEN", controller.admin_token)
        yield controller


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin)


def test_gitlab_hook_schedules_and_notify_through_the_cli(served: Any) -> None:
    added = run(
        "hooks", "add", "gitlab", "--app", "web", "--repository", "https://gitlab.example.com/acme/web.git",
        "--pipeline", "release=production",
        stdin="a-gitlab-secret-token-0123456789\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "/hooks/gitlab/web" in added.output and "Secret token" in added.output
    assert "a-gitlab-secret-token" not in added.output

    scheduled = run(
        "schedule", "add", "--app", "web", "--cron", "0 3 * * *", "--tz", "Asia/Tokyo",
        "deploy", "--ref", SHA, "--env", "production",
    )  # fmt: skip
    assert scheduled.exit_code == 0, scheduled.output
    assert "next run:" in scheduled.output and "03:00 JST" in scheduled.output
    listed = run("schedules", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["action"], row["ref"], row["timezone"], row["overlap"]) == (
        "deploy",
        SHA,
        "Asia/Tokyo",
        "skip",
    )
    refused = run("schedule", "add", "--app", "web", "--cron", "0 3 * * *", "vacuum", "--env", "production")
    assert refused.exit_code != 0 and "cannot be scheduled" in refused.output
    assert run("schedule", "rm", str(row["id"])).exit_code == 0
    assert json.loads(run("schedules", "--json").output) == []

    url = f"https://hooks.slack.example.com/services/{PATH_TOKEN}"
    notified = run("notify", "add", "--url", url, "--format", "slack", "--app", "web")
    assert notified.exit_code == 0, notified.output
    targets = run("notify", "list", "--json")
    assert json.loads(targets.output)[0]["url"] == "https://hooks.slack.example.com/…"
    assert PATH_TOKEN not in notified.output + targets.output
    assert run("notify", "log").exit_code == 0
    bad = run("notify", "add", "--url", url, "--format", "teams")
    assert bad.exit_code != 0 and "slack or json" in bad.output
    assert run("notify", "rm", "1").exit_code == 0
    gone = run("notify", "rm", "1")
    assert gone.exit_code != 0 and "does not exist" in gone.output


def test_a_hook_for_an_app_with_previews_needs_no_pipeline(served: Any, tmp_path: Path) -> None:
    repository = "https://gitlab.example.com/acme/web.git"
    (tmp_path / "shipyard.yml").write_text(
        f"app: web\nimage: registry.example.com/web\nrepository: {repository}\n"
        "previews:\n  domain: preview.example.com\n"
    )
    added = run("hooks", "add", "gitlab", "--app", "web", stdin="a-gitlab-secret-token-0123456789\n")
    assert added.exit_code == 0, added.output
    assert "hook added for web: no pipelines; pull and merge requests get previews" in added.output
    listed = run("hooks", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [hook["pipelines"] for hook in json.loads(listed.output)] == [[]]


def test_a_hook_with_neither_pipelines_nor_previews_is_refused_in_one_sentence(
    served: Any, tmp_path: Path
) -> None:
    (tmp_path / "shipyard.yml").write_text("app: api\nimage: registry.example.com/api\n")
    refused = run(
        "hooks", "add", "github", "--app", "api", "--repository", "file:///srv/git/api.git",
        stdin="a-webhook-secret-0123456789\n",
    )  # fmt: skip
    assert refused.exit_code != 0
    assert "Traceback" not in refused.output
    assert "no pipelines: add 'pipelines: [{branch, environment}]' to shipyard.yml" in refused.output
    assert run("hooks", "list", "--json").output.strip() == "[]"
