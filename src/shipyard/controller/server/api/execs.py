"""Exec sessions: a deployer's command in the serving container of one host, relayed through its agent.

POST /exec records the session (a task of kind exec, audited exec.opened) and puts it in the host's
desired state; the deployer's CLI then opens WS /exec/{id} and the host's agent WS /agent/exec/{id};
exec_relay.py splices the two. Both sockets authenticate with the same bearer tokens as the rest of the
API, in the Authorization header of the upgrade request.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

from shipyard.controller.engine import exec_sessions
from shipyard.controller.engine.exec_sessions import ExecLimits, ExecSession
from shipyard.controller.errors import ConflictError, UnauthorizedError, status_for
from shipyard.controller.server.api.deps import Context, Deployer, api_caller, lookup_agent
from shipyard.controller.server.api.responses import API_TOKEN, BODY, errors
from shipyard.controller.server.api.tasks import open_task
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.exec_relay import refuse
from shipyard.controller.store import tasks
from shipyard.errors import ConfigError, NotFoundError, ShipyardError
from shipyard.fleet_api.schemas.tasks import TASK_FINAL, ExecCreate, TaskOut

router = APIRouter(tags=["exec"], responses=API_TOKEN)


@router.post(
    "/exec",
    status_code=201,
    summary="Open an exec session in the app's serving container on one host (deployer)",
    responses={**BODY, **errors(404, 409)},
)
def create_exec(body: ExecCreate, caller: Deployer, context: Context) -> TaskOut:
    return open_task(body, caller, context, "exec", lines_after=None)


def _token(websocket: WebSocket) -> str:
    scheme, token = get_authorization_scheme_param(websocket.headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("this endpoint needs 'Authorization: Bearer <token>'.")
    return token


def _client_session(
    context: ControllerContext, task_id: int, token: str, source_ip: str | None
) -> ExecSession:
    caller = api_caller(context, token, "deployer", source_ip)
    with context.db.read() as session:
        task = tasks.find_task(session, task_id)
        if task.kind != "exec" or task.host is None:
            raise NotFoundError(f"task {task_id} is not an exec session; start one with shipyard exec.")
        if task.status in TASK_FINAL:
            raise ConflictError(f"exec session {task_id} already ended ({task.message}); start a new one.")
        found = ExecSession(task.id, task.host.id, task.host.name, task.created_by, requested_at=0.0)
    exec_sessions.check_client(found, caller.name)
    return found


@router.websocket("/exec/{task_id}")
async def exec_client(
    websocket: WebSocket, task_id: int, timeout: float = exec_sessions.PICKUP_TIMEOUT
) -> None:
    """The deployer's side: its token must be the session's; ?timeout= seconds for the agent to attach."""
    context: ControllerContext = websocket.app.state.context
    relay = context.exec_relay
    await websocket.accept()
    client_ip = websocket.client.host if websocket.client else None
    try:
        if not 1 <= timeout <= exec_sessions.MAX_PICKUP:
            raise ConfigError(f"timeout must be between 1 and {exec_sessions.MAX_PICKUP:g} seconds.")
        found = await run_in_threadpool(_client_session, context, task_id, _token(websocket), client_ip)
    except ShipyardError as exc:
        await refuse(websocket, exc.message, status_for(exc))
        return
    limits = ExecLimits(pickup=timeout)
    session = ExecSession(found.task_id, found.host_id, found.host, found.user, relay.clock(), limits)

    async def task_status() -> tuple[str, str]:
        return await run_in_threadpool(_status, context, task_id)

    async def cancel(reason: str) -> bool:
        cancelled = await run_in_threadpool(_cancel, context, task_id, reason)
        if cancelled:
            context.notifier.notify()  # it leaves the host's desired state
        return cancelled

    ended = await relay.serve(websocket, session, task_status, cancel)
    await run_in_threadpool(_record_closed, context, task_id, ended.reason, ended.exit_code, ended.seconds)


def _status(context: ControllerContext, task_id: int) -> tuple[str, str]:
    with context.db.read() as session:
        task = tasks.find_task(session, task_id)
        return task.status, task.message


def _cancel(context: ControllerContext, task_id: int, reason: str) -> bool:
    with context.db.transaction() as session:
        return tasks.cancel_pending(session, task_id, reason, context.now())


def _record_closed(
    context: ControllerContext, task_id: int, reason: str, exit_code: int | None, seconds: float
) -> None:
    with context.db.transaction() as session:
        tasks.record_exec_closed(session, task_id, reason=reason, exit_code=exit_code, seconds=seconds)


@router.websocket("/agent/exec/{task_id}")
async def exec_agent(websocket: WebSocket, task_id: int) -> None:
    """The agent's side: only the agent of the session's host attaches, once."""
    context: ControllerContext = websocket.app.state.context
    await websocket.accept()
    try:
        token = _token(websocket)
        known = context.agent_tokens.get(token)
        if known is None:
            known = await run_in_threadpool(lookup_agent, context, token)
            context.agent_tokens.put(token, known)
        pending = context.exec_relay.offer_agent(task_id, known.host_id, websocket)
    except ShipyardError as exc:
        await refuse(websocket, exc.message, status_for(exc))
        return
    await pending.done.wait()  # the client's handler splices and closes both sockets
