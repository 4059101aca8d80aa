"""The ci role on SQLite and PostgreSQL: releases and deployments of its apps, and nothing else.

Also `shipyard release create` and `shipyard token create --role ci --app` through the CLI against a
controller served over https.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_fixtures import ADMIN_TOKEN, DIGESTS, Harness, served_controller, spec
from typer.testing import CliRunner

from shipyard.cli.main import app as cli
from shipyard.lab.tls import TlsFiles

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def release_body(app: str, digest: str = DIGESTS[0], **extra: Any) -> dict[str, Any]:
    return {"image": f"registry:5000/{app}", "digest": digest, "spec": spec(app), **extra}


def test_a_ci_token_needs_apps_and_only_ci_tokens_take_them(controller_harness: Harness) -> None:
    http, admin = controller_harness.http, bearer(ADMIN_TOKEN)
    no_apps = http.post("/api/v1/tokens", json={"name": "gh", "role": "ci"}, headers=admin)
    assert no_apps.status_code == 422 and "apps" in no_apps.json()["detail"]
    scoped_deployer = http.post(
        "/api/v1/tokens", json={"name": "d", "role": "deployer", "apps": ["web"]}, headers=admin
    )
    assert scoped_deployer.status_code == 422 and "only ci tokens" in scoped_deployer.json()["detail"]
    created = controller_harness.admin.create_token("gh", "ci", apps=["web", "api"])
    assert (created.role, created.apps) == ("ci", ["web", "api"])
    listed = {token.name: token.apps for token in controller_harness.admin.tokens()}
    assert listed["gh"] == ["web", "api"]


def test_ci_creates_releases_and_deployments_of_its_apps_only(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    ci = bearer(harness.admin.create_token("gh", "ci", apps=["web"]).token)
    created = harness.http.post("/api/v1/releases", json=release_body("web", git_sha="a" * 40), headers=ci)
    assert created.status_code == 201, created.text
    release = created.json()
    assert release["git_sha"] == "a" * 40
    deployment = harness.http.post(
        "/api/v1/deployments", json={"release_id": release["id"], "environment": "production"}, headers=ci
    )
    assert deployment.status_code == 201, deployment.text
    followed = harness.http.get(f"/api/v1/deployments/{deployment.json()['id']}", headers=ci)
    assert followed.status_code == 200 and followed.json()["app"] == "web"
    assert harness.http.get(f"/api/v1/releases/{release['id']}", headers=ci).status_code == 200

    # Another app: refused before anything is stored.
    other = harness.http.post("/api/v1/releases", json=release_body("api", DIGESTS[1]), headers=ci)
    assert other.status_code == 403 and "may ship only web" in other.json()["detail"]
    assert [r.app for r in harness.admin.list_releases()] == ["web"]
    api_release = harness.admin.create_release("registry:5000/api", DIGESTS[2], spec("api"))
    refused = harness.http.post(
        "/api/v1/deployments", json={"release_id": api_release.id, "environment": "production"}, headers=ci
    )
    assert refused.status_code == 403
    assert [d.app for d in harness.admin.list_deployments()] == ["web"]
    assert harness.http.get(f"/api/v1/releases/{api_release.id}", headers=ci).status_code == 403


def test_ci_reaches_nothing_else(controller_harness: Harness) -> None:
    harness = controller_harness
    ci = bearer(harness.admin.create_token("gh", "ci", apps=["web"]).token)
    refused = [
        ("GET", "/api/v1/releases", None),
        ("GET", "/api/v1/deployments", None),
        ("GET", "/api/v1/hosts", None),
        ("GET", "/api/v1/jobs", None),
        ("GET", "/api/v1/hooks", None),
        ("GET", "/api/v1/audit", None),
        ("GET", "/api/v1/schedules", None),
        ("POST", "/api/v1/rollback", {"app": "web", "environment": "production"}),
        ("POST", "/api/v1/locks", {"app": "web", "environment": "production", "reason": "x"}),
        ("POST", "/api/v1/tokens", {"name": "more", "role": "admin"}),
        ("POST", "/api/v1/join-tokens", {"group": "production"}),
    ]
    for method, path, body in refused:
        answer = harness.http.request(method, path, json=body, headers=ci)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "ci role" in answer.json()["detail"]


@pytest.fixture
def served(tmp_path: Path, controller_tls: TlsFiles) -> Iterator[Any]:
    with served_controller(f"sqlite:///{tmp_path / 'controller.db'}", tmp_path, controller_tls) as controller:
        yield controller


def test_release_create_and_token_create_through_the_cli(
    served: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHIPYARD_CONTROLLER", served.url)
    monkeypatch.setenv("SHIPYARD_CA_FILE", str(served.ca_file))
    monkeypatch.setenv("SHIPYARD_TOKEN", served.admin_token)
    Path("shipyard.yml").write_text(yaml.safe_dump({"app": "web", "image": "registry:5000/web"}))
    made = runner.invoke(cli, ["token", "create", "gh", "--role", "ci", "--app", "web"])
    assert made.exit_code == 0, made.output
    ci_token = made.output.strip().splitlines()[-1]
    assert ci_token.startswith("sya_")
    refused = runner.invoke(cli, ["token", "create", "gh2", "--role", "ci"])
    assert refused.exit_code != 0 and "--app" in refused.output

    monkeypatch.setenv("SHIPYARD_TOKEN", ci_token)
    image = f"registry:5000/web@{DIGESTS[3]}"
    created = runner.invoke(cli, ["release", "create", "--image", image, "--git-sha", "b" * 40, "--json"])
    assert created.exit_code == 0, created.output
    assert '"git_sha": "' + "b" * 40 in created.output
    for args, message in [
        (["--image", "registry:5000/web:latest", "--git-sha", "b" * 40], "REPO@sha256"),
        (["--image", f"registry:5000/api@{DIGESTS[3]}", "--git-sha", "b" * 40], "not this app's image"),
        (["--image", image, "--git-sha", "main"], "not a commit sha"),
        (["--image", image, "--git-sha", "b" * 40, "--follow"], "--deploy"),
    ]:
        bad = runner.invoke(cli, ["release", "create", *args])
        assert bad.exit_code != 0 and message in bad.output, bad.output
        assert "Traceback" not in bad.output
    # The ci token cannot read the release list: its scope is creating and following.
    listed = runner.invoke(cli, ["token", "list"])
    assert listed.exit_code != 0 and "admin role" in listed.output
