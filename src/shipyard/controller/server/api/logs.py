"""Logs of an app from every host of an environment: asked for here, sent by the hosts' agents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shipyard.controller.server.api.deps import Agent, Context, Deployer, ResourceId
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.store import log_requests
from shipyard.fleet_api.schemas.common import MAX_ID
from shipyard.fleet_api.schemas.logs import (
    AgentLogAck,
    AgentLogBatch,
    LogQuery,
    LogRequestCreate,
    LogRequestOut,
)

router = APIRouter(tags=["fleet"], responses=API_TOKEN)
agent_router = APIRouter(tags=["agent"], responses=errors(401, 503))


@router.post(
    "/logs",
    status_code=201,
    summary="Ask every host of an environment for an app's log lines (deployer: lines may be sensitive)",
    responses={**BODY, **errors(404)},
)
def create_log_request(body: LogRequestCreate, caller: Deployer, context: Context) -> LogRequestOut:
    query = LogQuery.model_validate(body.model_dump(exclude={"app", "environment"}))
    with context.db.transaction() as session:
        request = log_requests.create(
            session,
            app=body.app,
            environment=body.environment,
            query=query,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
        )
        answer = log_requests.read(session, request, after=0, now=context.now())
    context.notifier.notify()  # the hosts' long-polls see the request at once
    return answer


@router.get(
    "/logs/{request_id}",
    summary="A log request's lines after ?after= (oldest first, at most 2000) and which hosts finished",
    responses={**PARAMS, **errors(404)},
)
def read_log_request(
    request_id: ResourceId,
    _caller: Deployer,
    context: Context,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> LogRequestOut:
    with context.db.read() as session:
        return log_requests.read(
            session, log_requests.find(session, request_id), after=after, now=context.now()
        )


@router.delete(
    "/logs/{request_id}",
    status_code=204,
    summary="Close a log request: the hosts stop sending (deployer)",
    responses={**PARAMS, **errors(404)},
)
def close_log_request(request_id: ResourceId, _caller: Deployer, context: Context) -> None:
    with context.db.transaction() as session:
        log_requests.cancel(session, request_id, context.now())
    context.notifier.notify()


@agent_router.post("/agent/logs", summary="A batch of log lines for a log request", responses=BODY)
def agent_logs(body: AgentLogBatch, agent: Agent, context: Context) -> AgentLogAck:
    with context.db.transaction() as session:
        wanted = log_requests.add_batch(
            session, host_id=agent.host_id, group=agent.group, batch=body, now=context.now()
        )
    return AgentLogAck(wanted=wanted)
