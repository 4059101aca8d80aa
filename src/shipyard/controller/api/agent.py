"""Agent endpoints: register with a join token, long-poll the desired state, report progress."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from shipyard.controller import hosts
from shipyard.controller.api.deps import Agent, Context, Credentials, bearer_token, source_ip
from shipyard.controller.desired import GroupPlan
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


@router.get("/agent/desired", summary="The host's desired state; long-polls while it equals ?version")
async def desired(
    agent: Agent,
    context: Context,
    wait: Annotated[float, Query(ge=0, le=300, description="seconds to wait for a change")] = 0.0,
    version: Annotated[int | None, Query(description="the version the agent already has")] = None,
) -> DesiredState:
    """Waits without a database connection or a worker thread: the answer comes from the group's plan,
    computed once per change (or per recheck interval) and shared by every waiting agent of the group."""
    context.presence.seen(agent.host_id, context.now())  # the agent is alive
    plan = await context.desired.plan(agent.group)
    state = plan.for_host(agent.host_id, agent.host)
    timeout = min(wait, context.settings.max_wait)
    if version is None or state.version != version or timeout <= 0:
        return state
    changed = await context.desired.wait_for_change(agent.group, agent.host_id, agent.host, version, timeout)
    if changed is not None:
        return changed
    final = (await context.desired.plan(agent.group)).for_host(agent.host_id, agent.host)
    context.presence.seen(agent.host_id, context.now())
    return final


def _store_report(
    session: Session, host_id: int, body: AgentReport, plan: GroupPlan, now: datetime
) -> tuple[ReportAck, list[int]]:
    """The report rows, the agent version and the host's status; part of a batch's short transaction."""
    host = hosts.agent_host(session, host_id)
    if body.agent_version:
        host.agent_version = body.agent_version
    app_ids = hosts.record_report(session, host, body.apps, now=now)
    session.flush()
    host.status = hosts.converged_status(host, plan.for_host(host.id, host.name))
    return ReportAck(host=host.name, status=host.status, received_at=now), app_ids


@router.post("/agent/report", summary="Report per-app progress and health")
async def report(body: AgentReport, agent: Agent, context: Context) -> ReportAck:
    now = context.now()
    plan = await context.desired.plan(agent.group)
    answer, app_ids = await context.reports.submit(
        functools.partial(_store_report, host_id=agent.host_id, body=body, plan=plan, now=now)
    )
    context.presence.seen(agent.host_id, now)
    if app_ids:
        context.driver.request_tick()  # the background loop advances the deployments, once per burst
    return answer
