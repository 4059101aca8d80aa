"""Plan cases as data: observed state + desired release -> expected steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shipyard.domain.models import AppState, ContainerInfo, PendingSwap, Release, SlotServer
from shipyard.domain.plan import plan_proxy, plan_recovery, plan_swap
from shipyard.domain.spec import parse_spec, spec_snapshot
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
    Stop,
    Switch,
    WaitHealthy,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = parse_spec({"app": "web", "image": "r:5000/web"})
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def release(rid: str, digest: str = D1) -> Release:
    return Release(rid, "web", "r:5000/web", digest, spec_snapshot(SPEC), NOW, "tester")


def container(name: str, slot: str, rid: str, status: str = "running") -> ContainerInfo:
    return ContainerInfo(name, name, "web", slot, rid, D1, status)  # type: ignore[arg-type]


def state(**overrides: object) -> AppState:
    base: dict[str, object] = {
        "app": "web",
        "proxy_running": True,
        "proxy_has_app": True,
        "active_slot": "blue",
        "active_release_id": "r1",
        "maintenance": False,
        "containers": (container("c1", "blue", "r1"),),
        "servers": {"blue": SlotServer("blue", "ready", "up"), "green": SlotServer("green", "maint", "down")},
        "images_present": frozenset({D1}),
    }
    base.update(overrides)
    return AppState(**base)  # type: ignore[arg-type]


def kinds(plan: object) -> list[type]:
    return [type(step) for step in plan.steps]  # type: ignore[attr-defined]


def test_first_deploy_adds_the_app_pulls_starts_blue_and_switches() -> None:
    first = state(
        proxy_has_app=False,
        active_slot=None,
        active_release_id=None,
        containers=(),
        servers={},
        images_present=frozenset(),
    )
    plan = plan_swap(release("r1"), first, SPEC)
    assert kinds(plan) == [AddAppToProxy, Pull, Start, WaitHealthy, Switch]
    assert plan.steps[2] == Start("blue", release("r1"))
    assert plan.steps[4] == Switch("blue", None, release("r1"))


def test_second_deploy_goes_to_the_idle_slot_and_drains_the_old_one() -> None:
    plan = plan_swap(release("r2", D2), state(), SPEC)
    assert kinds(plan) == [Pull, Start, WaitHealthy, Switch, Drain, Stop]
    assert plan.steps[1] == Start("green", release("r2", D2))
    assert plan.steps[3] == Switch("green", "blue", release("r2", D2))
    assert plan.steps[5] == Stop("c1", SPEC.deploy.stop_timeout, "blue")  # counts what is open on blue


def test_image_already_on_the_host_is_not_pulled() -> None:
    plan = plan_swap(release("r2", D1), state(), SPEC)
    assert Pull not in kinds(plan)


def test_deploying_the_active_release_is_a_noop_with_its_reason() -> None:
    plan = plan_swap(release("r1"), state(), SPEC)
    assert plan.empty
    assert plan.noop_reason == "release r1 is already active in the blue slot"
    assert plan.describe() == ["nothing to do: release r1 is already active in the blue slot"]


def test_standby_keeps_the_old_container_running() -> None:
    spec = parse_spec({"app": "web", "image": "r:5000/web", "deploy": {"standby": 30}})
    plan = plan_swap(release("r2", D2), state(), spec)
    assert kinds(plan)[-2:] == [Drain, KeepStandby]


def test_rollback_to_a_warm_standby_is_only_a_switch() -> None:
    warm = state(
        active_slot="green",
        active_release_id="r2",
        containers=(container("c1", "blue", "r1"), container("c2", "green", "r2")),
        servers={"blue": SlotServer("blue", "maint", "up"), "green": SlotServer("green", "ready", "up")},
    )
    plan = plan_swap(release("r1"), warm, SPEC, pull_allowed=False)
    assert kinds(plan) == [WaitHealthy, Switch, Drain, Stop]
    assert plan.steps[0] == WaitHealthy("blue", release("r1"), warm=True)
    assert plan.steps[1] == Switch("blue", "green", release("r1"))


def test_a_standby_of_another_release_in_the_idle_slot_is_replaced() -> None:
    busy = state(containers=(container("c1", "blue", "r1"), container("c0", "green", "r0")))
    plan = plan_swap(release("r2", D2), busy, SPEC)
    assert plan.steps[0] == Remove("c0", "the idle slot is needed for the new release")


def test_hooks_surround_the_swap() -> None:
    spec = parse_spec(
        {
            "app": "web",
            "image": "r:5000/web",
            "hooks": {"pre-deploy": "a", "post-swap": "b", "post-deploy": "c"},
        }
    )
    plan = plan_swap(release("r2", D2), state(), spec)
    phases = [s.phase for s in plan.steps if isinstance(s, RunHooks)]
    assert phases == ["pre-deploy", "post-swap", "post-deploy"]
    assert isinstance(plan.steps[0], RunHooks)


def test_haproxy_down_is_restarted_with_the_active_slot() -> None:
    assert kinds(plan_proxy(state(proxy_running=False, servers={}))) == [EnsureProxy]
    assert plan_proxy(state()).empty


def test_crash_after_the_switch_rolls_forward() -> None:
    crashed = state(
        containers=(container("c1", "blue", "r1"), container("c2", "green", "r2")),
        servers={"blue": SlotServer("blue", "ready", "up"), "green": SlotServer("green", "ready", "up")},
        pending=PendingSwap(7, "r2", "green", "blue"),
    )
    plan = plan_recovery(crashed, release("r2", D2), {}, NOW)
    assert kinds(plan) == [Switch, Drain, Stop, FinishPending]
    assert plan.steps[-1] == FinishPending(7, "succeeded", "haproxy had already switched")


def test_crash_before_the_switch_removes_the_new_container() -> None:
    crashed = state(
        containers=(container("c1", "blue", "r1"), container("c2", "green", "r2")),
        pending=PendingSwap(7, "r2", "green", "blue"),
    )
    plan = plan_recovery(crashed, release("r2", D2), {}, NOW)
    assert plan.steps == (
        Remove("c2", "its swap was interrupted before the switch"),
        FinishPending(7, "interrupted", "the switch had not happened"),
    )


def test_orphans_and_expired_standbys_are_cleaned() -> None:
    messy = state(
        containers=(
            container("c1", "blue", "r1"),
            container("never", "green", "r5", status="created"),
            container("stray", "green", "r6"),
            container("standby", "green", "r0"),
            container("kept", "green", "r0", status="exited"),
        )
    )
    plan = plan_recovery(messy, None, {"standby": NOW - timedelta(seconds=1)}, NOW)
    assert plan.steps == (
        Remove("never", "it was created but never started"),
        Remove("stray", "it runs in the idle slot without a swap in progress"),
        Stop("standby", 10),
    )


def test_a_live_standby_is_kept() -> None:
    warm = state(containers=(container("c1", "blue", "r1"), container("standby", "green", "r0")))
    assert plan_recovery(warm, None, {"standby": NOW + timedelta(seconds=5)}, NOW).empty
