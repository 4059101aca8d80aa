"""Prunes: ask every host of an environment to remove an app's old releases, and read what each removed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from shipyard.controller.server.api.deps import Context, Deployer, ResourceId, Viewer
from shipyard.controller.server.api.params import NameQuery
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.store import prunes
from shipyard.controller.store.models import Prune
from shipyard.fleet_api.schemas.fleet import PruneCreate, PruneHostOut, PruneOut

router = APIRouter(tags=["fleet"], responses=API_TOKEN)


def prune_out(session: Session, prune: Prune) -> PruneOut:
    waiting = prunes.waiting_hosts(session, prune)
    return PruneOut(
        id=prune.id,
        app=prune.app.name,
        environment=prune.environment.name,
        schedule_id=prune.schedule_id,
        requested_by=prune.requested_by,
        requested_at=prune.requested_at,
        hosts=[
            PruneHostOut(
                host=row.host.name,
                outcome=row.outcome,
                removed=row.removed,
                disk_free=row.disk_free,
                message=row.message,
                reported_at=row.reported_at,
            )
            for row in prune.hosts
        ],
        waiting=waiting,
        summary=prunes.summary(prune, waiting),
    )


@router.post(
    "/prunes",
    status_code=201,
    summary="Ask every host of an environment to prune an app's old releases (deployer)",
    responses={**BODY, **errors(404, 409)},
)
def create_prune(body: PruneCreate, caller: Deployer, context: Context) -> PruneOut:
    with context.db.transaction() as session:
        prune = prunes.request_prune(
            session,
            app=body.app,
            environment=body.environment,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
        )
        prune_id = prune.id
    context.notifier.notify()  # the hosts' long-polls see the new prune at once
    with context.db.read() as session:
        return prune_out(session, prunes.find_prune(session, prune_id))


@router.get(
    "/prunes",
    summary="Prunes, newest first, with per-host results (viewer)",
    responses={**PARAMS, **errors(404)},
)
def list_prunes(
    _caller: Viewer,
    context: Context,
    app: NameQuery = None,
    environment: NameQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[PruneOut]:
    with context.db.read() as session:
        found = prunes.list_prunes(session, app=app, environment=environment, limit=limit)
        return [prune_out(session, prune) for prune in found]


@router.get(
    "/prunes/{prune_id}",
    summary="One prune with what each host removed and its free disk (viewer)",
    responses={**PARAMS, **errors(404)},
)
def get_prune(prune_id: ResourceId, _caller: Viewer, context: Context) -> PruneOut:
    with context.db.read() as session:
        return prune_out(session, prunes.find_prune(session, prune_id))
