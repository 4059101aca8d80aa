"""The two narrow interfaces the agent's loop works through, so it runs without Docker in tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shipyard.fleet_api.schemas.agent import (
    AppReport,
    DesiredApp,
    DesiredState,
    PruneReport,
    ReportAck,
    TrafficCounters,
)
from shipyard.fleet_api.schemas.tasks import TaskOrder, TaskUpdate
from shipyard.host.interpreter import Reporter


@dataclass(frozen=True)
class LocalApp:
    """What this host runs for one app: the serving release, whether it runs, whether it is healthy."""

    active_release: str | None
    running: bool = False
    healthy: bool = False
    counters: TrafficCounters | None = None  # the app's haproxy counters, when haproxy answers


class ControllerPort(Protocol):
    def desired(self, version: int | None = None, wait: float = 0.0) -> DesiredState: ...

    def task_update(self, task_id: int, update: TaskUpdate) -> None: ...

    def report(
        self,
        apps: list[AppReport],
        *,
        agent_version: str | None = None,
        prunes: list[PruneReport] | None = None,
        disk_free: int | None = None,
    ) -> ReportAck: ...


class HostPort(Protocol):
    def known_apps(self) -> list[str]: ...

    def recover(self, app: str) -> list[str]: ...

    def observe(self, app: str) -> LocalApp: ...

    def converge(self, desired: DesiredApp, reporter: Reporter) -> str: ...

    def prune(self, desired: DesiredApp) -> list[str]:
        """Remove the app's releases a prune does not keep; LockedError while a swap holds the app."""
        ...

    def disk_free(self) -> int | None: ...

    def run_task(self, order: TaskOrder, on_line: Callable[[str], None]) -> int:
        """Run the task's command once in a throwaway container of its release; its exit code.

        PolicyError (or another ShipyardError) when this host refuses it or it cannot start."""
        ...
