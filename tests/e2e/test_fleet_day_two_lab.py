"""Day two across the lab: maintenance on every host with the containers running, status, logs --env."""

from __future__ import annotations

import contextlib
import json

import docker
import httpx
import pytest

from .lab_harness import Lab, wait_for

pytestmark = pytest.mark.e2e
MESSAGE = "Back at 10:00 <UTC>"
SHOWN = "Back at 10:00 &lt;UTC&gt;"


def running_containers(docker_url: str) -> list[str]:
    with contextlib.closing(docker.DockerClient(base_url=docker_url)) as client:
        return [
            c.name for c in client.containers.list(filters={"label": "shipyard.app=web", "status": "running"})
        ]


def answer(url: str) -> tuple[int, str] | None:
    try:
        response = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return None
    return response.status_code, response.text


def test_maintenance_on_every_host_keeps_containers_running_and_logs_come_from_every_host(
    serving_lab: Lab,
) -> None:
    lab = serving_lab
    config = str(lab.write_config("day-two"))
    hosts = lab.state.hosts
    running_before = {host.name: running_containers(host.docker_url) for host in hosts}
    try:
        on = lab.cli("maintenance", "on", "--env", "production", "-c", config, "--message", MESSAGE, "--json")
        assert on.returncode == 0, on.stdout + on.stderr
        assert json.loads(on.stdout)["message"] == MESSAGE
        for host in hosts:
            listen = lab.state.app.listen(host.address)
            page = wait_for(
                lambda listen=listen: (found := answer(f"http://{listen}/")) and found[0] == 503 and found,
                60,
                f"{host.name} to answer the maintenance page",
            )
            assert SHOWN in page[1]
            health = answer(f"http://{listen}/up")
            assert health is not None and health[0] == 200  # the health path keeps answering
            # The containers kept running: the same ones as before maintenance.
            assert running_containers(host.docker_url) == running_before[host.name]
        for _ in range(6):  # through the edge, whichever host it picks
            through_edge = answer(f"{lab.state.edge_url}/")
            assert through_edge is not None and through_edge[0] == 503 and SHOWN in through_edge[1]
        status = wait_for(
            lambda: (
                (found := lab.cli("status", "--env", "production", "--app", "web", "--json")).returncode == 0
                and all(row["maintenance"] for row in json.loads(found.stdout)["hosts"])
                and json.loads(found.stdout)
            ),
            30,
            "every host to report its maintenance",
        )
        assert sorted(row["host"] for row in status["hosts"]) == sorted(host.name for host in hosts)
    finally:
        # Whatever happened above: the later tests share this lab.
        off = lab.cli("maintenance", "off", "--env", "production", "-c", config)
        for host in hosts:
            version = f"http://{lab.state.app.listen(host.address)}/version"
            wait_for(
                lambda version=version: (found := answer(version)) and found[0] == 200,
                60,
                f"{host.name} back",
            )
    assert off.returncode == 0, off.stdout + off.stderr
    assert {host.name: running_containers(host.docker_url) for host in hosts} == running_before

    logs = lab.cli("logs", "--env", "production", "-c", config, "--tail", "5", timeout=90)
    assert logs.returncode == 0, logs.stdout + logs.stderr
    prefixes = {line.split(" | ", 1)[0].strip() for line in logs.stdout.splitlines() if " | " in line}
    assert prefixes == {host.name for host in hosts}, logs.stdout + logs.stderr
    grepped = lab.cli("logs", "--env", "production", "-c", config, "--grep", "no line has this", "--json")
    assert grepped.returncode == 0 and grepped.stdout == "", grepped.stdout + grepped.stderr
