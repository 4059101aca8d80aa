"""Keep haproxy's config file equal to what the store says is active, and haproxy itself running."""

from __future__ import annotations

from pathlib import Path

from shipyard.adapters.haproxy_config import DEFAULT_MAINTENANCE_PAGE, PreviewPool, ProxiedApp
from shipyard.domain.commands import backend_name
from shipyard.domain.spec import AppSpec
from shipyard.host.ports import Proxy, Store
from shipyard.host.records import AppRecord

__all__ = ["backend_name", "ensure_running", "proxied_app", "reload_with_state", "write_config"]


def proxied_app(record: AppRecord, page: Path, pool_backend: str | None = None) -> ProxiedApp:
    spec = record.spec
    return ProxiedApp(
        pool_backend=pool_backend,
        name=record.app,
        listen=spec.proxy.listen,
        upstream_host=spec.bind,
        slot_ports=spec.slot_ports,
        health_path=spec.healthcheck.path,
        active_slot=record.active_slot,
        maintenance_page=page,
        maintenance=record.maintenance,
        retry_attempts=spec.proxy.retries.attempts,
        replay_methods=tuple(spec.proxy.retries.methods),
        replay_on_response_timeout=spec.proxy.retries.response_timeout,
        http_request_timeout=spec.proxy.timeouts.http_request,
        max_body_bytes=spec.proxy.max_body_bytes,
    )


def maintenance_page_text(spec: AppSpec) -> str:
    """The app's own page when the file is there (read on this host), else the default one."""
    page = spec.proxy.maintenance_page
    if page and Path(page).is_file():
        return Path(page).read_text()
    return DEFAULT_MAINTENANCE_PAGE


def write_config(store: Store, proxy: Proxy) -> None:
    records = store.apps()
    for record in records:
        if not proxy.has_page(record.app):
            proxy.write_page(record.app, DEFAULT_MAINTENANCE_PAGE)
    allocations = {allocation.app: allocation for allocation in store.preview_allocations()}
    proxy.write_config(
        [
            proxied_app(
                r,
                proxy.page_path(r.app),
                allocations[r.app].backend if r.app in allocations else None,
            )
            for r in records
        ],
        preview_pool(store),
    )


def preview_pool(store: Store) -> PreviewPool | None:
    """The previews frontend and pool, once this host has taken a preview (never before: a host
    that runs none does not listen on the previews address)."""
    settings = store.preview_settings()
    if settings is None:
        return None
    routes = {a.host_name: a.backend for a in store.preview_allocations() if a.routed}
    return PreviewPool(settings.listen, settings.slots, routes)


def app_backend(store: Store, app: str) -> str:
    """The backend serving `app`: a preview's pool backend, or the app's own."""
    allocation = store.preview_allocation(app)
    return allocation.backend if allocation is not None else backend_name(app)


def ensure_running(store: Store, proxy: Proxy) -> bool:
    """Start haproxy from the store's truth when it is not running; True when it had to."""
    if proxy.running() or not store.apps():
        return False
    write_config(store, proxy)
    proxy.start()
    return True


def reload_with_state(store: Store, proxy: Proxy, app: str) -> None:
    """Rewrite the config and reload seamlessly, keeping the runtime's server states."""
    write_config(store, proxy)
    proxy.reload(app_backend(store, app))


def save_server_state(store: Store, proxy: Proxy) -> None:
    """After a swap: the file and the state file match the runtime, without a reload."""
    write_config(store, proxy)
    proxy.save_server_state()
