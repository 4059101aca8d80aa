"""The agent runs each task its desired state carries once, sends its output in batches, then its end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_agent_fakes import FakeController, FakeHost, task_order
from test_agent_loop import Clock, make_loop

from shipyard.agent.local_host import LocalHost
from shipyard.domain.policy import parse_policy
from shipyard.errors import PolicyError
from shipyard.fleet_api.schemas.tasks import TaskOrder, TaskUpdate
from shipyard.host.context import HostContext
from shipyard.host.policy import HostPolicy
from shipyard.secrets.masking import register_secret


def test_a_task_is_started_then_its_output_and_exit_code_are_sent() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    controller.tasks = [task_order(7)]
    host.task_output, host.task_exit_code = ["migrating", "done"], 3
    loop = make_loop(controller, host, clock)
    loop.run_once()
    assert host.tasks_run == [7]
    updates = controller.task_updates[7]
    assert updates[0].start and not updates[0].lines  # said before anything runs
    assert controller.task_lines(7) == ["migrating", "done"]
    assert (updates[-1].status, updates[-1].exit_code) == ("failed", 3)


def test_a_task_runs_once_even_when_a_later_answer_still_carries_it() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    order = task_order(8)
    controller.tasks = [order]
    loop = make_loop(controller, host, clock)
    loop.run_once()
    controller.tasks = [order]  # a stale answer (another replica's cache) lists it again
    loop.run_once()
    assert host.tasks_run == [8]
    assert controller.task_updates[8][-1].status == "succeeded"


def test_a_task_the_controller_does_not_let_start_is_not_run() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    order = task_order(9)
    controller.task_update(9, TaskUpdate(start=True))  # started already (another agent process)
    controller.tasks = [order]
    make_loop(controller, host, clock).run_once()
    assert host.tasks_run == []


def test_a_task_the_host_refuses_is_reported_failed_with_the_reason() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    controller.tasks = [task_order(10)]
    host.task_error = PolicyError(
        "this host's policy refuses task 10: run: one-off commands are off; nothing ran."
    )
    make_loop(controller, host, clock).run_once()
    end = controller.task_updates[10][-1]
    assert (end.status, end.exit_code) == ("failed", None)
    assert "one-off commands are off" in end.message


def test_output_lines_are_masked_and_sent_in_batches() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    register_secret("s3cr3t-database-password")
    controller.tasks = [task_order(11)]
    host.task_output = [f"line {n}" for n in range(250)] + ["url=postgres://u:s3cr3t-database-password@db"]
    make_loop(controller, host, clock).run_once()
    lines = controller.task_lines(11)
    assert lines[:250] == [f"line {n}" for n in range(250)]
    assert lines[250] == "url=postgres://u:***@db"
    assert len(controller.task_updates[11]) >= 4  # started, batches of at most 100, the end


def test_the_end_is_sent_again_when_the_controller_was_away() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    controller.tasks = [task_order(12)]
    host.task_output = ["one"]
    loop = make_loop(controller, host, clock)
    original = host.run_task

    def run_and_lose_the_controller(order: TaskOrder, on_line: Callable[[str], None]) -> int:
        code = original(order, on_line)
        controller.reachable = False  # away when the end is to be sent
        return code

    host.run_task = run_and_lose_the_controller  # type: ignore[method-assign]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        controller.reachable = True  # back after the first retry's wait

    loop.tasks.sleep = sleep
    loop.run_once()
    assert sleeps  # it waited and tried again
    assert controller.task_updates[12][-1].status == "succeeded"
    assert controller.task_lines(12) == ["one"]


def test_the_agents_host_refuses_a_task_its_policy_does_not_allow_before_anything_runs(
    tmp_path: Path,
) -> None:
    host = LocalHost(HostContext(home=tmp_path / "home"))  # no engine is reached: it would fail here
    with pytest.raises(PolicyError, match=r"one-off commands are off on this host.*nothing ran"):
        host.run_task(task_order(1, kind="run"), print)
    opened = LocalHost(
        HostContext(home=tmp_path / "home"),
        policy=HostPolicy(parse_policy({"tasks": {"run": True}}), "test policy"),
    )
    order = task_order(2, kind="release")
    order.spec["volumes"] = ["/:/host"]  # the release's own rules still apply to its task
    with pytest.raises(PolicyError, match="host path / is not allowed"):
        opened.run_task(order, print)


def test_an_unexpected_error_still_ends_the_task_as_failed() -> None:
    controller, host, clock = FakeController(), FakeHost(), Clock()
    controller.tasks = [task_order(13)]

    def broken(order: TaskOrder, on_line: Callable[[str], None]) -> int:
        on_line("half")
        raise KeyError("State")

    host.run_task = broken  # type: ignore[method-assign]
    make_loop(controller, host, clock).run_once()
    end = controller.task_updates[13][-1]
    assert (end.status, end.exit_code) == ("failed", None)
    assert end.message == "the agent could not finish it (KeyError); see its log"
    assert controller.task_lines(13) == ["half"]
