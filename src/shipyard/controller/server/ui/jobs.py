"""The pipeline on the dashboard: the job queue, a job's live log and webhook deliveries.

A job's log streams over SSE with each line's id as the event id, so a browser that reconnects sends
Last-Event-ID and the tail resumes after the last line it has. Webhook payloads are not stored: a
delivery is "redelivered" by queueing its job's commit again (deliveries that made no job are
redelivered from the provider's side).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from shipyard.controller.engine import jobs as engine
from shipyard.controller.server.api.deps import Context, ResourceId, get_context, source_ip
from shipyard.controller.server.api.params import LastEventId
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.ui.routes import action, current_user, page
from shipyard.controller.server.ui.sessions import SignedIn
from shipyard.controller.store import hooks, job_store
from shipyard.controller.store.pipeline_models import Delivery, Job, JobLogLine
from shipyard.errors import NotFoundError, ShipyardError
from shipyard.fleet_api.schemas.common import MAX_ID

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form()]
LOG_SHOWN = 500  # the page shows the last lines; the live tail continues after them
FOLLOW_POLL_S = 0.5


def _worker_wake(request: Request) -> None:
    worker = getattr(request.app.state, "job_worker", None)
    if worker is not None:
        worker.wake()


@router.get("/ui/jobs")
def jobs(request: Request, context: Context) -> Response:
    def read(session: Any) -> dict[str, Any]:
        found = job_store.list_jobs(session, limit=100)
        waiting = [job for job in found if job.status not in engine.FINISHED]
        return {
            "queue": list(reversed(waiting)),
            "finished": [job for job in found if job.status in engine.FINISHED],
            "deliveries": hooks.deliveries(session, limit=50),
            "finished_states": engine.FINISHED,
        }

    return page(request, context, "jobs.html", read)


@router.get("/ui/jobs/{job_id}")
def job(job_id: int, request: Request, context: Context) -> Response:
    def read(session: Any) -> dict[str, Any]:
        found = job_store.find_job(session, job_id)
        lines = list(
            session.scalars(
                select(JobLogLine)
                .where(JobLogLine.job_id == job_id)
                .order_by(JobLogLine.id.desc())
                .limit(LOG_SHOWN)
            )
        )
        lines.reverse()
        return {"job": found, "lines": lines, "finished_states": engine.FINISHED}

    return page(request, context, "job.html", read)


def _news(context: ControllerContext, job_id: int, after: int) -> tuple[list[tuple[int, str, str]], bool]:
    with context.db.read() as session:
        lines = [
            (line.id, line.step, line.line) for line in job_store.log_lines(session, job_id, after=after)
        ]
        return lines, job_store.find_job(session, job_id).status in engine.FINISHED


@router.get("/ui/jobs/{job_id}/events")
async def job_events(
    job_id: ResourceId,
    request: Request,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    last_event_id: LastEventId = None,
) -> Response:
    """`log` events with the line id as event id; a reconnect resumes after Last-Event-ID. Then `end`."""
    context = get_context(request)
    if await run_in_threadpool(current_user, context, request) is None:
        return Response("sign in first", status_code=401, media_type="text/plain")
    cursor = last_event_id if last_event_id is not None else after
    try:
        await run_in_threadpool(_news, context, job_id, cursor)
    except NotFoundError as exc:
        return Response(exc.message, status_code=404, media_type="text/plain")

    async def events() -> AsyncIterator[ServerSentEvent]:
        position = cursor
        while not await request.is_disconnected():
            lines, finished = await run_in_threadpool(_news, context, job_id, position)
            for line_id, step, text in lines:
                position = line_id
                yield ServerSentEvent(f"[{step}] {text}", event="log", id=str(line_id))
            if not lines and finished:
                yield ServerSentEvent("finished", event="end", id=str(position))
                await asyncio.sleep(3600)  # no reconnect loop once the log is complete
                return
            if not lines:
                await asyncio.sleep(FOLLOW_POLL_S)

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})


@router.post("/ui/jobs/{job_id}/cancel")
def cancel(job_id: int, request: Request, context: Context, csrf_token: Field = "") -> Response:
    def run(user: SignedIn) -> str:
        with context.db.transaction() as session:
            job_store.cancel(
                session, job_id, actor=user.name, source_ip=source_ip(request), now=context.now()
            )
        return f"/ui/jobs/{job_id}"

    return action(request, context, csrf_token, "deployer", run)


def _retry(context: ControllerContext, request: Request, user: SignedIn, job_id: int) -> str:
    with context.db.transaction() as session:
        again = job_store.retry(
            session, job_id, actor=user.name, source_ip=source_ip(request), now=context.now()
        )
        new_id = again.id
    _worker_wake(request)
    return f"/ui/jobs/{new_id}"


@router.post("/ui/jobs/{job_id}/retry")
def retry(job_id: int, request: Request, context: Context, csrf_token: Field = "") -> Response:
    return action(
        request, context, csrf_token, "deployer", lambda user: _retry(context, request, user, job_id)
    )


@router.post("/ui/deliveries/{delivery_id}/redeliver")
def redeliver(delivery_id: int, request: Request, context: Context, csrf_token: Field = "") -> Response:
    def run(user: SignedIn) -> str:
        with context.db.read() as session:
            delivery = session.get(Delivery, delivery_id)
            if delivery is None:
                raise NotFoundError(f"delivery {delivery_id} does not exist; see the list on /ui/jobs.")
            job_id = delivery.job_id
            if job_id is None or session.get(Job, job_id) is None:
                raise ShipyardError(
                    f"delivery {delivery_id} made no job ({delivery.verdict}); its payload is not kept, "
                    "so redeliver it from the provider's webhook settings."
                )
        return _retry(context, request, user, job_id)

    return action(request, context, csrf_token, "deployer", run)
