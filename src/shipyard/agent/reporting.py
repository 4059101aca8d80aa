"""Reports to the controller: the latest word per app, kept until the controller has received it.

A swap reports each step as it starts. When the controller is unreachable the swap carries on and
the latest report of each app waits here; it is sent once the controller answers again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import structlog

from shipyard.agent.localize import release_number
from shipyard.agent.ports import ControllerPort, LocalApp
from shipyard.domain.commands import Command, SwitchBackend, step_name
from shipyard.errors import ControllerError
from shipyard.fleet_api.schemas.agent import (
    CRASH_LOOP_STEP,
    MAX_REMOVED,
    AppReport,
    DesiredApp,
    Health,
    Outcome,
    PruneReport,
)

log = structlog.get_logger("shipyard.agent")
MAX_MESSAGE = 2000
# The controller refuses NUL in any text and control characters in a step name; output of a failed
# command may hold either, so they are replaced rather than make the whole report bounce.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def health_of(local: LocalApp) -> Health:
    if local.active_release is None:
        return "unknown"
    return "healthy" if local.running and local.healthy and not local.problem else "unhealthy"


def app_report(
    desired: DesiredApp, local: LocalApp, outcome: Outcome | None, *, step: str = "", message: str = ""
) -> AppReport:
    if local.problem and outcome != "in_progress":  # a crash loop: said as such, whatever else happened
        step, message = CRASH_LOOP_STEP, local.problem
    return AppReport(
        app=desired.app,
        step=CONTROL.sub(" ", step)[:64],
        active_release=release_number(local.active_release),
        release=desired.release_id,
        health=health_of(local),
        outcome=outcome,
        message=message.replace("\x00", " ")[:MAX_MESSAGE],
        counters=local.counters,
        maintenance=local.maintenance,
    )


def prune_report(desired: DesiredApp, removed: list[str], *, error: str | None = None) -> PruneReport:
    assert desired.prune is not None  # only a desired prune is carried out
    return PruneReport(
        app=desired.app,
        prune=desired.prune,
        outcome="failed" if error is not None else "succeeded",
        removed=[CONTROL.sub(" ", name)[:255] for name in removed[:MAX_REMOVED]],
        message=(error or "").replace("\x00", " ")[:MAX_MESSAGE],
    )


@dataclass
class ReportBuffer:
    controller: ControllerPort
    agent_version: str | None = None
    pending: dict[str, AppReport] = field(default_factory=dict)
    offline: bool = False
    prunes: dict[str, PruneReport] = field(default_factory=dict)
    disk_free: int | None = None  # sent with every report; the latest measurement

    def put(self, report: AppReport) -> None:
        self.pending[report.app] = report

    def put_prune(self, report: PruneReport) -> None:
        self.prunes[report.app] = report

    def flush(self, *, force: bool = True) -> bool:
        """Send what waits; True when the controller has it all (or nothing waited).

        Without `force`, nothing is tried while the last attempt failed: a swap must not wait on an
        unreachable controller at every step. The loop forces a try before each poll.
        """
        waiting = bool(self.pending or self.prunes)
        if not waiting or (self.offline and not force):
            return not waiting
        reports, prunes = list(self.pending.values()), list(self.prunes.values())
        try:
            self.controller.report(
                reports, agent_version=self.agent_version, prunes=prunes, disk_free=self.disk_free
            )
        except ControllerError as exc:
            self.offline = True
            log.info("report deferred", reason=str(exc), apps=len(reports))
            return False
        self.offline = False
        for report in reports:
            if self.pending.get(report.app) is report:
                del self.pending[report.app]
        for pruned in prunes:
            if self.prunes.get(pruned.app) is pruned:
                del self.prunes[pruned.app]
        return True


@dataclass
class StepReporter:
    """The host interpreter's Reporter: each step of a swap becomes an in-progress report."""

    buffer: ReportBuffer
    desired: DesiredApp
    local: LocalApp
    steps: list[str] = field(default_factory=list)

    def step_started(self, step: Command) -> None:
        name = step_name(step).lower()
        self.steps.append(name)
        self.buffer.put(
            app_report(self.desired, self.local, "in_progress", step=name, message=step.describe())
        )
        self.buffer.flush(force=False)

    def step_finished(self, step: Command, seconds: float, note: str) -> None:
        log.info("step done", app=self.desired.app, step=step.describe(), ms=round(seconds * 1000), note=note)
        if isinstance(step, SwitchBackend):
            # Traffic is on the new release, which passed its health check: the controller's monitor
            # period starts now, while the old slot drains and stops.
            self.local = LocalApp(self.desired.release, running=True, healthy=True)
            self.buffer.put(app_report(self.desired, self.local, "in_progress", step="switch", message=note))
            self.buffer.flush(force=False)

    def pull_progress(self, event: dict[str, Any]) -> None:
        pass
