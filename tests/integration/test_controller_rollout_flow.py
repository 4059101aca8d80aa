"""Whole deployments driven through the agent endpoints by fake agents (no Docker)."""

from __future__ import annotations

import threading
import time

import pytest
from controller_fixtures import DIGESTS, Harness, controller_settings, running_controller, spec, wait_for

from shipyard.fleet_api.schemas.agent import DesiredState

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]


def desired_releases(harness: Harness) -> dict[str, list[int]]:
    return {agent.name: [app.release_id for app in agent.client.desired().apps] for agent in harness.agents}


def release(harness: Harness, number: int, **rollout: object) -> int:
    return harness.admin.create_release("registry:5000/web", DIGESTS[number], spec(**rollout)).id


def deployed(harness: Harness, release_id: int) -> int:
    deployment = harness.admin.create_deployment(release_id, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    return deployment.id


def test_three_agents_take_a_release_wave_by_wave(controller_harness: Harness) -> None:
    harness = controller_harness
    for name in ("h1", "h2", "h3"):
        harness.add_agent(name)
    first = harness.admin.create_deployment(release(harness, 0, max_parallel="1"), "production")
    assert (first.current_wave, first.total_waves) == (1, 3)
    assert [h.outcome for h in first.hosts] == ["pending", "waiting", "waiting"]
    assert harness.deploy_until(first.id, {"succeeded"}) == "succeeded"
    done = harness.admin.get_deployment(first.id)
    assert {h.outcome for h in done.hosts} == {"succeeded"} and done.current_wave == 3
    assert all(h.started_at and h.finished_at for h in done.hosts)
    assert desired_releases(harness) == {
        "h1": [first.release_id],
        "h2": [first.release_id],
        "h3": [first.release_id],
    }
    assert {h.status for h in harness.admin.hosts()} == {"ready"}
    second = harness.admin.create_deployment(release(harness, 1, max_parallel="50%"), "production")
    assert second.total_waves == 2 and second.previous_release_id == first.release_id
    assert harness.deploy_until(second.id, {"succeeded"}) == "succeeded"


@pytest.mark.parametrize(("auto_rollback", "final"), [(True, "rolled_back"), (False, "failed")])
def test_failures_past_max_failed_stop_the_rollout(
    controller_harness: Harness, auto_rollback: bool, final: str
) -> None:
    harness = controller_harness
    for name in ("h1", "h2", "h3"):
        harness.add_agent(name)
    good = release(harness, 0)
    deployed(harness, good)
    bad = release(harness, 1, max_parallel="1", max_failed=0, auto_rollback=auto_rollback)
    harness.agents[1].broken_releases.add(bad)  # h2, the second wave, cannot run it
    deployment = harness.admin.create_deployment(bad, "production")
    assert harness.deploy_until(deployment.id, {"rolled_back", "failed", "succeeded"}) == final
    outcomes = {h.host: h.outcome for h in harness.admin.get_deployment(deployment.id).hosts}
    assert outcomes == {"h1": "succeeded", "h2": "failed", "h3": "waiting"}
    expected_h1 = good if auto_rollback else bad
    assert desired_releases(harness) == {
        "h1": [expected_h1],
        "h2": [good if auto_rollback else bad],
        "h3": [good],
    }


def test_rollback_deploys_the_previous_succeeded_release(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    first, second = release(harness, 0), release(harness, 1)
    deployed(harness, first)
    replaced = deployed(harness, second)
    rollback = harness.admin.rollback("web", "production")
    assert rollback.release_id == first and rollback.rollback_of == replaced
    assert harness.deploy_until(rollback.id, {"succeeded"}) == "succeeded"
    assert desired_releases(harness) == {"h1": [first]}
    named = harness.admin.rollback("web", "production", release_id=second)
    assert named.release_id == second


def test_a_host_joining_mid_deployment_gets_the_target(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    harness.add_agent("h2")
    target = release(harness, 0, max_parallel="1", monitor=30)
    deployment = harness.admin.create_deployment(target, "production")
    late = harness.add_agent("late")
    assert [app.release_id for app in late.client.desired().apps] == [target]
    waves = {h.host: h.wave for h in harness.admin.get_deployment(deployment.id).hosts}
    assert waves == {"h1": 1, "h2": 2, "late": 1}


def test_a_silent_host_is_lost_and_fails_its_wave(controller_db_url: str) -> None:
    with running_controller(controller_settings(controller_db_url, lost_after=1.5)) as harness:
        silent, talking = harness.add_agent("h1"), harness.add_agent("h2")
        deployment = harness.admin.create_deployment(release(harness, 0, auto_rollback=False), "production")

        def settled() -> bool:
            talking.sync()
            return harness.admin.get_deployment(deployment.id).status == "failed"

        wait_for(settled, what="the deployment to fail on the lost host")
        talking.sync()
        hosts = {host.name: host.status for host in harness.admin.hosts()}
        assert hosts["h1"] == "lost" and hosts["h2"] != "lost"
        assert "host lost" in harness.admin.get_deployment(deployment.id).hosts[0].message

        def back() -> bool:
            # Talks on each check: one report alone is lost again after 1.5 s on a slow machine.
            silent.sync()
            return harness.admin.hosts()[0].status != "lost"

        wait_for(back, what="the host to come back")


def test_desired_long_poll_returns_on_change_or_timeout(controller_harness: Harness) -> None:
    harness = controller_harness
    agent = harness.add_agent("h1")
    current = agent.client.desired()
    started = time.monotonic()
    assert agent.client.desired(version=current.version, wait=0.5).version == current.version
    assert time.monotonic() - started >= 0.45
    answers: list[DesiredState] = []
    poll = threading.Thread(
        target=lambda: answers.append(agent.client.desired(version=current.version, wait=20))
    )
    poll.start()
    time.sleep(0.3)
    target = release(harness, 0)
    harness.admin.create_deployment(target, "production")
    poll.join(timeout=30)
    assert answers and [app.release_id for app in answers[0].apps] == [target]
    assert agent.client.desired(version=current.version, wait=20).version == answers[0].version
