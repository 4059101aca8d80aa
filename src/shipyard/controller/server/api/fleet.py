"""Apps, environments and hosts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from shipyard.controller.errors import ConflictError
from shipyard.controller.server.api.deps import Admin, Context, Viewer
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.server.api.views import hosts_out
from shipyard.controller.store import audit, catalog, deployments, hosts
from shipyard.fleet_api.schemas.common import NAME_PATTERN
from shipyard.fleet_api.schemas.fleet import AppCreate, AppOut, EnvironmentCreate, EnvironmentOut, HostOut

router = APIRouter(tags=["fleet"], responses=API_TOKEN)
HostName = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]


@router.get("/apps", summary="List apps (viewer)")
def list_apps(_caller: Viewer, context: Context) -> list[AppOut]:
    with context.db.read() as session:
        return [AppOut(name=app.name, created_at=app.created_at) for app in catalog.list_apps(session)]


@router.post(
    "/apps",
    status_code=201,
    summary="Create an app; releases also create it (admin)",
    responses={**BODY, **errors(409)},
)
def create_app_record(body: AppCreate, caller: Admin, context: Context) -> AppOut:
    with context.db.transaction() as session:
        if body.name in {app.name for app in catalog.list_apps(session)}:
            raise ConflictError(f"app {body.name!r} already exists.")
        app = catalog.ensure_app(session, body.name)
        audit.record(
            session, actor=caller.name, action="app.create", target=body.name, source_ip=caller.source_ip
        )
        return AppOut(name=app.name, created_at=app.created_at)


@router.get("/environments", summary="List environments with host counts and current releases (viewer)")
def list_environments(_caller: Viewer, context: Context) -> list[EnvironmentOut]:
    with context.db.read() as session:
        counts = catalog.host_counts(session)
        apps = catalog.list_apps(session)
        return [
            EnvironmentOut(
                name=env.name,
                created_at=env.created_at,
                hosts=counts.get(env.name, 0),
                current={
                    app.name: release
                    for app in apps
                    if (release := deployments.current_release_id(session, app.id, env.id)) is not None
                },
            )
            for env in catalog.list_environments(session)
        ]


@router.post(
    "/environments",
    status_code=201,
    summary="Create an environment (admin)",
    responses={**BODY, **errors(409)},
)
def create_environment(body: EnvironmentCreate, caller: Admin, context: Context) -> EnvironmentOut:
    with context.db.transaction() as session:
        if body.name in {env.name for env in catalog.list_environments(session)}:
            raise ConflictError(f"environment {body.name!r} already exists.")
        env = catalog.ensure_environment(session, body.name)
        audit.record(
            session,
            actor=caller.name,
            action="environment.create",
            target=body.name,
            source_ip=caller.source_ip,
        )
        return EnvironmentOut(name=env.name, created_at=env.created_at, hosts=0, current={})


@router.get("/hosts", summary="List hosts with what they report (viewer)", responses=PARAMS)
def list_hosts(
    _caller: Viewer,
    context: Context,
    group: Annotated[str | None, Query(min_length=1, max_length=64, pattern=NAME_PATTERN)] = None,
) -> list[HostOut]:
    with context.db.read() as session:
        return hosts_out(hosts.list_hosts(session, group))


@router.get("/hosts/{name}", summary="One host (viewer)", responses={**PARAMS, **errors(404)})
def get_host(name: HostName, _caller: Viewer, context: Context) -> HostOut:
    with context.db.read() as session:
        host = hosts.find_host(session, name)
        return hosts_out([host], hosts.list_hosts(session, host.group))[0]


@router.delete(
    "/hosts/{name}",
    status_code=204,
    summary="Forget a host and revoke its agent token (admin)",
    responses={**PARAMS, **errors(404, 409)},
)
def delete_host(name: HostName, caller: Admin, context: Context) -> None:
    with context.db.transaction() as session:
        host = hosts.find_host(session, name)
        host_id = host.id
        session.delete(host)
        audit.record(
            session, actor=caller.name, action="host.delete", target=name, source_ip=caller.source_ip
        )
    context.agent_tokens.forget_host(host_id)  # its agent token stops working at once
    context.presence.forget(host_id)
    context.report_memory.forget_host(host_id)
    context.driver.tick_after_commit()
