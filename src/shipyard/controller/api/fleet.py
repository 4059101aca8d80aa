"""Apps, environments and hosts."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.controller import audit, catalog, deployments, hosts
from shipyard.controller.api.deps import Admin, Context, Viewer
from shipyard.controller.api.views import host_out
from shipyard.controller.errors import ConflictError
from shipyard.controller.schemas.common import NameInPath, NameQuery
from shipyard.controller.schemas.fleet import AppCreate, AppOut, EnvironmentCreate, EnvironmentOut, HostOut

router = APIRouter(tags=["fleet"])


@router.get("/apps", summary="List apps (viewer)")
def list_apps(_caller: Viewer, context: Context) -> list[AppOut]:
    with context.db.read() as session:
        return [AppOut(name=app.name, created_at=app.created_at) for app in catalog.list_apps(session)]


@router.post("/apps", status_code=201, summary="Create an app; releases also create it (admin)")
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


@router.post("/environments", status_code=201, summary="Create an environment (admin)")
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


@router.get("/hosts", summary="List hosts with what they report (viewer)")
def list_hosts(_caller: Viewer, context: Context, group: NameQuery = None) -> list[HostOut]:
    with context.db.read() as session:
        return [host_out(host) for host in hosts.list_hosts(session, group)]


@router.get("/hosts/{name}", summary="One host (viewer)")
def get_host(name: NameInPath, _caller: Viewer, context: Context) -> HostOut:
    with context.db.read() as session:
        return host_out(hosts.find_host(session, name))


@router.delete("/hosts/{name}", status_code=204, summary="Forget a host and revoke its agent token (admin)")
def delete_host(name: NameInPath, caller: Admin, context: Context) -> None:
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
    context.driver.tick()
