"""The rollout engine: pure functions from a deployment's state, hosts and reports to the next state.

No database, no clock and no web framework here: the driver loads the state, calls advance() with the
current time, and stores whatever comes back. That keeps the rules testable as plain data and makes a
restarted controller continue from the stored rows alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shipyard.controller.errors import ConflictError
from shipyard.fleet_api.schemas.agent import CRASH_LOOP_STEP

QUEUED, RUNNING, PAUSED = "queued", "running", "paused"
SUCCEEDED, FAILED, ABORTED, ROLLED_BACK = "succeeded", "failed", "aborted", "rolled_back"
ACTIVE = frozenset({RUNNING, PAUSED})
FINISHED = frozenset({SUCCEEDED, FAILED, ABORTED, ROLLED_BACK})

# Per-host outcomes within one deployment.
WAITING, PENDING, DEPLOYING, HEALTHY, HOST_SUCCEEDED, HOST_FAILED = (
    "waiting",
    "pending",
    "deploying",
    "healthy",
    "succeeded",
    "failed",
)
HOST_FINAL = frozenset({HOST_SUCCEEDED, HOST_FAILED})

# The release phase of a deployment whose release has a `release:` command (none: "").
# needed: no task yet (the driver creates it on release_host()); pending/running: its task's status.
RELEASE_NEEDED, RELEASE_PENDING, RELEASE_RUNNING = "needed", "pending", "running"
RELEASE_SUCCEEDED, RELEASE_FAILED = "succeeded", "failed"
RELEASE_WAITING = frozenset({RELEASE_NEEDED, RELEASE_PENDING, RELEASE_RUNNING})


@dataclass(frozen=True)
class Policy:
    max_parallel: str = "1"
    max_failed: int = 0
    monitor: float = 5.0
    auto_rollback: bool = True


@dataclass(frozen=True)
class HostView:
    host_id: int
    name: str
    lost: bool = False


@dataclass(frozen=True)
class Report:
    """The latest thing a host's agent said about the deployment's app."""

    active_release: int | None
    health: str = "unknown"  # healthy | unhealthy | unknown
    outcome: str | None = None  # in_progress | succeeded | failed
    release: int | None = None  # the release that step and outcome refer to
    step: str = ""
    message: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class Progress:
    host_id: int
    wave: int
    outcome: str = WAITING
    step: str = ""
    message: str = ""
    started_at: datetime | None = None
    healthy_since: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class RolloutState:
    status: str
    target_release: int
    policy: Policy
    current_wave: int = 0
    total_waves: int = 0
    progress: tuple[Progress, ...] = ()
    message: str = ""
    release_phase: str = ""  # see RELEASE_*; read from the deployment's release task, never stored here
    release_detail: str = ""  # the release task's message when it failed


def wave_size(max_parallel: str, host_count: int) -> int:
    """Hosts per wave: a count, or a percentage of the environment's hosts rounded up; never below 1."""
    if max_parallel.endswith("%"):
        return max(1, math.ceil(host_count * int(max_parallel[:-1]) / 100))
    return max(1, int(max_parallel))


def plan_waves(hosts: Sequence[HostView], max_parallel: str) -> list[list[HostView]]:
    ordered = sorted(hosts, key=lambda host: host.name)
    size = wave_size(max_parallel, len(ordered))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def failed_count(state: RolloutState) -> int:
    return sum(row.outcome == HOST_FAILED for row in state.progress)


def advance(
    state: RolloutState, hosts: Sequence[HostView], reports: Mapping[int, Report], now: datetime
) -> RolloutState:
    """Everything that can happen at `now`; repeated until stable so one call starts every due wave."""
    for _ in range(state.total_waves + len(hosts) + 3):
        following = _step(state, hosts, reports, now)
        if following == state:
            break
        state = following
    return state


def moves_desired(before: RolloutState, after: RolloutState) -> bool:
    """Whether going from `before` to `after` may change what a host should run.

    Desired state follows the deployment's status, its running wave and which hosts are in which wave
    (rows are only ever added, and their wave set when added); a host's progress within its wave
    (deploying, healthy, succeeded, failed) changes nothing a host should run until the status does."""
    return (
        before.status != after.status
        or before.current_wave != after.current_wave
        or before.target_release != after.target_release
        or len(before.progress) != len(after.progress)
    )


def next_due(state: RolloutState) -> datetime | None:
    """When advance() will next change something without any new report: a host's monitor period ends."""
    if state.status not in ACTIVE:
        return None
    ends = [
        monitor_end(row.healthy_since, state.policy.monitor)
        for row in state.progress
        if row.outcome == HEALTHY and row.healthy_since is not None
    ]
    return min((end for end in ends if end is not None), default=None)


def monitor_end(since: datetime, seconds: float) -> datetime | None:
    """When a monitor period begun at `since` ends; None when no datetime can hold it (never ends).

    Policies come from stored rows; an absurd value (1e300, infinity, NaN) must not make a tick raise."""
    try:
        return since + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return None


def _step(
    state: RolloutState, hosts: Sequence[HostView], reports: Mapping[int, Report], now: datetime
) -> RolloutState:
    if state.status not in ACTIVE:
        return state
    if state.current_wave == 0:
        return _release_phase(state, hosts, now) if state.status == RUNNING else state
    state = _add_joined_hosts(state, hosts, now)
    by_id = {host.host_id: host for host in hosts}
    state = replace(
        state, progress=tuple(_observe(row, state, by_id, reports, now) for row in state.progress)
    )
    if failed_count(state) > state.policy.max_failed:
        return _fail(state, now)
    if state.status == RUNNING and _wave_done(state, state.current_wave):
        if state.current_wave < state.total_waves:
            return _start_wave(state, state.current_wave + 1, now)
        return replace(state, status=SUCCEEDED, message=_summary(state, "succeeded"))
    return state


def release_host(hosts: Sequence[HostView]) -> HostView | None:
    """The host that runs a deployment's release phase: the first live one by name (the first wave's)."""
    return next(iter(sorted((host for host in hosts if not host.lost), key=lambda host: host.name)), None)


def needs_release_task(state: RolloutState) -> bool:
    return state.status == RUNNING and state.current_wave == 0 and state.release_phase == RELEASE_NEEDED


def _release_phase(state: RolloutState, hosts: Sequence[HostView], now: datetime) -> RolloutState:
    """No wave starts before the release phase succeeded; when it fails, no host is touched."""
    if state.release_phase == RELEASE_NEEDED and release_host(hosts) is None:
        return _start(state, hosts, now)  # no host to run it on: there is nothing to change either
    if state.release_phase in RELEASE_WAITING:
        running = state.release_phase == RELEASE_RUNNING
        message = "release phase running" if running else "release phase waiting for its host's agent"
        return state if state.message == message else replace(state, message=message)
    if state.release_phase == RELEASE_FAILED:
        detail = f": {state.release_detail}" if state.release_detail else ""
        return replace(state, status=FAILED, message=f"release phase failed{detail}; no host was changed")
    return _start(state, hosts, now)


def _start(state: RolloutState, hosts: Sequence[HostView], now: datetime) -> RolloutState:
    waves = plan_waves([host for host in hosts if not host.lost], state.policy.max_parallel)
    if not waves:
        return replace(state, status=SUCCEEDED, message="no hosts in the environment yet; later hosts get it")
    rows = tuple(Progress(host.host_id, number) for number, wave in enumerate(waves, 1) for host in wave)
    return _start_wave(replace(state, total_waves=len(waves), progress=rows), 1, now)


def _start_wave(state: RolloutState, number: int, now: datetime) -> RolloutState:
    rows = tuple(
        replace(row, outcome=PENDING, started_at=now)
        if row.wave == number and row.outcome == WAITING
        else row
        for row in state.progress
    )
    return replace(state, current_wave=number, progress=rows, message=f"wave {number} of {state.total_waves}")


def _add_joined_hosts(state: RolloutState, hosts: Sequence[HostView], now: datetime) -> RolloutState:
    """A host that joins mid-deployment enters the running wave, so it gets the target straight away."""
    known = {row.host_id for row in state.progress}
    joined = [host for host in hosts if host.host_id not in known and not host.lost]
    if not joined:
        return state
    rows = tuple(Progress(host.host_id, state.current_wave, PENDING, started_at=now) for host in joined)
    return replace(state, progress=state.progress + rows)


def _observe(
    row: Progress,
    state: RolloutState,
    hosts: Mapping[int, HostView],
    reports: Mapping[int, Report],
    now: datetime,
) -> Progress:
    if row.wave > state.current_wave or row.outcome in HOST_FINAL:
        return row
    host = hosts.get(row.host_id)
    if host is None or host.lost:
        reason = "host lost: no report within lost_after" if host else "host removed from the environment"
        return replace(row, outcome=HOST_FAILED, message=reason, finished_at=now)
    report = reports.get(row.host_id)
    if report is not None:
        row = _apply_report(row, report, state.target_release, now)
    end = monitor_end(row.healthy_since, state.policy.monitor) if row.healthy_since is not None else None
    monitored = end is not None and now >= end
    if row.outcome == HEALTHY and monitored:
        return replace(row, outcome=HOST_SUCCEEDED, finished_at=now)
    return row


def _apply_report(row: Progress, report: Report, target: int, now: datetime) -> Progress:
    step, message = report.step or row.step, report.message or row.message
    if (step, message) != (row.step, row.message):  # most reports repeat them: no copy of the row
        row = replace(row, step=step, message=message)
    about_target = report.release in (None, target)
    fresh = report.at is None or row.started_at is None or report.at >= row.started_at
    if report.outcome == "failed" and about_target and fresh:
        return replace(row, outcome=HOST_FAILED, finished_at=now)
    on_target = report.active_release == target
    if on_target and report.health == "healthy":
        return replace(row, outcome=HEALTHY, healthy_since=row.healthy_since or now)
    if on_target and report.health == "unhealthy" and report.step == CRASH_LOOP_STEP and fresh:
        # A worker of the new release crash-loops: as a failed health check, even before the host
        # reported healthy (its swap passed the start's health gate, then the worker kept dying).
        return replace(
            row, outcome=HOST_FAILED, message=report.message or "a worker crash-loops", finished_at=now
        )
    if on_target and report.health == "unhealthy" and row.outcome == HEALTHY:
        message = report.message or "became unhealthy while monitored"
        return replace(row, outcome=HOST_FAILED, message=message, finished_at=now)
    if report.outcome == "in_progress" and report.release == target and row.outcome == PENDING:
        return replace(row, outcome=DEPLOYING)
    return row


def _wave_done(state: RolloutState, number: int) -> bool:
    return all(row.outcome in HOST_FINAL for row in state.progress if row.wave == number)


def _fail(state: RolloutState, now: datetime) -> RolloutState:
    status = ROLLED_BACK if state.policy.auto_rollback else FAILED
    detail = "previous release restored" if status == ROLLED_BACK else "switched hosts keep the target"
    message = (
        f"{failed_count(state)} host(s) failed, more than max_failed={state.policy.max_failed}; {detail}"
    )
    return replace(state, status=status, message=message)


def _summary(state: RolloutState, verb: str) -> str:
    failed = failed_count(state)
    tail = f", {failed} host(s) failed within max_failed" if failed else ""
    return f"{verb} on {len(state.progress) - failed} host(s){tail}"


def pause(state: RolloutState) -> RolloutState:
    if state.status != RUNNING:
        raise ConflictError(f"only a running deployment can be paused; this one is {state.status}.")
    return replace(state, status=PAUSED, message="paused: the running wave finishes, no new wave starts")


def resume(state: RolloutState) -> RolloutState:
    if state.status != PAUSED:
        raise ConflictError(f"only a paused deployment can be resumed; this one is {state.status}.")
    return replace(state, status=RUNNING, message=f"resumed at wave {state.current_wave}")


def abort(state: RolloutState) -> RolloutState:
    if state.status in FINISHED:
        raise ConflictError(f"the deployment already finished ({state.status}); nothing to abort.")
    return replace(state, status=ABORTED, message="aborted: every host returns to the current release")
