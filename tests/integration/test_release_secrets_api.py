"""Sealed release secrets on the real controller (SQLite and PostgreSQL).

The controller stores each release's envelope per environment, hands it only to that environment's
hosts, brings back the older envelope on a rollback, and never holds or returns a plaintext value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from controller_fixtures import ADMIN, DIGESTS, Harness, served_controller, spec
from typer.testing import CliRunner

from shipyard.cli.main import app as cli
from shipyard.domain.spec import SecretsSpec
from shipyard.fleet_api.schemas.agent import DesiredApp
from shipyard.lab.tls import TlsFiles
from shipyard.secrets.factory import open_store
from shipyard.secrets.local_key import create_key_file
from shipyard.secrets.sealing import host_provider, open_sealed, seal_secrets

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

OLD_VALUE = "postgres://web:old-plaintext-4b1d@db/web"
NEW_VALUE = "postgres://web:new-plaintext-9c3e@db/web"
NAMES = ["DATABASE_URL"]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "production.key"
    create_key_file(path)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repo"


def sealed_with(repo: Path, key_file: Path, value: str, env: str = "production") -> str:
    store = open_store(SecretsSpec(key_file=str(key_file)), repo, env, environ={})
    store.set("DATABASE_URL", value)
    sealed = seal_secrets(NAMES, store, environ={})
    assert sealed is not None
    return sealed


def secret_spec() -> dict[str, Any]:
    return {**spec(), "env": {"secret": NAMES}}


def opened(app: DesiredApp, key_file: Path) -> str:
    values = open_sealed(app.sealed_secrets, env=None, names=NAMES, provider_for=host_provider(key_file))
    return values["DATABASE_URL"]


def database_text(url: str, tmp_path: Path) -> str:
    """Every row of every table, as text; for SQLite also the database files' raw bytes."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            rows = [
                repr(row)
                for table in tables
                for row in connection.execute(sa.text(f'SELECT * FROM "{table}"'))
            ]
    finally:
        engine.dispose()
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("controller.db*"))
    return "\n".join(rows) + raw.decode("latin-1")


def api_answers(harness: Harness, release_ids: list[int], deployment_ids: list[int]) -> Iterator[str]:
    paths = [
        "/api/v1/releases",
        "/api/v1/deployments",
        "/api/v1/hosts",
        "/api/v1/audit",
        "/api/v1/apps",
        "/api/v1/environments",
        "/openapi.json",
        *(f"/api/v1/releases/{r}" for r in release_ids),
        *(f"/api/v1/deployments/{d}" for d in deployment_ids),
    ]
    for path in paths:
        answer = harness.http.get(path, headers=ADMIN)
        assert answer.status_code == 200, (path, answer.text)
        yield answer.text


def test_sealed_secrets_reach_only_their_environment_and_roll_back(
    controller_harness: Harness, controller_db_url: str, repo: Path, key_file: Path, tmp_path: Path
) -> None:
    harness = controller_harness
    agent = harness.add_agent("h1")
    staging_agent = harness.add_agent("s1", group="staging")
    old_sealed = sealed_with(repo, key_file, OLD_VALUE)

    first = harness.admin.create_release("registry:5000/web", DIGESTS[0], secret_spec())
    deployment = harness.admin.create_deployment(first.id, "production", sealed_secrets=old_sealed)
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    [app] = agent.client.desired().apps
    assert app.sealed_secrets == old_sealed and opened(app, key_file) == OLD_VALUE

    # The same release in staging, without an envelope for staging: production's never goes there.
    staged = harness.admin.create_deployment(first.id, "staging")
    harness.deploy_until(staged.id, {"succeeded"})
    [staging_app] = staging_agent.client.desired().apps
    assert staging_app.release_id == first.id and staging_app.sealed_secrets is None

    new_sealed = sealed_with(repo, key_file, NEW_VALUE)
    second = harness.admin.create_release("registry:5000/web", DIGESTS[1], secret_spec())
    rotated = harness.admin.create_deployment(second.id, "production", sealed_secrets=new_sealed)
    assert harness.deploy_until(rotated.id, {"succeeded"}) == "succeeded"
    [app] = agent.client.desired().apps
    assert opened(app, key_file) == NEW_VALUE

    rollback = harness.admin.rollback("web", "production")
    assert rollback.release_id == first.id
    assert harness.deploy_until(rollback.id, {"succeeded"}) == "succeeded"
    [app] = agent.client.desired().apps
    assert app.sealed_secrets == old_sealed and opened(app, key_file) == OLD_VALUE

    audit = [entry for entry in harness.admin.audit(action="release.secrets.set")]
    assert [entry.target for entry in audit] == [
        f"web/r{second.id}/production",
        f"web/r{first.id}/production",
    ]

    envelopes = [json.loads(old_sealed)["ciphertext"], json.loads(new_sealed)["ciphertext"]]
    deployment_ids = [deployment.id, staged.id, rotated.id, rollback.id]
    for answer in api_answers(harness, [first.id, second.id], deployment_ids):
        for secret in ("old-plaintext-4b1d", "new-plaintext-9c3e", *envelopes):
            assert secret not in answer
    stored = database_text(controller_db_url, tmp_path)
    assert json.loads(new_sealed)["ciphertext"] in stored  # the envelope is there, as ciphertext
    assert "old-plaintext-4b1d" not in stored and "new-plaintext-9c3e" not in stored


def test_bad_envelopes_are_refused_and_change_nothing(
    controller_harness: Harness, repo: Path, key_file: Path
) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    harness.add_agent("s1", group="staging")
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], secret_spec())
    for_staging = sealed_with(repo, key_file, OLD_VALUE, env="staging")
    cases = [
        (for_staging, 422, "sealed for env staging, not production"),
        ('{"format": "other"}', 422, "not a shipyard secrets envelope"),
        ("x" * (256 * 1024 + 1), 422, "sealed_secrets"),
    ]
    for sealed, status, says in cases:
        body = {"release_id": release.id, "environment": "production", "sealed_secrets": sealed}
        answer = harness.http.post("/api/v1/deployments", json=body, headers=ADMIN)
        assert answer.status_code == status, answer.text
        assert says in answer.text
        assert OLD_VALUE not in answer.text
    assert harness.admin.list_deployments() == []
    assert harness.admin.audit(action="release.secrets.set") == []


def test_the_put_route_sets_an_envelope_for_its_callers_apps_only(
    controller_harness: Harness, repo: Path, key_file: Path
) -> None:
    harness = controller_harness
    agent = harness.add_agent("h1")
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], secret_spec())
    sealed = sealed_with(repo, key_file, OLD_VALUE)
    path = f"/api/v1/releases/{release.id}/secrets/production"
    other_ci = {"Authorization": "Bearer " + harness.admin.create_token("api-ci", "ci", apps=["api"]).token}
    viewer = {"Authorization": "Bearer " + harness.admin.create_token("look", "viewer").token}
    ci = {"Authorization": "Bearer " + harness.admin.create_token("web-ci", "ci", apps=["web"]).token}
    assert harness.http.put(path, json={"sealed": sealed}, headers=other_ci).status_code == 403
    assert harness.http.put(path, json={"sealed": sealed}, headers=viewer).status_code == 403
    missing = harness.http.put(
        f"/api/v1/releases/{release.id}/secrets/nowhere", json={"sealed": sealed}, headers=ci
    )
    assert missing.status_code == 404
    answer = harness.http.put(path, json={"sealed": sealed}, headers=ci)
    assert answer.status_code == 204 and answer.text == ""

    deployment = harness.admin.create_deployment(release.id, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    [app] = agent.client.desired().apps
    assert opened(app, key_file) == OLD_VALUE
    [entry] = harness.admin.audit(action="release.secrets.set")
    assert entry.actor == "web-ci"


def test_release_create_deploy_seals_the_store_of_its_environment(
    tmp_path: Path, controller_tls: TlsFiles, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`shipyard release create --deploy E` (CI's path) against a served controller: sealed, delivered,
    and neither the controller's answers nor its log hold the value; a name set nowhere changes nothing."""
    repo = tmp_path / "app"
    repo.mkdir()
    config = {**secret_spec(), "secrets": {"key_file": str(key_file)}}
    (repo / "shipyard.yml").write_text(yaml.safe_dump(config))
    open_store(SecretsSpec(key_file=str(key_file)), repo, "production", environ={}).set(
        "DATABASE_URL", OLD_VALUE
    )
    runner = CliRunner()
    monkeypatch.chdir(repo)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_MASTER_KEY", raising=False)
    with served_controller(f"sqlite:///{tmp_path / 'controller.db'}", tmp_path, controller_tls) as served:
        monkeypatch.setenv("SHIPYARD_CONTROLLER", served.url)
        monkeypatch.setenv("SHIPYARD_CA_FILE", str(served.ca_file))
        monkeypatch.setenv("SHIPYARD_TOKEN", served.admin_token)
        with served.client(served.admin_token) as admin:
            join = admin.create_join_token("production")
            ci_token = admin.create_token("gh", "ci", apps=["web"]).token
        with served.client() as anonymous:
            agent_token = anonymous.register_agent(join.token, "h1", agent_version="test").agent_token
        monkeypatch.setenv("SHIPYARD_TOKEN", ci_token)
        image = f"registry:5000/web@{DIGESTS[4]}"
        created = runner.invoke(
            cli,
            [
                "release",
                "create",
                "--image",
                image,
                "--git-sha",
                "c" * 40,
                "--deploy",
                "production",
                "--json",
            ],
        )
        assert created.exit_code == 0, created.output
        assert "old-plaintext-4b1d" not in created.output
        with served.client(agent_token) as agent:
            [app] = agent.desired().apps
        assert opened(app, key_file) == OLD_VALUE

        (repo / "shipyard.yml").write_text(
            yaml.safe_dump({**config, "env": {"secret": ["DATABASE_URL", "NOT_SET"]}})
        )
        refused = runner.invoke(
            cli, ["release", "create", "--image", image, "--git-sha", "d" * 40, "--deploy", "production"]
        )
        assert refused.exit_code != 0 and "NOT_SET" in refused.output and "Traceback" not in refused.output
        with served.client(served.admin_token) as admin:
            assert len(admin.list_releases()) == 1  # nothing recorded for the refused one
    assert "old-plaintext-4b1d" not in served.output
    assert b"old-plaintext-4b1d" not in (tmp_path / "controller.db").read_bytes()
