"""Agent endpoints: register with a join token, long-poll the desired state, report progress."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from shipyard.controller import hosts
from shipyard.controller.api.deps import Agent, Context, Credentials, bearer_token, source_ip
from shipyard.controller.context import ControllerContext
from shipyard.controller.desired import desired_state
from shipyard.controller.schemas.agent import (
    AgentRegister,
    AgentRegistered,
    AgentReport,
    DesiredState,
    ReportAck,
)

router = APIRouter(tags=["agent"])


@router.post("/agent/register", status_code=201, summary="Register a host with a one-time join token")
@router.post("/hosts/register", status_code=201, summary="Register a host (same as /agent/register)")
def register(
    body: AgentRegister, request: Request, context: Context, credentials: Credentials
) -> AgentRegistered:
    join_token = bearer_token(credentials)
    with context.db.transaction() as session:
        host, agent_token = hosts.register_host(
            session, join_token, body, now=context.now(), source_ip=source_ip(request)
        )
        answer = AgentRegistered(host=host.name, group=host.group, agent_token=agent_token)
    context.driver.tick()  # a host joining mid-deployment enters the running wave right away
    return answer


def _load_desired(context: ControllerContext, host_id: int, *, touch: bool) -> DesiredState:
    if not touch:
        with context.db.read() as session:
            return desired_state(session, hosts.agent_host(session, host_id))
    with context.db.transaction() as session:
        host = hosts.agent_host(session, host_id)
        hosts.touch(host, context.now())
        return desired_state(session, host)


@router.get("/agent/desired", summary="The host's desired state; long-polls while it equals ?version")
async def desired(
    agent: Agent,
    context: Context,
    wait: Annotated[float, Query(ge=0, le=300, description="seconds to wait for a change")] = 0.0,
    version: Annotated[int | None, Query(description="the version the agent already has")] = None,
) -> DesiredState:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, context.settings.max_wait)
    # A waiting agent is alive: refresh last_seen often enough that a long wait never looks like silence.
    touch_every = context.settings.lost_after / 3
    last_touch: float | None = None
    while True:
        snapshot = context.notifier.snapshot()
        touch = last_touch is None or loop.time() - last_touch >= touch_every
        state = await run_in_threadpool(_load_desired, context, agent.host_id, touch=touch)
        last_touch = loop.time() if touch else last_touch
        remaining = deadline - loop.time()
        if version is None or state.version != version or remaining <= 0:
            return state
        await context.notifier.wait(snapshot, min(remaining, context.settings.recheck_interval, touch_every))


@router.post("/agent/report", summary="Report per-app progress and health")
def report(body: AgentReport, agent: Agent, context: Context) -> ReportAck:
    now = context.now()
    with context.db.transaction() as session:
        host = hosts.agent_host(session, agent.host_id)
        if body.agent_version:
            host.agent_version = body.agent_version
        app_ids = hosts.record_report(session, host, body.apps, now=now)
        session.flush()
        host.status = hosts.converged_status(host, desired_state(session, host))
        answer = ReportAck(host=host.name, status=host.status, received_at=now)
    for app_id in sorted(set(app_ids)):
        context.driver.tick(app_id=app_id)
    return answer
