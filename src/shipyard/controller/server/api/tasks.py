"""Tasks: one-off commands in an environment's active release, and the agents' word on the tasks they run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shipyard.controller.server.api.deps import Agent, Caller, Context, Deployer, ResourceId, Viewer
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store import tasks
from shipyard.fleet_api.schemas.common import MAX_ID
from shipyard.fleet_api.schemas.tasks import ExecCreate, TaskCreate, TaskKind, TaskOut, TaskUpdate

router = APIRouter(tags=["tasks"], responses=API_TOKEN)


@router.post(
    "/tasks",
    status_code=201,
    summary="Run a command once in a new container of the environment's active release (deployer)",
    responses={**BODY, **errors(404, 409)},
)
def create_task(body: TaskCreate, caller: Deployer, context: Context) -> TaskOut:
    return open_task(body, caller, context, "run")


def open_task(
    body: TaskCreate | ExecCreate,
    caller: Caller,
    context: ControllerContext,
    kind: TaskKind,
    lines_after: int | None = 0,
) -> TaskOut:
    """Record a task (or an exec session) and wake the host's long-poll, which carries it at once.

    The answer holds the task's lines after `lines_after` (None: none, as an exec's output is relayed)."""
    with context.db.transaction() as session:
        task = tasks.create_run_task(
            session,
            app=body.app,
            environment=body.environment,
            argv=body.argv,
            host=body.host,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
            kind=kind,
        )
        task_id = task.id
    context.notifier.notify()
    with context.db.read() as session:
        return tasks.task_out(session, tasks.find_task(session, task_id), lines_after)


@router.get(
    "/tasks/{task_id}",
    summary="One task with its output lines after ?after= (viewer)",
    responses={**PARAMS, **errors(404)},
)
def get_task(
    task_id: ResourceId,
    _caller: Viewer,
    context: Context,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="the last line number already read")] = 0,
) -> TaskOut:
    with context.db.read() as session:
        return tasks.task_out(session, tasks.find_task(session, task_id), after)


@router.post(
    "/tasks/{task_id}/cancel",
    summary="Fail a task no agent has started yet (deployer); a started task runs to its end",
    responses={**PARAMS, **errors(404)},
)
def cancel_task(task_id: ResourceId, caller: Deployer, context: Context) -> TaskOut:
    with context.db.transaction() as session:
        cancelled = tasks.cancel_pending(
            session, task_id, f"cancelled by {caller.name} before any agent started it", context.now()
        )
    if cancelled:
        context.notifier.notify()
        context.driver.tick_after_commit()  # a release phase's deployment fails at once
    with context.db.read() as session:
        return tasks.task_out(session, tasks.find_task(session, task_id), None)


@router.post(
    "/agent/tasks/{task_id}",
    summary="An agent's word on a task of its host: started, output lines, its end",
    responses={**BODY, **errors(404, 409)},
)
def update_task(task_id: ResourceId, body: TaskUpdate, agent: Agent, context: Context) -> TaskOut:
    with context.db.transaction() as session:
        applied = tasks.apply_update(session, task_id, agent.host_id, body, context.now())
    if applied.started:
        context.notifier.notify()  # it leaves the host's desired state
    if applied.finished and applied.deployment_id is not None:
        context.driver.request_tick()  # the deployment's first wave starts, or it fails
    with context.db.read() as session:
        return tasks.task_out(session, tasks.find_task(session, task_id), None)
