"""The release phase in the rollout engine, and the choice of the host a one-off command runs on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shipyard.controller.engine.rollout import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    HostView,
    Policy,
    RolloutState,
    advance,
    needs_release_task,
    release_host,
)
from shipyard.controller.engine.tasks import TaskHost, choose_run_host
from shipyard.controller.errors import ConflictError
from shipyard.errors import NotFoundError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOSTS = [HostView(3, "web-3"), HostView(1, "web-1"), HostView(2, "web-2")]


def state(phase: str, detail: str = "") -> RolloutState:
    return RolloutState(RUNNING, 7, Policy(max_parallel="1"), release_phase=phase, release_detail=detail)


@pytest.mark.parametrize("phase", ["needed", "pending", "running"])
def test_no_wave_starts_while_the_release_phase_has_not_succeeded(phase: str) -> None:
    after = advance(state(phase), HOSTS, {}, NOW)
    assert (after.status, after.current_wave, after.progress) == (RUNNING, 0, ())
    assert after.message.startswith("release phase")
    assert needs_release_task(after) == (phase == "needed")


def test_a_failed_release_phase_fails_the_deployment_without_touching_a_host() -> None:
    after = advance(state("failed", "exited with 1"), HOSTS, {}, NOW)
    assert (after.status, after.current_wave, after.progress) == (FAILED, 0, ())
    assert after.message == "release phase failed: exited with 1; no host was changed"


def test_a_succeeded_release_phase_starts_the_first_wave() -> None:
    after = advance(state("succeeded"), HOSTS, {}, NOW)
    assert (after.status, after.current_wave, after.total_waves) == (RUNNING, 1, 3)
    assert [row.outcome for row in after.progress] == ["pending", "waiting", "waiting"]


def test_without_a_release_command_the_waves_start_at_once() -> None:
    after = advance(state(""), HOSTS, {}, NOW)
    assert after.current_wave == 1


def test_the_release_phase_runs_on_the_first_live_host_by_name() -> None:
    assert release_host(HOSTS) == HostView(1, "web-1")
    lost_first = [replace(HOSTS[1], lost=True), HOSTS[0], HOSTS[2]]
    assert release_host(lost_first) == HostView(2, "web-2")
    assert release_host([replace(host, lost=True) for host in HOSTS]) is None


def test_with_no_live_host_there_is_nothing_to_migrate_for_and_nothing_to_change() -> None:
    after = advance(state("needed"), [replace(host, lost=True) for host in HOSTS], {}, NOW)
    assert after.status == SUCCEEDED and not needs_release_task(after)


def serving(name: str, host_id: int, **kwargs: bool) -> TaskHost:
    return TaskHost(host_id, name, **{"runs_release": True, "healthy": True, **kwargs})


def test_a_run_goes_to_the_first_healthy_host_running_the_active_release() -> None:
    hosts = [
        serving("web-1", 1, healthy=False),
        serving("web-3", 3),
        serving("web-2", 2),
        TaskHost(4, "web-0"),
    ]
    assert choose_run_host(hosts, None, app="web", environment="production").name == "web-2"


def test_a_requested_host_is_used_as_is_unless_lost_or_unknown() -> None:
    hosts = [serving("web-1", 1), TaskHost(2, "web-2", lost=True)]
    assert choose_run_host(hosts, "web-1", app="web", environment="production").host_id == 1
    with pytest.raises(ConflictError, match="web-2 is lost"):
        choose_run_host(hosts, "web-2", app="web", environment="production")
    with pytest.raises(NotFoundError, match="host web-9 is not in production"):
        choose_run_host(hosts, "web-9", app="web", environment="production")


def test_no_healthy_host_is_a_clear_refusal() -> None:
    with pytest.raises(ConflictError, match="no healthy host of production runs web's active release"):
        choose_run_host([TaskHost(1, "web-1")], None, app="web", environment="production")
