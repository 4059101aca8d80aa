"""The two narrow interfaces the agent's loop works through, so it runs without Docker in tests."""

from __future__ import annotations

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
from shipyard.host.interpreter import Reporter


@dataclass(frozen=True)
class LocalApp:
    """What this host runs for one app: the serving release, whether it runs, whether it is healthy."""

    active_release: str | None
    running: bool = False
    healthy: bool = False
    counters: TrafficCounters | None = None  # the app's haproxy counters, when haproxy answers
    maintenance: bool = False  # haproxy answers the app's maintenance page


class ControllerPort(Protocol):
    def desired(self, version: int | None = None, wait: float = 0.0) -> DesiredState: ...

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

    def enter_maintenance(self, desired: DesiredApp, message: str) -> str:
        """haproxy answers the maintenance page (with `message`, if any); the containers keep running."""
        ...

    def leave_maintenance(self, desired: DesiredApp) -> str:
        """The active release serves again (started first if it does not run)."""
        ...
