"""Read what is real on this host for one app: containers (labels), haproxy state, the store."""

from __future__ import annotations

from dataclasses import replace

from shipyard.domain.commands import backend_name
from shipyard.domain.models import SLOTS, AppState, ServerState, SlotServer
from shipyard.errors import ProxyError
from shipyard.host.context import HostContext


def observe(context: HostContext, app: str, repository: str | None = None) -> AppState:
    record = context.store.app(app)
    found = context.engine.containers(app)
    containers = tuple(c for c in found if not c.is_worker)
    workers = tuple(c for c in found if c.is_worker)
    proxy_running = context.proxy.running()
    preview = context.store.preview_allocation(app)
    servers: dict[str, SlotServer] = {}
    has_app = False
    if proxy_running:
        states: dict[str, ServerState]
        try:
            states = context.proxy.server_states(preview.backend if preview else backend_name(app))
            has_app = bool(states)
        except ProxyError:
            states = {}
        for slot in SLOTS:
            if (state := states.get(slot)) is not None:
                servers[slot] = SlotServer(slot, state.admin, state.operational, state.sessions)
    if preview is not None and proxy_running:
        try:
            routed = context.proxy.routes().get(preview.host_name) == preview.backend
        except ProxyError:
            routed = False
        preview = replace(preview, routed=routed)
    images = context.engine.present_digests(repository) if repository else frozenset()
    return AppState(
        app=app,
        proxy_running=proxy_running,
        proxy_has_app=has_app,
        active_slot=record.active_slot if record else None,
        active_release_id=record.active_release_id if record else None,
        maintenance=record.maintenance if record else False,
        containers=containers,
        servers=servers,
        pending=context.store.pending(app),
        images_present=images,
        spec=record.spec if record else None,
        workers=workers,
        worker_stops=context.store.worker_stops(app),
        preview=preview,
    )
