"""The agent's loop: poll -> observe -> plan -> execute -> report, with backoff when the controller is away.

Nothing here touches Docker or HTTP directly: the controller and the host come in through the two
ports, so the loop's behaviour is tested with fakes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import structlog

from shipyard.agent.backoff import Backoff
from shipyard.agent.crash_loop import CrashLoopWatch, restart_limits
from shipyard.agent.exec_relay import ExecRunner
from shipyard.agent.log_shipping import LogShipper
from shipyard.agent.plan import (
    Converge,
    Deferred,
    FailureMemory,
    InSync,
    MaintenanceChange,
    maintenance_due,
    next_retry,
    plan_apps,
    prunes_due,
)
from shipyard.agent.ports import ControllerPort, HostPort, LocalApp
from shipyard.agent.reporting import MAX_MESSAGE, ReportBuffer, StepReporter, app_report, prune_report
from shipyard.agent.tasks import TaskRunner
from shipyard.errors import ControllerError, LockedError, ShipyardError
from shipyard.fleet_api.schemas.agent import AppReport, DesiredApp, DesiredState

log = structlog.get_logger("shipyard.agent")


@dataclass
class AgentLoop:
    controller: ControllerPort
    host: HostPort
    poll_wait: float = 25.0
    backoff: Backoff = field(default_factory=Backoff)
    failures: FailureMemory = field(default_factory=FailureMemory)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    agent_version: str | None = None
    version: int | None = None
    retry_in: float | None = None
    busy: bool = False
    # The latest prune carried out per app. Kept in memory: after a restart the agent prunes once
    # more, which removes nothing new (a prune keeps the same releases), and reports again.
    pruned: dict[str, int] = field(default_factory=dict)
    # The maintenance message this agent last put on each app's page (in memory, like `pruned`).
    maintenance_shown: dict[str, str] = field(default_factory=dict)
    reports: ReportBuffer = field(init=False)
    tasks: TaskRunner = field(init=False)
    execs: ExecRunner = field(init=False)
    logs: LogShipper = field(init=False)
    crash_loops: CrashLoopWatch = field(default_factory=CrashLoopWatch)

    def __post_init__(self) -> None:
        self.reports = ReportBuffer(self.controller, self.agent_version)
        self.tasks = TaskRunner(self.controller, self.host, self.clock, self.sleep)
        self.execs = ExecRunner(self.controller, self.host)
        self.logs = LogShipper(self.controller, self.host)

    def start(self) -> list[str]:
        """Bring every app this host knows back to one serving slot (a swap killed mid-way included)."""
        done: list[str] = []
        for app in self.host.known_apps():
            try:
                done += [f"{app}: {line}" for line in self.host.recover(app)]
            except ShipyardError as exc:
                log.error("recovery failed", app=app, error=str(exc))
        return done

    def run_once(self) -> DesiredState | None:
        """One poll and whatever it asks for; None when the controller did not answer."""
        self.reports.flush()
        state = self._poll()
        self.reports.offline = state is None
        if state is None:
            delay = self.backoff.next_delay()
            log.info("controller unreachable; keeps serving", retry_in=round(delay, 2))
            self.sleep(delay)
            return None
        self.logs.start(state.logs)  # in threads of their own: first, so a swap does not delay them
        self.execs.run(state.execs)
        self.apply(state.apps)
        self._run_tasks(state)
        # Only after a whole pass: a pass that failed asks again at once (after its backoff).
        self.version = state.version
        self.backoff.reset()
        return state

    def _run_tasks(self, state: DesiredState) -> None:
        """After the pass's swaps: a release phase runs before its deployment's first wave anyway."""
        if state.tasks:
            self.busy = True
            try:
                self.tasks.run(state.tasks)
            finally:
                self.busy = False

    def _poll(self) -> DesiredState | None:
        wait = self.poll_wait if self.version is not None else 0.0
        if self.retry_in is not None:
            wait = min(wait, max(self.retry_in, 0.0))
        try:
            return self.controller.desired(self.version, wait=wait)
        except ControllerError as exc:
            log.debug("poll failed", error=str(exc))
            return None

    def apply(self, apps: list[DesiredApp]) -> None:
        self.reports.disk_free = self.host.disk_free()
        observed = {app.app: self._watched(app, self.host.observe(app.app)) for app in apps}
        actions = plan_apps(apps, observed, self.failures, self.clock())
        for action in actions:
            if isinstance(action, Converge):
                self.reports.put(app_report(action.desired, observed[action.desired.app], "in_progress"))
        self.reports.flush(force=False)
        due_prunes = {desired.app for desired in prunes_due(apps, self.pruned)}
        for action in actions:
            if isinstance(action, Converge):
                desired = action.desired
                done = self._converge(desired, observed[desired.app])
                if done is not None and desired.app not in due_prunes:
                    self._prune_after_deploy(desired, done)
                observed[desired.app] = self._watched(desired, self.host.observe(desired.app))
            elif isinstance(action, InSync):
                self.reports.put(app_report(action.desired, observed[action.desired.app], "succeeded"))
            elif isinstance(action, Deferred):
                local = observed[action.desired.app]
                self.reports.put(app_report(action.desired, local, "failed", message=action.last_error))
        # After the swaps, so a prune keeps the release that now serves; one app at a time like them.
        for desired in prunes_due(apps, self.pruned):
            self._prune(desired)
        for change in maintenance_due(apps, observed, self.maintenance_shown):
            self._maintenance(change)
        self._teardown_previews(apps)
        self.retry_in = _sooner(
            next_retry(plan_apps(apps, observed, self.failures, self.clock())),
            self.crash_loops.next_check(self.clock()),
        )
        self.reports.flush(force=False)

    def _watched(self, desired: DesiredApp, local: LocalApp) -> LocalApp:
        """The observation, unhealthy when a worker of the serving release crash-loops."""
        loop = self.crash_loops.observe(
            desired.app, local.workers, restart_limits(desired.spec), self.clock()
        )
        if loop is None:
            return local
        log.warning("worker crash-looping", app=desired.app, process=loop.process, restarts=loop.restarts)
        return replace(local, problem=loop.describe())

    def _teardown_previews(self, apps: list[DesiredApp]) -> None:
        self.busy = True
        try:
            for line in self.host.teardown_previews(apps):
                log.info("preview removed", what=line)
        except ShipyardError as exc:  # the next pass tries again; the host keeps serving meanwhile
            log.error("preview teardown failed", error=str(exc))
        finally:
            self.busy = False

    def _prune(self, desired: DesiredApp) -> None:
        assert desired.prune is not None  # prunes_due: only apps with a prune
        self.busy = True
        try:
            removed = self.host.prune(desired)
            log.info("pruned", app=desired.app, prune=desired.prune, removed=len(removed))
            report = prune_report(desired, removed)
        except LockedError as exc:  # a swap holds the app: the next pass tries again
            log.info("prune waits for the app's lock", app=desired.app, prune=desired.prune, reason=str(exc))
            return
        except ShipyardError as exc:
            log.error("prune failed", app=desired.app, prune=desired.prune, error=str(exc))
            report = prune_report(desired, [], error=str(exc))
        finally:
            self.busy = False
        self.pruned[desired.app] = desired.prune
        self.reports.put_prune(report)
        self.reports.disk_free = self.host.disk_free()

    def _prune_after_deploy(self, desired: DesiredApp, done: AppReport) -> None:
        """The host's prune once a deployment succeeded here, after its report went out so the rollout
        does not wait; best effort: a failure is logged and reported, and the host stays ready."""
        self.reports.flush(force=False)
        self.busy = True
        try:
            removed = self.host.prune(desired)
            log.info(
                "pruned after the deployment", app=desired.app, release=desired.release, removed=len(removed)
            )
            self.reports.put(done)  # carries the free disk measured below to the controller
        except ShipyardError as exc:
            log.warning("prune after the deployment failed", app=desired.app, error=str(exc))
            message = f"{done.message}; the prune after it failed: {exc}"
            self.reports.put(done.model_copy(update={"message": message[:MAX_MESSAGE]}))
        finally:
            self.busy = False
        self.reports.disk_free = self.host.disk_free()

    def _maintenance(self, change: MaintenanceChange) -> None:
        desired = change.desired
        try:
            if change.enter:
                note = self.host.enter_maintenance(desired, change.message)
                self.maintenance_shown[desired.app] = change.message
            else:
                note = self.host.leave_maintenance(desired)
                self.maintenance_shown.pop(desired.app, None)
        except LockedError as exc:  # a swap or a prune holds the app: the next pass tries again
            log.info("maintenance waits for the app's lock", app=desired.app, reason=str(exc))
            return
        except ShipyardError as exc:
            log.error("maintenance change failed", app=desired.app, enter=change.enter, error=str(exc))
            after = self.host.observe(desired.app)
            self.reports.put(app_report(desired, after, "failed", step="maintenance", message=str(exc)))
            return
        log.info("maintenance", app=desired.app, on=change.enter, note=note)
        after = self.host.observe(desired.app)
        self.reports.put(app_report(desired, after, "succeeded", step="maintenance", message=note))

    def _converge(self, desired: DesiredApp, before: LocalApp) -> AppReport | None:
        """The swap, reported; the success report, or None when the swap failed."""
        reporter = StepReporter(self.reports, desired, before)
        self.busy = True
        try:
            summary = self.host.converge(desired, reporter)
        except ShipyardError as exc:
            failure = self.failures.record(desired, str(exc), self.clock())
            log.error("swap failed", app=desired.app, release=desired.release, error=str(exc))
            message = f"{exc} (retry in {failure.retry_at - self.clock():.0f} s)"
            self.reports.put(app_report(desired, self.host.observe(desired.app), "failed", message=message))
            return None
        finally:
            self.busy = False
        self.failures.forget(desired)
        log.info("converged", app=desired.app, release=desired.release, summary=summary)
        after = self.host.observe(desired.app)
        done = app_report(desired, after, "succeeded", step="done", message=summary)
        self.reports.put(done)
        return done


def _sooner(first: float | None, second: float | None) -> float | None:
    """The earlier of two optional delays."""
    if first is None or second is None:
        return first if second is None else second
    return min(first, second)
