"""Decide what to do: observed host state + desired release -> steps. Pure, no I/O.

Two plans: `plan_recovery` brings a host back to exactly one serving slot after a crash (finishing
a swap that had switched, undoing one that had not), `plan_swap` moves traffic to a release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shipyard.domain.models import AppState, ContainerInfo, Release, Slot, other_slot
from shipyard.domain.spec import AppSpec
from shipyard.domain.steps import (
    AddAppToProxy,
    Drain,
    EnsureProxy,
    FinishPending,
    KeepStandby,
    Pull,
    Remove,
    RunHooks,
    Start,
    Step,
    Stop,
    Switch,
    WaitHealthy,
)


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    noop_reason: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.steps

    def describe(self) -> list[str]:
        if self.empty:
            return [f"nothing to do: {self.noop_reason or 'the host is as desired'}"]
        return [step.describe() for step in self.steps]


def plan_proxy(state: AppState) -> Plan:
    if not state.proxy_running and state.active_slot is not None:
        return Plan((EnsureProxy("haproxy is not running; restart it with the active slot"),))
    return Plan(noop_reason="haproxy is running")


def _roll_forward(state: AppState, release: Release, to_slot: Slot, from_slot: Slot | None) -> list[Step]:
    steps: list[Step] = [Switch(to_slot, from_slot, release)]
    old = state.container_in(from_slot) if from_slot else None
    if from_slot and old is not None:
        steps += [Drain(from_slot, 5.0), Stop(old.name, 10, from_slot)]
    return steps


def plan_recovery(
    state: AppState, pending_release: Release | None, standby_until: dict[str, datetime], now: datetime
) -> Plan:
    """Finish or undo an interrupted swap, drop orphans and expired standbys."""
    steps: list[Step] = []
    keep: set[str] = set()
    pending = state.pending
    if pending is not None:
        target = state.servers.get(pending.to_slot)
        if target is not None and target.serving and pending_release is not None:
            steps += _roll_forward(state, pending_release, pending.to_slot, pending.from_slot)
            steps.append(FinishPending(pending.history_id, "succeeded", "haproxy had already switched"))
            new = state.container_in(pending.to_slot)
            keep.add(new.name if new else "")
        else:
            for container in state.containers:
                if container.slot == pending.to_slot and container.release_id == pending.release_id:
                    steps.append(Remove(container.name, "its swap was interrupted before the switch"))
            steps.append(FinishPending(pending.history_id, "interrupted", "the switch had not happened"))
    steps += _cleanup(
        state, standby_until, now, keep, handled={s.container for s in steps if isinstance(s, Remove)}
    )
    return Plan(tuple(steps), noop_reason="the host is consistent")


def _cleanup(
    state: AppState, standby_until: dict[str, datetime], now: datetime, keep: set[str], handled: set[str]
) -> list[Step]:
    steps: list[Step] = []
    active = state.container_in(state.active_slot) if state.active_slot else None
    for container in state.containers:
        if container.name in keep or container.name in handled or (active and container.name == active.name):
            continue
        if container.status == "created":
            steps.append(Remove(container.name, "it was created but never started"))
        elif container.running and container.name not in standby_until:
            steps.append(Remove(container.name, "it runs in the idle slot without a swap in progress"))
        elif container.running and standby_until[container.name] <= now:
            steps.append(Stop(container.name, 10))
    return steps


def choose_target_slot(state: AppState) -> Slot:
    return other_slot(state.active_slot) if state.active_slot else "blue"


def plan_swap(release: Release, state: AppState, spec: AppSpec, *, pull_allowed: bool = True) -> Plan:
    """Steps to make `release` the serving one, health-gated, with the old slot drained."""
    active = state.container_in(state.active_slot) if state.active_slot else None
    serving = state.servers.get(state.active_slot or "")
    if (
        active is not None
        and active.release_id == release.id
        and serving is not None
        and serving.serving
        and not state.maintenance
    ):
        return Plan(noop_reason=f"release {release.id} is already active in the {active.slot} slot")
    target = choose_target_slot(state)
    steps: list[Step] = []
    if not state.proxy_has_app:
        steps.append(AddAppToProxy(state.app))
    if spec.hooks.pre_deploy:
        steps.append(RunHooks("pre-deploy", release))
    steps += _prepare_target(state, release, target, pull_allowed)
    steps.append(Switch(target, state.active_slot if active else None, release))
    if spec.hooks.post_swap:
        steps.append(RunHooks("post-swap", release))
    if active is not None and state.active_slot is not None:
        steps += _retire(active, state.active_slot, spec)
    if spec.hooks.post_deploy:
        steps.append(RunHooks("post-deploy", release))
    return Plan(tuple(steps))


def _prepare_target(state: AppState, release: Release, target: Slot, pull_allowed: bool) -> list[Step]:
    occupant = state.container_in(target)
    if occupant is not None and occupant.release_id == release.id:
        # A warm standby of this very release: only the switch is needed.
        return [WaitHealthy(target, release, warm=True)]
    steps: list[Step] = []
    if occupant is not None:
        steps.append(Remove(occupant.name, "the idle slot is needed for the new release"))
    if release.digest not in state.images_present and pull_allowed:
        steps.append(Pull(release))
    steps += [Start(target, release), WaitHealthy(target, release)]
    return steps


def _retire(old: ContainerInfo, slot: Slot, spec: AppSpec) -> list[Step]:
    if spec.deploy.standby > 0:
        return [
            Drain(slot, spec.deploy.drain_timeout, wait=False),
            KeepStandby(old.name, old.release_id, spec.deploy.standby),
        ]
    return [Drain(slot, spec.deploy.drain_timeout), Stop(old.name, spec.deploy.stop_timeout, slot)]
