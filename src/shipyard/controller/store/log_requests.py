"""Log requests: an app's lines from every host of an environment, carried by the hosts' agents.

A request is a row the desired state of each host of the environment carries while it is open. Each
agent reads its containers' logs (filtered and masked on the host), posts them in batches, and says
when it has sent all it will; the CLI reads the lines after the last id it has. Requests close at
`expires_at` (the follow time, or a short answer window) and are deleted, lines included, an hour on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from shipyard.controller.store import audit, catalog
from shipyard.controller.store.models import Host, LogHost, LogLine, LogRequest
from shipyard.errors import NotFoundError
from shipyard.fleet_api.schemas.logs import (
    AgentLogBatch,
    DesiredLogRequest,
    LogLineOut,
    LogQuery,
    LogRequestOut,
)

ANSWER_WINDOW = timedelta(seconds=30)  # how long hosts have to answer, beyond the follow time
KEPT = timedelta(hours=1)  # a closed request and its lines are deleted this long after it closed
MAX_LINES = 100_000  # per request: beyond this, agents are told to stop
READ_LIMIT = 2000


def create(
    session: Session,
    *,
    app: str,
    environment: str,
    query: LogQuery,
    actor: str,
    source_ip: str | None,
    now: datetime,
) -> LogRequest:
    app_row = catalog.find_app(session, app)
    environment_row = catalog.find_environment(session, environment)
    old = select(LogRequest.id).where(LogRequest.expires_at < now - KEPT)
    session.execute(delete(LogLine).where(LogLine.request_id.in_(old)))
    session.execute(delete(LogHost).where(LogHost.request_id.in_(old)))
    session.execute(delete(LogRequest).where(LogRequest.expires_at < now - KEPT))
    request = LogRequest(
        app=app_row,
        environment=environment_row,
        query=query.model_dump(),
        requested_by=actor,
        requested_at=now,
        expires_at=now + timedelta(seconds=query.follow) + ANSWER_WINDOW,
    )
    session.add(request)
    session.flush()
    audit.record(
        session, actor=actor, action="logs.request", target=f"{app}/{environment}", source_ip=source_ip
    )
    return request


def find(session: Session, request_id: int) -> LogRequest:
    query = select(LogRequest).where(LogRequest.id == request_id)
    found = session.scalar(query.options(joinedload(LogRequest.app), joinedload(LogRequest.environment)))
    if found is None:
        raise NotFoundError(f"log request {request_id} does not exist (closed requests go after an hour).")
    return found


def cancel(session: Session, request_id: int, now: datetime) -> None:
    request = find(session, request_id)
    request.expires_at = min(request.expires_at, now)


def open_requests(session: Session, environment_id: int, now: datetime) -> list[DesiredLogRequest]:
    """What the desired state of every host of the environment carries."""
    query = select(LogRequest).where(LogRequest.environment_id == environment_id, LogRequest.expires_at > now)
    found = session.scalars(query.options(joinedload(LogRequest.app)).order_by(LogRequest.id))
    return [DesiredLogRequest(id=r.id, app=r.app.name, **r.query) for r in found]


def add_batch(session: Session, *, host_id: int, group: str, batch: AgentLogBatch, now: datetime) -> bool:
    """Keep a host's lines; False (and nothing kept) once the request is closed, unknown or full."""
    request = session.scalar(
        select(LogRequest).where(LogRequest.id == batch.request).options(joinedload(LogRequest.environment))
    )
    if request is None or request.environment.name != group or request.expires_at <= now:
        return False
    stored = session.scalar(
        select(LogLine.id).where(LogLine.request_id == request.id).offset(MAX_LINES).limit(1)
    )
    if stored is not None:
        return False
    session.add_all(LogLine(request_id=request.id, host_id=host_id, line=line) for line in batch.lines)
    if batch.finished or batch.message:
        state = session.get(LogHost, (request.id, host_id)) or LogHost(request_id=request.id, host_id=host_id)
        state.finished = state.finished or batch.finished
        state.message = batch.message or state.message
        session.add(state)
    return True


def read(session: Session, request: LogRequest, *, after: int, now: datetime) -> LogRequestOut:
    hosts = dict(
        session.execute(
            select(Host.id, Host.name).where(Host.group == request.environment.name).order_by(Host.name)
        ).all()
    )
    rows: Sequence[LogLine] = session.scalars(
        select(LogLine)
        .where(LogLine.request_id == request.id, LogLine.id > after)
        .order_by(LogLine.id)
        .limit(READ_LIMIT)
    ).all()
    states = session.scalars(select(LogHost).where(LogHost.request_id == request.id)).all()
    return LogRequestOut(
        id=request.id,
        app=request.app.name,
        environment=request.environment.name,
        hosts=list(hosts.values()),
        finished=sorted(hosts[s.host_id] for s in states if s.finished and s.host_id in hosts),
        messages={hosts[s.host_id]: s.message for s in states if s.message and s.host_id in hosts},
        open=request.expires_at > now,
        lines=[LogLineOut(id=r.id, host=hosts.get(r.host_id, "?"), line=r.line) for r in rows],
        expires_at=request.expires_at,
    )
