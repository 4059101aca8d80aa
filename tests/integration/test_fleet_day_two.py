"""Maintenance and status across an environment, on SQLite and PostgreSQL, with agents reporting by hand.

The real agent carrying maintenance out on real hosts: tests/e2e/test_fleet_day_two_lab.py.
"""

from __future__ import annotations

import pytest
from controller_fixtures import ADMIN, Harness, spec

from shipyard.cli.fleet_ops import status_rows
from shipyard.fleet_api.schemas.agent import AppReport
from shipyard.lab.simulated_host import succeeded_report

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]
DIGEST = "sha256:" + "ce" * 32


def deployed_web(harness: Harness) -> None:
    release = harness.admin.create_release("registry:5000/web", DIGEST, spec("web"))
    deployment = harness.admin.create_deployment(release.id, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"


def test_maintenance_reaches_every_host_of_the_environment_through_desired_state_and_is_audited(
    harness: Harness,
) -> None:
    h1, h2 = harness.add_agent("h1"), harness.add_agent("h2")
    s1 = harness.add_agent("s1", group="staging")
    body = {"app": "web", "environment": "production", "message": "back at 10:00"}
    unknown = harness.http.post("/api/v1/maintenance", json=body, headers=ADMIN)
    assert unknown.status_code == 404 and "app 'web' is unknown" in unknown.json()["detail"]
    deployed_web(harness)
    before = h1.client.desired()
    assert before.apps[0].maintenance is None
    staging = harness.http.post("/api/v1/maintenance", json={**body, "environment": "staging"}, headers=ADMIN)
    assert staging.status_code == 409 and "never been deployed to staging" in staging.json()["detail"]

    window = harness.admin.enter_maintenance("web", "production", "back at 10:00")
    assert (window.app, window.environment, window.message) == ("web", "production", "back at 10:00")
    for agent in (h1, h2):
        after = agent.client.desired()
        assert after.apps[0].maintenance is not None and after.apps[0].maintenance.message == "back at 10:00"
        assert after.version != before.version
    assert s1.client.desired().apps == []  # staging never had web
    changed = harness.admin.enter_maintenance("web", "production", "back at 11:00")  # a new message
    assert changed.message == "back at 11:00" and len(harness.admin.maintenance("production")) == 1
    assert h1.client.desired().apps[0].maintenance.message == "back at 11:00"  # type: ignore[union-attr]

    harness.admin.leave_maintenance("web", "production")
    assert h1.client.desired().apps[0].maintenance is None
    assert h1.client.desired().version == before.version  # the same desired state as before it
    again = harness.http.delete("/api/v1/maintenance/web/production", headers=ADMIN)
    assert again.status_code == 404 and "not in maintenance" in again.json()["detail"]
    actions = [entry.action for entry in harness.admin.audit(action=None)]
    assert actions[:3] == ["maintenance.off", "maintenance.on", "maintenance.on"]


def test_maintenance_needs_a_deployer_and_refuses_a_multi_line_message_changing_nothing(
    harness: Harness,
) -> None:
    harness.add_agent("h1")
    deployed_web(harness)
    viewer = harness.admin.create_token("watcher", "viewer").token
    headers = {"Authorization": f"Bearer {viewer}"}
    body = {"app": "web", "environment": "production"}
    assert harness.http.post("/api/v1/maintenance", json=body, headers=headers).status_code == 403
    assert harness.http.get("/api/v1/maintenance", headers=headers).json() == []
    broken = harness.http.post("/api/v1/maintenance", json={**body, "message": "a\nb"}, headers=ADMIN)
    assert broken.status_code == 422
    long = harness.http.post("/api/v1/maintenance", json={**body, "message": "x" * 501}, headers=ADMIN)
    assert long.status_code == 422
    assert harness.admin.maintenance() == []


def test_status_rows_come_from_each_host_s_reports_with_maintenance_and_free_disk(harness: Harness) -> None:
    h1, h2 = harness.add_agent("h1"), harness.add_agent("h2")
    harness.add_agent("s1", group="staging")
    deployed_web(harness)
    desired = h1.client.desired().apps[0]
    resting = succeeded_report(desired).model_copy(update={"maintenance": True, "health": "unhealthy"})
    h1.client.report([resting], disk_free=3 << 30)
    h2.client.report([succeeded_report(desired)], disk_free=None)
    rows = status_rows(harness.admin.hosts("production"), None)
    found = [
        (r["host"], r["app"], r["active_release"], r["health"], r["maintenance"], r["disk_free"])
        for r in rows
    ]
    assert found == [
        ("h1", "web", f"r{desired.release_id}", "unhealthy", True, 3 << 30),
        ("h2", "web", f"r{desired.release_id}", "healthy", False, None),
    ]
    assert status_rows(harness.admin.hosts("production"), "api") == []
    stored = harness.http.get("/api/v1/hosts?group=production", headers=ADMIN).json()
    assert [app["maintenance"] for host in stored for app in host["apps"]] == [True, False]
    plain = AppReport(app="web", active_release=desired.release_id, health="healthy", outcome="succeeded")
    h1.client.report([plain])  # maintenance left: the report says so by leaving the key out
    assert [r["maintenance"] for r in status_rows(harness.admin.hosts("production"), "web")] == [False, False]


def test_a_log_request_reaches_the_hosts_of_its_environment_and_collects_their_lines(
    harness: Harness,
) -> None:
    h1, h2 = harness.add_agent("h1"), harness.add_agent("h2")
    s1 = harness.add_agent("s1", group="staging")
    deployed_web(harness)
    before = h1.client.desired()
    body = {"app": "web", "environment": "production", "grep": "GET", "since": 600, "tail": 20}
    request = harness.http.post("/api/v1/logs", json=body, headers=ADMIN)
    assert request.status_code == 201, request.text
    opened = request.json()
    assert (opened["hosts"], opened["finished"], opened["open"]) == (["h1", "h2"], [], True)
    carried = h1.client.desired()
    assert carried.version != before.version
    assert [(r.id, r.app, r.grep, r.since, r.tail, r.follow) for r in carried.logs] == [
        (opened["id"], "web", "GET", 600, 20, 0)
    ]
    assert s1.client.desired().logs == []  # another environment's request

    assert h1.client.post_logs(opened["id"], ["GET / 200", "GET /a 404"])
    assert h2.client.post_logs(opened["id"], [], finished=True, message="web runs no container here")
    assert h1.client.post_logs(opened["id"], ["GET /b 200"], finished=True)
    assert not s1.client.post_logs(opened["id"], ["not mine"])  # not its environment: dropped
    lines = harness.admin.read_logs(opened["id"])
    assert [(line.host, line.line) for line in lines.lines] == [
        ("h1", "GET / 200"),
        ("h1", "GET /a 404"),
        ("h1", "GET /b 200"),
    ]
    assert lines.finished == ["h1", "h2"] and lines.messages == {"h2": "web runs no container here"}
    later = harness.admin.read_logs(opened["id"], after=lines.lines[1].id)
    assert [line.line for line in later.lines] == ["GET /b 200"]

    harness.admin.close_logs(opened["id"])
    assert not h1.client.post_logs(opened["id"], ["too late"])
    assert harness.admin.read_logs(opened["id"]).open is False
    assert "logs.request" in [entry.action for entry in harness.admin.audit()]


def test_log_requests_need_a_deployer_and_bounded_options(harness: Harness) -> None:
    harness.add_agent("h1")
    deployed_web(harness)
    viewer = {"Authorization": f"Bearer {harness.admin.create_token('watcher', 'viewer').token}"}
    body = {"app": "web", "environment": "production"}
    assert harness.http.post("/api/v1/logs", json=body, headers=viewer).status_code == 403
    for bad in ({"tail": 10_001}, {"follow": 601}, {"process": "Web;"}, {"grep": "a\nb"}, {"since": 0}):
        answer = harness.http.post("/api/v1/logs", json={**body, **bad}, headers=ADMIN)
        assert answer.status_code == 422, bad
    unknown = harness.http.post("/api/v1/logs", json={**body, "app": "api"}, headers=ADMIN)
    assert unknown.status_code == 404
    assert harness.http.get("/api/v1/logs/999", headers=ADMIN).status_code == 404
