"""The two narrow interfaces the agent's loop works through, so it runs without Docker in tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from shipyard.agent.crash_loop import WorkerSample
from shipyard.agent.log_lines import TimedLine
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
from shipyard.host.ports import ExecProcess


@dataclass(frozen=True)
class LocalApp:
    """What this host runs for one app: the serving release, whether it runs, whether it is healthy."""

    active_release: str | None
    running: bool = False
    healthy: bool = False
    counters: TrafficCounters | None = None  # the app's haproxy counters, when haproxy answers
    maintenance: bool = False  # haproxy answers the app's maintenance page
    # The serving release's worker containers with their restart counts (the crash-loop watch).
    workers: tuple[WorkerSample, ...] = ()
    problem: str = ""  # why it is unhealthy beyond haproxy's word (a crash-looping worker)


class RelayChannel(Protocol):
    """The agent's WebSocket of an exec session, through the controller to the deployer's CLI."""

    def send_bytes(self, data: bytes) -> None: ...

    def send_control(self, message: dict[str, Any]) -> None: ...

    def receive(self, timeout: float | None = None) -> bytes | dict[str, Any] | None:
        """The next frame (None once closed); TimeoutError when nothing came within `timeout`."""
        ...

    def close(self) -> None: ...


class ControllerPort(Protocol):
    def desired(self, version: int | None = None, wait: float = 0.0) -> DesiredState: ...

    def task_update(self, task_id: int, update: TaskUpdate) -> None: ...

    def agent_exec_channels(self, task_id: int) -> Iterator[RelayChannel]:
        """The session's socket on each controller URL in turn, until the caller finds its session."""
        ...

    def report(
        self,
        apps: list[AppReport],
        *,
        agent_version: str | None = None,
        prunes: list[PruneReport] | None = None,
        disk_free: int | None = None,
    ) -> ReportAck: ...

    def post_logs(
        self, request_id: int, lines: list[str], *, finished: bool = False, message: str = ""
    ) -> bool:
        """Send log lines for a log request; False once the controller no longer wants them."""
        ...


class HostPort(Protocol):
    def known_apps(self) -> list[str]: ...

    def recover(self, app: str) -> list[str]: ...

    def observe(self, app: str) -> LocalApp: ...

    def converge(self, desired: DesiredApp, reporter: Reporter) -> str: ...

    def prune(self, desired: DesiredApp) -> list[str]:
        """Remove the app's releases a prune does not keep; LockedError while a swap holds the app."""
        ...

    def disk_free(self) -> int | None: ...

    def teardown_previews(self, desired: list[DesiredApp]) -> list[str]:
        """Remove every preview app (and container labelled as one) that `desired` does not hold; what
        was removed. A preview a swap holds is left for the next pass."""
        ...

    def run_task(self, order: TaskOrder, on_line: Callable[[str], None]) -> int:
        """Run the task's command once in a throwaway container of its release; its exit code.

        PolicyError (or another ShipyardError) when this host refuses it or it cannot start."""
        ...

    def check_exec(self, order: TaskOrder) -> str:
        """The app's serving container for the exec session; PolicyError when this host's policy refuses
        it, NotFoundError when the app serves nothing here (nothing ran either way)."""
        ...

    def start_exec(self, container: str, argv: list[str], *, tty: bool) -> ExecProcess:
        """`argv` in the running `container`, its stdin open (safe from any thread)."""
        ...

    def enter_maintenance(self, desired: DesiredApp, message: str) -> str:
        """haproxy answers the maintenance page (with `message`, if any); the containers keep running."""
        ...

    def leave_maintenance(self, desired: DesiredApp) -> str:
        """The active release serves again (started first if it does not run)."""
        ...

    def log_sources(self, app: str, process: str | None) -> dict[str, str]:
        """The running containers of the app's active release (of `process` only, when given), each
        with its process; NotFoundError when the app does not run here."""
        ...

    def container_log(self, name: str, since: float | None, tail: int | None) -> list[TimedLine]: ...
