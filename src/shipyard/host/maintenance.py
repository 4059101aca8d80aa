"""Maintenance (stop/start), pruning of old releases, removing an app, and logs.

Each change is observe -> plan (shipyard.domain.host_plan) -> interpret, under the app's lock, after
the ordinary recovery; with `dry_run` the plan is returned and nothing runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from shipyard.domain.host_plan import plan_leave_maintenance, plan_maintenance, plan_prune, plan_remove
from shipyard.domain.maintenance_page import page_with_message
from shipyard.domain.models import AppState, ContainerInfo, Release
from shipyard.domain.plan import Plan
from shipyard.domain.prune import PruneSelection, select_prune
from shipyard.domain.spec import AppSpec
from shipyard.errors import NotFoundError
from shipyard.host.context import HostContext
from shipyard.host.interpreter import Interpreter
from shipyard.host.observe import observe
from shipyard.host.records import AppRecord
from shipyard.host.service import locked, previous_release, recover


def stop_app(context: HostContext, app: str, *, wait: bool = False, dry_run: bool = False) -> Plan:
    """haproxy answers 503 with the maintenance page (health path still 200), then containers stop."""
    record = _record(context, app)
    if dry_run:
        return plan_maintenance(observe(context, app), record.spec.deploy.stop_timeout)
    with locked(context, app, "stop", wait):
        state, _ = recover(context, app)
        plan = plan_maintenance(state, record.spec.deploy.stop_timeout)
        Interpreter(context, app).run(plan.steps)
    return plan


def enter_maintenance(
    context: HostContext,
    app: str,
    *,
    message: str | None = None,
    wait: bool = False,
    dry_run: bool = False,
) -> Plan:
    """Maintenance with the containers kept running: haproxy answers 503 with the page (carrying
    `message` when given), the health path keeps answering, and `start_app` serves again at once."""
    record = _record(context, app)
    page = page_with_message(message) if message else None
    if dry_run:
        return plan_maintenance(
            observe(context, app), record.spec.deploy.stop_timeout, keep_running=True, page=page
        )
    with locked(context, app, "maintenance on", wait):
        state, _ = recover(context, app)
        plan = plan_maintenance(state, record.spec.deploy.stop_timeout, keep_running=True, page=page)
        Interpreter(context, app).run(plan.steps)
    return plan


def start_app(
    context: HostContext,
    app: str,
    *,
    secrets: dict[str, str] | None = None,
    wait: bool = False,
    dry_run: bool = False,
    host_labels: Mapping[str, str] | None = None,
) -> Plan:
    """Leave maintenance: the active release starts again, health-gated, its workers too (those
    `host_labels` select; None: all), then takes traffic."""
    record = _record(context, app)
    if not record.active_release_id or not record.active_slot:
        raise NotFoundError(f"{app} has no active release to start; run 'shipyard deploy IMAGE'.")
    release = context.store.release(app, record.active_release_id)
    if dry_run:
        return plan_leave_maintenance(
            observe(context, app), release, record.active_slot, secrets or {}, host_labels
        )
    with locked(context, app, "start", wait):
        plan = plan_leave_maintenance(
            observe(context, app), release, record.active_slot, secrets or {}, host_labels
        )
        Interpreter(context, app).run(plan.steps)
    return plan


def _record(context: HostContext, app: str) -> AppRecord:
    record = context.store.app(app)
    if record is None:
        raise NotFoundError(f"{app} has never been deployed on this host; run 'shipyard deploy IMAGE' first.")
    return record


def prune(context: HostContext, spec: AppSpec, *, wait: bool = False, dry_run: bool = False) -> list[str]:
    """Remove the containers and images of releases a prune does not keep (domain/prune.py says which).

    Runs under the app's lock, so never during a swap; returns what it removed (would remove)."""
    return prune_plan(context, spec, wait=wait, dry_run=dry_run)[1]


def prune_plan(
    context: HostContext, spec: AppSpec, *, wait: bool = False, dry_run: bool = False
) -> tuple[Plan, list[str]]:
    """The prune's commands and the names it removes; run unless `dry_run`."""
    if dry_run:
        state = observe(context, spec.app)
        selection = _select(context, spec, _prunable(state))
        return plan_prune(selection), selection.removed
    with locked(context, spec.app, "prune", wait):
        state, _ = recover(context, spec.app)
        selection = _select(context, spec, _prunable(state))
        plan = plan_prune(selection)
        Interpreter(context, spec.app).run(plan.steps)
    return plan, selection.removed


def _prunable(state: AppState) -> list[ContainerInfo]:
    """Web's containers and the workers' (one finishing after its stop signal is the reaper's)."""
    return [*state.containers, *(w for w in state.workers if w.name not in state.worker_stops)]


def _select(context: HostContext, spec: AppSpec, containers: Sequence[ContainerInfo]) -> PruneSelection:
    record = context.store.app(spec.app)
    releases = context.store.releases(spec.app)
    return select_prune(
        releases,
        containers,
        keep_releases=spec.deploy.keep_releases,
        active=record.active_release_id if record else None,
        previous=_previous_release_id(context, spec.app),
        present_images=present_images(context, releases),
    )


def _previous_release_id(context: HostContext, app: str) -> str | None:
    try:
        return previous_release(context, app).id
    except NotFoundError:
        return None


def present_images(context: HostContext, releases: list[Release]) -> set[str]:
    digests_by_repository = {
        repository: context.engine.present_digests(repository) for repository in {r.image for r in releases}
    }
    return {r.pinned_image for r in releases if r.digest in digests_by_repository[r.image]}


def remove_app(context: HostContext, app: str, *, wait: bool = False, dry_run: bool = False) -> Plan:
    """Take the app off this host: its haproxy frontend and backend (haproxy stops with the last app),
    its containers, the images of its releases, and its releases and history in the store."""
    if dry_run:
        return _remove_plan(context, app)
    with locked(context, app, "remove", wait):
        if context.store.app(app) is not None:
            recover(context, app)
        plan = _remove_plan(context, app)
        Interpreter(context, app).run(plan.steps)
    return plan


def _remove_plan(context: HostContext, app: str) -> Plan:
    record = context.store.app(app)
    state = observe(context, app)
    releases = context.store.releases(app)
    if record is None and not releases and not state.containers and not state.proxy_has_app:
        raise NotFoundError(f"{app} is not on this host; 'shipyard status' names what is.")
    others = [r.app for r in context.store.apps() if r.app != app]
    return plan_remove(
        state,
        releases,
        present_images(context, releases),
        registered=record is not None,
        other_apps=len(others),
    )


def follow_logs(
    context: HostContext, app: str, release_id: str | None, follow: bool, tail: int
) -> Iterator[str]:
    record = _record(context, app)
    wanted = release_id or record.active_release_id
    containers = [c for c in context.engine.containers(app) if c.release_id == wanted and not c.is_worker]
    if not containers:
        raise NotFoundError(f"no container of release {wanted} is on this host; see 'shipyard releases'.")
    newest = max(containers, key=lambda c: c.started_at)
    if follow:
        yield from context.engine.follow_logs(newest.name, tail)
    else:
        yield context.engine.logs(newest.name, tail)
