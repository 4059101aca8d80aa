"""The host's other changes as commands, pure: maintenance (stop, start), prune and remove.

Like shipyard.domain.plan, each function turns what was observed into fully resolved commands, so
`--dry-run` prints what would run and the interpreter runs exactly that.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from shipyard.domain.commands import (
    Command,
    EnterMaintenance,
    ForgetApp,
    LeaveMaintenance,
    RemoveContainer,
    RemoveImage,
    StopContainer,
    UnregisterApp,
    UnroutePreview,
    container_name,
)
from shipyard.domain.models import AppState, Release, Slot
from shipyard.domain.plan import Plan, plan_start, start_workers
from shipyard.domain.prune import PruneSelection


def plan_maintenance(
    state: AppState, stop_timeout: int, *, keep_running: bool = False, page: str | None = None
) -> Plan:
    """haproxy answers 503 with the maintenance page (health path still 200), then containers stop.

    With `keep_running` the containers go on running (a fleet's maintenance, left in a second), and
    `page`, when given, is written as the page first, so a new message shows even in maintenance."""
    if keep_running:
        if state.maintenance and page is None:
            return Plan(noop_reason=f"{state.app} is in maintenance already")
        return Plan((EnterMaintenance(state.app, state.backend, page),))
    running = [c for c in state.containers if c.running]
    # Workers stop with their own signal and timeout (the container's); one already finishing after
    # its stop signal is left to finish.
    workers = [w for w in state.workers if w.running and w.name not in state.worker_stops]
    if state.maintenance and not running and not workers:
        return Plan(noop_reason=f"{state.app} is in maintenance already and runs no container")
    steps: list[Command] = [EnterMaintenance(state.app, state.backend)]
    steps += [StopContainer(c.name, stop_timeout) for c in running]
    steps += [StopContainer(w.name, w.stop_timeout) for w in workers]
    return Plan(tuple(steps))


def plan_leave_maintenance(
    state: AppState,
    release: Release,
    slot: Slot,
    secrets: Mapping[str, str],
    host_labels: Mapping[str, str] | None = None,
) -> Plan:
    """The active release starts again (unless it runs), health-gated, its workers too, then takes traffic."""
    name = container_name(state.app, release.id, slot)
    running = any(c.name == name and c.running for c in state.containers)
    spec = release.app_spec
    steps = plan_start(state, release, slot, secrets, running=running)
    steps += start_workers(state, release, secrets, host_labels)
    steps.append(
        LeaveMaintenance(state.app, state.backend, slot, (spec.bind, spec.slot_ports[slot]), release)
    )
    return Plan(tuple(steps))


def plan_prune(selection: PruneSelection) -> Plan:
    steps: list[Command] = [RemoveContainer(name, "its release is pruned") for name in selection.containers]
    steps += [RemoveImage(image) for image in selection.images]
    return Plan(tuple(steps), noop_reason="nothing to prune")


def plan_remove(
    state: AppState,
    releases: Sequence[Release],
    present_images: Collection[str],
    *,
    registered: bool,
    other_apps: int,
) -> Plan:
    """Take the app off this host: haproxy first (no request reaches a container being removed),
    then its containers, the images of its releases, and its records."""
    steps: list[Command] = []
    if state.preview is not None:
        # A preview leaves the shared frontend's map and frees its pool backend: haproxy is not reloaded.
        steps.append(UnroutePreview(state.app, state.preview.host_name, state.backend))
    elif registered or state.proxy_has_app:
        steps.append(UnregisterApp(state.app, last=other_apps == 0, proxy_running=state.proxy_running))
    steps += [RemoveContainer(c.name, f"{state.app} is removed") for c in (*state.containers, *state.workers)]
    images = dict.fromkeys(r.pinned_image for r in releases if r.pinned_image in present_images)
    steps += [RemoveImage(image) for image in images]
    steps.append(ForgetApp(state.app))
    return Plan(tuple(steps))
