"""Plan cases as data: observed state + desired release -> expected, fully resolved commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipyard.domain.commands import (
    BeginHistory,
    Drain,
    EnsureProxy,
    FinishHistory,
    KeepStandby,
    Pull,
    RegisterApp,
    RemoveContainer,
    RunHook,
    StartContainer,
    StopContainer,
    SwitchBackend,
    WaitHealthy,
)
from shipyard.domain.models import AppState, ContainerInfo, PendingSwap, Release, SlotServer
from shipyard.domain.plan import SwapContext, plan_proxy, plan_recovery, plan_swap
from shipyard.domain.spec import AppSpec, parse_spec
from shipyard.errors import ConfigError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = parse_spec({"app": "web", "image": "r:5000/web"})
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
SWAP = SwapContext("deploy", "tester")


def release(rid: str, digest: str = D1, spec: AppSpec = SPEC) -> Release:
    return Release(rid, "web", "r:5000/web", digest, spec, NOW, "tester")


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
        "spec": SPEC,
    }
    base.update(overrides)
    return AppState(**base)  # type: ignore[arg-type]


def kinds(plan: object) -> list[type]:
    return [type(step) for step in plan.steps]  # type: ignore[attr-defined]


def test_first_deploy_records_adds_the_app_pulls_starts_blue_and_switches() -> None:
    first = state(
        proxy_has_app=False,
        active_slot=None,
        active_release_id=None,
        containers=(),
        servers={},
        images_present=frozenset(),
        spec=None,
    )
    plan = plan_swap(release("r1"), first, SWAP)
    assert kinds(plan) == [
        BeginHistory,
        RegisterApp,
        Pull,
        StartContainer,
        WaitHealthy,
        SwitchBackend,
        FinishHistory,
    ]
    assert plan.steps[0] == BeginHistory("web", "deploy", "r1", None, "blue", None, "tester")
    assert plan.steps[1] == RegisterApp(SPEC, new=True, proxy_running=True)
    assert plan.steps[2] == Pull("r:5000/web", D1)
    assert plan.steps[5] == SwitchBackend("app_web", "blue", None, ("127.0.0.1", 3000), release("r1"))
    assert plan.steps[-1] == FinishHistory("succeeded")


def test_the_start_command_holds_the_complete_container_spec() -> None:
    spec = parse_spec(
        {
            "app": "web",
            "image": "r:5000/web",
            "network": "bridge",
            "port": 4000,
            "env": {"clear": {"GREETING": "hi"}, "secret": ["DB_PASSWORD"]},
            "labels": {"team": "a"},
        }
    )
    plan = plan_swap(release("r2", D2, spec), state(), SwapContext(secrets={"DB_PASSWORD": "hunter2"}))
    start = next(s for s in plan.steps if isinstance(s, StartContainer))
    assert start.slot == "green" and (start.bind, start.port) == ("127.0.0.1", 4001)
    assert start.container.name == "shipyard-web-r2-green"
    assert start.container.image == f"r:5000/web@{D2}"
    assert start.container.ports == {4000: ("127.0.0.1", 4001)}
    assert start.container.env["DB_PASSWORD"] == "hunter2" and start.container.env["PORT"] == "4000"
    assert start.container.labels["shipyard.release"] == "r2" and start.container.labels["team"] == "a"
    assert "hunter2" not in repr(start) and "hunter2" not in start.describe()
    wait = next(s for s in plan.steps if isinstance(s, WaitHealthy))
    assert wait.url == "http://127.0.0.1:4001/up" and wait.container == "shipyard-web-r2-green"


def test_second_deploy_goes_to_the_idle_slot_and_drains_the_old_one() -> None:
    plan = plan_swap(release("r2", D2), state(), SWAP)
    assert kinds(plan) == [
        BeginHistory,
        Pull,
        StartContainer,
        WaitHealthy,
        SwitchBackend,
        Drain,
        StopContainer,
        FinishHistory,
    ]
    assert plan.steps[0] == BeginHistory("web", "deploy", "r2", "r1", "green", "blue", "tester")
    assert plan.steps[4] == SwitchBackend("app_web", "green", "blue", ("127.0.0.1", 3001), release("r2", D2))
    # counts what is open on blue before the stop
    assert plan.steps[6] == StopContainer("c1", SPEC.deploy.stop_timeout, "app_web", "blue")


def test_a_release_changing_the_frontend_reloads_at_the_switch() -> None:
    moved = parse_spec({"app": "web", "image": "r:5000/web", "proxy": {"listen": "127.0.0.1:9090"}})
    switch = next(
        s for s in plan_swap(release("r2", D2, moved), state()).steps if isinstance(s, SwitchBackend)
    )
    assert switch.reload
    same = next(s for s in plan_swap(release("r2", D2), state()).steps if isinstance(s, SwitchBackend))
    assert not same.reload


def test_image_already_on_the_host_is_not_pulled() -> None:
    plan = plan_swap(release("r2", D1), state())
    assert Pull not in kinds(plan)


def test_deploying_the_active_release_is_a_noop_with_its_reason() -> None:
    plan = plan_swap(release("r1"), state())
    assert plan.empty
    assert plan.noop_reason == "release r1 is already active in the blue slot"
    assert plan.describe() == ["nothing to do: release r1 is already active in the blue slot"]


def test_standby_keeps_the_old_container_running() -> None:
    spec = parse_spec({"app": "web", "image": "r:5000/web", "deploy": {"standby": 30}})
    plan = plan_swap(release("r2", D2, spec), state())
    assert kinds(plan)[-3:] == [Drain, KeepStandby, FinishHistory]
    assert plan.steps[-2] == KeepStandby("web", "c1", "r1", 30)


def test_rollback_to_a_warm_standby_is_only_a_switch() -> None:
    warm = state(
        active_slot="green",
        active_release_id="r2",
        containers=(container("c1", "blue", "r1"), container("c2", "green", "r2")),
        servers={"blue": SlotServer("blue", "maint", "up"), "green": SlotServer("green", "ready", "up")},
    )
    plan = plan_swap(release("r1"), warm, SwapContext("rollback", "tester"), pull_allowed=False)
    assert kinds(plan) == [BeginHistory, WaitHealthy, SwitchBackend, Drain, StopContainer, FinishHistory]
    wait = plan.steps[1]
    assert isinstance(wait, WaitHealthy) and wait.warm and wait.check.healthy_threshold == 1
    assert plan.steps[2] == SwitchBackend("app_web", "blue", "green", ("127.0.0.1", 3000), release("r1"))


def test_a_standby_of_another_release_in_the_idle_slot_is_replaced() -> None:
    busy = state(containers=(container("c1", "blue", "r1"), container("c0", "green", "r0")))
    plan = plan_swap(release("r2", D2), busy)
    assert plan.steps[1] == RemoveContainer("c0", "the idle slot is needed for the new release")


def test_hooks_surround_the_swap_each_command_resolved() -> None:
    spec = parse_spec(
        {
            "app": "web",
            "image": "r:5000/web",
            "env": {"secret": ["TOKEN"]},
            "hooks": {"pre-deploy": "migrate --fast", "post-swap": "b", "post-deploy": ["c", "d 'x y'"]},
        }
    )
    plan = plan_swap(
        release("r2", D2, spec), state(), SwapContext(secrets={"TOKEN": "t0ps3cret"}, hook_user="nobody")
    )
    hooks = [s for s in plan.steps if isinstance(s, RunHook)]
    assert [(h.phase, h.argv) for h in hooks] == [
        ("pre-deploy", ("migrate", "--fast")),
        ("post-swap", ("b",)),
        ("post-deploy", ("c",)),
        ("post-deploy", ("d", "x y")),
    ]
    assert isinstance(plan.steps[1], RunHook)  # before anything changes
    first = hooks[0]
    assert first.user == "nobody" and first.env["TOKEN"] == "t0ps3cret"
    assert first.env["SHIPYARD_HOOK"] == "pre-deploy" and first.env["SHIPYARD_RELEASE"] == "r2"
    assert "t0ps3cret" not in repr(first) and "TOKEN" in repr(first)
    assert "t0ps3cret" not in " ".join(plan.describe())


def test_a_hook_with_unbalanced_quotes_is_refused_before_anything_runs() -> None:
    spec = parse_spec({"app": "web", "image": "r:5000/web", "hooks": {"pre-deploy": "echo 'oops"}})
    with pytest.raises(ConfigError, match="quotes"):
        plan_swap(release("r2", D2, spec), state())


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
    assert kinds(plan) == [SwitchBackend, Drain, StopContainer, FinishHistory]
    assert plan.steps[-1] == FinishHistory("succeeded", "haproxy had already switched", 7)


def test_crash_before_the_switch_removes_the_new_container() -> None:
    crashed = state(
        containers=(container("c1", "blue", "r1"), container("c2", "green", "r2")),
        pending=PendingSwap(7, "r2", "green", "blue"),
    )
    plan = plan_recovery(crashed, release("r2", D2), {}, NOW)
    assert plan.steps == (
        RemoveContainer("c2", "its swap was interrupted before the switch"),
        FinishHistory("interrupted", "the switch had not happened", 7),
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
        RemoveContainer("never", "it was created but never started"),
        RemoveContainer("stray", "it runs in the idle slot without a swap in progress"),
        StopContainer("standby", 10),
    )


def test_a_live_standby_is_kept() -> None:
    warm = state(containers=(container("c1", "blue", "r1"), container("standby", "green", "r0")))
    assert plan_recovery(warm, None, {"standby": NOW + timedelta(seconds=5)}, NOW).empty
