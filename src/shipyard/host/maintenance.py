"""Maintenance (stop/start), pruning of old releases, and logs."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.domain.models import Release, other_slot
from shipyard.domain.prune import select_prune
from shipyard.domain.spec import AppSpec, spec_from_snapshot
from shipyard.domain.steps import Start, WaitHealthy
from shipyard.errors import NotFoundError
from shipyard.host import proxy_sync
from shipyard.host.context import HostContext
from shipyard.host.executor import Executor, container_name
from shipyard.host.service import locked, previous_release, recover
from shipyard.host.store import AppRecord


def stop_app(context: HostContext, app: str, *, wait: bool = False) -> None:
    """haproxy answers 503 with the maintenance page (health path still 200), then containers stop."""
    record = _record(context, app)
    with locked(context, app, "stop", wait):
        recover(context, app)
        backend = proxy_sync.backend_name(app)
        for slot in ("blue", "green"):
            context.proxy.runtime.set_state(backend, slot, "maint")
        context.store.set_maintenance(app, True)
        proxy_sync.reload_with_state(context, app)
        spec = spec_from_snapshot(record.spec)
        for container in context.engine.containers(app):
            if container.running:
                context.engine.stop(container.name, spec.deploy.stop_timeout)
                context.store.drop_standby(container.name)


def start_app(
    context: HostContext, app: str, *, secrets: dict[str, str] | None = None, wait: bool = False
) -> None:
    """Leave maintenance: the active release starts again, health-gated, then takes traffic."""
    record = _record(context, app)
    if not record.active_release_id or not record.active_slot:
        raise NotFoundError(f"{app} has no active release to start; run 'shipyard deploy IMAGE'.")
    release = context.store.release(app, record.active_release_id)
    with locked(context, app, "start", wait):
        executor = Executor(context, app, secrets=secrets or {})
        name = container_name(app, release.id, record.active_slot)
        status = context.engine.status(name)[0] if _exists(context, app, name) else "missing"
        if status != "running":
            executor.run([Start(record.active_slot, release)])
        executor.run([WaitHealthy(record.active_slot, release)])
        backend = proxy_sync.backend_name(app)
        context.proxy.runtime.switch(backend, record.active_slot, None)
        context.proxy.runtime.set_state(backend, other_slot(record.active_slot), "maint")
        context.store.set_active(app, record.active_slot, release.id, release.spec)
        proxy_sync.reload_with_state(context, app)


def _exists(context: HostContext, app: str, name: str) -> bool:
    return any(c.name == name for c in context.engine.containers(app))


def _record(context: HostContext, app: str) -> AppRecord:
    record = context.store.app(app)
    if record is None:
        raise NotFoundError(f"{app} has never been deployed on this host; run 'shipyard deploy IMAGE' first.")
    return record


def prune(context: HostContext, spec: AppSpec, *, wait: bool = False) -> list[str]:
    """Remove the containers and images of releases a prune does not keep (domain/prune.py says which).

    Runs under the app's lock, so never during a swap; returns what it removed."""
    with locked(context, spec.app, "prune", wait):
        state, _ = recover(context, spec.app)
        record = context.store.app(spec.app)
        releases = context.store.releases(spec.app)
        selection = select_prune(
            releases,
            state.containers,
            keep_releases=spec.deploy.keep_releases,
            active=record.active_release_id if record else None,
            previous=_previous_release_id(context, spec.app),
            present_images=_present_images(context, releases),
        )
        for name in selection.containers:
            context.engine.remove(name)
        for image in selection.images:
            context.engine.remove_image(image)
    return selection.removed


def _previous_release_id(context: HostContext, app: str) -> str | None:
    try:
        return previous_release(context, app).id
    except NotFoundError:
        return None


def _present_images(context: HostContext, releases: list[Release]) -> set[str]:
    digests_by_repository = {
        repository: context.engine.present_digests(repository) for repository in {r.image for r in releases}
    }
    return {r.pinned_image for r in releases if r.digest in digests_by_repository[r.image]}


def follow_logs(
    context: HostContext, app: str, release_id: str | None, follow: bool, tail: int
) -> Iterator[str]:
    record = _record(context, app)
    wanted = release_id or record.active_release_id
    containers = [c for c in context.engine.containers(app) if c.release_id == wanted]
    if not containers:
        raise NotFoundError(f"no container of release {wanted} is on this host; see 'shipyard releases'.")
    newest = max(containers, key=lambda c: c.started_at)
    if follow:
        yield from context.engine.follow_logs(newest.name, tail)
    else:
        yield context.engine.logs(newest.name, tail)
