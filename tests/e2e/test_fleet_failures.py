"""Failures of the fleet's own parts: an agent killed mid-swap, the controller gone mid-deployment."""

from __future__ import annotations

import time

import docker
import pytest

from shipyard.host.store import HostStore
from shipyard.lab import control_plane
from shipyard.lab.hosts import start_agent
from shipyard.lab.load import LoadGenerator
from shipyard.lab.processes import alive, kill_now

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e


def _next_version(lab: Lab) -> str:
    # Another module's tests may have left the shared lab on a version of their own: then v1.
    return {"v1": "v2", "v2": "v3"}.get(current_version(lab), "v1")


def _app_containers(docker_url: str, release: str | None = None) -> list[str]:
    client = docker.DockerClient(base_url=docker_url)
    try:
        found = client.containers.list(filters={"label": "shipyard.app=web"})
        return [c.name for c in found if release is None or c.labels.get("shipyard.release") == release]
    finally:
        client.close()


def test_an_agent_killed_mid_swap_converges_when_restarted(serving_lab: Lab) -> None:
    lab = serving_lab
    target, host = _next_version(lab), lab.state.host("h1")
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        deployment = lab.start_deployment(target, max_parallel="100%", monitor=1)
        wait_for(
            lambda: _app_containers(host.docker_url, deployment.release), 120, "the new container on h1", 0.02
        )
        kill_now(host.agent_pid)
        try:
            assert not alive(host.agent_pid)
            time.sleep(1.0)  # the deployment cannot finish without h1
            assert lab.state.host("h1").agent_pid == host.agent_pid
        finally:
            # Restarted whatever happened above: the later tests share this lab.
            state = lab.state
            start_agent(state, state.host("h1"))
            state.save()
        finished = lab.wait_deployment(deployment.id)
        time.sleep(0.5)
    assert finished.status == "succeeded", finished.message
    assert current_version(lab) == target
    assert _app_containers(host.docker_url) == _app_containers(host.docker_url, deployment.release)
    assert len(_app_containers(host.docker_url)) == 1
    assert load.stats.failed == 0, load.stats.failures
    store = HostStore(host.home / "history.sqlite3")
    try:
        killed = [e for e in store.history("web") if e.release_id == deployment.release][-1]
    finally:
        store.close()
    # The restarted agent recovered the swap it was killed in: undone before the switch, or finished after.
    assert killed.status == "interrupted" or killed.message == "haproxy had already switched"


def test_with_the_controller_stopped_mid_deployment_hosts_keep_serving_and_it_continues(
    serving_lab: Lab,
) -> None:
    lab = serving_lab
    before = current_version(lab)
    target = _next_version(lab)
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        deployment = lab.start_deployment(target, max_parallel="1", monitor=1)
        wait_for(lambda: lab.host_version("h1") == target, 120, "h1 to switch")
        state = lab.state
        kill_now(state.controller_pid)  # stopped as abruptly as a crash or a lost machine would
        try:
            down_since = time.monotonic()
            while time.monotonic() - down_since < 4:
                assert {lab.host_version(h.name) for h in state.hosts} <= {target, before}
                time.sleep(0.5)
        finally:
            # Restarted whatever happened above: the later tests share this lab.
            control_plane.start_controller(state)
        finished = lab.wait_deployment(deployment.id)
        time.sleep(0.5)
    assert finished.status == "succeeded", finished.message
    assert current_version(lab) == target
    assert load.stats.failed == 0, load.stats.failures
