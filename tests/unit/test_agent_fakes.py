"""Fakes of the agent's two ports: a controller and a host, recording what the agent asked of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shipyard.agent.log_lines import TimedLine
from shipyard.agent.ports import LocalApp
from shipyard.domain.models import AppState, Release
from shipyard.domain.plan import start_container, switch_to
from shipyard.domain.spec import spec_from_snapshot
from shipyard.errors import ControllerError, DeployFailedError, NotFoundError, ShipyardError
from shipyard.fleet_api.schemas.agent import AppReport, DesiredApp, DesiredState, PruneReport, ReportAck
from shipyard.fleet_api.schemas.tasks import TaskOrder, TaskUpdate
from shipyard.host.interpreter import Reporter

DIGEST = "sha256:" + "ab" * 32


def desired_app(app: str = "web", release_id: int = 1, deployment_id: int | None = 1) -> DesiredApp:
    spec = {"app": app, "image": "127.0.0.1:5000/web", "proxy": {"listen": "127.0.0.1:8080"}}
    return DesiredApp(
        app=app,
        release_id=release_id,
        release=f"r{release_id}",
        image="127.0.0.1:5000/web",
        digest=DIGEST,
        spec=spec,
        deployment_id=deployment_id,
    )


def task_order(task_id: int = 7, kind: str = "run", argv: list[str] | None = None) -> TaskOrder:
    app = desired_app()
    return TaskOrder(
        id=task_id,
        kind=kind,  # type: ignore[arg-type]
        app=app.app,
        release_id=app.release_id,
        release=app.release,
        image=app.image,
        digest=app.digest,
        spec=app.spec,
        argv=argv or ["bin/rails", "runner", "Task.go"],
        timeout=60.0,
    )


@dataclass
class FakeController:
    apps: list[DesiredApp] = field(default_factory=list)
    version: int = 1
    reachable: bool = True
    polls: list[tuple[int | None, float]] = field(default_factory=list)
    reports: list[AppReport] = field(default_factory=list)
    failed_reports: int = 0
    prunes: list[PruneReport] = field(default_factory=list)
    disk_free: list[int | None] = field(default_factory=list)
    tasks: list[TaskOrder] = field(default_factory=list)
    # Each task's updates as the agent sent them; a task is pending until its first one (as the API).
    task_updates: dict[int, list[TaskUpdate]] = field(default_factory=dict)

    def task_update(self, task_id: int, update: TaskUpdate) -> None:
        if not self.reachable:
            raise ControllerError("cannot reach the controller at http://fake (ConnectError).")
        sent = self.task_updates.setdefault(task_id, [])
        if update.start == bool(sent):  # as the API: one start, then output and the end
            raise ControllerError(f"the controller answered HTTP 409: task {task_id} started already.")
        if sent and sent[-1].status in ("succeeded", "failed"):
            raise ControllerError(f"the controller answered HTTP 409: task {task_id} already finished.")
        sent.append(update)
        self.tasks = [task for task in self.tasks if task.id != task_id]

    def task_lines(self, task_id: int) -> list[str]:
        return [line for update in self.task_updates.get(task_id, []) for line in update.lines]

    log_batches: list[tuple[int, list[str], bool, str]] = field(default_factory=list)
    closed_logs: set[int] = field(default_factory=set)

    def set_desired(self, *apps: DesiredApp) -> None:
        self.apps = list(apps)
        self.version += 1

    def desired(self, version: int | None = None, wait: float = 0.0) -> DesiredState:
        self.polls.append((version, wait))
        if not self.reachable:
            raise ControllerError("cannot reach the controller at http://fake (ConnectError).")
        return DesiredState(
            host="h1", group="production", version=self.version, apps=list(self.apps), tasks=list(self.tasks)
        )

    def report(
        self,
        apps: list[AppReport],
        *,
        agent_version: str | None = None,
        prunes: list[PruneReport] | None = None,
        disk_free: int | None = None,
    ) -> ReportAck:
        if not self.reachable:
            self.failed_reports += 1
            raise ControllerError("cannot reach the controller at http://fake (ConnectError).")
        self.reports.extend(apps)
        self.prunes.extend(prunes or [])
        self.disk_free.append(disk_free)
        return ReportAck(host="h1", status="ready", received_at=datetime.now(UTC))

    def post_logs(
        self, request_id: int, lines: list[str], *, finished: bool = False, message: str = ""
    ) -> bool:
        if not self.reachable:
            raise ControllerError("cannot reach the controller at http://fake (ConnectError).")
        self.log_batches.append((request_id, list(lines), finished, message))
        return request_id not in self.closed_logs

    def last_report(self, app: str = "web") -> AppReport:
        return [report for report in self.reports if report.app == app][-1]


@dataclass
class FakeHost:
    running: dict[str, LocalApp] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    converged: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    on_converge: object = None
    pruned: list[tuple[str, int | None]] = field(default_factory=list)
    teardowns: list[list[str]] = field(default_factory=list)
    prune_removes: list[str] = field(default_factory=list)
    prune_error: ShipyardError | None = None
    free: int = 5_000_000_000
    # Tasks run (their ids), what they print, their exit code, or the error that stops them first.
    tasks_run: list[int] = field(default_factory=list)
    task_output: list[str] = field(default_factory=list)
    task_exit_code: int = 0
    task_error: ShipyardError | None = None

    def run_task(self, order: TaskOrder, on_line: Callable[[str], None]) -> int:
        if self.task_error is not None:
            raise self.task_error
        self.tasks_run.append(order.id)
        for line in self.task_output:
            on_line(line)
        return self.task_exit_code

    maintenance_changes: list[tuple[str, bool, str]] = field(default_factory=list)
    containers: dict[str, dict[str, str]] = field(default_factory=dict)  # app -> container -> process
    log_lines: dict[str, list[TimedLine]] = field(default_factory=dict)
    log_reads: list[tuple[str, float | None, int | None]] = field(default_factory=list)

    def prune(self, desired: DesiredApp) -> list[str]:
        self.pruned.append((desired.app, desired.prune))
        if self.prune_error is not None:
            raise self.prune_error
        self.free += 1_000_000 * len(self.prune_removes)
        return list(self.prune_removes)

    def disk_free(self) -> int | None:
        return self.free

    def teardown_previews(self, desired: list[DesiredApp]) -> list[str]:
        self.teardowns.append(sorted(entry.app for entry in desired))
        return []

    def log_sources(self, app: str, process: str | None) -> dict[str, str]:
        if app not in self.running:
            raise NotFoundError(f"{app} does not run on this host.")
        found = {name: kind for name, kind in self.containers.get(app, {}).items() if process in (None, kind)}
        if not found:
            raise NotFoundError(f"{app} runs no {process} container on this host.")
        return found

    def container_log(self, name: str, since: float | None, tail: int | None) -> list[TimedLine]:
        self.log_reads.append((name, since, tail))
        lines = [line for line in self.log_lines.get(name, []) if since is None or line.at[0] >= int(since)]
        return lines[-tail:] if tail else lines

    def enter_maintenance(self, desired: DesiredApp, message: str) -> str:
        self.maintenance_changes.append((desired.app, True, message))
        self.running[desired.app] = replace(self.running[desired.app], maintenance=True)
        return f"put {desired.app} in maintenance"

    def leave_maintenance(self, desired: DesiredApp) -> str:
        self.maintenance_changes.append((desired.app, False, ""))
        self.running[desired.app] = replace(self.running[desired.app], maintenance=False, healthy=True)
        return f"serve {desired.app} again"

    def known_apps(self) -> list[str]:
        return sorted(self.running)

    def recover(self, app: str) -> list[str]:
        self.recovered.append(app)
        return [f"removed the half-started container of {app}"]

    def observe(self, app: str) -> LocalApp:
        return self.running.get(app, LocalApp(None))

    def converge(self, desired: DesiredApp, reporter: Reporter) -> str:
        self.converged.append(desired.release)
        spec = spec_from_snapshot(desired.spec)
        release = Release(
            desired.release, desired.app, desired.image, desired.digest, spec, datetime.now(UTC), "t"
        )
        reporter.step_started(start_container(desired.app, release, "green", {}))
        if callable(self.on_converge):
            self.on_converge()
        if desired.release in self.broken:
            raise DeployFailedError(
                f"release {desired.release} failed its health check; the previous one serves."
            )
        switch = switch_to(idle_state(desired.app), release, "green", "blue")
        reporter.step_started(switch)
        reporter.step_finished(switch, 0.001, "cutover 1.0 ms")
        self.running[desired.app] = LocalApp(desired.release, running=True, healthy=True)
        return f"{desired.release} serves"


def idle_state(app: str) -> AppState:
    return AppState(app, True, True, "blue", None, False)
