"""The single-host release phase: planned before the new container starts, its output kept, a failure
changing nothing; the policy's tasks rule; the spec's `release:` and `hooks.timeout`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from host_fakes import FakeHost, app_spec, fake_host
from test_host_interpreter import deploy, release_of, serving

from shipyard.domain import commands as cmd
from shipyard.domain.commands import container_name
from shipyard.domain.plan import SwapContext, plan_swap
from shipyard.domain.policy import AgentPolicy, parse_policy, task_violation
from shipyard.domain.spec import parse_spec
from shipyard.errors import ConfigError, DeployFailedError
from shipyard.host import service
from shipyard.host.observe import observe


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FakeHost]:
    fake = fake_host(tmp_path / "home")
    yield fake
    fake.close()


def kinds(steps: tuple[cmd.Command, ...]) -> list[str]:
    return [type(step).__name__ for step in steps]


def test_the_release_command_runs_after_the_pull_and_before_the_new_container(host: FakeHost) -> None:
    spec = app_spec(release=["bin/rails", "db:migrate"], env={"clear": {"RAILS_ENV": "production"}})
    release = release_of(host, spec, "v1")
    state = observe(host.context, "web", release.image)
    steps = plan_swap(release, state, SwapContext(release_phase=True)).steps
    order = kinds(steps)
    assert order.index("Pull") < order.index("RunTask") < order.index("StartContainer")
    task = next(step for step in steps if isinstance(step, cmd.RunTask))
    assert (task.container.entrypoint, task.container.command) == (["bin/rails"], ["db:migrate"])
    assert task.container.network == "host" and task.container.ports == {}
    assert (
        task.container.env["RAILS_ENV"] == "production" and task.container.env["SHIPYARD_TASK"] == "release"
    )
    assert "shipyard.app" not in task.container.labels  # never taken for a slot's container
    # An agent's swap never runs it: the controller ran it once for the whole deployment.
    assert "RunTask" not in kinds(plan_swap(release, state, SwapContext()).steps)


def test_a_failing_release_command_leaves_the_serving_release_alone(host: FakeHost) -> None:
    spec = app_spec(release=["bin/migrate"])
    deploy(host, spec, "v1")
    host.engine.once_output, host.engine.once_exit_code = ["ERROR: relation exists"], 1
    release = release_of(host, spec, "v2")
    swap = SwapContext(release_phase=True)
    with pytest.raises(DeployFailedError, match="exited with 1; the new release was not started"):
        service._swap(host.context, release, swap, None, pull_allowed=True)
    assert serving(host) == ["blue"] and host.engine.running("web") == [container_name("web", "r1", "blue")]
    failed = host.store.history("web")[0]
    assert failed.status == "failed"
    assert "release command: ERROR: relation exists" in failed.steps  # kept though it failed


def test_a_succeeding_release_command_runs_once_and_the_swap_goes_on(host: FakeHost) -> None:
    spec = app_spec(release=["bin/migrate"])
    host.engine.once_output = ["migrated 3"]
    release = release_of(host, spec, "v1")
    service._swap(host.context, release, SwapContext(release_phase=True), None, pull_allowed=True)
    assert serving(host) == ["blue"] and len(host.engine.ran_once) == 1
    assert "release command: migrated 3" in host.store.history("web")[0].steps


def test_the_policy_allows_release_phases_and_refuses_one_off_commands_by_default() -> None:
    assert task_violation(AgentPolicy(), "release") is None
    refusal = task_violation(AgentPolicy(), "run")
    assert refusal is not None and "tasks.run: true" in str(refusal)
    opened = parse_policy({"tasks": {"run": True, "release_phase": False}})
    assert task_violation(opened, "run") is None
    assert "tasks.release_phase" in str(task_violation(opened, "release"))


def test_release_must_be_a_command_and_hooks_take_a_timeout() -> None:
    base = {"app": "web", "image": "127.0.0.1:5000/web"}
    with pytest.raises(ConfigError, match="bin/rails, db:migrate"):
        parse_spec({**base, "release": []})
    spec = parse_spec({**base, "hooks": {"pre-deploy": "bin/check", "timeout": 30}})
    assert spec.hooks.timeout == 30
    with pytest.raises(ConfigError, match=r"hooks\.timeout"):
        parse_spec({**base, "hooks": {"timeout": 0}})
