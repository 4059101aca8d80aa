"""Keep haproxy's config file equal to what the store says is active, and haproxy itself running."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shipyard.adapters.haproxy_config import DEFAULT_MAINTENANCE_PAGE, ProxiedApp, render_config
from shipyard.domain.spec import AppSpec, spec_from_snapshot
from shipyard.host.context import HostContext
from shipyard.host.store import AppRecord


def backend_name(app: str) -> str:
    return f"app_{app}"


def proxied_app(record: AppRecord, page: Path) -> ProxiedApp:
    spec = spec_from_snapshot(record.spec)
    return ProxiedApp(
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


def frontend_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a release changes what only a (seamless) reload can change: the proxy section, health path."""
    old, new = spec_from_snapshot(before), spec_from_snapshot(after)
    return _reload_settings(old) != _reload_settings(new)


def _reload_settings(spec: AppSpec) -> tuple[object, ...]:
    proxy = spec.proxy
    return (proxy.listen, spec.healthcheck.path, proxy.retries, proxy.timeouts, proxy.max_body)


def write_maintenance_page(context: HostContext, spec: AppSpec) -> Path:
    page = context.proxy_paths.page(spec.app)
    text = DEFAULT_MAINTENANCE_PAGE
    if spec.proxy.maintenance_page and Path(spec.proxy.maintenance_page).is_file():
        text = Path(spec.proxy.maintenance_page).read_text()
    if not page.exists() or page.read_text() != text:
        page.write_text(text)
    return page


def write_config(context: HostContext) -> None:
    paths = context.proxy_paths
    apps = [proxied_app(r, paths.page(r.app)) for r in context.store.apps()]
    for record in context.store.apps():
        if not paths.page(record.app).exists():
            paths.page(record.app).write_text(DEFAULT_MAINTENANCE_PAGE)
    temporary = paths.config.with_suffix(".tmp")
    temporary.write_text(render_config(apps, paths))
    os.replace(temporary, paths.config)


def ensure_running(context: HostContext) -> bool:
    """Start haproxy from the store's truth when it is not running; True when it had to."""
    if context.proxy.running() or not context.store.apps():
        return False
    write_config(context)
    context.proxy.start()
    return True


def reload_with_state(context: HostContext, app: str) -> None:
    """Rewrite the config and reload seamlessly, keeping the runtime's server states."""
    write_config(context)
    context.proxy.reload(backend_name(app))


def save_server_state(context: HostContext) -> None:
    """After a swap: the file and the state file match the runtime, without a reload."""
    write_config(context)
    context.proxy.runtime.dump_server_state(context.proxy_paths.state_file)
