"""Turn steps into actions on this host. The only place a step touches Docker or haproxy."""

from __future__ import annotations

import pwd
import shlex
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.adapters.docker import ContainerSpec
from shipyard.adapters.haproxy import OpenStreams
from shipyard.domain.models import LABEL_APP, LABEL_DIGEST, LABEL_RELEASE, LABEL_SLOT, Release, Slot
from shipyard.domain.spec import AppSpec, spec_from_snapshot
from shipyard.domain.steps import (
    AddAppToProxy,
    Drain,
    EnsureProxy,
    FinishPending,
    KeepStandby,
    Pull,
    Remove,
    RunHooks,
    Start,
    Step,
    Stop,
    Switch,
    WaitHealthy,
)
from shipyard.errors import ConfigError, DeployFailedError, ProxyError, ShipyardError
from shipyard.host import proxy_sync
from shipyard.host.context import HostContext
from shipyard.host.health import wait_healthy
from shipyard.host.oplog import host_logger
from shipyard.host.store import utcnow
from shipyard.secrets.masking import mask

if TYPE_CHECKING:
    from shipyard.adapters.registry import Credentials

# Hooks find the usual system commands; a release that needs others sets PATH in env.clear.
HOOK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Reporter(Protocol):
    def step_started(self, step: Step) -> None: ...
    def step_finished(self, step: Step, seconds: float, note: str) -> None: ...
    def pull_progress(self, event: dict[str, Any]) -> None: ...


class SilentReporter:
    def step_started(self, step: Step) -> None:
        pass

    def step_finished(self, step: Step, seconds: float, note: str) -> None:
        pass

    def pull_progress(self, event: dict[str, Any]) -> None:
        pass


def container_name(app: str, release_id: str, slot: Slot) -> str:
    return f"shipyard-{app}-{release_id}-{slot}"


def port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe_socket:
        probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe_socket.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class Executor:
    context: HostContext
    app: str
    secrets: dict[str, str] = field(default_factory=dict)
    credentials: Credentials | None = None
    reporter: Reporter = field(default_factory=SilentReporter)
    history_id: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    hook_user: str | None = None

    def run(self, steps: tuple[Step, ...] | list[Step]) -> None:
        log_file = self.context.home / "shipyard.log"
        log = host_logger(log_file, app=self.app, history_id=self.history_id, actor=self.context.actor)
        for step in steps:
            self.reporter.step_started(step)
            started = time.perf_counter()
            try:
                note = self.apply(step) or ""
            except ShipyardError as exc:
                log.error("step_failed", step=step.describe(), error=str(exc))
                raise
            seconds = time.perf_counter() - started
            log.info("step_done", step=step.describe(), seconds=round(seconds, 4), note=note)
            self.timings[type(step).__name__] = seconds
            if self.history_id is not None:
                self.context.store.log_step(
                    self.history_id, mask(f"{step.describe()} ({seconds:.3f} s) {note}".strip())
                )
            self.reporter.step_finished(step, seconds, note)

    def apply(self, step: Step) -> str | None:
        handler: Callable[[Any], str | None] = getattr(self, f"_{type(step).__name__.lower()}")
        return handler(step)

    # proxy ------------------------------------------------------------------------------------
    def _ensureproxy(self, step: EnsureProxy) -> str | None:
        proxy_sync.ensure_running(self.context)
        return None

    def _addapptoproxy(self, step: AddAppToProxy) -> str | None:
        return None  # registered by the service before planning; see HostService.register_app

    def _switch(self, step: Switch) -> str | None:
        backend = proxy_sync.backend_name(self.app)
        spec = spec_from_snapshot(step.release.spec)
        previous = self.context.store.app(self.app)
        # A release may move the app to other ports: the slot's server follows, still without a reload.
        address = (spec.bind, spec.slot_ports[step.to_slot])
        started = time.perf_counter()
        self.context.proxy.runtime.switch(backend, step.to_slot, step.from_slot, address)
        cutover = time.perf_counter() - started
        self.timings["cutover"] = cutover
        self.context.store.set_active(self.app, step.to_slot, step.release.id, step.release.spec)
        if previous is not None and proxy_sync.frontend_changed(previous.spec, step.release.spec):
            proxy_sync.reload_with_state(self.context, self.app)
        else:
            proxy_sync.save_server_state(self.context)
        return f"cutover {cutover * 1000:.1f} ms"

    def _drain(self, step: Drain) -> str | None:
        backend = proxy_sync.backend_name(self.app)
        runtime = self.context.proxy.runtime
        runtime.set_state(backend, step.slot, "drain")
        if not step.wait:  # the slot stays in drain: no new requests, those in flight finish on it
            proxy_sync.save_server_state(self.context)
            return None
        deadline = time.monotonic() + step.timeout
        in_flight = runtime.sessions(backend).get(step.slot, 0)
        while in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
            in_flight = runtime.sessions(backend).get(step.slot, 0)
        runtime.set_state(backend, step.slot, "maint")
        proxy_sync.save_server_state(self.context)
        # Not cut here: the container gets SIGTERM next and stop_timeout to finish them (see _stop).
        return f"{in_flight} requests or streams still open at the drain deadline" if in_flight else None

    # containers -------------------------------------------------------------------------------
    def _pull(self, step: Pull) -> str | None:
        auth = self.credentials.docker_auth() if self.credentials else None
        self.context.engine.pull(step.release.image, step.release.digest, auth, self.reporter.pull_progress)
        return None

    def _start(self, step: Start) -> str | None:
        spec = spec_from_snapshot(step.release.spec)
        port = spec.slot_ports[step.slot]
        if port_taken(spec.bind, port):
            raise ConfigError(
                f"port {port} on {spec.bind} (the {step.slot} slot) is already taken by another process; "
                "free it or change 'port' in shipyard.yml."
            )
        name = container_name(self.app, step.release.id, step.slot)
        self.context.engine.remove(name)
        self.context.engine.run(self._container_spec(spec, step.release, step.slot, name))
        return name

    def _container_spec(self, spec: AppSpec, release: Release, slot: Slot, name: str) -> ContainerSpec:
        port = spec.slot_ports[slot]
        host_network = spec.network == "host"
        env = {
            **spec.env.clear,
            **{key: self.secrets[key] for key in spec.env.secret if key in self.secrets},
            "PORT": str(port if host_network else spec.port),
            "HOST": spec.bind if host_network else "0.0.0.0",
            "SHIPYARD_APP": self.app,
            "SHIPYARD_RELEASE": release.id,
            "SHIPYARD_SLOT": slot,
        }
        labels = {
            **spec.labels,
            LABEL_APP: self.app,
            LABEL_SLOT: slot,
            LABEL_RELEASE: release.id,
            LABEL_DIGEST: release.digest,
        }
        return ContainerSpec(
            name=name,
            image=release.pinned_image,
            env=env,
            labels=labels,
            network=spec.network,
            ports={} if host_network else {spec.port: (spec.bind, port)},
            volumes=spec.volumes,
            memory=spec.resources.memory,
            cpus=spec.resources.cpus,
            command=spec.command,
        )

    def _waithealthy(self, step: WaitHealthy) -> str | None:
        spec = spec_from_snapshot(step.release.spec)
        name = container_name(self.app, step.release.id, step.slot)
        url = f"http://{spec.bind}:{spec.slot_ports[step.slot]}{spec.healthcheck.path}"
        check = spec.healthcheck
        if step.warm:
            check = check.model_copy(update={"healthy_threshold": 1})
        result = wait_healthy(url, check, lambda: self.context.engine.status(name))
        if not result.healthy:
            logs = mask(self.context.engine.logs(name, tail=20)).strip()
            raise DeployFailedError(
                f"release {step.release.id} failed its health check on {url}: {result.reason}; "
                "the previous release keeps serving.",
                details=logs.splitlines(),
            )
        return f"healthy after {result.seconds:.2f} s"

    def _stop(self, step: Stop) -> str | None:
        still_open = self._still_open(step.slot)
        self.context.engine.stop(step.container, step.timeout)
        self.context.store.drop_standby(step.container)
        if still_open is None or not still_open.total:
            return None
        return (
            f"{still_open.describe()} still open when the container was stopped: "
            f"the app got SIGTERM and up to {step.timeout} s to finish or close them"
        )

    def _still_open(self, slot: Slot | None) -> OpenStreams | None:
        if slot is None:
            return None
        try:
            return self.context.proxy.runtime.open_streams(proxy_sync.backend_name(self.app), slot)
        except ProxyError:
            return None  # haproxy is down: nothing goes through it to count, the stop goes ahead

    def _keepstandby(self, step: KeepStandby) -> str | None:
        self.context.store.add_standby(
            self.app, step.container, step.release_id, utcnow() + timedelta(seconds=step.seconds)
        )
        from shipyard.host.reaper import spawn_reaper

        spawn_reaper(self.context, self.app, step.seconds)
        return None

    def _remove(self, step: Remove) -> str | None:
        self.context.engine.remove(step.container)
        self.context.store.drop_standby(step.container)
        return None

    # records and hooks ------------------------------------------------------------------------
    def _finishpending(self, step: FinishPending) -> str | None:
        self.context.store.finish(step.history_id, step.outcome, step.reason)
        return None

    def _runhooks(self, step: RunHooks) -> str | None:
        spec = spec_from_snapshot(step.release.spec)
        commands = {
            "pre-deploy": spec.hooks.pre_deploy,
            "post-swap": spec.hooks.post_swap,
            "post-deploy": spec.hooks.post_deploy,
        }[step.phase]
        env = self._hook_environment(spec, step)
        for command in commands:
            try:
                done = subprocess.run(
                    shlex.split(command),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    **hook_identity(self.hook_user),
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise DeployFailedError(f"the {step.phase} hook '{command}' could not run: {exc}.") from exc
            if done.returncode != 0:
                raise DeployFailedError(
                    f"the {step.phase} hook '{command}' exited with {done.returncode}; nothing was changed."
                    if step.phase == "pre-deploy"
                    else f"the {step.phase} hook '{command}' exited with {done.returncode}.",
                    details=mask(done.stderr).strip().splitlines()[-10:],
                )
        return f"{len(commands)} ok"

    def _hook_environment(self, spec: AppSpec, step: RunHooks) -> dict[str, str]:
        """The release's own environment, never this process's: an agent's token stays with the agent."""
        return {
            "PATH": HOOK_PATH,
            **spec.env.clear,
            **{key: self.secrets[key] for key in spec.env.secret if key in self.secrets},
            "SHIPYARD_APP": self.app,
            "SHIPYARD_RELEASE": step.release.id,
            "SHIPYARD_IMAGE": step.release.pinned_image,
            "SHIPYARD_DIGEST": step.release.digest,
            "SHIPYARD_HOOK": step.phase,
        }


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


def run_isolated(executor: Executor, steps: list[Step]) -> list[str]:
    """Run cleanup steps, collecting failures instead of raising: used after a failed deploy."""
    problems = []
    for step in steps:
        try:
            executor.apply(step)
        except ShipyardError as exc:
            problems.append(str(exc))
    return problems
