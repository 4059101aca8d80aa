"""What the agent does for each desired app: pure, from the desired state, what runs, and past failures.

An app is converged when the release serving it here is the desired one and its container runs. A
release that failed here is not tried again for the same deployment until its retry time, so a
broken release does not restart in a loop; a new deployment of it is tried at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shipyard.agent.ports import LocalApp
from shipyard.fleet_api.schemas.agent import DesiredApp

FailureKey = tuple[str, int, int | None]


@dataclass(frozen=True)
class Converge:
    desired: DesiredApp
    reason: str


@dataclass(frozen=True)
class InSync:
    desired: DesiredApp


@dataclass(frozen=True)
class Deferred:
    desired: DesiredApp
    retry_in: float
    last_error: str


Action = Converge | InSync | Deferred


def failure_key(desired: DesiredApp) -> FailureKey:
    return (desired.app, desired.release_id, desired.deployment_id)


@dataclass
class Failure:
    attempts: int
    retry_at: float
    error: str


@dataclass
class FailureMemory:
    """Failed attempts per app, release and deployment, with a retry time that doubles each time."""

    first_retry: float = 60.0
    max_retry: float = 900.0
    failures: dict[FailureKey, Failure] = field(default_factory=dict)

    def record(self, desired: DesiredApp, error: str, now: float) -> Failure:
        key = failure_key(desired)
        attempts = self.failures[key].attempts + 1 if key in self.failures else 1
        delay = min(self.max_retry, self.first_retry * 2 ** (attempts - 1))
        self.failures[key] = Failure(attempts, now + delay, error)
        return self.failures[key]

    def forget(self, desired: DesiredApp) -> None:
        self.failures.pop(failure_key(desired), None)

    def blocking(self, desired: DesiredApp, now: float) -> Failure | None:
        failure = self.failures.get(failure_key(desired))
        return failure if failure is not None and failure.retry_at > now else None


def plan_app(desired: DesiredApp, local: LocalApp, failures: FailureMemory, now: float) -> Action:
    if local.active_release == desired.release and local.running:
        return InSync(desired)
    failure = failures.blocking(desired, now)
    if failure is not None:
        return Deferred(desired, failure.retry_at - now, failure.error)
    if local.active_release is None:
        return Converge(desired, f"{desired.app} is new on this host")
    if local.active_release != desired.release:
        return Converge(desired, f"{local.active_release} serves, {desired.release} is desired")
    return Converge(desired, f"the container of {desired.release} is not running")


def plan_apps(
    desired: Sequence[DesiredApp], local: Mapping[str, LocalApp], failures: FailureMemory, now: float
) -> list[Action]:
    return [plan_app(app, local.get(app.app, LocalApp(None)), failures, now) for app in desired]


def next_retry(actions: Sequence[Action]) -> float | None:
    """Seconds until the earliest deferred app may be tried again, if any."""
    delays = [action.retry_in for action in actions if isinstance(action, Deferred)]
    return min(delays) if delays else None


def prunes_due(desired: Sequence[DesiredApp], pruned: Mapping[str, int]) -> list[DesiredApp]:
    """Apps whose latest prune is newer than the last one this agent carried out for them."""
    return [app for app in desired if app.prune is not None and app.prune > pruned.get(app.app, 0)]


@dataclass(frozen=True)
class MaintenanceChange:
    desired: DesiredApp
    enter: bool
    message: str = ""


def maintenance_due(
    desired: Sequence[DesiredApp], local: Mapping[str, LocalApp], shown: Mapping[str, str]
) -> list[MaintenanceChange]:
    """Apps whose maintenance here differs from their environment's: to enter (or show a new message
    on the page, `shown` being the message this agent last put there) or to leave. An app that serves
    no release here has nothing to put in maintenance."""
    changes = []
    for app in desired:
        here = local.get(app.app, LocalApp(None))
        if here.active_release is None:
            continue
        wanted = app.maintenance
        if wanted is not None and (not here.maintenance or shown.get(app.app) != wanted.message):
            changes.append(MaintenanceChange(app, True, wanted.message))
        elif wanted is None and here.maintenance:
            changes.append(MaintenanceChange(app, False))
    return changes
