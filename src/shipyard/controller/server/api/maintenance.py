"""Maintenance of an app in an environment: every host answers the maintenance page, containers run."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.controller.server.api.admin import PathName
from shipyard.controller.server.api.deps import Context, Deployer, Viewer
from shipyard.controller.server.api.params import NameQuery
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.store import maintenance
from shipyard.controller.store.models import MaintenanceWindow
from shipyard.fleet_api.schemas.fleet import MaintenanceCreate, MaintenanceOut

router = APIRouter(tags=["fleet"], responses=API_TOKEN)


def maintenance_out(window: MaintenanceWindow) -> MaintenanceOut:
    return MaintenanceOut(
        app=window.app.name,
        environment=window.environment.name,
        message=window.message,
        started_by=window.started_by,
        started_at=window.started_at,
    )


@router.post(
    "/maintenance",
    status_code=201,
    summary="Put an app in maintenance in an environment, or change its message (deployer)",
    responses={**BODY, **errors(404, 409)},
)
def enter_maintenance(body: MaintenanceCreate, caller: Deployer, context: Context) -> MaintenanceOut:
    with context.db.transaction() as session:
        window = maintenance.enter(
            session,
            app=body.app,
            environment=body.environment,
            message=body.message,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
        )
        answer = maintenance_out(window)
    context.notifier.notify()  # the hosts' long-polls see it at once
    return answer


@router.delete(
    "/maintenance/{app}/{environment}",
    status_code=204,
    summary="Take an app out of maintenance in an environment (deployer)",
    responses={**PARAMS, **errors(404)},
)
def leave_maintenance(app: PathName, environment: PathName, caller: Deployer, context: Context) -> None:
    with context.db.transaction() as session:
        maintenance.leave(
            session, app=app, environment=environment, actor=caller.name, source_ip=caller.source_ip
        )
    context.notifier.notify()


@router.get(
    "/maintenance",
    summary="Apps in maintenance, per environment (viewer)",
    responses={**PARAMS, **errors(404)},
)
def list_maintenance(
    _caller: Viewer, context: Context, environment: NameQuery = None
) -> list[MaintenanceOut]:
    with context.db.read() as session:
        return [maintenance_out(w) for w in maintenance.list_windows(session, environment=environment)]
