"""Tasks: a command run once in a throwaway container of a release, on one host, through its agent.

A `run` task is a deployer's one-off command in the environment's active release (`shipyard run`); a
`release` task is a deployment's release phase, created by the rollout tick before its first wave. A
pending task rides in its host's desired state (DesiredState.tasks) until the agent says it started;
the agent then posts its output lines in batches and its exit code. Only a pending task can be
started, so a task runs at most once even when the agent restarts or two answers cross.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from shipyard.controller.engine.exec_sessions import MAX_DURATION as EXEC_MAX_DURATION
from shipyard.controller.engine.rollout import ACTIVE
from shipyard.controller.engine.tasks import TaskHost, choose_run_host
from shipyard.controller.errors import ConflictError
from shipyard.controller.store import audit, catalog, hosts
from shipyard.controller.store.deployments import current_release_id
from shipyard.controller.store.models import Deployment, Environment, Host, HostApp, Release, Task, TaskLine
from shipyard.controller.store.release_secrets import sealed_by_release
from shipyard.errors import NotFoundError
from shipyard.fleet_api.schemas.common import release_name
from shipyard.fleet_api.schemas.tasks import (
    TASK_FINAL,
    TaskKind,
    TaskOrder,
    TaskOut,
    TaskUpdate,
)
from shipyard.fleet_api.schemas.tasks import (
    TaskLine as TaskLineOut,
)

RUN_TIMEOUT = 3600.0  # seconds a one-off command may run on the host
PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"


def create_run_task(
    session: Session,
    *,
    app: str,
    environment: str,
    argv: Sequence[str],
    host: str | None,
    actor: str,
    source_ip: str | None,
    now: datetime,
    kind: str = "run",
) -> Task:
    """A one-off command in the environment's active release, on `host` or one healthy host of it; with
    kind "exec", an exec session in the serving container of `host` (given), audited `exec.opened`."""
    app_row = catalog.find_app(session, app)
    environment_row = catalog.find_environment(session, environment)
    release_id = current_release_id(session, app_row.id, environment_row.id)
    if release_id is None:
        raise ConflictError(
            f"{app} has no succeeded deployment in {environment}, so there is no active release to run in."
        )
    reported = {
        row.host_id: row
        for row in session.scalars(
            select(HostApp)
            .join(Host, Host.id == HostApp.host_id)
            .where(HostApp.app_id == app_row.id, Host.group == environment)
        )
    }
    members = session.execute(select(Host.id, Host.name, Host.status).where(Host.group == environment)).all()
    views = [
        TaskHost(
            row.id,
            row.name,
            lost=row.status == hosts.LOST,
            runs_release=row.id in reported and reported[row.id].active_release_id == release_id,
            healthy=row.id in reported and reported[row.id].health == "healthy",
        )
        for row in members
    ]
    chosen = choose_run_host(views, host, app=app, environment=environment)
    task = Task(
        kind=kind,
        app_id=app_row.id,
        environment_id=environment_row.id,
        host_id=chosen.host_id,
        release_id=release_id,
        argv=list(argv),
        status=PENDING,
        message="",
        line_count=0,
        created_by=actor,
        created_at=now,
    )
    session.add(task)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="exec.opened" if kind == "exec" else "task.run",
        target=f"{app}/{environment}/{chosen.name}",
        source_ip=source_ip,
        task=task.id,
        release=release_name(release_id),
        argv=list(argv),
    )
    return task


def release_task_of(session: Session, deployment_id: int) -> Task | None:
    return session.scalar(
        select(Task)
        .where(Task.deployment_id == deployment_id, Task.kind == "release")
        .order_by(Task.id)
        .limit(1)
    )


def create_release_task(session: Session, deployment: Deployment, host_id: int, now: datetime) -> Task:
    """The deployment's release phase on `host_id` (rollout.release_host)."""
    argv = list(deployment.release.spec.get("release") or [])
    task = Task(
        kind="release",
        app_id=deployment.app_id,
        environment_id=deployment.environment_id,
        host_id=host_id,
        release_id=deployment.release_id,
        deployment_id=deployment.id,
        argv=argv,
        status=PENDING,
        message="",
        line_count=0,
        created_by=audit.CONTROLLER_ACTOR,
        created_at=now,
    )
    session.add(task)
    session.flush()
    return task


def find_task(session: Session, task_id: int) -> Task:
    query = (
        select(Task)
        .where(Task.id == task_id)
        .options(joinedload(Task.app), joinedload(Task.environment), joinedload(Task.host))
    )
    task = session.scalar(query)
    if task is None:
        raise NotFoundError(
            f"task {task_id} does not exist; 'shipyard run' prints the id of the task it starts."
        )
    return task


def lines_after(session: Session, task_id: int, after: int, limit: int = 1000) -> list[TaskLineOut]:
    rows = session.execute(
        select(TaskLine.number, TaskLine.text)
        .where(TaskLine.task_id == task_id, TaskLine.number > after)
        .order_by(TaskLine.number)
        .limit(limit)
    ).all()
    return [TaskLineOut(number=number, text=text) for number, text in rows]


def task_out(session: Session, task: Task, after: int | None = 0) -> TaskOut:
    return TaskOut(
        id=task.id,
        kind=_kind(task),
        app=task.app.name,
        environment=task.environment.name,
        host=task.host.name if task.host is not None else None,
        release_id=task.release_id,
        release=release_name(task.release_id),
        deployment_id=task.deployment_id,
        argv=list(task.argv),
        status=task.status,
        exit_code=task.exit_code,
        message=task.message,
        created_by=task.created_by,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        lines=lines_after(session, task.id, after) if after is not None else [],
    )


@dataclass(frozen=True)
class Applied:
    started: bool  # the task left the host's desired state
    finished: bool
    deployment_id: int | None


def apply_update(session: Session, task_id: int, host_id: int, update: TaskUpdate, now: datetime) -> Applied:
    """An agent's word on a task of its host: started (only once), more lines, the end."""
    task = session.scalar(select(Task).where(Task.id == task_id).with_for_update())
    if task is None or task.host_id != host_id:
        raise NotFoundError(f"task {task_id} is not assigned to this host.")
    if task.status in TASK_FINAL:
        raise ConflictError(f"task {task_id} already {task.status}; its output is closed.")
    if update.start != (task.status == PENDING):
        state = "started already" if update.start else "has not started; send start first"
        raise ConflictError(f"task {task_id} {state}.")
    started = update.start
    if started:
        task.status, task.started_at = RUNNING, now
    for text in update.lines:
        task.line_count += 1
        session.add(TaskLine(task_id=task.id, number=task.line_count, text=text))
    finished = update.status in TASK_FINAL
    if finished:
        task.status, task.exit_code, task.finished_at = update.status, update.exit_code, now
        task.message = update.message or (
            "exited with 0" if update.exit_code == 0 else f"exited with {update.exit_code}"
        )
    return Applied(started, finished, task.deployment_id)


def cancel_pending(session: Session, task_id: int, reason: str, now: datetime) -> bool:
    """Fail a task no agent has started yet (the caller gave up waiting); False when it had started."""
    task = session.scalar(select(Task).where(Task.id == task_id).with_for_update())
    if task is None:
        raise NotFoundError(f"task {task_id} does not exist.")
    if task.status != PENDING:
        return False
    task.status, task.message, task.finished_at = FAILED, reason, now
    return True


def fail_on_lost_hosts(session: Session, host_ids: Sequence[int], now: datetime) -> int:
    """End the unfinished tasks of hosts just marked lost: their agents cannot say how they ended."""
    if not host_ids:
        return 0
    unfinished = session.scalars(
        select(Task).where(Task.host_id.in_(list(host_ids)), Task.status.in_([PENDING, RUNNING]))
    ).all()
    for task in unfinished:
        started = task.status == RUNNING
        task.status, task.finished_at = FAILED, now
        task.message = (
            "the host was lost (no report within lost_after) while the command ran; its outcome is unknown"
            if started
            else "the host was lost (no report within lost_after) before its agent started the command"
        )
    return len(unfinished)


def pending_orders(session: Session, environment: Environment) -> dict[int, list[TaskOrder]]:
    """The pending tasks of every host of `environment` (its group), as their desired states carry them."""
    query = (
        select(Task)
        .join(Host, Host.id == Task.host_id)
        .where(Host.group == environment.name, Task.status == PENDING)
        # A release phase whose deployment was aborted meanwhile is not run.
        .where(
            or_(
                Task.deployment_id.is_(None),
                Task.deployment_id.in_(select(Deployment.id).where(Deployment.status.in_(ACTIVE))),
            )
        )
        .options(joinedload(Task.app), joinedload(Task.release))
        .order_by(Task.id)
    )
    pending = list(session.scalars(query))
    # A task runs with the secrets its release was sealed with for this environment, as the app does.
    sealed = sealed_by_release(session, environment.id, sorted({task.release_id for task in pending}))
    orders: dict[int, list[TaskOrder]] = {}
    for task in pending:
        assert task.host_id is not None  # joined on it
        orders.setdefault(task.host_id, []).append(_order(task, task.release, sealed.get(task.release_id)))
    return orders


def _order(task: Task, release: Release, sealed_secrets: str | None) -> TaskOrder:
    return TaskOrder(
        id=task.id,
        kind=_kind(task),
        app=task.app.name,
        release_id=release.id,
        release=release_name(release.id),
        image=release.image,
        digest=release.digest,
        spec=release.spec,
        signature=release.signature,
        argv=list(task.argv),
        timeout=EXEC_MAX_DURATION if task.kind == "exec" else RUN_TIMEOUT,
        # An exec joins a running container, which has its environment already.
        sealed_secrets=None if task.kind == "exec" else sealed_secrets,
    )


def _kind(task: Task) -> TaskKind:
    return "release" if task.kind == "release" else "exec" if task.kind == "exec" else "run"


def record_exec_closed(
    session: Session, task_id: int, *, reason: str, exit_code: int | None, seconds: float
) -> None:
    """The audit entry of an exec session's end, by the user that opened it (never its input or output)."""
    task = find_task(session, task_id)
    audit.record(
        session,
        actor=task.created_by,
        action="exec.closed",
        target=f"{task.app.name}/{task.environment.name}/{task.host.name if task.host else '-'}",
        task=task.id,
        argv=list(task.argv),
        exit_code=exit_code,
        reason=reason,
        seconds=round(seconds, 3),
    )
