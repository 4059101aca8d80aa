"""Tasks on SQLite and PostgreSQL: the release phase gating a deployment, the task API, the agents' word.

Agents here are FakeAgents speaking the API by hand; tests/e2e/test_fleet_tasks.py runs the real agents.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from controller_fixtures import (
    ADMIN,
    ADMIN_TOKEN,
    FakeAgent,
    Harness,
    controller_settings,
    running_controller,
    spec,
    wait_for,
)
from sqlalchemy import func, select

from shipyard.cli import task_cmd
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.steps import JobRun, wait_for_deployment
from shipyard.controller.store.models import Task
from shipyard.errors import ControllerAuthError, ControllerError, DeployFailedError, NotFoundError
from shipyard.fleet_api.schemas.tasks import TaskUpdate

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]
DIGESTS = ["sha256:" + f"{n:02x}" * 32 for n in range(1, 6)]


def context_of(harness: Harness) -> ControllerContext:
    context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
    return context


def release(harness: Harness, number: int, **extra: Any) -> int:
    return harness.admin.create_release("registry:5000/web", DIGESTS[number], {**spec("web"), **extra}).id


def deployed(harness: Harness, number: int, **extra: Any) -> int:
    release_id = release(harness, number, **extra)
    deployment = harness.admin.create_deployment(release_id, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    return release_id


def three_hosts(harness: Harness) -> list[FakeAgent]:
    return [harness.add_agent(name) for name in ("h2", "h1", "h3")]


def task_count(harness: Harness) -> int:
    with context_of(harness).db.read() as session:
        return session.scalar(select(func.count()).select_from(Task)) or 0


def test_a_failing_release_phase_fails_the_deployment_and_no_host_is_touched(harness: Harness) -> None:
    hosts = three_hosts(harness)
    first = deployed(harness, 0)
    target = release(harness, 1, release=["bin/rails", "db:migrate"])
    deployment = harness.admin.create_deployment(target, "production")
    assert (deployment.status, deployment.current_wave, deployment.release_phase) == ("running", 0, "pending")
    orders = {agent.name: agent.client.desired().tasks for agent in hosts}
    assert [len(orders[name]) for name in ("h1", "h2", "h3")] == [1, 0, 0]  # the first host by name
    order = orders["h1"][0]
    assert (order.kind, order.argv, order.release_id) == ("release", ["bin/rails", "db:migrate"], target)
    for agent in hosts:  # nobody is told to run the target while the release phase runs
        assert [app.release_id for app in agent.client.desired().apps] == [first]

    h1 = next(agent for agent in hosts if agent.name == "h1")
    h1.client.task_update(order.id, TaskUpdate(start=True))
    assert h1.client.desired().tasks == []  # started: it leaves the desired state, never runs twice
    with pytest.raises(ControllerError, match="started already"):
        h1.client.task_update(order.id, TaskUpdate(start=True))
    h1.client.task_update(order.id, TaskUpdate(status="running", lines=["== Migrating", "ERROR: bad"]))
    h1.client.task_update(order.id, TaskUpdate(status="failed", lines=["rake aborted!"], exit_code=1))
    wait_for(lambda: harness.admin.get_deployment(deployment.id).status == "failed", what="the failure")
    failed = harness.admin.get_deployment(deployment.id)
    assert failed.message == "release phase failed: exited with 1; no host was changed"
    assert failed.hosts == [] and failed.current_wave == 0
    assert failed.release_task is not None and failed.release_phase == "failed"
    assert [line.text for line in failed.release_task.lines] == [
        "== Migrating",
        "ERROR: bad",
        "rake aborted!",
    ]
    for agent in hosts:
        assert [app.release_id for app in agent.client.desired().apps] == [first]


def test_a_succeeding_release_phase_runs_once_then_every_wave_follows(harness: Harness) -> None:
    hosts = three_hosts(harness)
    deployed(harness, 0)
    target = release(harness, 1, release=["bin/migrate"])
    deployment = harness.admin.create_deployment(target, "production")
    harness.sync_all()  # the hosts poll while the release phase waits: nothing changes, nothing runs twice
    h1 = next(agent for agent in hosts if agent.name == "h1")
    (order,) = h1.client.desired().tasks
    h1.client.task_update(order.id, TaskUpdate(start=True))
    h1.client.task_update(order.id, TaskUpdate(status="succeeded", lines=["migrated"], exit_code=0))
    assert harness.deploy_until(deployment.id, {"succeeded", "failed"}) == "succeeded"
    done = harness.admin.get_deployment(deployment.id)
    assert done.release_phase == "succeeded" and len(done.hosts) == 3
    assert task_count(harness) == 1

    rollback = harness.admin.rollback("web", "production")
    assert rollback.release_phase == ""  # the release rolled back to has no release command
    assert harness.deploy_until(rollback.id, {"succeeded"}) == "succeeded"
    again = harness.admin.create_deployment(target, "production")  # the same release deployed anew
    assert harness.admin.get_deployment(again.id).release_phase == "pending"
    h1.client.task_update(h1.client.desired().tasks[0].id, TaskUpdate(start=True))
    assert task_count(harness) == 2


def test_a_rollback_never_runs_the_release_phase_and_says_so(harness: Harness) -> None:
    (agent,) = [harness.add_agent("h1")]
    for number in (0, 1):
        target = release(harness, number, release=["bin/migrate"])
        deployment = harness.admin.create_deployment(target, "production")
        (order,) = agent.client.desired().tasks
        agent.client.task_update(order.id, TaskUpdate(start=True))
        agent.client.task_update(order.id, TaskUpdate(status="succeeded", exit_code=0))
        assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    rollback = harness.admin.rollback("web", "production")
    assert rollback.release_phase == "not run for a rollback"
    assert harness.deploy_until(rollback.id, {"succeeded"}) == "succeeded"
    assert agent.client.desired().tasks == [] and task_count(harness) == 2


def test_a_run_goes_to_a_healthy_host_streams_its_lines_and_ends_with_its_exit_code(harness: Harness) -> None:
    hosts = three_hosts(harness)
    body = {"app": "web", "environment": "production", "argv": ["bin/rails", "runner", "Task.go"]}
    harness.add_agent("s1", group="staging")
    deployed(harness, 0)
    never = harness.http.post("/api/v1/tasks", json={**body, "environment": "staging"}, headers=ADMIN)
    assert never.status_code == 409 and "no succeeded deployment in staging" in never.json()["detail"]
    empty = harness.http.post("/api/v1/tasks", json={**body, "argv": []}, headers=ADMIN)
    assert empty.status_code == 422
    unknown = harness.http.post("/api/v1/tasks", json={**body, "host": "h9"}, headers=ADMIN)
    assert unknown.status_code == 404 and "host h9 is not in production" in unknown.json()["detail"]
    viewer = harness.client(harness.admin.create_token("eyes", "viewer").token)
    with pytest.raises(ControllerAuthError, match="deployer"):
        viewer.create_task("web", "production", ["true"])

    task = harness.admin.create_task("web", "production", ["bin/rails", "runner", "Task.go"])
    assert (task.host, task.status, task.kind, task.release) == ("h1", "pending", "run", "r1")
    chosen = harness.admin.create_task("web", "production", ["env"], host="h3")
    assert chosen.host == "h3"
    by_name = {agent.name: agent for agent in hosts}
    assert [t.id for t in by_name["h1"].client.desired().tasks] == [task.id]
    with pytest.raises(NotFoundError, match="not assigned to this host"):
        by_name["h2"].client.task_update(task.id, TaskUpdate(start=True))

    h1 = by_name["h1"].client
    with pytest.raises(ControllerError, match="has not started"):
        h1.task_update(task.id, TaskUpdate(lines=["early"]))
    h1.task_update(task.id, TaskUpdate(start=True))
    h1.task_update(task.id, TaskUpdate(status="running", lines=["one", "two"]))
    first = harness.admin.get_task(task.id)
    assert [(line.number, line.text) for line in first.lines] == [(1, "one"), (2, "two")]
    h1.task_update(task.id, TaskUpdate(status="failed", lines=["three"], exit_code=3))
    rest = harness.admin.get_task(task.id, after=2)
    assert [line.text for line in rest.lines] == ["three"]
    assert (rest.status, rest.exit_code, rest.message) == ("failed", 3, "exited with 3")
    with pytest.raises(ControllerError, match="already failed"):
        h1.task_update(task.id, TaskUpdate(status="running", lines=["late"]))

    cancelled = harness.admin.cancel_task(chosen.id)
    assert (cancelled.status, cancelled.message.startswith("cancelled by")) == ("failed", True)
    assert by_name["h3"].client.desired().tasks == []
    audit = harness.http.get("/api/v1/audit?action=task.run", headers=ADMIN).json()
    assert [entry["target"] for entry in audit] == ["web/production/h3", "web/production/h1"]


@dataclass
class RecordedLog:
    lines: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        self.lines.append(text)


def test_a_pipelines_job_log_carries_the_release_phase_output(harness: Harness) -> None:
    (agent,) = [harness.add_agent("h1")]
    target = release(harness, 0, release=["bin/migrate"])
    deployment = harness.admin.create_deployment(target, "production")
    (order,) = agent.client.desired().tasks
    agent.client.task_update(order.id, TaskUpdate(start=True))
    agent.client.task_update(order.id, TaskUpdate(lines=["== 2026 CreateUsers: migrating"]))
    agent.client.task_update(order.id, TaskUpdate(status="failed", lines=["PG::Error"], exit_code=1))
    wait_for(lambda: harness.admin.get_deployment(deployment.id).status == "failed", what="the failure")
    log = RecordedLog()
    job = SimpleNamespace(job_id=1, sha="0" * 40, environment="production")
    run = JobRun(context_of(harness), job, log, lambda: False)  # type: ignore[arg-type]
    with pytest.raises(DeployFailedError, match="release phase failed: exited with 1"):
        wait_for_deployment(run, deployment.id)
    assert log.lines[:2] == ["release phase | == 2026 CreateUsers: migrating", "release phase | PG::Error"]


def test_a_host_lost_while_its_release_phase_runs_fails_the_task_and_the_deployment(
    controller_db_url: str,
) -> None:
    with running_controller(controller_settings(controller_db_url, lost_after=1.5)) as harness:
        h1, h2 = harness.add_agent("h1"), harness.add_agent("h2")
        deployment = harness.admin.create_deployment(
            release(harness, 0, release=["bin/migrate"]), "production"
        )
        (order,) = h1.client.desired().tasks
        h1.client.task_update(order.id, TaskUpdate(start=True))  # then h1 goes silent

        def settled() -> bool:
            h2.sync()
            return harness.admin.get_deployment(deployment.id).status == "failed"

        wait_for(settled, what="the deployment to fail with its lost host")
        task = harness.admin.get_task(order.id)
        assert (task.status, task.exit_code) == ("failed", None)
        assert task.message.startswith(
            "the host was lost (no report within lost_after) while the command ran"
        )
        failed = harness.admin.get_deployment(deployment.id)
        assert failed.message.startswith("release phase failed: the host was lost") and failed.hosts == []


def test_shipyard_run_prints_the_output_exits_with_the_code_and_says_why_a_task_did_not_run(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    (agent,) = [harness.add_agent("h1")]
    deployed(harness, 0)

    def answer(status: str, lines: list[str], code: int | None, message: str = "") -> None:
        (order,) = agent.client.desired().tasks
        agent.client.task_update(order.id, TaskUpdate(start=True))
        agent.client.task_update(
            order.id, TaskUpdate(status=status, lines=lines, exit_code=code, message=message)
        )

    def run_in_thread(action: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: wait_for(lambda: bool(agent.client.desired().tasks)) or action()
        )
        thread.start()
        return thread

    thread = run_in_thread(lambda: answer("failed", ["one", "two"], 7))
    code = task_cmd._fleet_run(
        harness.client(ADMIN_TOKEN), ["sh", "-c", "exit 7"], "production", None, "web", 30, False
    )
    thread.join()
    assert code == 7 and capsys.readouterr().out == "one\ntwo\n"

    refusal = "this host's policy refuses task 2: run: one-off commands are off on this host"
    thread = run_in_thread(lambda: answer("failed", [], None, refusal))
    with pytest.raises(
        task_cmd.TaskNotRunError, match="ended without an exit code: this host's policy refuses"
    ) as refused:
        task_cmd._fleet_run(harness.client(ADMIN_TOKEN), ["true"], "production", "h1", "web", 30, False)
    thread.join()
    assert refused.value.exit_code == 125

    with pytest.raises(task_cmd.TaskNotRunError, match=r"no agent started task \d+ within 1 s"):
        task_cmd._fleet_run(harness.client(ADMIN_TOKEN), ["true"], "production", None, "web", 1, False)
    assert agent.client.desired().tasks == []  # cancelled: no agent runs it later
