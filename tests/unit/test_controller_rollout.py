"""The rollout engine as plain data: no database, no web stack, an explicit clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shipyard.controller.engine import rollout
from shipyard.controller.engine.rollout import (
    HostView,
    Policy,
    Report,
    RolloutState,
    advance,
    moves_desired,
    plan_waves,
    wave_size,
)
from shipyard.controller.errors import ConflictError
from shipyard.controller.store.desired import choose_release

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TARGET, OLD = 2, 1


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def hosts(count: int) -> list[HostView]:
    return [HostView(i, f"h{i}") for i in range(1, count + 1)]


def healthy(release: int = TARGET, when: float = 0.0) -> Report:
    return Report(active_release=release, health="healthy", outcome="succeeded", release=release, at=at(when))


def failed(when: float) -> Report:
    return Report(active_release=OLD, health="unhealthy", outcome="failed", release=TARGET, at=at(when))


def new_state(**policy: object) -> RolloutState:
    return RolloutState(status=rollout.RUNNING, target_release=TARGET, policy=Policy(**policy))  # type: ignore[arg-type]


def outcomes(state: RolloutState) -> dict[int, str]:
    return {row.host_id: row.outcome for row in state.progress}


def started_hosts(state: RolloutState) -> set[int]:
    return {row.host_id for row in state.progress if 0 < row.wave <= state.current_wave}


@pytest.mark.parametrize(
    ("max_parallel", "count", "expected"),
    [("1", 5, 1), ("2", 5, 2), ("50%", 3, 2), ("50%", 4, 2), ("10%", 3, 1), ("100%", 7, 7), ("9", 2, 9)],
)
def test_wave_size_is_a_count_or_a_rounded_up_percentage(
    max_parallel: str, count: int, expected: int
) -> None:
    assert wave_size(max_parallel, count) == expected


def test_waves_are_planned_in_name_order() -> None:
    waves = plan_waves([HostView(2, "b"), HostView(1, "a"), HostView(3, "c")], "2")
    assert [[h.name for h in wave] for wave in waves] == [["a", "b"], ["c"]]


def test_one_host_per_wave_advances_only_after_the_monitor_period() -> None:
    state = advance(new_state(max_parallel="1", monitor=5), hosts(3), {}, at(0))
    assert (state.current_wave, state.total_waves) == (1, 3)
    assert started_hosts(state) == {1}
    state = advance(state, hosts(3), {1: healthy()}, at(1))
    assert outcomes(state)[1] == rollout.HEALTHY and state.current_wave == 1
    state = advance(state, hosts(3), {1: healthy()}, at(5.9))
    assert state.current_wave == 1, "monitor period not over yet"
    state = advance(state, hosts(3), {1: healthy()}, at(6))
    assert outcomes(state)[1] == rollout.HOST_SUCCEEDED and state.current_wave == 2
    assert started_hosts(state) == {1, 2}


def test_percentage_waves_finish_the_deployment() -> None:
    state = advance(new_state(max_parallel="50%", monitor=0), hosts(4), {}, at(0))
    assert state.total_waves == 2 and started_hosts(state) == {1, 2}
    state = advance(state, hosts(4), {1: healthy(), 2: healthy()}, at(1))
    assert state.current_wave == 2 and started_hosts(state) == {1, 2, 3, 4}
    all_healthy = {i: healthy() for i in range(1, 5)}
    state = advance(state, hosts(4), all_healthy, at(2))
    assert state.status == rollout.SUCCEEDED
    assert set(outcomes(state).values()) == {rollout.HOST_SUCCEEDED}


def test_no_hosts_succeeds_at_once() -> None:
    assert advance(new_state(), [], {}, at(0)).status == rollout.SUCCEEDED


def test_failure_past_max_failed_rolls_back_when_auto_rollback() -> None:
    state = advance(new_state(max_parallel="1", max_failed=0, auto_rollback=True), hosts(3), {}, at(0))
    state = advance(state, hosts(3), {1: failed(when=1)}, at(1))
    assert state.status == rollout.ROLLED_BACK
    assert outcomes(state)[1] == rollout.HOST_FAILED
    assert "max_failed=0" in state.message


def test_failure_past_max_failed_without_auto_rollback_fails() -> None:
    state = advance(new_state(max_parallel="1", max_failed=0, auto_rollback=False), hosts(3), {}, at(0))
    state = advance(state, hosts(3), {1: failed(when=1)}, at(1))
    assert state.status == rollout.FAILED


def test_failures_within_max_failed_are_tolerated() -> None:
    state = advance(new_state(max_parallel="2", max_failed=1, monitor=0), hosts(4), {}, at(0))
    state = advance(state, hosts(4), {1: failed(when=1), 2: healthy()}, at(1))
    assert state.status == rollout.RUNNING and state.current_wave == 2
    reports = {1: failed(when=1), 2: healthy(), 3: healthy(), 4: healthy()}
    state = advance(state, hosts(4), reports, at(2))
    assert state.status == rollout.SUCCEEDED
    assert "1 host(s) failed" in state.message


def test_a_failure_reported_before_the_wave_started_is_ignored() -> None:
    state = advance(new_state(max_parallel="1"), hosts(2), {}, at(10))
    state = advance(state, hosts(2), {1: failed(when=5)}, at(11))
    assert state.status == rollout.RUNNING and outcomes(state)[1] == rollout.PENDING


def test_becoming_unhealthy_during_the_monitor_period_fails_the_host() -> None:
    state = advance(new_state(max_parallel="1", monitor=10), hosts(2), {1: healthy()}, at(0))
    assert outcomes(state)[1] == rollout.HEALTHY
    unhealthy = Report(active_release=TARGET, health="unhealthy", at=at(3))
    state = advance(state, hosts(2), {1: unhealthy}, at(3))
    assert state.status == rollout.ROLLED_BACK


def test_a_host_joining_mid_deployment_enters_the_running_wave() -> None:
    state = advance(new_state(max_parallel="1", monitor=0), hosts(2), {}, at(0))
    joined = [*hosts(2), HostView(9, "late")]
    state = advance(state, joined, {}, at(1))
    assert started_hosts(state) == {1, 9}
    assert {row.host_id: row.wave for row in state.progress}[9] == 1


def test_a_lost_host_in_the_running_wave_counts_as_failed() -> None:
    state = advance(new_state(max_parallel="1", max_failed=0, auto_rollback=False), hosts(2), {}, at(0))
    lost = [HostView(1, "h1", lost=True), HostView(2, "h2")]
    state = advance(state, lost, {}, at(40))
    assert state.status == rollout.FAILED
    assert "host lost" in state.progress[0].message


def test_hosts_lost_before_the_start_are_left_out() -> None:
    fleet = [HostView(1, "h1", lost=True), HostView(2, "h2")]
    state = advance(new_state(max_parallel="1"), fleet, {}, at(0))
    assert state.total_waves == 1 and outcomes(state) == {2: rollout.PENDING}


def test_pause_holds_the_next_wave_and_resume_releases_it() -> None:
    state = advance(new_state(max_parallel="1", monitor=0), hosts(2), {}, at(0))
    state = rollout.pause(state)
    state = advance(state, hosts(2), {1: healthy()}, at(1))
    assert state.status == rollout.PAUSED and state.current_wave == 1
    assert outcomes(state)[1] == rollout.HOST_SUCCEEDED, "the running wave is still observed"
    state = advance(rollout.resume(state), hosts(2), {1: healthy()}, at(2))
    assert state.current_wave == 2


def test_abort_stops_everything_and_refuses_twice() -> None:
    state = rollout.abort(advance(new_state(), hosts(2), {}, at(0)))
    assert state.status == rollout.ABORTED
    assert advance(state, hosts(2), {1: healthy()}, at(1)) == state
    with pytest.raises(ConflictError):
        rollout.abort(state)


@pytest.mark.parametrize("change", [rollout.pause, rollout.resume])
def test_pause_and_resume_refuse_finished_deployments(change: object) -> None:
    finished = replace(new_state(), status=rollout.SUCCEEDED)
    with pytest.raises(ConflictError):
        change(finished)  # type: ignore[operator]


def test_advance_is_stable_when_nothing_happens() -> None:
    state = advance(new_state(monitor=5), hosts(3), {}, at(0))
    assert advance(state, hosts(3), {}, at(1)) == state


def test_next_due_is_when_the_first_monitored_host_may_succeed() -> None:
    state = advance(new_state(max_parallel="100%", monitor=5.0), hosts(2), {}, at(0))
    assert rollout.next_due(state) is None  # nobody healthy yet: only a report can move it
    state = advance(state, hosts(2), {1: healthy(when=1)}, at(1))
    state = advance(state, hosts(2), {1: healthy(when=1), 2: healthy(when=3)}, at(3))
    assert rollout.next_due(state) == at(6)
    finished = advance(state, hosts(2), {1: healthy(when=1), 2: healthy(when=3)}, at(8))
    assert finished.status == rollout.SUCCEEDED
    assert rollout.next_due(finished) is None


@pytest.mark.parametrize("monitor", [1e300, float("inf"), float("nan"), 1e12])
def test_a_monitor_no_datetime_can_hold_never_ends_and_never_raises(monitor: float) -> None:
    state = advance(new_state(monitor=monitor), hosts(1), {1: healthy()}, at(0))
    assert outcomes(state) == {1: rollout.HEALTHY}
    assert rollout.next_due(state) is None
    later = advance(state, hosts(1), {1: healthy()}, at(10**6))
    assert outcomes(later) == {1: rollout.HEALTHY} and later.status == rollout.RUNNING


def test_monitor_end_is_none_only_when_out_of_range() -> None:
    assert rollout.monitor_end(T0, 5.0) == at(5)
    assert rollout.monitor_end(T0, 1e300) is None
    assert rollout.monitor_end(T0, float("inf")) is None
    assert rollout.monitor_end(T0, float("nan")) is None


def desired_choices(state: RolloutState, host_ids: list[int]) -> dict[int, object]:
    """What each host should run under `state`, by the desired-state rule (deployment 7, current OLD)."""
    waves = {row.host_id: row.wave for row in state.progress}
    return {
        host_id: choose_release(
            state.status, state.target_release, 7, OLD, 0 < waves.get(host_id, 0) <= state.current_wave
        )
        for host_id in host_ids
    }


def test_moves_desired_is_true_whenever_a_host_should_run_something_else() -> None:
    """Walk deployments through waves, monitoring, a joining host and a rollback: every step that changes
    a host's desired release is flagged, and the steps that only record progress are not."""
    flagged, progress_only = 0, 0
    scenarios = [
        (new_state(max_parallel="1", monitor=1), 3, [{}, {1: healthy()}, {1: healthy()}, {1: healthy()}]),
        (new_state(max_parallel="50%", monitor=0, max_failed=0), 4, [{}, {1: healthy()}, {2: failed(1)}]),
    ]
    for start, count, steps in scenarios:
        state, members = start, hosts(count)
        for number, reports in enumerate(steps):
            if number == 2:
                members = hosts(count + 1)  # a host joins mid-deployment
            after = advance(state, members, reports, at(number * 0.6))
            ids = [host.host_id for host in members]
            if desired_choices(after, ids) != desired_choices(state, ids):
                assert moves_desired(state, after), (number, after)
                flagged += 1
            elif after != state and not moves_desired(state, after):
                progress_only += 1
            state = after
    assert flagged >= 4 and progress_only >= 1, (flagged, progress_only)


def test_progress_within_a_wave_does_not_move_desired_state() -> None:
    state = advance(new_state(max_parallel="100%", monitor=5), hosts(3), {}, at(0))
    healthier = advance(state, hosts(3), {1: healthy()}, at(1))
    assert outcomes(healthier)[1] == rollout.HEALTHY
    assert not moves_desired(state, healthier)
    all_healthy = {i: healthy() for i in (1, 2, 3)}
    monitored = advance(healthier, hosts(3), all_healthy, at(2))
    assert monitored.status == rollout.RUNNING and not moves_desired(healthier, monitored)
    done = advance(monitored, hosts(3), all_healthy, at(8))
    assert done.status == rollout.SUCCEEDED and moves_desired(monitored, done)
