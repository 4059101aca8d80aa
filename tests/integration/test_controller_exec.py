"""Exec sessions through the controller's API on SQLite and PostgreSQL: the relay, its refusals, its audit.

Both sockets are spoken by hand here; tests/e2e/test_fleet_exec.py runs the real CLI and agents.
"""

from __future__ import annotations

import json

import pytest
from controller_fixtures import ADMIN, ADMIN_TOKEN, Harness, spec, wait_for

from shipyard.controller.server.exec_relay import ExecRelay

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]
DIGEST = "sha256:" + "01" * 32


def bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    """A fresh header dict: the test client adds the upgrade's headers to the one it is given."""
    return {"Authorization": f"Bearer {token}"}


def relay_of(harness: Harness) -> ExecRelay:
    relay: ExecRelay = harness.http.app.state.context.exec_relay  # type: ignore[attr-defined]
    return relay


def opened_session(harness: Harness, host: str = "h1") -> int:
    release = harness.admin.create_release("registry:5000/web", DIGEST, spec("web"))
    deployment = harness.admin.create_deployment(release.id, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    body = {"app": "web", "environment": "production", "host": host, "argv": ["sh", "-c", "read x"]}
    answer = harness.http.post("/api/v1/exec", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["kind"], created["host"], created["status"]) == ("exec", host, "pending")
    return int(created["id"])


def test_the_relay_passes_both_ways_and_records_the_exit_code(harness: Harness) -> None:
    h1, h2 = harness.add_agent("h1"), harness.add_agent("h2")
    session = opened_session(harness)
    desired = h1.client.desired()
    assert [order.id for order in desired.execs] == [session] and desired.tasks == []
    assert h2.client.desired().execs == []

    with harness.http.websocket_connect(f"/api/v1/exec/{session}?timeout=30", headers=bearer()) as client:
        client.send_text(json.dumps({"type": "start", "tty": False}))
        wait_for(lambda: len(relay_of(harness)) == 1, timeout=10, what="the client side to wait")
        # Another host's agent may not attach; the session's own may.
        with harness.http.websocket_connect(
            f"/api/v1/agent/exec/{session}", headers=bearer(h2.token)
        ) as other:
            refused = json.loads(other.receive_text())
            assert refused["status"] == 403 and "not for this host" in refused["message"]
        with harness.http.websocket_connect(
            f"/api/v1/agent/exec/{session}", headers=bearer(h1.token)
        ) as agent:
            assert json.loads(client.receive_text())["type"] == "attached"
            assert json.loads(agent.receive_text()) == {"type": "start", "tty": False}
            client.send_bytes(b"hello\n")
            assert agent.receive_bytes() == b"hello\n"
            agent.send_bytes(b"\x01got:hello\n")
            agent.send_bytes(b"\x02oops\n")
            agent.send_text(json.dumps({"type": "exit", "code": 3}))
            assert client.receive_bytes() == b"\x01got:hello\n"
            assert client.receive_bytes() == b"\x02oops\n"
            assert json.loads(client.receive_text()) == {"type": "exit", "code": 3}

    audit = harness.http.get("/api/v1/audit?action=exec.closed", headers=ADMIN).json()
    assert audit[0]["detail"]["exit_code"] == 3 and audit[0]["detail"]["task"] == session
    assert audit[0]["detail"]["reason"] == "the command exited with 3"
    opened = harness.http.get("/api/v1/audit?action=exec.opened", headers=ADMIN).json()
    assert opened[0]["target"] == "web/production/h1" and opened[0]["detail"]["argv"] == [
        "sh",
        "-c",
        "read x",
    ]


def test_only_the_deployer_that_opened_a_session_attaches_and_a_viewer_opens_none(harness: Harness) -> None:
    harness.add_agent("h1")
    session = opened_session(harness)
    other = harness.admin.create_token("other-deployer", "deployer").token
    viewer = harness.admin.create_token("eyes", "viewer").token
    body = {"app": "web", "environment": "production", "host": "h1", "argv": ["true"]}
    answer = harness.http.post("/api/v1/exec", json=body, headers=bearer(viewer))
    assert answer.status_code == 403 and "needs the deployer role" in answer.json()["detail"]
    for token, status, words in (
        (other, 403, "belongs to 'bootstrap-admin'"),
        (viewer, 403, "needs the deployer role"),
        ("not-a-token", 401, "unknown or revoked"),
    ):
        with harness.http.websocket_connect(f"/api/v1/exec/{session}", headers=bearer(token)) as client:
            refused = json.loads(client.receive_text())
        assert refused["status"] == status and words in refused["message"], refused
    unknown = harness.http.post("/api/v1/exec", json={**body, "host": "h9"}, headers=ADMIN)
    assert unknown.status_code == 404 and "host h9 is not in production" in unknown.json()["detail"]


def test_a_session_no_agent_picks_up_is_cancelled_after_its_timeout(harness: Harness) -> None:
    h1 = harness.add_agent("h1")
    session = opened_session(harness)
    with harness.http.websocket_connect(f"/api/v1/exec/{session}?timeout=1", headers=bearer()) as client:
        client.send_text(json.dumps({"type": "start", "tty": False}))
        ended = json.loads(client.receive_text())
    assert ended["type"] == "error"
    assert ended["message"] == (
        "no agent of h1 attached within 1 s (is the agent of h1 running?); the session was cancelled."
    )
    assert harness.admin.get_task(session).status == "failed"
    assert h1.client.desired().execs == []
