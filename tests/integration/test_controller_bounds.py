"""Bounded input and a tick that one bad row cannot stop: every test on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from controller_fixtures import ADMIN_TOKEN, DIGESTS, Harness, spec, wait_for
from sqlalchemy import select, update

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store.models import Deployment, Host

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

MAX_ID = 2**63 - 1


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _context(harness: Harness) -> ControllerContext:
    context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
    return context


def test_a_poisoned_deployment_does_not_stop_the_others(controller_harness: Harness) -> None:
    harness = controller_harness
    context = _context(harness)
    harness.add_agent("h1")
    silent = harness.add_agent("h2")
    harness.agents.remove(silent)  # never reports again: lost-host detection must still see it
    web = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec("web")).id
    poisoned = harness.admin.create_deployment(web, "production").id
    with context.db.transaction() as session:
        # Values no engine rule can read, written straight to the row as a damaged database would hold them.
        session.execute(
            update(Deployment)
            .where(Deployment.id == poisoned)
            .values(current_wave=0, total_waves=0, max_parallel="bogus")
        )
    api = harness.admin.create_release("registry:5000/api", DIGESTS[1], spec("api")).id
    healthy = harness.admin.create_deployment(api, "production").id  # its inline tick must not fail
    harness.agents[0].sync()
    with context.db.transaction() as session:
        session.execute(
            update(Host).where(Host.name == "h2").values(last_seen=context.now() - timedelta(seconds=3600))
        )
    context.presence.forget(_host_id(harness, "h2"))
    wait_for(
        lambda: harness.admin.get_deployment(healthy).status in {"succeeded", "rolled_back"},
        what="the healthy deployment to finish",
    )
    wait_for(
        lambda: {h.name: h.status for h in harness.admin.hosts()}["h2"] == "lost",
        what="h2 to be marked lost",
    )
    assert harness.admin.get_deployment(poisoned).status == "running"  # left alone, retried each tick


def _host_id(harness: Harness, name: str) -> int:
    context = _context(harness)
    with context.db.read() as session:
        host_id: int = session.scalars(select(Host.id).where(Host.name == name)).one()
        return host_id


def test_a_huge_monitor_in_a_stored_deployment_still_lets_the_tick_run(controller_harness: Harness) -> None:
    harness = controller_harness
    context = _context(harness)
    agent = harness.add_agent("h1")
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec("web")).id
    deployment = harness.admin.create_deployment(release, "production").id
    with context.db.transaction() as session:
        session.execute(update(Deployment).where(Deployment.id == deployment).values(monitor=1e300))
    agent.sync()  # healthy: the monitor period starts, and would end past any datetime
    wait_for(
        lambda: [h.outcome for h in harness.admin.get_deployment(deployment).hosts] == ["healthy"],
        what="h1 to be healthy and monitored",
    )
    assert context.driver.tick() is False  # no OverflowError: the period simply never ends
    assert context.driver.next_due is None
    # The tick also runs inline after a registration: the new host gets its token.
    assert harness.add_agent("h2").token.startswith("syg_")


def test_register_answers_with_the_token_when_the_tick_after_it_fails(
    controller_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = controller_harness
    context = _context(harness)
    join = harness.admin.create_join_token("production").token

    def broken_tick(**_kwargs: Any) -> bool:
        raise RuntimeError("the tick failed")

    monkeypatch.setattr(context.driver, "tick", broken_tick)
    answer = harness.http.post("/api/v1/agent/register", json={"name": "h1"}, headers=bearer(join))
    assert answer.status_code == 201, answer.text
    token = answer.json()["agent_token"]
    monkeypatch.undo()
    assert harness.http.get("/api/v1/agent/desired", headers=bearer(token)).status_code == 200
    again = harness.http.post("/api/v1/agent/register", json={"name": "h9"}, headers=bearer(join))
    assert again.status_code == 401  # the join token was spent exactly once, by the answered request


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"/api/v1/deployments/{MAX_ID + 1}", None),
        ("get", f"/api/v1/releases/{MAX_ID + 1}", None),
        ("delete", f"/api/v1/tokens/{MAX_ID + 1}", None),
        ("post", f"/api/v1/deployments/{MAX_ID + 1}/pause", None),
        ("get", "/api/v1/deployments?limit=1e300", None),
        ("post", "/api/v1/deployments", {"release_id": MAX_ID + 1, "environment": "production"}),
        ("post", "/api/v1/rollback", {"app": "web", "environment": "production", "release_id": MAX_ID + 1}),
        ("post", "/api/v1/join-tokens", {"group": "production", "expires_in": 1e300}),
        ("post", "/api/v1/join-tokens", {"group": "production", "expires_in": 10**12}),
    ],
)
def test_numbers_out_of_range_are_422(
    controller_harness: Harness, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = controller_harness.http.request(method, path, json=body, headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 422, answer.text
    assert answer.json()["kind"] == "ValidationError"


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_json_numbers_are_422(controller_harness: Harness, literal: str) -> None:
    content = '{"group": "production", "expires_in": ' + literal + "}"
    headers = {**bearer(ADMIN_TOKEN), "content-type": "application/json"}
    answer = controller_harness.http.post("/api/v1/join-tokens", content=content, headers=headers)
    assert answer.status_code == 422, answer.text


def test_ids_up_to_the_largest_are_answered_404(controller_harness: Harness) -> None:
    for path in (f"/api/v1/deployments/{MAX_ID}", f"/api/v1/releases/{MAX_ID}"):
        answer = controller_harness.http.get(path, headers=bearer(ADMIN_TOKEN))
        assert answer.status_code == 404, answer.text
    revoked = controller_harness.http.delete(f"/api/v1/tokens/{MAX_ID}", headers=bearer(ADMIN_TOKEN))
    assert revoked.status_code == 404


def test_a_report_naming_the_largest_release_id_is_stored(controller_harness: Harness) -> None:
    harness = controller_harness
    agent = harness.add_agent("h1")
    harness.admin.create_release("registry:5000/web", DIGESTS[0], spec("web"))
    report = {"apps": [{"app": "web", "active_release": MAX_ID, "release": MAX_ID, "health": "healthy"}]}
    answer = harness.http.post("/api/v1/agent/report", json=report, headers=bearer(agent.token))
    assert answer.status_code == 200, answer.text
    stored = harness.http.get("/api/v1/hosts/h1", headers=bearer(ADMIN_TOKEN)).json()
    assert [app["active_release"] for app in stored["apps"]] == [MAX_ID]
    report["apps"][0]["release"] = MAX_ID + 1
    refused = harness.http.post("/api/v1/agent/report", json=report, headers=bearer(agent.token))
    assert refused.status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/deployments?app=web%00", None),
        ("get", "/api/v1/deployments?status=bogus", None),
        ("get", "/api/v1/audit?actor=a%00", None),
        ("get", "/api/v1/hosts?group=prod%00", None),
        ("get", "/api/v1/hosts/h%00", None),
        ("delete", "/api/v1/locks/web/prod%00", None),
        ("post", "/api/v1/locks", {"app": "web", "environment": "production", "reason": "nul\x00"}),
        ("post", "/api/v1/tokens", {"name": "ci\x00", "role": "viewer"}),
        ("post", "/api/v1/tokens", {"name": "ci\n", "role": "viewer"}),
    ],
)
def test_nul_and_control_characters_are_422_not_a_database_error(
    controller_harness: Harness, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = controller_harness.http.request(method, path, json=body, headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 422, answer.text


def test_a_report_with_nul_is_refused_and_others_are_stored(
    controller_harness: Harness,
) -> None:
    harness = controller_harness
    harness.admin.create_release("registry:5000/web", DIGESTS[0], spec("web"))
    first, second = harness.add_agent("h1"), harness.add_agent("h2")
    bad = {"apps": [{"app": "web", "message": "boom\x00"}]}
    refused = harness.http.post("/api/v1/agent/report", json=bad, headers=bearer(first.token))
    assert refused.status_code == 422, refused.text
    good = {"apps": [{"app": "web", "message": "multi\nline", "health": "healthy"}]}
    stored = harness.http.post("/api/v1/agent/report", json=good, headers=bearer(second.token))
    assert stored.status_code == 200, stored.text


def test_a_release_spec_with_a_non_finite_number_is_422(controller_harness: Harness) -> None:
    body = (
        '{"image": "registry:5000/web", "digest": "' + DIGESTS[0] + '", '
        '"spec": {"app": "web", "image": "registry:5000/web", "rollout": {"monitor": Infinity}}}'
    )
    headers = {**bearer(ADMIN_TOKEN), "content-type": "application/json"}
    answer = controller_harness.http.post("/api/v1/releases", content=body, headers=headers)
    assert answer.status_code == 422, answer.text


def test_the_openapi_document_declares_the_error_answers(controller_harness: Harness) -> None:
    document = controller_harness.http.get("/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorOut"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for code in declared:
                assert responses[str(code)]["content"]["application/json"]["schema"] == error, (path, code)
            if path.startswith("/api/v1/"):
                assert 401 in declared, f"{method} {path} declares 401"
            if path in (
                "/hooks/github/{app}",
                "/hooks/gitlab/{app}",
            ):  # checks its raw body, app and headers itself: no 422
                assert declared == {400, 401, 404, 413, 503}, declared
                assert {"200", "202"} <= set(responses)
                continue
            if "requestBody" in operation:
                assert {400, 413, 422} <= declared, f"{method} {path} declares its body's refusals"
            if operation.get("parameters"):
                assert 422 in declared, f"{method} {path} declares 422"
    assert "HTTPValidationError" not in document["components"]["schemas"]
