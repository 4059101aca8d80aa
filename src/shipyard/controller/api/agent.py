"""Agent endpoints: register with a join token, long-poll the desired state, report progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from shipyard.controller import hosts
from shipyard.controller.api.deps import (
    Agent,
    AgentCaller,
    Context,
    Credentials,
    bearer_token,
    source_ip,
)
from shipyard.controller.context import ControllerContext
from shipyard.controller.reports import PendingReport
from shipyard.controller.schemas.agent import (
    AgentRegister,
    AgentRegistered,
    AgentReport,
    DesiredState,
    ReportAck,
)

router = APIRouter(tags=["agent"])
MAX_WAIT_QUERY = 300  # seconds; the controller caps the actual wait at its max_wait setting


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


async def desired_body(
    agent: AgentCaller, context: ControllerContext, wait: float, version: int | None
) -> bytes:
    """The host's desired state as JSON, long-polling while it equals `version`.

    Waits without a database connection or a worker thread: the answer comes from the group's plan,
    computed once per change (or per recheck interval) and shared by every waiting agent of the group."""
    context.presence.seen(agent.host_id, context.now())  # the agent is alive
    plan = await context.desired.plan(agent.group)
    timeout = min(wait, context.settings.max_wait)
    if version is None or plan.for_host(agent.host_id, agent.host).version != version or timeout <= 0:
        return plan.json_for(agent.host_id, agent.host)
    changed = await context.desired.wait_for_change(agent.group, agent.host_id, agent.host, version, timeout)
    if changed is None:
        changed = await context.desired.plan(agent.group)
        context.presence.seen(agent.host_id, context.now())
    return changed.json_for(agent.host_id, agent.host)


async def store_report(body: AgentReport, agent: AgentCaller, context: ControllerContext) -> ReportAck:
    """A report repeating the last stored one is answered from memory; others are stored in batches."""
    now = context.now()
    desired = (await context.desired.plan(agent.group)).for_host(agent.host_id, agent.host)
    context.presence.seen(agent.host_id, now)
    for app_report in body.apps:
        if app_report.counters is not None:
            context.traffic.record(agent.host_id, app_report.app, app_report.counters, now)
    fingerprint = context.report_memory.fingerprint(body)
    status = context.report_memory.repeated_status(agent.host_id, fingerprint, desired.version)
    if status is not None:
        return ReportAck(host=agent.host, status=status, received_at=now)
    stored = await context.reports.submit(PendingReport(agent.host_id, body, desired, now))
    context.report_memory.remember(agent.host_id, fingerprint, desired.version, stored.ack.status)
    if stored.app_ids:
        context.driver.request_tick()  # the background loop advances the deployments, once per burst
    return stored.ack


# Both routes are also served by hot_path.AgentHotPath for agents whose token is already known; these
# declarations document them and answer everything else (first contact, malformed input, errors).
@router.get(
    "/agent/desired",
    response_model=DesiredState,
    summary="The host's desired state; long-polls while it equals ?version",
)
async def desired(
    agent: Agent,
    context: Context,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_QUERY, description="seconds to wait for a change")] = 0.0,
    version: Annotated[int | None, Query(description="the version the agent already has")] = None,
) -> Response:
    return Response(await desired_body(agent, context, wait, version), media_type="application/json")


@router.post("/agent/report", summary="Report per-app progress and health")
async def report(body: AgentReport, agent: Agent, context: Context) -> ReportAck:
    return await store_report(body, agent, context)
