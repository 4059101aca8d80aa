"""Fakes of the agent's two ports: a controller and a host, recording what the agent asked of them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shipyard.agent.ports import LocalApp
from shipyard.domain.models import AppState, Release
from shipyard.domain.plan import start_container, switch_to
from shipyard.domain.spec import spec_from_snapshot
from shipyard.errors import ControllerError, DeployFailedError, ShipyardError
from shipyard.fleet_api.schemas.agent import AppReport, DesiredApp, DesiredState, PruneReport, ReportAck
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

    def set_desired(self, *apps: DesiredApp) -> None:
        self.apps = list(apps)
        self.version += 1

    def desired(self, version: int | None = None, wait: float = 0.0) -> DesiredState:
        self.polls.append((version, wait))
        if not self.reachable:
            raise ControllerError("cannot reach the controller at http://fake (ConnectError).")
        return DesiredState(host="h1", group="production", version=self.version, apps=list(self.apps))

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
    prune_removes: list[str] = field(default_factory=list)
    prune_error: ShipyardError | None = None
    free: int = 5_000_000_000
    maintenance_changes: list[tuple[str, bool, str]] = field(default_factory=list)

    def prune(self, desired: DesiredApp) -> list[str]:
        self.pruned.append((desired.app, desired.prune))
        if self.prune_error is not None:
            raise self.prune_error
        self.free += 1_000_000 * len(self.prune_removes)
        return list(self.prune_removes)

    def disk_free(self) -> int | None:
        return self.free

    def enter_maintenance(self, desired: DesiredApp, message: str) -> str:
        self.maintenance_changes.append((desired.app, True, message))
        self.running[desired.app] = replace(self.running[desired.app], maintenance=True, healthy=False)
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
