"""Operational endpoints without authentication: liveness, this replica's role and Prometheus metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from shipyard.controller.server.api.deps import Context
from shipyard.controller.server.api.responses import errors
from shipyard.controller.server.context import ControllerContext

router = APIRouter(tags=["ops"])


def _database_answers(context: ControllerContext) -> None:
    with context.db.read() as session:
        session.execute(text("SELECT 1"))


@router.get("/healthz", summary="200 when the controller and its database answer", responses=errors(503))
async def healthz(context: Context) -> dict[str, str]:
    await run_in_threadpool(_database_answers, context)  # OperationalError becomes a 503
    return {"status": "ok"}


class ControllerInfo(BaseModel):
    replica: str
    pid: int
    leader: bool
    database: str


@router.get("/controller", summary="This controller replica: its name, pid and whether it leads")
async def controller_info(context: Context) -> ControllerInfo:
    return ControllerInfo(
        replica=context.leadership.replica,
        pid=os.getpid(),
        leader=context.leadership.is_leader,
        database=context.db.engine.dialect.name,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(context: Context) -> Response:
    body = await run_in_threadpool(generate_latest, context.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
