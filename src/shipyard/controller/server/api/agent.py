"""Agent endpoints: register with a join token, long-poll the desired state, report progress."""

from __future__ import annotations

import email.message
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from shipyard.controller.server.api.deps import (
    Agent,
    AgentCaller,
    Context,
    Credentials,
    bearer_token,
    source_ip,
)
from shipyard.controller.server.api.responses import BODY, errors
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store import hosts
from shipyard.controller.store.reports import PendingReport
from shipyard.fleet_api.schemas.agent import (
    AgentRegister,
    AgentRegistered,
    AgentReport,
    DesiredQuery,
    DesiredState,
    ReportAck,
)

router = APIRouter(tags=["agent"], responses=errors(401, 503))
# A join token that is unknown, spent or expired is a 401; a host of that name already registered, 409.
REGISTER = {**BODY, **errors(409)}


@router.post(
    "/agent/register",
    status_code=201,
    summary="Register a host with a one-time join token",
    responses=REGISTER,
)
@router.post(
    "/hosts/register",
    status_code=201,
    summary="Register a host (same as /agent/register)",
    responses=REGISTER,
)
def register(
    body: AgentRegister, request: Request, context: Context, credentials: Credentials
) -> AgentRegistered:
    join_token = bearer_token(credentials)
    with context.db.transaction() as session:
        host, agent_token = hosts.register_host(
            session, join_token, body, now=context.now(), source_ip=source_ip(request)
        )
        answer = AgentRegistered(host=host.name, group=host.group, agent_token=agent_token)
    context.driver.tick_after_commit()  # a host joining mid-deployment enters the running wave right away
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
    if version is None or plan.version_for(agent.host_id) != version or timeout <= 0:
        return plan.json_for(agent.host_id, agent.host)
    changed = await context.desired.wait_for_change(agent.group, agent.host_id, agent.host, version, timeout)
    if changed is None:
        changed = await context.desired.plan(agent.group)
        context.presence.seen(agent.host_id, context.now())
    return changed.json_for(agent.host_id, agent.host)


def report_in(content_type: str | None, body: bytes) -> AgentReport | None:
    """The report in a request body when POST /agent/report takes it as it is; None when it does not.

    The same reading as the framework's for the route's body: a JSON content type (application/json
    or application/*+json) is required, Python's JSON parser reads it, and AgentReport validates the
    result in Python mode. Anything refused here is left to the route, which explains the refusal."""
    if not content_type or not body:
        return None
    header = email.message.Message()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    if header.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return None
    try:
        return AgentReport.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):  # JSONDecodeError and UnicodeDecodeError too
        return None


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
    responses=errors(422),
)
async def desired(
    agent: Agent,
    context: Context,
    query: Annotated[DesiredQuery, Query()],
) -> Response:
    body = await desired_body(agent, context, query.wait, query.version)
    return Response(body, media_type="application/json")


@router.post("/agent/report", summary="Report per-app progress and health", responses=BODY)
async def report(body: AgentReport, agent: Agent, context: Context) -> ReportAck:
    return await store_report(body, agent, context)
