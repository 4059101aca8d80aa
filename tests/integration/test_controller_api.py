"""The controller API through its HTTP stack: auth, errors, tokens, releases, locks, audit and metrics."""

from __future__ import annotations

from typing import Any

import pytest
from controller_fixtures import ADMIN_TOKEN, DIGESTS, Harness, spec

from shipyard.errors import ConfigError, ControllerError, LockedError, NotFoundError

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_or_unknown_tokens_are_401(controller_harness: Harness) -> None:
    assert controller_harness.http.get("/api/v1/hosts").status_code == 401
    answer = controller_harness.http.get("/api/v1/hosts", headers=bearer("sya_nope"))
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["kind"] == "UnauthorizedError"


def test_roles_are_ordered_viewer_deployer_admin(controller_harness: Harness) -> None:
    viewer = controller_harness.admin.create_token("dashboard", "viewer").token
    deployer = controller_harness.admin.create_token("ci", "deployer").token
    assert controller_harness.http.get("/api/v1/deployments", headers=bearer(viewer)).status_code == 200
    release = {"image": "registry:5000/web", "digest": DIGESTS[0], "spec": spec()}
    refused = controller_harness.http.post("/api/v1/releases", json=release, headers=bearer(viewer))
    assert refused.status_code == 403 and "deployer role" in refused.json()["detail"]
    assert (
        controller_harness.http.post("/api/v1/releases", json=release, headers=bearer(deployer)).status_code
        == 201
    )
    tokens = controller_harness.http.post(
        "/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=bearer(deployer)
    )
    assert tokens.status_code == 403


def test_tokens_are_shown_once_and_stored_hashed(controller_harness: Harness) -> None:
    created = controller_harness.admin.create_token("alice", "deployer")
    listed = controller_harness.http.get("/api/v1/tokens", headers=bearer(ADMIN_TOKEN)).json()
    assert created.token not in str(listed)
    assert {"alice", "bootstrap-admin"} <= {row["name"] for row in listed}
    revoked = controller_harness.http.delete(f"/api/v1/tokens/{created.id}", headers=bearer(ADMIN_TOKEN))
    assert revoked.status_code == 204
    assert controller_harness.http.get("/api/v1/hosts", headers=bearer(created.token)).status_code == 401


def test_agent_tokens_reach_only_agent_endpoints(controller_harness: Harness) -> None:
    agent = controller_harness.add_agent("h1")
    token = agent.client._token
    assert token is not None
    assert controller_harness.http.get("/api/v1/hosts", headers=bearer(token)).status_code == 403
    assert (
        controller_harness.http.get("/api/v1/agent/desired", headers=bearer(ADMIN_TOKEN)).status_code == 401
    )


def test_a_removed_host_loses_its_agent_token(controller_harness: Harness) -> None:
    agent = controller_harness.add_agent("h1")
    release = controller_harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    deployment = controller_harness.admin.create_deployment(release.id, "production")
    agent.sync()
    removed = controller_harness.http.delete("/api/v1/hosts/h1", headers=bearer(ADMIN_TOKEN))
    assert removed.status_code == 204
    with pytest.raises(ControllerError, match="refused the token"):
        agent.client.desired()
    assert controller_harness.admin.hosts() == []
    assert controller_harness.admin.get_deployment(deployment.id).hosts == []


def test_join_tokens_are_one_time_and_may_expire(controller_harness: Harness) -> None:
    join = controller_harness.admin.create_join_token("production")
    client = controller_harness.client(None)
    assert client.register_agent(join.token, "h1").group == "production"
    with pytest.raises(ControllerError, match="already used"):
        client.register_agent(join.token, "h2")
    expired = controller_harness.http.post(
        "/api/v1/join-tokens", json={"group": "production", "expires_in": 0.001}, headers=bearer(ADMIN_TOKEN)
    ).json()["token"]
    with pytest.raises(ControllerError, match="expired"):
        client.register_agent(expired, "h3")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/releases", {"image": "x"}),
        ("POST", "/api/v1/releases", {"image": "registry:5000/web", "digest": "sha256:short", "spec": {}}),
        ("POST", "/api/v1/deployments", {"release_id": "one", "environment": "production"}),
        ("POST", "/api/v1/deployments", {"release_id": 1, "environment": "production", "bogus": 1}),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "root"}),
        ("POST", "/api/v1/locks", {"app": "web"}),
        ("GET", "/api/v1/releases?limit=0", None),
    ],
)
def test_malformed_requests_are_422_with_a_readable_detail(
    controller_harness: Harness, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = controller_harness.http.request(method, path, json=body, headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("invalid request: ")


def test_an_invalid_spec_snapshot_is_422_naming_the_key(controller_harness: Harness) -> None:
    bad = {**spec(), "port": 0}
    with pytest.raises(ConfigError, match="port"):
        controller_harness.admin.create_release("registry:5000/web", DIGESTS[0], bad)


def test_unknown_ids_are_404(controller_harness: Harness) -> None:
    with pytest.raises(NotFoundError):
        controller_harness.admin.get_deployment(999)
    with pytest.raises(NotFoundError):
        controller_harness.admin.get_release(999)
    release = controller_harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    with pytest.raises(NotFoundError, match="environment 'nowhere'"):
        controller_harness.admin.create_deployment(release.id, "nowhere")


def test_locks_refuse_deployments_with_409_naming_the_holder(controller_harness: Harness) -> None:
    controller_harness.add_agent("h1")
    release = controller_harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    controller_harness.admin.lock("web", "production", "incident 42")
    with pytest.raises(LockedError, match=r"locked by bootstrap-admin since .* \(incident 42\)"):
        controller_harness.admin.create_deployment(release.id, "production")
    queued = controller_harness.admin.create_deployment(release.id, "production", queue=True)
    assert queued.status == "queued"
    assert [lock.reason for lock in controller_harness.admin.locks()] == ["incident 42"]
    controller_harness.admin.unlock("web", "production")
    assert controller_harness.admin.get_deployment(queued.id).status == "running"
    with pytest.raises(NotFoundError):
        controller_harness.admin.unlock("web", "production")


def test_a_second_deployment_is_409_unless_queued(controller_harness: Harness) -> None:
    controller_harness.add_agent("h1")
    first = controller_harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    second = controller_harness.admin.create_release("registry:5000/web", DIGESTS[1], spec())
    running = controller_harness.admin.create_deployment(first.id, "production")
    with pytest.raises(LockedError, match=f"deployment {running.id} .* started by bootstrap-admin"):
        controller_harness.admin.create_deployment(second.id, "production")
    queued = controller_harness.admin.create_deployment(second.id, "production", queue=True)
    controller_harness.deploy_until(running.id, {"succeeded"})
    assert controller_harness.deploy_until(queued.id, {"succeeded"}) == "succeeded"


def test_pause_resume_abort_obey_the_state(controller_harness: Harness) -> None:
    controller_harness.add_agent("h1")
    release = controller_harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    deployment = controller_harness.admin.create_deployment(release.id, "production")
    assert controller_harness.admin.pause(deployment.id).status == "paused"
    with pytest.raises(ControllerError, match="only a running deployment"):
        controller_harness.admin.pause(deployment.id)
    assert controller_harness.admin.resume(deployment.id).status == "running"
    assert controller_harness.admin.abort(deployment.id).status == "aborted"
    answer = controller_harness.http.post(
        f"/api/v1/deployments/{deployment.id}/abort", headers=bearer(ADMIN_TOKEN)
    )
    assert answer.status_code == 409


def test_every_action_is_audited_with_actor_and_source(controller_harness: Harness) -> None:
    controller_harness.add_agent("h1")
    controller_harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    actions = {entry.action: entry for entry in controller_harness.admin.audit()}
    assert {"join_token.create", "host.register", "release.create"} <= set(actions)
    assert actions["release.create"].actor == "bootstrap-admin"
    assert actions["release.create"].source_ip == "testclient"


def test_metrics_healthz_and_openapi(controller_harness: Harness) -> None:
    controller_harness.add_agent("h1").sync()  # converging until its first report
    assert controller_harness.http.get("/healthz").json() == {"status": "ok"}
    metrics = controller_harness.http.get("/metrics").text
    assert 'shipyard_hosts{status="ready"} 1.0' in metrics
    assert "shipyard_controller_request_seconds_bucket" in metrics
    paths = controller_harness.http.get("/openapi.json").json()["paths"]
    assert {"/api/v1/deployments", "/api/v1/agent/desired", "/api/v1/rollback"} <= set(paths)


def test_no_route_answers_500_to_garbage(controller_harness: Harness) -> None:
    routes = controller_harness.http.get("/openapi.json").json()["paths"]
    for path, operations in routes.items():
        concrete = path.replace("{", "").replace("}", "")
        for method in operations:
            for headers in ({}, bearer(ADMIN_TOKEN)):
                for body in (None, {"junk": True}, [1, 2]):
                    answer = controller_harness.http.request(
                        method.upper(), concrete, json=body, headers=headers
                    )
                    assert answer.status_code < 500, (method, path, answer.text)
