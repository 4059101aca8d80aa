"""Run commands on this host: the one place a command becomes an action on the engine, haproxy or
the store, through the ports of shipyard.host.ports.

Every command is fully resolved by a planner; the interpreter only performs it, logs it (one JSON
line in shipyard.log, one line in the history record) and times it.
"""

from __future__ import annotations

import pwd
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, assert_never

from shipyard.domain.commands import (
    BeginHistory,
    Command,
    Drain,
    EnsureProxy,
    EnterMaintenance,
    FinishHistory,
    ForgetApp,
    KeepStandby,
    LeaveMaintenance,
    Pull,
    RegisterApp,
    RemoveContainer,
    RemoveImage,
    RoutePreview,
    RunHook,
    RunTask,
    StartContainer,
    StartWorker,
    StopContainer,
    StopWorker,
    SwitchBackend,
    UnregisterApp,
    UnroutePreview,
    WaitHealthy,
    WaitWorkerHealthy,
    step_name,
)
from shipyard.domain.models import SLOTS, OpenStreams, other_slot
from shipyard.errors import ConfigError, DeployFailedError, ProxyError, ShipyardError
from shipyard.host import proxy_sync
from shipyard.host.context import HostContext
from shipyard.host.health import wait_worker_healthy
from shipyard.host.oplog import host_logger
from shipyard.host.records import utcnow
from shipyard.secrets.masking import mask


class Reporter(Protocol):
    def step_started(self, step: Command) -> None: ...
    def step_finished(self, step: Command, seconds: float, note: str) -> None: ...
    def pull_progress(self, event: dict[str, Any]) -> None: ...


class SilentReporter:
    def step_started(self, step: Command) -> None:
        pass

    def step_finished(self, step: Command, seconds: float, note: str) -> None:
        pass

    def pull_progress(self, event: dict[str, Any]) -> None:
        pass


def port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe_socket:
        probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe_socket.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class Interpreter:
    context: HostContext
    app: str
    # The registry login for a pull (docker's auth config); never part of a command or its description.
    registry_auth: dict[str, str] | None = field(default=None, repr=False)
    reporter: Reporter = field(default_factory=SilentReporter)
    history_id: int | None = None  # set by BeginHistory, or given when a record is already open
    # Seconds per command, keyed by its kind (step_name: "Start"), "Stop#2" for a second one,
    # plus "cutover": the runtime-API switch alone.
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, commands: Sequence[Command]) -> None:
        log = host_logger(self.context.home / "shipyard.log", app=self.app, actor=self.context.actor)
        for command in commands:
            self.reporter.step_started(command)
            started = time.perf_counter()
            try:
                note = self.apply(command) or ""
            except ShipyardError as exc:
                log.error("step_failed", history_id=self.history_id, step=command.describe(), error=str(exc))
                raise
            seconds = time.perf_counter() - started
            log.info(
                "step_done",
                history_id=self.history_id,
                step=command.describe(),
                seconds=round(seconds, 4),
                note=note,
            )
            self._time(step_name(command), seconds)
            if self.history_id is not None and not isinstance(command, FinishHistory):
                self.context.store.log_step(
                    self.history_id, mask(f"{command.describe()} ({seconds:.3f} s) {note}".strip())
                )
            self.reporter.step_finished(command, seconds, note)

    def run_isolated(self, commands: Sequence[Command]) -> list[str]:
        """Run cleanup commands, collecting failures instead of raising: used after a failed deploy."""
        problems = []
        for command in commands:
            try:
                self.apply(command)
            except ShipyardError as exc:
                problems.append(str(exc))
        return problems

    def _time(self, kind: str, seconds: float) -> None:
        key, number = kind, 1
        while key in self.timings:
            number += 1
            key = f"{kind}#{number}"
        self.timings[key] = seconds

    def apply(self, command: Command) -> str | None:
        match command:
            case EnsureProxy():
                proxy_sync.ensure_running(self.context.store, self.context.proxy)
                return None
            case RegisterApp():
                return self._register(command)
            case UnregisterApp():
                return self._unregister(command)
            case RoutePreview():
                return self._route_preview(command)
            case UnroutePreview():
                return self._unroute_preview(command)
            case SwitchBackend():
                return self._switch(command)
            case Drain():
                return self._drain(command)
            case EnterMaintenance():
                return self._enter_maintenance(command)
            case LeaveMaintenance():
                return self._leave_maintenance(command)
            case Pull():
                self.context.engine.pull(
                    command.repository, command.digest, self.registry_auth, self.reporter.pull_progress
                )
                return None
            case StartContainer():
                return self._start(command)
            case WaitHealthy():
                return self._wait_healthy(command)
            case StopContainer():
                return self._stop(command)
            case StartWorker():
                return self._start_worker(command)
            case WaitWorkerHealthy():
                return self._wait_worker(command)
            case StopWorker():
                return self._stop_worker(command)
            case KeepStandby():
                until = utcnow() + timedelta(seconds=command.seconds)
                self.context.store.add_standby(command.app, command.container, command.release_id, until)
                self.context.reaper.spawn(command.app, command.seconds)
                return None
            case RemoveContainer():
                self.context.engine.remove(command.container)
                self.context.store.drop_standby(command.container)
                self.context.store.drop_worker_stop(command.container)
                return None
            case RemoveImage():
                self.context.engine.remove_image(command.reference)
                return None
            case RunHook():
                return self._run_hook(command)
            case RunTask():
                return self._run_task(command)
            case BeginHistory():
                store = self.context.store
                self.history_id = store.begin(
                    command.app, command.kind, command.release_id, command.actor, command.from_release_id
                )
                store.mark_swap(self.history_id, command.to_slot, command.from_slot)
                return f"history #{self.history_id}"
            case FinishHistory():
                history_id = command.history_id if command.history_id is not None else self.history_id
                if history_id is None:
                    raise ShipyardError("no history record was begun to finish; this is a bug in the plan.")
                self.context.store.finish(history_id, command.outcome, command.reason or None)
                return None
            case ForgetApp():
                self.context.store.forget_app(command.app)
                return None
            case _:
                assert_never(command)

    # haproxy ------------------------------------------------------------------------------------
    def _register(self, command: RegisterApp) -> str | None:
        store, proxy = self.context.store, self.context.proxy
        if command.new and store.app(command.app) is None:
            store.set_active(command.app, None, None, command.spec)
        proxy.write_page(command.app, proxy_sync.maintenance_page_text(command.spec))
        proxy_sync.write_config(store, proxy)
        if proxy.running():
            proxy.reload(proxy_sync.app_backend(store, command.app))
        else:
            proxy.start()
        return None

    def _unregister(self, command: UnregisterApp) -> str | None:
        store, proxy = self.context.store, self.context.proxy
        store.drop_app(command.app)
        proxy_sync.write_config(store, proxy)
        proxy.forget_page(command.app)
        if command.last:
            proxy.stop()
            return "haproxy stopped"
        if proxy.running():
            proxy.reload(None)
        return None

    def _route_preview(self, command: RoutePreview) -> str | None:
        store, proxy = self.context.store, self.context.proxy
        proxy.add_route(command.host_name, command.backend)
        store.set_preview_routed(command.app, True)
        proxy_sync.save_server_state(store, proxy)  # the map file too: a restart routes it again
        return None

    def _unroute_preview(self, command: UnroutePreview) -> str | None:
        store, proxy = self.context.store, self.context.proxy
        running = proxy.running()
        if running:
            proxy.remove_route(command.host_name)
            try:
                for slot in SLOTS:
                    proxy.set_state(command.backend, slot, "maint")
            except ProxyError:
                pass  # the pool is not in the running config (its first deploy failed): nothing serves
        store.set_preview_routed(command.app, False)
        store.drop_app(command.app)
        proxy.forget_page(command.app)
        if running:
            proxy_sync.save_server_state(store, proxy)
        else:
            proxy_sync.write_config(store, proxy)
        return None

    def _switch(self, command: SwitchBackend) -> str | None:
        store, proxy = self.context.store, self.context.proxy
        started = time.perf_counter()
        proxy.switch(command.backend, command.to_slot, command.from_slot, command.address)
        cutover = time.perf_counter() - started
        self.timings["cutover"] = cutover
        store.set_active(self.app, command.to_slot, command.release.id, command.release.app_spec)
        if command.reload:
            proxy_sync.reload_with_state(store, proxy, self.app)
        else:
            proxy_sync.save_server_state(store, proxy)
        return f"cutover {cutover * 1000:.1f} ms"

    def _drain(self, command: Drain) -> str | None:
        store, proxy = self.context.store, self.context.proxy
        proxy.set_state(command.backend, command.slot, "drain")
        if not command.wait:  # the slot stays in drain: no new requests, those in flight finish on it
            proxy_sync.save_server_state(store, proxy)
            return None
        deadline = time.monotonic() + command.timeout
        in_flight = proxy.sessions(command.backend).get(command.slot, 0)
        while in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
            in_flight = proxy.sessions(command.backend).get(command.slot, 0)
        proxy.set_state(command.backend, command.slot, "maint")
        proxy_sync.save_server_state(store, proxy)
        # Not cut here: the container gets SIGTERM next and stop_timeout to finish them (see _stop).
        return f"{in_flight} requests or streams still open at the drain deadline" if in_flight else None

    def _enter_maintenance(self, command: EnterMaintenance) -> str | None:
        store, proxy = self.context.store, self.context.proxy
        if command.page is not None:
            proxy.write_page(command.app, command.page)
        for slot in SLOTS:
            proxy.set_state(command.backend, slot, "maint")
        store.set_maintenance(command.app, True)
        proxy_sync.reload_with_state(store, proxy, command.app)
        return None

    def _leave_maintenance(self, command: LeaveMaintenance) -> str | None:
        store, proxy = self.context.store, self.context.proxy
        proxy.switch(command.backend, command.slot, None, command.address)
        proxy.set_state(command.backend, other_slot(command.slot), "maint")
        store.set_active(command.app, command.slot, command.release.id, command.release.app_spec)
        # A maintenance message is for this time only: the next maintenance shows the app's own page.
        proxy.write_page(command.app, proxy_sync.maintenance_page_text(command.release.app_spec))
        proxy_sync.reload_with_state(store, proxy, command.app)
        return None

    # containers ---------------------------------------------------------------------------------
    def _start(self, command: StartContainer) -> str | None:
        if port_taken(command.bind, command.port):
            raise ConfigError(
                f"port {command.port} on {command.bind} (the {command.slot} slot) is already taken by "
                "another process; free it or change 'port' in shipyard.yml."
            )
        engine = self.context.engine
        engine.remove(command.container.name)
        engine.run(command.container)
        return command.container.name

    def _wait_healthy(self, command: WaitHealthy) -> str | None:
        engine = self.context.engine
        result = self.context.health(command.url, command.check, lambda: engine.status(command.container))
        if not result.healthy:
            logs = mask(engine.logs(command.container, tail=20)).strip()
            raise DeployFailedError(
                f"release {command.release_id} failed its health check on {command.url}: {result.reason}; "
                "the previous release keeps serving.",
                details=logs.splitlines(),
            )
        return f"healthy after {result.seconds:.2f} s"

    def _stop(self, command: StopContainer) -> str | None:
        still_open = self._still_open(command.backend, command.slot)
        self.context.engine.stop(command.container, command.timeout)
        self.context.store.drop_standby(command.container)
        if still_open is None or not still_open.total:
            return None
        return (
            f"{still_open.describe()} still open when the container was stopped: "
            f"the app got SIGTERM and up to {command.timeout} s to finish or close them"
        )

    def _start_worker(self, command: StartWorker) -> str | None:
        name = command.container.name
        if name in self.context.store.worker_stops(self.app):
            # The planner picks a name no finishing worker holds; replacing one would kill it early.
            raise ShipyardError(
                f"{name} is still finishing after its stop signal; this is a bug in the plan."
            )
        engine = self.context.engine
        engine.remove(name)
        engine.run(command.container)
        return name

    def _wait_worker(self, command: WaitWorkerHealthy) -> str | None:
        engine = self.context.engine
        result = wait_worker_healthy(command.container, command.health, engine)
        if not result.healthy:
            logs = mask(engine.logs(command.container, tail=20)).strip()
            raise DeployFailedError(
                f"the {command.process} process of release {command.release_id} failed its health check: "
                f"{result.reason}; the previous release keeps running.",
                details=logs.splitlines(),
            )
        return f"healthy after {result.seconds:.2f} s"

    def _stop_worker(self, command: StopWorker) -> str | None:
        # Recorded first and the reaper set to come back after the deadline: a crash from here on
        # leaves a record that every later recovery honours (it kills the worker only after it).
        store = self.context.store
        store.add_worker_stop(self.app, command.container, utcnow() + timedelta(seconds=command.timeout))
        self.context.reaper.spawn(self.app, command.timeout)
        self.context.engine.kill(command.container, command.signal)
        store.mark_worker_signalled(command.container)
        return f"SIG{command.signal} sent; the reaper removes it once it exits, or after {command.timeout} s"

    def _still_open(self, backend: str | None, slot: str | None) -> OpenStreams | None:
        if backend is None or slot is None:
            return None
        try:
            return self.context.proxy.open_streams(backend, slot)
        except ProxyError:
            return None  # haproxy is down: nothing goes through it to count, the stop goes ahead

    # hooks --------------------------------------------------------------------------------------
    def _run_hook(self, command: RunHook) -> str | None:
        try:
            done = subprocess.run(
                list(command.argv),
                env=dict(command.env),
                capture_output=True,
                text=True,
                timeout=command.timeout,
                **hook_identity(command.user),
            )
        except subprocess.TimeoutExpired as exc:
            self._keep_output(f"{command.phase} hook", _text(exc.stdout) + _text(exc.stderr))
            raise DeployFailedError(
                f"the {command.phase} hook '{command.command}' did not finish within hooks.timeout "
                f"({command.timeout:g} s) and was killed."
            ) from exc
        except OSError as exc:
            raise DeployFailedError(
                f"the {command.phase} hook '{command.command}' could not run: {exc}."
            ) from exc
        # Kept whether it passes or fails: what a hook printed is part of the swap's record.
        self._keep_output(f"{command.phase} hook", done.stdout + done.stderr)
        if done.returncode != 0:
            raise DeployFailedError(
                f"the {command.phase} hook '{command.command}' exited with {done.returncode}; "
                "nothing was changed."
                if command.phase == "pre-deploy"
                else f"the {command.phase} hook '{command.command}' exited with {done.returncode}.",
                details=mask(done.stderr).strip().splitlines()[-10:],
            )
        return "ok"

    def _keep_output(self, what: str, output: str) -> None:
        """Each line in the swap's history and in the host's log, masked."""
        lines = [mask(line) for line in output.splitlines()][-MAX_KEPT_LINES:]
        if not lines:
            return
        log = host_logger(self.context.home / "shipyard.log", app=self.app, actor=self.context.actor)
        for line in lines:
            log.info("output", of=what, history_id=self.history_id, line=line)
            if self.history_id is not None:
                self.context.store.log_step(self.history_id, f"{what}: {line}")

    # tasks --------------------------------------------------------------------------------------
    def _run_task(self, command: RunTask) -> str | None:
        lines: list[str] = []
        code = self.context.engine.run_once(command.container, lines.append, command.timeout)
        self._keep_output(f"{command.kind} command", "\n".join(lines))
        if code != 0:
            raise DeployFailedError(
                f"the {command.kind} command '{' '.join(task_argv(command))}' exited with "
                f"{code}; the new release was not started and nothing was changed.",
                details=[mask(line) for line in lines[-10:]],
            )
        return f"exited with 0 ({len(lines)} line(s) of output)"


def task_argv(command: RunTask) -> list[str]:
    return [*(command.container.entrypoint or []), *(command.container.command or [])]


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


MAX_KEPT_LINES = 1000


def hook_identity(user: str | None) -> dict[str, Any]:
    """subprocess arguments running a hook as `user` with its own group and no other groups."""
    if user is None:
        return {}
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError as exc:
        raise DeployFailedError(
            f"the policy runs hooks as {user}, which is not a user on this host; "
            "create it or change hooks.user."
        ) from exc
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
