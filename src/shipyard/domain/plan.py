"""Decide what to do: observed host state + desired release -> commands. Pure, no I/O.

Two plans: `plan_recovery` brings a host back to exactly one serving slot after a crash (finishing
a swap that had switched, undoing one that had not), `plan_swap` moves traffic to a release. Every
command comes out fully resolved (shipyard.domain.commands), so the plan is what runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shipyard.domain.commands import (
    BeginHistory,
    Command,
    Drain,
    EnsureProxy,
    FinishHistory,
    HookPhase,
    KeepStandby,
    Pull,
    RegisterApp,
    RemoveContainer,
    RoutePreview,
    RunHook,
    RunTask,
    StartContainer,
    StartWorker,
    StopContainer,
    StopWorker,
    SwitchBackend,
    WaitHealthy,
    WaitWorkerHealthy,
    container_name,
    worker_container_name,
)
from shipyard.domain.models import (
    LABEL_APP,
    LABEL_DIGEST,
    LABEL_PROCESS,
    LABEL_RELEASE,
    LABEL_SLOT,
    LABEL_STOP_SIGNAL,
    LABEL_STOP_TIMEOUT,
    LABEL_TASK,
    LABEL_TASK_APP,
    AppState,
    ContainerInfo,
    ContainerSpec,
    HistoryKind,
    Release,
    Slot,
    other_slot,
)
from shipyard.domain.previews import PREVIEW_LABEL, preview_label_value
from shipyard.domain.spec import AppSpec, ProcessSpec
from shipyard.errors import ConfigError

# Hooks find the usual system commands; a release that needs others sets PATH in env.clear.
HOOK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Command, ...] = ()
    noop_reason: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.steps

    def describe(self) -> list[str]:
        if self.empty:
            return [f"nothing to do: {self.noop_reason or 'the host is as desired'}"]
        return [step.describe() for step in self.steps]


@dataclass(frozen=True)
class SwapContext:
    """What a swap's commands carry besides the release: who runs it, its secrets, its hook user.

    Secrets only ever reach a command's environment (masked in its repr, never described)."""

    kind: HistoryKind = "deploy"
    actor: str = ""
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    hook_user: str | None = None
    # A fleet host's labels, which select the processes it runs; None runs every process.
    host_labels: Mapping[str, str] | None = None
    # Run the release's `release:` command before the new container starts (the single-host deploy);
    # an agent's swap never does: the controller ran it once for the whole deployment.
    release_phase: bool = False


def plan_proxy(state: AppState) -> Plan:
    if not state.proxy_running and state.active_slot is not None:
        return Plan((EnsureProxy("haproxy is not running; restart it with the active slot"),))
    return Plan(noop_reason="haproxy is running")


def frontend_changed(before: AppSpec | None, after: AppSpec) -> bool:
    """Whether a release changes what only a (seamless) reload can change: the proxy section, health path."""
    return before is not None and _reload_settings(before) != _reload_settings(after)


def _reload_settings(spec: AppSpec) -> tuple[object, ...]:
    proxy = spec.proxy
    return (proxy.listen, spec.healthcheck.path, proxy.retries, proxy.timeouts, proxy.max_body)


def switch_to(state: AppState, release: Release, to_slot: Slot, from_slot: Slot | None) -> SwitchBackend:
    spec = release.app_spec
    return SwitchBackend(
        state.backend,
        to_slot,
        from_slot,
        # A release may move the app to other ports: the slot's server follows, still without a reload.
        (spec.bind, spec.slot_ports[to_slot]),
        release,
        # A preview's pool backend and the shared frontend never change with a release.
        reload=state.preview is None and frontend_changed(state.spec, spec),
    )


def _roll_forward(state: AppState, release: Release, to_slot: Slot, from_slot: Slot | None) -> list[Command]:
    steps: list[Command] = [switch_to(state, release, to_slot, from_slot)]
    old = state.container_in(from_slot) if from_slot else None
    if from_slot and old is not None:
        backend = state.backend
        steps += [Drain(backend, from_slot, 5.0), StopContainer(old.name, 10, backend, from_slot)]
    return steps


def plan_recovery(
    state: AppState, pending_release: Release | None, standby_until: dict[str, datetime], now: datetime
) -> Plan:
    """Finish or undo an interrupted swap, drop orphans and expired standbys."""
    steps: list[Command] = []
    keep: set[str] = set()
    pending = state.pending
    if pending is not None:
        target = state.servers.get(pending.to_slot)
        if target is not None and target.serving and pending_release is not None:
            steps += _roll_forward(state, pending_release, pending.to_slot, pending.from_slot)
            steps.append(FinishHistory("succeeded", "haproxy had already switched", pending.history_id))
            new = state.container_in(pending.to_slot)
            keep.add(new.name if new else "")
        else:
            for container in state.containers:
                if container.slot == pending.to_slot and container.release_id == pending.release_id:
                    steps.append(
                        RemoveContainer(container.name, "its swap was interrupted before the switch")
                    )
            for worker in state.workers:
                if (
                    worker.release_id == pending.release_id
                    and worker.release_id != state.active_release_id
                    and worker.name not in state.worker_stops
                ):
                    steps.append(RemoveContainer(worker.name, "its swap was interrupted before the switch"))
            steps.append(FinishHistory("interrupted", "the switch had not happened", pending.history_id))
    handled = {s.container for s in steps if isinstance(s, RemoveContainer)}
    steps += _cleanup(state, standby_until, now, keep, handled)
    steps += _worker_cleanup(state, now, handled)
    return Plan(tuple(steps), noop_reason="the host is consistent")


def _worker_cleanup(state: AppState, now: datetime, handled: set[str]) -> list[Command]:
    """Old workers finish on their own time: one asked to stop is removed once it exited, killed only
    after its deadline, and signalled again if a crash came between the record and the signal; a
    running worker of another release than the active one is asked to stop."""
    steps: list[Command] = []
    present = {worker.name for worker in state.workers}
    for name in sorted(set(state.worker_stops) - present):
        steps.append(RemoveContainer(name, "it is gone; its stop record is dropped"))
    for worker in state.workers:
        if worker.name in handled:
            continue
        stop = state.worker_stops.get(worker.name)
        if stop is not None:
            if not worker.running:
                steps.append(RemoveContainer(worker.name, "it finished after its stop signal"))
            elif stop.deadline <= now:
                steps.append(RemoveContainer(worker.name, "its stop timeout has passed"))
            elif not stop.signalled:
                steps.append(stop_worker(state.app, worker))
        elif worker.status == "created":
            steps.append(RemoveContainer(worker.name, "it was created but never started"))
        elif worker.running and worker.release_id != state.active_release_id:
            steps.append(stop_worker(state.app, worker))
    return steps


def stop_worker(app: str, worker: ContainerInfo) -> StopWorker:
    return StopWorker(app, worker.process, worker.name, worker.stop_signal, worker.stop_timeout)


def _cleanup(
    state: AppState, standby_until: dict[str, datetime], now: datetime, keep: set[str], handled: set[str]
) -> list[Command]:
    steps: list[Command] = []
    active = state.container_in(state.active_slot) if state.active_slot else None
    for container in state.containers:
        if container.name in keep or container.name in handled or (active and container.name == active.name):
            continue
        if container.status == "created":
            steps.append(RemoveContainer(container.name, "it was created but never started"))
        elif container.running and container.name not in standby_until:
            steps.append(
                RemoveContainer(container.name, "it runs in the idle slot without a swap in progress")
            )
        elif container.running and standby_until[container.name] <= now:
            steps.append(StopContainer(container.name, 10))
    return steps


def choose_target_slot(state: AppState) -> Slot:
    return other_slot(state.active_slot) if state.active_slot else "blue"


def plan_swap(
    release: Release, state: AppState, swap: SwapContext | None = None, *, pull_allowed: bool = True
) -> Plan:
    """Commands making `release` the serving one, health-gated, with the old slot drained; the
    swap is recorded as running first and as succeeded last."""
    swap = swap or SwapContext()
    spec = release.app_spec
    active = state.container_in(state.active_slot) if state.active_slot else None
    serving = state.servers.get(state.active_slot or "")
    if (
        active is not None
        and active.release_id == release.id
        and serving is not None
        and serving.serving
        and not state.maintenance
        and not _missing_workers(state, release, swap.host_labels)
    ):
        return Plan(noop_reason=f"release {release.id} is already active in the {active.slot} slot")
    target = choose_target_slot(state)
    steps: list[Command] = [
        BeginHistory(
            state.app, swap.kind, release.id, state.active_release_id, target, state.active_slot, swap.actor
        )
    ]
    if not state.proxy_has_app:
        steps.append(RegisterApp(spec, new=state.spec is None, proxy_running=state.proxy_running))
    steps += plan_hooks("pre-deploy", release, swap)
    steps += _prepare_target(state, release, target, pull_allowed, swap.secrets, swap.release_phase)
    # Workers start and pass their health before the switch, so a failing worker fails the deploy
    # while the old release (web and workers) still runs; old workers stop after the old web slot.
    steps += start_workers(state, release, swap.secrets, swap.host_labels)
    steps.append(switch_to(state, release, target, state.active_slot if active else None))
    if state.preview is not None and not state.preview.routed:
        # Only once a slot serves: the host name never reaches an empty backend.
        steps.append(RoutePreview(state.app, state.preview.host_name, state.backend))
    steps += plan_hooks("post-swap", release, swap)
    if active is not None and state.active_slot is not None:
        steps += _retire(state.app, state.backend, active, state.active_slot, spec)
    steps += retire_workers(state, release, swap.host_labels)
    steps += plan_hooks("post-deploy", release, swap)
    steps.append(FinishHistory("succeeded"))
    return Plan(tuple(steps))


def plan_start(
    state: AppState, release: Release, slot: Slot, secrets: Mapping[str, str], *, running: bool
) -> list[Command]:
    """Start `release` in `slot` (unless it runs already) and wait for its health check."""
    steps: list[Command] = []
    if not running:
        steps.append(start_container(state.app, release, slot, secrets))
    steps.append(wait_healthy(state.app, release, slot))
    return steps


def _prepare_target(
    state: AppState,
    release: Release,
    target: Slot,
    pull_allowed: bool,
    secrets: Mapping[str, str],
    release_phase: bool = False,
) -> list[Command]:
    occupant = state.container_in(target)
    command = release.app_spec.release if release_phase else None
    if occupant is not None and occupant.release_id == release.id and command is None:
        # A warm standby of this very release: only the switch is needed.
        return [wait_healthy(state.app, release, target, warm=True)]
    warm = occupant is not None and occupant.release_id == release.id
    steps: list[Command] = []
    if occupant is not None and not warm:
        steps.append(RemoveContainer(occupant.name, "the idle slot is needed for the new release"))
    if release.digest not in state.images_present and pull_allowed:
        steps.append(Pull(release.image, release.digest))
    if command is not None:
        # Once, before the new release serves or even starts: a failure leaves the host as it was.
        steps.append(run_task("release", release, command, secrets, RELEASE_TIMEOUT))
    if warm:
        return [*steps, wait_healthy(state.app, release, target, warm=True)]
    steps += [start_container(state.app, release, target, secrets), wait_healthy(state.app, release, target)]
    return steps


def wanted_workers(spec: AppSpec, host_labels: Mapping[str, str] | None) -> dict[str, ProcessSpec]:
    """The worker processes of the spec this host runs."""
    return {name: process for name, process in spec.workers.items() if process.runs_on(host_labels)}


def _running_worker(state: AppState, release_id: str, process: str) -> ContainerInfo | None:
    for worker in state.workers:
        if (
            worker.release_id == release_id
            and worker.process == process
            and worker.running
            and worker.name not in state.worker_stops
        ):
            return worker
    return None


def _missing_workers(state: AppState, release: Release, host_labels: Mapping[str, str] | None) -> list[str]:
    wanted = wanted_workers(release.app_spec, host_labels)
    return [name for name in wanted if _running_worker(state, release.id, name) is None]


def start_workers(
    state: AppState, release: Release, secrets: Mapping[str, str], host_labels: Mapping[str, str] | None
) -> list[Command]:
    """Start each wanted worker of `release` not running yet, and wait for its health."""
    steps: list[Command] = []
    spec = release.app_spec
    for name in _missing_workers(state, release, host_labels):
        process = spec.processes[name]
        container = _free_worker_name(state, release.id, name)
        steps.append(start_worker(state.app, release, name, container, secrets))
        steps.append(WaitWorkerHealthy(name, release.id, container, spec.worker_health(process)))
    return steps


def retire_workers(state: AppState, release: Release, host_labels: Mapping[str, str] | None) -> list[Command]:
    """Ask every running worker that is not a wanted process of `release` to finish."""
    wanted = wanted_workers(release.app_spec, host_labels)
    return [
        stop_worker(state.app, worker)
        for worker in state.workers
        if worker.running
        and worker.name not in state.worker_stops
        and not (worker.release_id == release.id and worker.process in wanted)
    ]


def _free_worker_name(state: AppState, release_id: str, process: str) -> str:
    """The first name not held by a worker still finishing after its stop signal."""
    number = 1
    while (name := worker_container_name(state.app, release_id, process, number)) in state.worker_stops:
        number += 1
    return name


def start_worker(
    app: str, release: Release, process_name: str, name: str, secrets: Mapping[str, str]
) -> StartWorker:
    spec = release.app_spec
    process = spec.processes[process_name]
    stop_timeout = spec.worker_stop_timeout(process)
    env = {
        **spec.env.clear,
        **{key: secrets[key] for key in spec.env.secret if key in secrets},
        "SHIPYARD_APP": app,
        "SHIPYARD_RELEASE": release.id,
        "SHIPYARD_PROCESS": process_name,
    }
    labels = {
        **spec.labels,
        **preview_labels(spec),
        LABEL_APP: app,
        LABEL_RELEASE: release.id,
        LABEL_DIGEST: release.digest,
        LABEL_PROCESS: process_name,
        LABEL_STOP_SIGNAL: process.stop_signal,
        LABEL_STOP_TIMEOUT: str(stop_timeout),
    }
    container = ContainerSpec(
        name=name,
        image=release.pinned_image,
        env=env,
        labels=labels,
        network=spec.network,
        volumes=list(spec.volumes),
        memory=spec.resources.memory,
        cpus=spec.resources.cpus,
        command=list(process.command) if process.command else None,
        stop_signal=process.stop_signal,
    )
    return StartWorker(process_name, release.id, release.short_digest, container)


def _retire(app: str, backend: str, old: ContainerInfo, slot: Slot, spec: AppSpec) -> list[Command]:
    if spec.deploy.standby > 0:
        return [
            Drain(backend, slot, spec.deploy.drain_timeout, wait=False),
            KeepStandby(app, old.name, old.release_id, spec.deploy.standby),
        ]
    return [
        Drain(backend, slot, spec.deploy.drain_timeout),
        StopContainer(old.name, spec.deploy.stop_timeout, backend, slot),
    ]


def start_container(app: str, release: Release, slot: Slot, secrets: Mapping[str, str]) -> StartContainer:
    spec = release.app_spec
    port = spec.slot_ports[slot]
    host_network = spec.network == "host"
    env = {
        **spec.env.clear,
        **{key: secrets[key] for key in spec.env.secret if key in secrets},
        "PORT": str(port if host_network else spec.port),
        "HOST": spec.bind if host_network else "0.0.0.0",
        "SHIPYARD_APP": app,
        "SHIPYARD_RELEASE": release.id,
        "SHIPYARD_SLOT": slot,
    }
    labels = {
        **spec.labels,
        **preview_labels(spec),
        LABEL_APP: app,
        LABEL_SLOT: slot,
        LABEL_RELEASE: release.id,
        LABEL_DIGEST: release.digest,
    }
    container = ContainerSpec(
        name=container_name(app, release.id, slot),
        image=release.pinned_image,
        env=env,
        labels=labels,
        network=spec.network,
        ports={} if host_network else {spec.port: (spec.bind, port)},
        volumes=list(spec.volumes),
        memory=spec.resources.memory,
        cpus=spec.resources.cpus,
        command=list(spec.web_command) if spec.web_command else None,
    )
    return StartContainer(slot, release.id, release.short_digest, container, spec.bind, port)


RELEASE_TIMEOUT = 3600.0  # seconds a release phase may run


def preview_labels(spec: AppSpec) -> dict[str, str]:
    """A preview's containers carry its label (repository#PR), so anything left behind is found."""
    if spec.preview is None:
        return {}
    return {PREVIEW_LABEL: preview_label_value(spec.preview.repository, spec.preview.pr)}


def task_environment(release: Release, kind: str, secrets: Mapping[str, str]) -> dict[str, str]:
    """What the app's containers get (env.clear, its secrets, the SHIPYARD_ names), without a slot or port."""
    spec = release.app_spec
    return {
        **spec.env.clear,
        **{key: secrets[key] for key in spec.env.secret if key in secrets},
        "SHIPYARD_APP": release.app,
        "SHIPYARD_RELEASE": release.id,
        "SHIPYARD_TASK": kind,
    }


def run_task(
    kind: str,
    release: Release,
    argv: Sequence[str],
    secrets: Mapping[str, str],
    timeout: float,
    name: str = "",
) -> RunTask:
    """A throwaway container of the release running `argv`: host network, no ports, not an app slot."""
    spec = release.app_spec
    container = ContainerSpec(
        name=name or f"{release.app}-{release.id}-{kind}",
        image=release.pinned_image,
        env=task_environment(release, kind, secrets),
        # Not the app's LABEL_APP: observation, recovery and prunes never take it for a slot's container.
        labels={
            **spec.labels,
            **preview_labels(spec),
            LABEL_TASK: kind,
            LABEL_TASK_APP: release.app,
            LABEL_RELEASE: release.id,
        },
        network="host",
        volumes=list(spec.volumes),
        memory=spec.resources.memory,
        cpus=spec.resources.cpus,
        # Exactly argv runs: an image entrypoint that starts the server would otherwise swallow it.
        command=list(argv[1:]),
        entrypoint=[argv[0]],
    )
    return RunTask(kind, release.id, container, timeout)


def wait_healthy(app: str, release: Release, slot: Slot, *, warm: bool = False) -> WaitHealthy:
    spec = release.app_spec
    check = spec.healthcheck
    if warm:
        check = check.model_copy(update={"healthy_threshold": 1})
    url = f"http://{spec.bind}:{spec.slot_ports[slot]}{spec.healthcheck.path}"
    return WaitHealthy(slot, release.id, container_name(app, release.id, slot), url, check, warm)


def plan_hooks(phase: HookPhase, release: Release, swap: SwapContext) -> list[Command]:
    spec = release.app_spec
    commands = {
        "pre-deploy": spec.hooks.pre_deploy,
        "post-swap": spec.hooks.post_swap,
        "post-deploy": spec.hooks.post_deploy,
    }[phase]
    env = hook_environment(release, phase, swap.secrets)
    return [
        RunHook(phase, release.id, command, _argv(phase, command), env, spec.hooks.timeout, swap.hook_user)
        for command in commands
    ]


def _argv(phase: HookPhase, command: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise ConfigError(
            f"the {phase} hook '{command}' cannot be split into arguments ({exc}); fix its quotes."
        ) from exc
    if not argv:
        raise ConfigError(f"a {phase} hook is empty; remove it or give it a command.")
    return argv


def hook_environment(release: Release, phase: HookPhase, secrets: Mapping[str, str]) -> dict[str, str]:
    """The release's own environment, never this process's: an agent's token stays with the agent."""
    spec = release.app_spec
    return {
        "PATH": HOOK_PATH,
        **spec.env.clear,
        **{key: secrets[key] for key in spec.env.secret if key in secrets},
        "SHIPYARD_APP": release.app,
        "SHIPYARD_RELEASE": release.id,
        "SHIPYARD_IMAGE": release.pinned_image,
        "SHIPYARD_DIGEST": release.digest,
        "SHIPYARD_HOOK": phase,
    }
