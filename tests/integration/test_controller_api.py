"""The controller API through its HTTP stack: auth, errors, tokens, releases, locks, audit and metrics."""

from __future__ import annotations

from typing import Any

import pytest
from controller_fixtures import ADMIN_TOKEN, DIGESTS, Harness, db_url, harness, spec  # noqa: F401

from shipyard.errors import ConfigError, ControllerError, LockedError, NotFoundError

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_or_unknown_tokens_are_401(harness: Harness) -> None:
    assert harness.http.get("/api/v1/hosts").status_code == 401
    answer = harness.http.get("/api/v1/hosts", headers=bearer("sya_nope"))
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["kind"] == "UnauthorizedError"


def test_roles_are_ordered_viewer_deployer_admin(harness: Harness) -> None:
    viewer = harness.admin.create_token("dashboard", "viewer").token
    deployer = harness.admin.create_token("ci", "deployer").token
    assert harness.http.get("/api/v1/deployments", headers=bearer(viewer)).status_code == 200
    release = {"image": "registry:5000/web", "digest": DIGESTS[0], "spec": spec()}
    refused = harness.http.post("/api/v1/releases", json=release, headers=bearer(viewer))
    assert refused.status_code == 403 and "deployer role" in refused.json()["detail"]
    assert harness.http.post("/api/v1/releases", json=release, headers=bearer(deployer)).status_code == 201
    tokens = harness.http.post(
        "/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=bearer(deployer)
    )
    assert tokens.status_code == 403


def test_tokens_are_shown_once_and_stored_hashed(harness: Harness) -> None:
    created = harness.admin.create_token("alice", "deployer")
    listed = harness.http.get("/api/v1/tokens", headers=bearer(ADMIN_TOKEN)).json()
    assert created.token not in str(listed)
    assert {"alice", "bootstrap-admin"} <= {row["name"] for row in listed}
    revoked = harness.http.delete(f"/api/v1/tokens/{created.id}", headers=bearer(ADMIN_TOKEN))
    assert revoked.status_code == 204
    assert harness.http.get("/api/v1/hosts", headers=bearer(created.token)).status_code == 401


def test_agent_tokens_reach_only_agent_endpoints(harness: Harness) -> None:
    agent = harness.add_agent("h1")
    token = agent.client._token
    assert token is not None
    assert harness.http.get("/api/v1/hosts", headers=bearer(token)).status_code == 403
    assert harness.http.get("/api/v1/agent/desired", headers=bearer(ADMIN_TOKEN)).status_code == 401


def test_join_tokens_are_one_time_and_may_expire(harness: Harness) -> None:
    join = harness.admin.create_join_token("production")
    client = harness.client(None)
    assert client.register_agent(join.token, "h1").group == "production"
    with pytest.raises(ControllerError, match="already used"):
        client.register_agent(join.token, "h2")
    expired = harness.http.post(
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
    harness: Harness, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = harness.http.request(method, path, json=body, headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("invalid request: ")


def test_an_invalid_spec_snapshot_is_422_naming_the_key(harness: Harness) -> None:
    bad = {**spec(), "port": 0}
    with pytest.raises(ConfigError, match="port"):
        harness.admin.create_release("registry:5000/web", DIGESTS[0], bad)


def test_unknown_ids_are_404(harness: Harness) -> None:
    with pytest.raises(NotFoundError):
        harness.admin.get_deployment(999)
    with pytest.raises(NotFoundError):
        harness.admin.get_release(999)
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    with pytest.raises(NotFoundError, match="environment 'nowhere'"):
        harness.admin.create_deployment(release.id, "nowhere")


def test_locks_refuse_deployments_with_409_naming_the_holder(harness: Harness) -> None:
    harness.add_agent("h1")
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    harness.admin.lock("web", "production", "incident 42")
    with pytest.raises(LockedError, match=r"locked by bootstrap-admin since .* \(incident 42\)"):
        harness.admin.create_deployment(release.id, "production")
    queued = harness.admin.create_deployment(release.id, "production", queue=True)
    assert queued.status == "queued"
    assert [lock.reason for lock in harness.admin.locks()] == ["incident 42"]
    harness.admin.unlock("web", "production")
    assert harness.admin.get_deployment(queued.id).status == "running"
    with pytest.raises(NotFoundError):
        harness.admin.unlock("web", "production")


def test_a_second_deployment_is_409_unless_queued(harness: Harness) -> None:
    harness.add_agent("h1")
    first = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    second = harness.admin.create_release("registry:5000/web", DIGESTS[1], spec())
    running = harness.admin.create_deployment(first.id, "production")
    with pytest.raises(LockedError, match=f"deployment {running.id} .* started by bootstrap-admin"):
        harness.admin.create_deployment(second.id, "production")
    queued = harness.admin.create_deployment(second.id, "production", queue=True)
    harness.deploy_until(running.id, {"succeeded"})
    assert harness.deploy_until(queued.id, {"succeeded"}) == "succeeded"


def test_pause_resume_abort_obey_the_state(harness: Harness) -> None:
    harness.add_agent("h1")
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    deployment = harness.admin.create_deployment(release.id, "production")
    assert harness.admin.pause(deployment.id).status == "paused"
    with pytest.raises(ControllerError, match="only a running deployment"):
        harness.admin.pause(deployment.id)
    assert harness.admin.resume(deployment.id).status == "running"
    assert harness.admin.abort(deployment.id).status == "aborted"
    answer = harness.http.post(f"/api/v1/deployments/{deployment.id}/abort", headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 409


def test_every_action_is_audited_with_actor_and_source(harness: Harness) -> None:
    harness.add_agent("h1")
    harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    actions = {entry.action: entry for entry in harness.admin.audit()}
    assert {"join_token.create", "host.register", "release.create"} <= set(actions)
    assert actions["release.create"].actor == "bootstrap-admin"
    assert actions["release.create"].source_ip == "testclient"


def test_metrics_healthz_and_openapi(harness: Harness) -> None:
    harness.add_agent("h1")
    assert harness.http.get("/healthz").json() == {"status": "ok"}
    metrics = harness.http.get("/metrics").text
    assert 'shipyard_hosts{status="ready"} 1.0' in metrics
    assert "shipyard_controller_request_seconds_bucket" in metrics
    paths = harness.http.get("/openapi.json").json()["paths"]
    assert {"/api/v1/deployments", "/api/v1/agent/desired", "/api/v1/rollback"} <= set(paths)


def test_no_route_answers_500_to_garbage(harness: Harness) -> None:
    routes = harness.http.get("/openapi.json").json()["paths"]
    for path, operations in routes.items():
        concrete = path.replace("{", "").replace("}", "")
        for method in operations:
            for headers in ({}, bearer(ADMIN_TOKEN)):
                for body in (None, {"junk": True}, [1, 2]):
                    answer = harness.http.request(method.upper(), concrete, json=body, headers=headers)
                    assert answer.status_code < 500, (method, path, answer.text)
