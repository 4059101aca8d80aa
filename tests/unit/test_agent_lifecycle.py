"""Launch gate and termination path against a recording fake of the cloud: the order of calls as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from test_agent_fakes import desired_app

from shipyard.agent.lifecycle import HostLifecycle, LifecycleSettings, drained_reason, request_drain
from shipyard.agent.ports import LocalApp
from shipyard.errors import CloudError

TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef"


@dataclass
class FakeCloud:
    calls: list[str] = field(default_factory=list)
    health: list[str] = field(default_factory=lambda: ["initial", "healthy"])
    notice: str | None = None
    heartbeat_timeout: float = 60.0
    delay: float = 30.0
    draining_checks: int = 2
    active_termination: bool = True

    def instance_id(self) -> str:
        return "i-0abc"

    def termination_notice(self) -> str | None:
        return self.notice

    def group_of(self, instance_id: str) -> str:
        return "web-asg"

    def hook_timeout(self, group: str, hook: str) -> float:
        return self.heartbeat_timeout

    def heartbeat(self, group: str, hook: str, instance_id: str) -> None:
        self.calls.append(f"heartbeat {hook}")

    def complete(self, group: str, hook: str, instance_id: str, result: str) -> None:
        if hook == "terminate" and not self.active_termination:
            raise CloudError(
                "AWS refused CompleteLifecycleAction: ValidationError: No active Lifecycle Action"
            )
        self.calls.append(f"complete {hook} {result}")

    def register_target(self, target_group: str, instance_id: str, port: int | None) -> None:
        self.calls.append("register")

    def deregister_target(self, target_group: str, instance_id: str, port: int | None) -> None:
        self.calls.append("deregister")

    def target_health(self, target_group: str, instance_id: str, port: int | None) -> str:
        if "deregister" in self.calls:
            self.draining_checks -= 1
            return "draining" if self.draining_checks >= 0 else "unused"
        return self.health.pop(0) if len(self.health) > 1 else self.health[0]

    def deregistration_delay(self, target_group: str) -> float:
        return self.delay


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


SETTINGS = LifecycleSettings(
    launch_hook="launch", termination_hook="terminate", target_group=TG, check_every=1.0
)


def lifecycle(
    tmp_path: Path, cloud: FakeCloud, clock: Clock, settings: LifecycleSettings = SETTINGS
) -> HostLifecycle:
    found = HostLifecycle(tmp_path, cloud, settings, clock=clock, sleep=clock.sleep)
    found.begin()
    return found


def test_registers_and_continues_only_once_converged_and_healthy(tmp_path: Path) -> None:
    cloud, clock = FakeCloud(), Clock()
    gate = lifecycle(tmp_path, cloud, clock)
    web = desired_app("web", 2)
    gate.after_pass([web], {"web": LocalApp("r1", running=True, healthy=True)})  # old release: not converged
    gate.after_pass([web], {"web": LocalApp("r2", running=True, healthy=False)})  # new one not healthy yet
    gate.after_pass(None, {})  # controller away
    assert cloud.calls == []
    gate.after_pass([web], {"web": LocalApp("r2", running=True, healthy=True)})
    assert cloud.calls == ["register", "complete launch CONTINUE"]
    gate.after_pass([web], {"web": LocalApp("r2", running=True, healthy=True)})
    assert cloud.calls == ["register", "complete launch CONTINUE"]  # once, also after a restart:
    again = lifecycle(tmp_path, cloud, clock)
    assert not again.launch_pending


def test_abandons_past_the_deadline_and_says_why(tmp_path: Path) -> None:
    cloud, clock = FakeCloud(heartbeat_timeout=60.0), Clock()
    gate = lifecycle(tmp_path, cloud, clock, LifecycleSettings(launch_hook="launch", launch_timeout=300))
    web = desired_app("web", 2)
    clock.now += 299
    gate.after_pass([web], {"web": LocalApp(None)})
    assert cloud.calls == []
    clock.now += 2
    gate.after_pass([web], {"web": LocalApp(None)})
    assert cloud.calls == ["complete launch ABANDON"]
    state = (tmp_path / "lifecycle.json").read_text()
    assert '"launch": "ABANDON"' in state


def test_heartbeats_while_a_long_pull_runs_then_abandon_at_the_deadline(tmp_path: Path) -> None:
    cloud, clock = FakeCloud(heartbeat_timeout=30.0), Clock()
    gate = lifecycle(tmp_path, cloud, clock, LifecycleSettings(launch_hook="launch", launch_timeout=100))
    assert gate.heartbeat_every == 10.0
    gate.heartbeat_once()
    gate.heartbeat_once()
    clock.now += 101
    gate.heartbeat_once()
    gate.heartbeat_once()
    assert cloud.calls == ["heartbeat launch", "heartbeat launch", "complete launch ABANDON"]


def test_default_launch_deadline_is_the_hooks_global_timeout(tmp_path: Path) -> None:
    clock = Clock()
    gate = lifecycle(tmp_path, FakeCloud(heartbeat_timeout=600.0), clock)
    assert gate.launch_deadline == clock.now + 100 * 600.0
    long = lifecycle(tmp_path / "b", FakeCloud(heartbeat_timeout=7200.0), clock)
    assert long.launch_deadline == clock.now + 48 * 3600


def test_unhealthy_in_the_target_group_abandons(tmp_path: Path) -> None:
    cloud, clock = FakeCloud(health=["unhealthy"]), Clock()
    settings = LifecycleSettings(launch_hook="launch", target_group=TG, healthy_timeout=10, check_every=1)
    gate = lifecycle(tmp_path, cloud, clock, settings)
    gate.after_pass([desired_app("web", 2)], {"web": LocalApp("r2", running=True, healthy=True)})
    assert cloud.calls == ["register", "complete launch ABANDON"]


def test_termination_deregisters_waits_stops_then_completes(tmp_path: Path) -> None:
    cloud, clock = FakeCloud(notice="Auto Scaling terminates this instance"), Clock()
    gate = lifecycle(tmp_path, cloud, clock)

    def stop_apps() -> list[str]:
        cloud.calls.append("stop apps")
        return ["stopped web"]

    reason = gate.termination_reason()
    assert reason == "Auto Scaling terminates this instance"
    start = clock.now
    done = gate.terminate(reason, stop_apps)
    assert cloud.calls == ["deregister", "stop apps", "complete terminate CONTINUE"]
    assert 2.0 <= clock.now - start <= cloud.delay  # waited while the target group drained it
    assert "stopped web" in done
    assert gate.drained and drained_reason(tmp_path) == reason


def test_drain_by_hand_without_an_active_hook(tmp_path: Path) -> None:
    cloud, clock = FakeCloud(active_termination=False), Clock()
    gate = lifecycle(tmp_path, cloud, clock)
    assert gate.termination_reason() is None
    request_drain(tmp_path, "maintenance window")
    reason = gate.termination_reason()
    assert reason == "maintenance window"
    done = gate.terminate(reason, lambda: ["stopped web"])
    assert cloud.calls == ["deregister"]
    assert any("no termination hook to complete" in line for line in done)
    assert gate.termination_reason() is None and gate.drained


def test_drain_on_a_host_outside_aws(tmp_path: Path) -> None:
    gate = HostLifecycle(tmp_path)
    gate.begin()
    assert not gate.launch_pending
    gate.after_pass([desired_app("web", 2)], {})  # nothing to gate
    request_drain(tmp_path, "shipyard host drain")
    assert gate.terminate("shipyard host drain", lambda: ["stopped web"]) == ["stopped web"]
    assert gate.drained


def test_an_image_made_from_a_drained_instance_starts_afresh(tmp_path: Path) -> None:
    cloud, clock = FakeCloud(), Clock()
    gate = lifecycle(tmp_path, cloud, clock)
    gate.terminate("spot interruption notice", lambda: [])
    assert gate.drained

    @dataclass
    class OtherInstance(FakeCloud):
        def instance_id(self) -> str:
            return "i-0new"

    launched = lifecycle(tmp_path, OtherInstance(), clock)
    assert not launched.drained and launched.launch_pending
