"""Prune requests on SQLite and PostgreSQL: the API, the generation in desired state, reports, schedules.

Agents here are FakeAgents reporting by hand; test_fleet_prune.py runs the real agent on a real engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from controller_fixtures import ADMIN, Harness, spec

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.scheduler import Scheduler
from shipyard.controller.store import schedule_store
from shipyard.controller.store.pipeline_models import Schedule
from shipyard.fleet_api.schemas.agent import PruneReport

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]
DIGEST = "sha256:" + "cd" * 32
IMAGE = "registry:5000/web@sha256:" + "01" * 32


def context_of(harness: Harness) -> ControllerContext:
    context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
    return context


def deployed_web(harness: Harness) -> None:
    release = harness.admin.create_release("registry:5000/web", DIGEST, spec("web"))
    deployment = harness.admin.create_deployment(release.id, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"


def test_a_prune_reaches_every_host_of_the_environment_and_collects_what_each_removed(
    harness: Harness,
) -> None:
    h1, h2 = harness.add_agent("h1"), harness.add_agent("h2")
    harness.add_agent("s1", group="staging")
    refused = harness.http.post(
        "/api/v1/prunes", json={"app": "web", "environment": "production"}, headers=ADMIN
    )
    assert refused.status_code == 404 and "app 'web' is unknown" in refused.json()["detail"]
    deployed_web(harness)
    before = h1.client.desired()
    assert before.apps[0].prune is None

    staging = harness.http.post(
        "/api/v1/prunes", json={"app": "web", "environment": "staging"}, headers=ADMIN
    )
    assert staging.status_code == 409 and "never been deployed to staging" in staging.json()["detail"]
    prune = harness.admin.request_prune("web", "production")
    assert prune.waiting == ["h1", "h2"] and prune.hosts == []
    after = h1.client.desired()
    assert after.apps[0].prune == prune.id and after.version != before.version

    removed = ["web-r0-blue", IMAGE]
    h1.client.report(
        [],
        prunes=[PruneReport(app="web", prune=prune.id, outcome="succeeded", removed=removed)],
        disk_free=7 << 30,
    )
    h2.client.report(
        [],
        prunes=[PruneReport(app="web", prune=prune.id, outcome="failed", message="engine away")],
        disk_free=None,
    )
    h2.client.report([], prunes=[PruneReport(app="api", prune=prune.id, outcome="succeeded")])  # not web's
    done = harness.admin.get_prune(prune.id)
    assert done.waiting == []
    assert [(h.host, h.outcome, h.removed, h.disk_free) for h in done.hosts] == [
        ("h1", "succeeded", removed, 7 << 30),
        ("h2", "failed", [], None),
    ]
    assert done.summary == f"prune {prune.id}: h1 removed 2, 7.0 GiB free; h2 failed: engine away"
    free = {h.name: h.disk_free for h in harness.admin.hosts()}
    assert free == {"h1": 7 << 30, "h2": None, "s1": None}
    listed = harness.http.get("/api/v1/prunes?app=web", headers=ADMIN).json()
    assert [p["id"] for p in listed] == [prune.id]
    assert harness.http.get("/api/v1/prunes?app=nope", headers=ADMIN).status_code == 404
    assert harness.http.get("/api/v1/prunes/999999", headers=ADMIN).status_code == 404
    assert "prune.request" in {entry.action for entry in harness.admin.audit()}


def test_a_scheduled_prune_asks_the_hosts_and_its_last_result_says_what_each_removed(
    harness: Harness,
) -> None:
    h1 = harness.add_agent("h1")
    deployed_web(harness)
    body = {
        "app": "web",
        "cron": "0 3 * * *",
        "timezone": "Asia/Tokyo",
        "action": "prune",
        "environment": "production",
    }
    created = harness.http.post("/api/v1/schedules", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    with_ref = {**body, "ref": "c" * 40}
    assert harness.http.post("/api/v1/schedules", json=with_ref, headers=ADMIN).status_code == 422
    staging = harness.http.post("/api/v1/schedules", json={**body, "environment": "staging"}, headers=ADMIN)
    assert staging.status_code == 201

    due = datetime.fromisoformat(created.json()["next_run_at"]).astimezone(UTC)
    requested: list[int] = []
    with context_of(harness).db.transaction() as session:
        jobs = schedule_store.run_due(session, now=due + timedelta(seconds=2), prunes_requested=requested)
    assert jobs == [] and len(requested) == 1
    context_of(harness).notifier.notify()  # as the scheduler's round does when it requested prunes
    [prune_id] = requested
    rows = {s["environment"]: s for s in harness.http.get("/api/v1/schedules", headers=ADMIN).json()}
    assert rows["production"]["last_result"] == f"prune {prune_id}: waiting for h1"
    assert rows["staging"]["last_result"].startswith("not run: environment 'staging' is unknown")

    assert h1.client.desired().apps[0].prune == prune_id
    report = PruneReport(app="web", prune=prune_id, outcome="succeeded", removed=[IMAGE])
    h1.client.report([], prunes=[report], disk_free=3 << 20)
    rows = {s["environment"]: s for s in harness.http.get("/api/v1/schedules", headers=ADMIN).json()}
    assert rows["production"]["last_result"] == f"prune {prune_id}: h1 removed 1, 3.0 MiB free"
    assert harness.admin.get_prune(prune_id).schedule_id == created.json()["id"]


def test_the_schedulers_round_wakes_the_hosts_long_polls_when_it_requests_a_prune(harness: Harness) -> None:
    h1 = harness.add_agent("h1")
    deployed_web(harness)
    body = {"app": "web", "cron": "0 3 * * *", "action": "prune", "environment": "production"}
    created = harness.http.post("/api/v1/schedules", json=body, headers=ADMIN).json()
    context = context_of(harness)
    with context.db.transaction() as session:
        row = session.get(Schedule, created["id"])
        assert row is not None
        row.next_run_at = context.now() - timedelta(seconds=1)  # due now
    generation = context.notifier.generation
    assert Scheduler(context, interval=60).run_once() == []  # a prune queues no job
    assert context.notifier.generation > generation
    [prune] = harness.http.get("/api/v1/prunes", headers=ADMIN).json()
    assert prune["schedule_id"] == created["id"] and h1.client.desired().apps[0].prune == prune["id"]
