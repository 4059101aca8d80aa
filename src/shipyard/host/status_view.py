"""`shipyard status` and `shipyard releases` as stable JSON documents (see docs/json.md)."""

from __future__ import annotations

from typing import Any

from shipyard.domain.models import AppState
from shipyard.domain.previews import preview_app_name
from shipyard.errors import NotFoundError
from shipyard.host.context import HostContext


def status_document(context: HostContext, app: str, state: AppState, recovered: list[str]) -> dict[str, Any]:
    record = context.store.app(app)
    if record is None:
        raise NotFoundError(f"{app} has never been deployed on this host; run 'shipyard deploy IMAGE' first.")
    active = None
    if record.active_release_id:
        release = context.store.release(app, record.active_release_id)
        deployed = next(
            (e for e in context.store.history(app) if e.release_id == release.id and e.status == "succeeded"),
            None,
        )
        active = {
            "id": release.id,
            "image": release.image,
            "tag": release.tag,
            "digest": release.digest,
            "deployed_at": deployed.finished_at if deployed else release.created_at.isoformat(),
            "deployed_by": deployed.actor if deployed else release.created_by,
        }
    spec = record.spec
    slot_ports = spec.slot_ports
    active_server = state.servers.get(record.active_slot or "")
    return {
        "app": app,
        "maintenance": record.maintenance,
        "active_release": active,
        "active_slot": record.active_slot,
        "active_port": slot_ports.get(record.active_slot or ""),
        "listen": spec.proxy.listen,
        "health": active_server.operational if active_server else "unknown",
        "proxy_running": state.proxy_running,
        "servers": {
            name: {
                "admin": s.admin,
                "operational": s.operational,
                "sessions": s.sessions,
                "port": slot_ports[name],
            }
            for name, s in sorted(state.servers.items())
        },
        "containers": [
            {"name": c.name, "slot": c.slot, "release": c.release_id, "status": c.status}
            for c in sorted(state.containers, key=lambda c: c.name)
        ],
        "processes": processes_document(state),
        "kept_releases": sorted({c.release_id for c in (*state.containers, *state.workers)}),
        "recovered": recovered,
        "preview": preview_document(state),
        "previews": previews_document(context, app),
    }


def preview_document(state: AppState) -> dict[str, Any] | None:
    """For a preview app: the host name it answers, its pool backend and whether the map routes it."""
    if state.preview is None:
        return None
    return {"host_name": state.preview.host_name, "backend": state.backend, "routed": state.preview.routed}


def previews_document(context: HostContext, app: str) -> list[dict[str, Any]]:
    """The previews of `app` this host runs (`APP-pr-N`), each with the host name it answers."""
    allocations = {allocation.app: allocation for allocation in context.store.preview_allocations()}
    found = []
    for record in context.store.apps():
        placement = record.spec.preview
        if placement is None or record.app != preview_app_name(app, placement.pr):
            continue
        allocation = allocations.get(record.app)
        found.append(
            {
                "app": record.app,
                "pr": placement.pr,
                "host_name": placement.host_name,
                "active_release": record.active_release_id,
                "active_slot": record.active_slot,
                "active_port": record.spec.slot_ports.get(record.active_slot or ""),
                "backend": allocation.backend if allocation is not None else None,
                "routed": allocation.routed if allocation is not None else False,
            }
        )
    return sorted(found, key=lambda preview: int(preview["pr"]))


def processes_document(state: AppState) -> dict[str, list[dict[str, Any]]]:
    """Each process's containers: web's by slot, each worker's with its release and, for an old one
    finishing after its stop signal, the moment it may be killed."""
    processes: dict[str, list[dict[str, Any]]] = {
        "web": [
            {"name": c.name, "release": c.release_id, "slot": c.slot, "status": c.status}
            for c in sorted(state.containers, key=lambda c: c.name)
        ]
    }
    for worker in sorted(state.workers, key=lambda c: c.name):
        stop = state.worker_stops.get(worker.name)
        processes.setdefault(worker.process, []).append(
            {
                "name": worker.name,
                "release": worker.release_id,
                "status": "stopping" if stop is not None and worker.running else worker.status,
                "stop_deadline": stop.deadline.isoformat() if stop is not None else None,
            }
        )
    return processes


def releases_document(context: HostContext, app: str) -> dict[str, Any]:
    record = context.store.app(app)
    releases = context.store.releases(app)
    history = context.store.history(app, limit=200)
    return {
        "app": app,
        "active_release": record.active_release_id if record else None,
        "releases": [
            {
                "id": r.id,
                "image": r.image,
                "tag": r.tag,
                "digest": r.digest,
                "created_at": r.created_at.isoformat(),
                "created_by": r.created_by,
            }
            for r in releases
        ],
        "history": [
            {
                "id": e.id,
                "kind": e.kind,
                "release": e.release_id,
                "from_release": e.from_release_id,
                "outcome": e.status,
                "actor": e.actor,
                "started_at": e.started_at,
                "finished_at": e.finished_at,
                "message": e.message,
                "steps": e.steps,
            }
            for e in history
        ],
    }
