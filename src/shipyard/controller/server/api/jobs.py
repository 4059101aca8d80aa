"""Pipeline jobs: list, one job, its log (also live as server-sent events), cancel and retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from shipyard.controller.engine import jobs as engine
from shipyard.controller.server.api.deps import Context, Deployer, ResourceId, Viewer
from shipyard.controller.server.api.params import LastEventId, NameQuery
from shipyard.controller.server.api.responses import API_TOKEN, PARAMS, errors
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store import job_store
from shipyard.controller.store.pipeline_models import Job, JobLogLine
from shipyard.fleet_api.schemas.common import MAX_ID
from shipyard.fleet_api.schemas.pipeline import JobOut, LogLineOut

router = APIRouter(prefix="/jobs", tags=["pipeline"], responses=API_TOKEN)
FOLLOW_POLL_S = 0.5
# A job's answers: the job may not exist (404); cancel and retry also depend on its state (409).
ONE_JOB = {**PARAMS, **errors(404)}
CHANGE = {**PARAMS, **errors(404, 409)}


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        app=job.app.name,
        environment=job.environment,
        branch=job.branch,
        sha=job.sha,
        trigger=job.trigger,
        status=job.status,
        step=job.step,
        message=job.message,
        attempt=job.attempt,
        retry_of=job.retry_of,
        cancel_requested=job.cancel_requested,
        timings=dict(job.timings or {}),
        release_id=job.release_id,
        deployment_id=job.deployment_id,
        created_by=job.created_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def line_out(line: JobLogLine) -> LogLineOut:
    return LogLineOut(id=line.id, step=line.step, line=line.line, at=line.at)


@router.get("", summary="Jobs, newest first (viewer)", responses=PARAMS)
def list_jobs(
    _caller: Viewer,
    context: Context,
    app: NameQuery = None,
    environment: NameQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobOut]:
    with context.db.read() as session:
        return [
            job_out(job)
            for job in job_store.list_jobs(session, app=app, environment=environment, limit=limit)
        ]


@router.get("/{job_id}", summary="One job with its step timings (viewer)", responses=ONE_JOB)
def get_job(job_id: ResourceId, _caller: Viewer, context: Context) -> JobOut:
    with context.db.read() as session:
        return job_out(job_store.find_job(session, job_id))


@router.get("/{job_id}/log", summary="A job's log lines after a line id (viewer)", responses=ONE_JOB)
def get_log(
    job_id: ResourceId,
    _caller: Viewer,
    context: Context,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[LogLineOut]:
    with context.db.read() as session:
        job_store.find_job(session, job_id)
        return [line_out(line) for line in job_store.log_lines(session, job_id, after=after, limit=limit)]


def _news(context: ControllerContext, job_id: int, after: int) -> tuple[list[LogLineOut], JobOut]:
    with context.db.read() as session:
        lines = [line_out(line) for line in job_store.log_lines(session, job_id, after=after)]
        return lines, job_out(job_store.find_job(session, job_id))


def _event(name: str, model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI schema of one server-sent event `name` whose data is `model` as JSON."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": f"#/components/schemas/{model.__name__}"},
            },
        },
    }


EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`log` events (id: the line id), then one `end` event with the finished job; "
        "the stream stays open while the job is queued or running",
        "content": {
            "text/event-stream": {"itemSchema": {"oneOf": [_event("log", LogLineOut), _event("end", JobOut)]}}
        },
    }
}


@router.get(
    "/{job_id}/events",
    summary="The job's log live, as server-sent events (viewer)",
    # The plain Response class: the document then shows the event stream declared here, not JSON.
    response_class=Response,
    responses={**EVENTS, **ONE_JOB},
)
async def follow(
    job_id: ResourceId,
    request: Request,
    _caller: Viewer,
    context: Context,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """`log` events (id = line id, resumable with Last-Event-ID), then one `end` event with the job."""
    after = last_event_id or 0
    await run_in_threadpool(_news, context, job_id, after)  # 404 before the stream starts

    async def events() -> AsyncIterator[ServerSentEvent]:
        cursor = after
        while not await request.is_disconnected():
            lines, job = await run_in_threadpool(_news, context, job_id, cursor)
            for line in lines:
                cursor = line.id
                yield ServerSentEvent(line.model_dump_json(), event="log", id=str(line.id))
            if not lines and job.status in engine.FINISHED:
                yield ServerSentEvent(job.model_dump_json(), event="end", id=str(cursor))
                return
            if not lines:
                await asyncio.sleep(FOLLOW_POLL_S)

    return EventSourceResponse(events(), ping=15)


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a queued job, or stop a running one and the command it runs (deployer)",
    responses=CHANGE,
)
def cancel(job_id: ResourceId, caller: Deployer, context: Context) -> JobOut:
    with context.db.transaction() as session:
        return job_out(
            job_store.cancel(
                session, job_id, actor=caller.name, source_ip=caller.source_ip, now=context.now()
            )
        )


@router.post(
    "/{job_id}/retry",
    status_code=201,
    summary="Queue a finished job's commit again (deployer)",
    responses=CHANGE,
)
def retry(job_id: ResourceId, caller: Deployer, request: Request, context: Context) -> JobOut:
    with context.db.transaction() as session:
        again = job_store.retry(
            session, job_id, actor=caller.name, source_ip=caller.source_ip, now=context.now()
        )
        answer = job_out(again)
    worker = getattr(request.app.state, "job_worker", None)
    if worker is not None:
        worker.wake()
    return answer
