"""Previews on this host: their slot ports and pool backend, and their teardown.

A preview app (a spec with `preview` set) gets its two slot ports and a backend of the previews pool
from this host (recorded in its store) instead of its spec's; it is served by the shared previews
frontend through the map, never by a frontend of its own. When the desired state no longer holds it,
everything of it goes: the map entry, its pool backend and ports, its containers, the images no other
app's release uses, its records. A container labelled as a preview that no record knows (a crash
mid-deploy) goes too. Only the preview label makes anything removable this way.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from shipyard.domain.host_plan import plan_remove
from shipyard.domain.models import Release
from shipyard.domain.plan import Plan
from shipyard.domain.preview_host import PreviewSettings, pool_backend
from shipyard.domain.previews import PREVIEW_LABEL
from shipyard.errors import ConfigError
from shipyard.host import proxy_sync
from shipyard.host.context import HostContext
from shipyard.host.interpreter import Interpreter, port_taken
from shipyard.host.maintenance import present_images
from shipyard.host.observe import observe
from shipyard.host.service import locked


def place_preview(context: HostContext, release: Release, settings: PreviewSettings) -> Release:
    """The preview's release with the slot ports this host gives it (the same ones on every deploy)."""
    spec = release.app_spec
    if spec.preview is None:
        return release
    if context.store.preview_settings() is None:
        check_previews_listen(settings)  # the first preview here adds the previews frontend
    allocation = context.store.allocate_preview(release.app, spec.preview.host_name, settings)
    return replace(release, app_spec=spec.model_copy(update={"port": allocation.port}))


def serve_previews(context: HostContext, settings: PreviewSettings) -> str | None:
    """Listen for previews now, before any comes (an agent started with --previews-listen): the
    previews frontend and pool in the config, haproxy started or reloaded once; what was done."""
    store, proxy = context.store, context.proxy
    if store.preview_settings() == settings and proxy.running():
        return None
    if store.preview_settings() is None:
        check_previews_listen(settings)
    store.set_preview_settings(settings)
    proxy_sync.write_config(store, proxy)
    if proxy.running():
        proxy.reload(pool_backend(0))
        return f"haproxy serves previews on {settings.listen} (reloaded)"
    proxy.start()
    return f"haproxy serves previews on {settings.listen} (started)"


def check_previews_listen(settings: PreviewSettings) -> None:
    host, _, port = settings.listen.rpartition(":")
    if port_taken(host, int(port)):
        raise ConfigError(
            f"the previews address {settings.listen} is already taken by another process; free it or "
            "restart the agent with another --previews-listen."
        )


def stale_previews(context: HostContext, wanted: Collection[str]) -> list[str]:
    """Preview apps on this host that `wanted` (the desired state's apps) does not hold."""
    store = context.store
    names = {record.app for record in store.apps() if record.spec.preview is not None}
    names |= {allocation.app for allocation in store.preview_allocations()}
    names |= {container.app for container in context.engine.labelled(PREVIEW_LABEL) if container.app}
    stale = []
    for name in sorted(names - set(wanted)):
        record = store.app(name)
        if record is not None and record.spec.preview is None:
            continue  # the host's records say it is no preview: never removed this way
        stale.append(name)
    return stale


def remove_preview(context: HostContext, app: str) -> Plan:
    """Everything of the preview `app` on this host; idempotent (LockedError while a swap holds it)."""
    with locked(context, app, "preview teardown", wait=False):
        plan = removal_plan(context, app)
        Interpreter(context, app).run(plan.steps)
    return plan


def removal_plan(context: HostContext, app: str) -> Plan:
    store = context.store
    state = observe(context, app)
    releases = store.releases(app)
    others = [record.app for record in store.apps() if record.app != app]
    # An image another app's release names (the production app built from the same commit) stays.
    shared = {release.pinned_image for other in others for release in store.releases(other)}
    images = present_images(context, releases) - shared
    return plan_remove(state, releases, images, registered=store.app(app) is not None, other_apps=len(others))
