"""An instance's life in an Auto Scaling group, as the agent sees it: launch gate and termination path.

Launch: the group holds a new instance in Pending:Wait (a launch lifecycle hook). The agent converges
every app to its current release; only when all of them run it and are healthy does it register the
instance in the load balancer's target group, wait for the target group to call it healthy, and
complete the hook with CONTINUE. Heartbeats keep the hook open while a long pull runs; past the
launch deadline it completes with ABANDON and says why.

Termination (an Auto Scaling termination notice, a spot interruption notice, or `shipyard host
drain`): deregister from the target group, wait for the deregistration delay so in-flight requests
finish, stop the apps, then complete the termination hook. A drained host converges nothing more.

Everything outside the process comes in through CloudPort (boto3 and the instance metadata service in
shipyard.adapters.aws, a recording fake in the unit tests), so the order of the calls is tested as data.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import structlog

from shipyard.agent.ports import LocalApp
from shipyard.errors import ExternalError
from shipyard.fleet_api.schemas.agent import DesiredApp

log = structlog.get_logger("shipyard.agent")

LifecycleResult = Literal["CONTINUE", "ABANDON"]
DRAIN_REQUEST = "drain-request"
LIFECYCLE_STATE = "lifecycle.json"
# The longest heartbeats keep a lifecycle hook open (AWS: 100 x the heartbeat timeout, at most 48 h).
MAX_GLOBAL_TIMEOUT = 48 * 3600.0


class CloudPort(Protocol):
    """The Auto Scaling, Elastic Load Balancing and instance metadata calls the agent makes."""

    def instance_id(self) -> str: ...

    def termination_notice(self) -> str | None: ...

    def group_of(self, instance_id: str) -> str: ...

    def hook_timeout(self, group: str, hook: str) -> float: ...

    def heartbeat(self, group: str, hook: str, instance_id: str) -> None: ...

    def complete(self, group: str, hook: str, instance_id: str, result: LifecycleResult) -> None: ...

    def register_target(self, target_group: str, instance_id: str, port: int | None) -> None: ...

    def deregister_target(self, target_group: str, instance_id: str, port: int | None) -> None: ...

    def target_health(self, target_group: str, instance_id: str, port: int | None) -> str: ...

    def deregistration_delay(self, target_group: str) -> float: ...


@dataclass(frozen=True)
class LifecycleSettings:
    launch_hook: str | None = None
    termination_hook: str | None = None
    target_group: str | None = None  # ARN
    target_port: int | None = None  # None: the target group's port
    launch_timeout: float | None = None  # None: 100 x the hook's heartbeat timeout, at most 48 h
    heartbeat_every: float | None = None  # None: a third of the hook's heartbeat timeout
    healthy_timeout: float = 300.0  # how long the target group may take to call the instance healthy
    check_every: float = 5.0  # seconds between notice checks (caps the long-poll wait) and health polls


def unconverged(apps: Sequence[DesiredApp], observed: dict[str, LocalApp]) -> list[str]:
    """Apps not yet running their desired release healthy; empty when the host is converged."""
    waiting = []
    for desired in apps:
        local = observed.get(desired.app, LocalApp(None))
        if local.active_release != desired.release:
            waiting.append(f"{desired.app} runs {local.active_release or 'nothing'}, not {desired.release}")
        elif not (local.running and local.healthy):
            waiting.append(f"{desired.app} {desired.release} is not healthy")
    return waiting


@dataclass
class HostLifecycle:
    """Launch gate and termination path of one host; `cloud` is None on a host outside Auto Scaling."""

    home: Path
    cloud: CloudPort | None = None
    settings: LifecycleSettings = field(default_factory=LifecycleSettings)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    instance: str = ""
    group: str = ""
    launch_deadline: float | None = None
    heartbeat_every: float = 60.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped_heartbeats: threading.Event = field(default_factory=threading.Event, repr=False)

    # state kept across agent restarts -------------------------------------------------------------
    def _state(self) -> dict[str, str]:
        try:
            loaded = json.loads((self.home / LIFECYCLE_STATE).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}

    def _remember(self, **values: str) -> None:
        state = {**self._state(), **values}
        path = self.home / LIFECYCLE_STATE
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        temporary.replace(path)

    @property
    def drained(self) -> bool:
        """A drained host converges nothing (a restarted agent must not bring its apps back).

        In AWS only for the instance that drained: a machine image made from it starts afresh."""
        state = self._state()
        return "drained" in state and (self.cloud is None or state.get("instance") == self.instance)

    @property
    def launch_pending(self) -> bool:
        if self.cloud is None or self.settings.launch_hook is None:
            return False
        state = self._state()
        return state.get("instance") != self.instance or "launch" not in state

    # launch ---------------------------------------------------------------------------------------
    def begin(self) -> None:
        """Find this instance and its group, and the launch deadline from the hook's timeout."""
        if self.cloud is None:
            return
        self.instance = self.cloud.instance_id()
        self.group = self.cloud.group_of(self.instance)
        hook = self.settings.launch_hook
        if hook is None or not self.launch_pending:
            return
        heartbeat_timeout = self.cloud.hook_timeout(self.group, hook)
        self.heartbeat_every = self.settings.heartbeat_every or max(heartbeat_timeout / 3, 1.0)
        timeout = self.settings.launch_timeout or min(100 * heartbeat_timeout, MAX_GLOBAL_TIMEOUT)
        self.launch_deadline = self.clock() + timeout
        log.info("launch hook pending", instance=self.instance, group=self.group, hook=hook, timeout=timeout)

    @property
    def registration_pending(self) -> bool:
        if self.cloud is None or self.settings.target_group is None or self.drained:
            return False
        return self._state().get("registered") != self.instance

    def after_pass(self, apps: Sequence[DesiredApp] | None, observed: dict[str, LocalApp]) -> None:
        """After each pass of the loop: register and complete the launch hook once converged.

        `apps` is None when the controller did not answer: never converged, but the deadline holds."""
        launch, register = self.launch_pending, self.registration_pending
        if not (launch or register):
            return
        waiting = ["the controller did not answer"] if apps is None else unconverged(apps, observed)
        if waiting:
            if launch and self.launch_deadline is not None and self.clock() >= self.launch_deadline:
                self._finish_launch("ABANDON", "not converged in time: " + "; ".join(waiting))
            return
        if register and not self._register():
            if launch:
                self._finish_launch(
                    "ABANDON",
                    f"the target group did not call {self.instance} healthy within "
                    f"{self.settings.healthy_timeout:.0f} s",
                )
            return
        if launch:
            self._finish_launch("CONTINUE", "every app runs its current release, healthy")

    def _register(self) -> bool:
        """Register in the target group; True once it calls the instance healthy."""
        cloud, target_group = self.cloud, self.settings.target_group
        assert cloud is not None and target_group is not None
        cloud.register_target(target_group, self.instance, self.settings.target_port)
        self._remember(registered=self.instance)
        health = self._wait_healthy(cloud, target_group)
        log.info("registered in the target group", instance=self.instance, health=health)
        return health == "healthy"

    def _wait_healthy(self, cloud: CloudPort, target_group: str) -> str:
        deadline = self.clock() + self.settings.healthy_timeout
        while True:
            health = cloud.target_health(target_group, self.instance, self.settings.target_port)
            if health == "healthy" or self.clock() >= deadline:
                return health
            self.sleep(self.settings.check_every)

    def _finish_launch(self, result: LifecycleResult, why: str) -> None:
        with self._lock:
            if not self.launch_pending:
                return
            assert self.cloud is not None and self.settings.launch_hook is not None
            self._stopped_heartbeats.set()
            self.cloud.complete(self.group, self.settings.launch_hook, self.instance, result)
            self._remember(instance=self.instance, launch=result)
        (log.info if result == "CONTINUE" else log.error)(
            "launch hook completed", result=result, instance=self.instance, why=why
        )

    def heartbeat_once(self) -> None:
        """Keep the launch hook open; past the deadline, abandon it (a pull may still be running)."""
        if not self.launch_pending or self.cloud is None or self.settings.launch_hook is None:
            return
        if self.launch_deadline is not None and self.clock() >= self.launch_deadline:
            self._finish_launch("ABANDON", "not converged in time: still converging (a pull or a swap runs)")
            return
        with self._lock:
            if self.launch_pending:
                self.cloud.heartbeat(self.group, self.settings.launch_hook, self.instance)

    def heartbeats(self) -> threading.Thread | None:
        """A thread recording heartbeats while the launch hook waits, also during a long pull."""
        if not self.launch_pending:
            return None

        def beat() -> None:
            while not self._stopped_heartbeats.wait(self.heartbeat_every):
                try:
                    self.heartbeat_once()
                except ExternalError as exc:
                    log.error("lifecycle heartbeat failed", error=str(exc))

        thread = threading.Thread(target=beat, name="lifecycle-heartbeats", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stopped_heartbeats.set()

    # termination ----------------------------------------------------------------------------------
    def termination_reason(self) -> str | None:
        """Why this host must drain now, or None: a drain request, a termination or spot notice."""
        request = self.home / DRAIN_REQUEST
        if request.exists():
            return request.read_text().strip() or "shipyard host drain"
        if self.cloud is not None:
            return self.cloud.termination_notice()
        return None

    def terminate(self, reason: str, stop_apps: Callable[[], list[str]]) -> list[str]:
        """Deregister, wait for the deregistration delay, stop the apps, complete the termination hook."""
        done: list[str] = []
        cloud, target_group = self.cloud, self.settings.target_group
        self.close()
        port = self.settings.target_port
        if cloud is not None and target_group is not None:
            if cloud.target_health(target_group, self.instance, port) == "unused":
                done.append(f"{self.instance} is not registered in the target group")
            else:
                cloud.deregister_target(target_group, self.instance, port)
                delay = cloud.deregistration_delay(target_group)
                waited = self._wait_drained(cloud, target_group, delay)
                done.append(f"deregistered {self.instance} from the target group, waited {waited:.1f} s")
        done += stop_apps()
        if cloud is not None and self.settings.termination_hook is not None:
            try:
                cloud.complete(self.group, self.settings.termination_hook, self.instance, "CONTINUE")
                done.append(f"completed the termination hook {self.settings.termination_hook}")
            except ExternalError as exc:  # a drain by hand or a spot notice: no termination action waits
                done.append(f"no termination hook to complete ({exc})")
        self._remember(instance=self.instance, drained=reason)
        (self.home / DRAIN_REQUEST).unlink(missing_ok=True)
        return done

    def _wait_drained(self, cloud: CloudPort, target_group: str, delay: float) -> float:
        """Until the target group stops draining the instance, at most the deregistration delay."""
        start = self.clock()
        while self.clock() - start < delay:
            if cloud.target_health(target_group, self.instance, self.settings.target_port) != "draining":
                break
            self.sleep(min(self.settings.check_every, max(delay - (self.clock() - start), 0.0)))
        return self.clock() - start


def request_drain(home: Path, reason: str) -> Path:
    """What `shipyard host drain` does: ask the host's agent to drain (it acts at its next pass)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / DRAIN_REQUEST
    path.write_text(reason + "\n")
    return path


def drained_reason(home: Path) -> str | None:
    try:
        state = json.loads((home / LIFECYCLE_STATE).read_text())
    except (OSError, ValueError):
        return None
    return str(state["drained"]) if isinstance(state, dict) and "drained" in state else None
