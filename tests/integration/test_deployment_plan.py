"""Dry runs on the controller: POST /deployments/plan and /rollback/plan answer the waves and per-host
changes and store nothing; `shipyard deploy/rollback --env E --dry-run` print them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_fixtures import ADMIN, DIGESTS, Harness, served_controller, spec
from typer.testing import CliRunner

from shipyard.cli.main import app as cli
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.tls import TlsFiles

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]
IMAGE = "registry:5000/web"


def stored(harness: Harness) -> tuple[int, int, int]:
    audit = harness.http.get("/api/v1/audit", headers=ADMIN).json()
    return len(harness.admin.list_releases()), len(harness.admin.list_deployments()), len(audit)


def plan_body(digest: str, environment: str = "production", **rollout: Any) -> dict[str, Any]:
    return {"image": IMAGE, "digest": digest, "spec": spec(**rollout), "environment": environment}


def test_a_plan_shows_waves_and_changes_and_stores_nothing(controller_harness: Harness) -> None:
    harness = controller_harness
    for name in ("h1", "h2", "h3"):
        harness.add_agent(name)
    first = harness.admin.create_release(IMAGE, DIGESTS[0], spec()).id
    deployment = harness.admin.create_deployment(first, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    before = stored(harness)

    plan = harness.admin.plan_deployment(IMAGE, DIGESTS[1], spec(max_parallel="2"), "production")
    assert (plan.release, plan.digest, plan.max_parallel, plan.total_waves) == ("new", DIGESTS[1], "2", 2)
    assert [(h.host, h.wave, h.running, h.change) for h in plan.hosts] == [
        ("h1", 1, f"r{first}", "replace"),
        ("h2", 1, f"r{first}", "replace"),
        ("h3", 2, f"r{first}", "replace"),
    ]
    same = harness.admin.plan_deployment(IMAGE, DIGESTS[0], spec(), "production")
    assert {h.change for h in same.hosts} == {"none"} and same.total_waves == 3
    other_app = harness.admin.plan_deployment("registry:5000/api", DIGESTS[2], spec("api"), "production")
    assert {h.change for h in other_app.hosts} == {"install"}

    second = harness.admin.create_release(IMAGE, DIGESTS[1], spec()).id
    deployment = harness.admin.create_deployment(second, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    before = stored(harness)
    back = harness.admin.plan_rollback("web", "production")
    assert back.release == f"r{first}" and back.digest == DIGESTS[0]
    assert {(h.running, h.change) for h in back.hosts} == {(f"r{second}", "replace")}
    assert stored(harness) == before  # neither plan stored a release, a deployment or an audit line


def test_a_plan_refuses_bad_input_with_a_4xx(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    post = harness.http.post
    unknown_env = post("/api/v1/deployments/plan", json=plan_body(DIGESTS[0], "nowhere"), headers=ADMIN)
    assert unknown_env.status_code == 404 and "nowhere" in unknown_env.json()["detail"]
    bad_parallel = post(
        "/api/v1/deployments/plan", json=plan_body(DIGESTS[0], max_parallel="0"), headers=ADMIN
    )
    assert bad_parallel.status_code == 422
    wrong_image = {**plan_body(DIGESTS[0]), "image": "registry:5000/other"}
    assert post("/api/v1/deployments/plan", json=wrong_image, headers=ADMIN).status_code == 422
    nothing_yet = post(
        "/api/v1/rollback/plan", json={"app": "web", "environment": "production"}, headers=ADMIN
    )
    assert nothing_yet.status_code == 404
    ci = {"Authorization": f"Bearer {harness.admin.create_token('gh', 'ci', apps=['api']).token}"}
    assert post("/api/v1/deployments/plan", json=plan_body(DIGESTS[0]), headers=ci).status_code == 403
    assert harness.admin.list_releases() == []


@pytest.fixture
def served(tmp_path: Path, controller_tls: TlsFiles) -> Iterator[Any]:
    with served_controller(f"sqlite:///{tmp_path / 'controller.db'}", tmp_path, controller_tls) as controller:
        yield controller


def test_deploy_dry_run_with_env_asks_the_controller(
    served: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = served.client(served.admin_token)
    with admin:
        join = admin.create_join_token("production")
        with ControllerClient(served.url, None, ca_file=served.ca_file) as anonymous:
            anonymous.register_agent(join.token, "h1", agent_version="test")
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "SHIPYARD_CONTROLLER": served.url,
        "SHIPYARD_CA_FILE": str(served.ca_file),
        "SHIPYARD_TOKEN": served.admin_token,
        "SHIPYARD_HOME": str(tmp_path / "home"),
    }.items():
        monkeypatch.setenv(name, value)
    Path("shipyard.yml").write_text(yaml.safe_dump({"app": "web", "image": IMAGE}))

    result = CliRunner().invoke(cli, ["deploy", f"{IMAGE}@{DIGESTS[4]}", "--env", "production", "--dry-run"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"fleet: production via {served.url}"
    assert "plan (dry run, nothing changed): web release new" in lines[1]
    assert any("h1" in line and "install" in line for line in lines[2:])
    as_json = CliRunner().invoke(cli, ["rollback", "--env", "production", "--dry-run", "--json"])
    assert as_json.exit_code != 0 and "app 'web' is unknown" in as_json.stderr
    with served.client(served.admin_token) as admin:
        assert admin.list_releases() == [] and admin.list_deployments() == []
    assert not (tmp_path / "home").exists()  # nothing local ran
