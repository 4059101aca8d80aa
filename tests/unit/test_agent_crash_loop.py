"""A worker crash-looping after its start: the watch as data, the agent's report, the rollout's answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from test_agent_fakes import FakeController, FakeHost, desired_app
from test_agent_loop import Clock, make_loop

from shipyard.agent.crash_loop import (
    RECHECK_S,
    CrashLoopWatch,
    RestartLimit,
    WorkerSample,
    restart_limits,
    restarts_within,
)
from shipyard.agent.ports import LocalApp
from shipyard.controller.engine import rollout
from shipyard.controller.engine.rollout import HostView, Policy, Report, RolloutState, advance
from shipyard.fleet_api.schemas.agent import CRASH_LOOP_STEP

LIMIT = {"worker": RestartLimit(max_restarts=3, window=60.0)}


def worker(count: int, container: str = "c1", process: str = "worker") -> tuple[WorkerSample, ...]:
    return (WorkerSample(process, container, count),)


def test_restarts_are_counted_from_the_last_sample_before_the_window_or_the_first() -> None:
    samples = [(0.0, 5), (30.0, 6), (70.0, 8), (100.0, 9)]
    assert restarts_within(samples, 100.0, 60.0) == 9 - 6  # from the sample at 30 s
    assert restarts_within(samples[:2], 30.0, 60.0) == 1  # from the first: the container is new
    assert restarts_within([], 0.0, 60.0) == 0


def test_three_restarts_within_the_window_is_a_crash_loop_naming_the_process_and_count() -> None:
    watch = CrashLoopWatch()
    assert watch.observe("web", worker(0), LIMIT, 0.0) is None
    assert watch.observe("web", worker(2), LIMIT, 5.0) is None
    loop = watch.observe("web", worker(3), LIMIT, 9.0)
    assert loop is not None and (loop.process, loop.restarts) == ("worker", 3)
    assert loop.describe() == (
        "process worker is crash-looping: restarted 3 times in the last 60 s (3 restarts in all)"
    )


def test_restarts_spread_over_more_than_the_window_are_not_a_crash_loop() -> None:
    watch = CrashLoopWatch()
    for minute in range(6):  # one restart a minute
        assert watch.observe("web", worker(minute), LIMIT, minute * 61.0) is None


def test_restarts_before_the_agent_first_saw_the_container_are_not_held_against_it() -> None:
    watch = CrashLoopWatch()
    assert watch.observe("web", worker(40), LIMIT, 0.0) is None  # restarted long ago, quiet now
    assert watch.observe("web", worker(40), LIMIT, 10.0) is None


def test_a_new_container_starts_a_new_count_and_the_old_ones_samples_go() -> None:
    watch = CrashLoopWatch()
    watch.observe("web", worker(0, "old"), LIMIT, 0.0)
    watch.observe("web", worker(2, "old"), LIMIT, 5.0)
    assert watch.observe("web", worker(1, "new"), LIMIT, 6.0) is None
    assert set(watch.samples) == {"new"}


def test_the_limit_is_the_processs_own_from_the_spec_with_defaults() -> None:
    spec = {
        "processes": {
            "worker": {
                "command": ["w"],
                "health": {"running_for": 1, "max_restarts": 5, "restart_window": 30},
            },
            "mailer": {"command": ["m"]},
        }
    }
    assert restart_limits(spec) == {"worker": RestartLimit(5, 30.0), "mailer": RestartLimit(3, 60.0)}
    assert restart_limits({}) == {}


def test_the_agent_looks_again_soon_while_a_worker_is_new_or_restarting_then_stops() -> None:
    watch = CrashLoopWatch()
    watch.observe("web", worker(0), LIMIT, 0.0)
    assert watch.next_check(10.0) == RECHECK_S
    watch.observe("web", worker(0), LIMIT, 100.0)
    assert watch.next_check(100.0) is None  # quiet for longer than the window


def test_the_agent_reports_a_crash_looping_worker_unhealthy_with_its_message_and_step() -> None:
    controller, clock = FakeController(), Clock()
    host = FakeHost(running={"web": LocalApp("r2", running=True, healthy=True, workers=worker(0))})
    controller.set_desired(desired_app(release_id=2))
    loop = make_loop(controller, host, clock)
    loop.run_once()
    assert controller.last_report().health == "healthy"
    assert loop.retry_in == RECHECK_S  # a new worker: looked at again soon, not after a whole long-poll
    clock.now += 8
    host.running["web"] = replace(host.running["web"], workers=worker(3))
    loop.run_once()
    report = controller.last_report()
    assert (report.health, report.outcome, report.step) == ("unhealthy", "succeeded", CRASH_LOOP_STEP)
    assert "process worker is crash-looping: restarted 3 times" in report.message
    assert host.converged == []  # it runs: nothing to redeploy, the controller decides


def at(seconds: float) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def test_a_crash_loop_report_fails_the_host_even_before_it_reported_healthy() -> None:
    hosts = [HostView(1, "h1"), HostView(2, "h2")]
    state = RolloutState(
        status=rollout.RUNNING, target_release=2, policy=Policy(max_parallel="1", monitor=30)
    )
    state = advance(state, hosts, {}, at(0))
    deploying = Report(active_release=1, outcome="in_progress", release=2, at=at(1))
    state = advance(state, hosts, {1: deploying}, at(1))
    assert {row.host_id: row.outcome for row in state.progress}[1] == rollout.DEPLOYING
    looping = Report(
        active_release=2,
        health="unhealthy",
        outcome="succeeded",
        release=2,
        step=CRASH_LOOP_STEP,
        message="process worker is crash-looping: restarted 3 times in the last 60 s (3 restarts in all)",
        at=at(9),
    )
    state = advance(state, hosts, {1: looping}, at(9))
    failed = next(row for row in state.progress if row.host_id == 1)
    assert failed.outcome == rollout.HOST_FAILED and "worker is crash-looping" in failed.message
    assert state.status in (rollout.ROLLED_BACK, rollout.FAILED)
