"""A web process and a busybox worker on every lab host, through the controller: deploy, then roll
back, under load through the edge. Web fails no request; each old worker gets SIGTERM and finishes its
jobs (it logs that) before anything removes it."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from shipyard.lab.load import LoadGenerator
from shipyard.lab.testapp import HEARTBEAT_HEALTH, HEARTBEAT_WORKER

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e


def with_worker(volume: str) -> dict[str, Any]:
    # A named volume (the lab's host policy allows no host paths): each host's engine has its own.
    return {
        "volumes": [f"{volume}:/data"],
        "env": {"clear": {"FINISH_SECONDS": "3"}},
        "processes": {
            "web": {},
            "worker": {
                "command": ["sh", "-c", HEARTBEAT_WORKER],
                "stop_timeout": 30,
                "health": {"exec": HEARTBEAT_HEALTH, "timeout": 10},
            },
        },
    }


def events(lab: Lab, volume: str) -> Counter[str]:
    """Lines of /data/events of every host's workers ("r12 started", "r12 got TERM", ...), counted,
    read from each lab engine's volume directory."""
    counted: Counter[str] = Counter()
    for host in lab.state.hosts:
        path = host.engine_root / "data" / "volumes" / volume / "_data" / "events"
        if path.exists():
            counted.update(path.read_text().splitlines())
    return counted


def test_web_and_worker_deploy_and_roll_back_with_no_failed_request(serving_lab: Lab) -> None:
    lab = serving_lab
    hosts = len(lab.state.hosts)
    volume = f"shipyard-e2e-worker-{uuid.uuid4().hex[:8]}"
    config = lab.write_config("workers", with_worker(volume), max_parallel="100%", monitor=0.5)
    image = lab.state.image
    try:
        first = lab.cli("deploy", f"{image}:v1", "--env", "production", "-c", str(config), "--json")
        assert first.returncode == 0, first.stdout + first.stderr
        first_deployment = json.loads(first.stdout)
        old = first_deployment["release"]  # "r12": what the workers see as $SHIPYARD_RELEASE
        wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to be up at the edge")
        assert events(lab, volume)[f"{old} started"] == hosts, events(lab, volume)
        with LoadGenerator(lab.edge_version_url, clients=4) as load:
            time.sleep(0.3)
            second = lab.cli("deploy", f"{image}:v2", "--env", "production", "-c", str(config), "--json")
            assert second.returncode == 0, second.stdout + second.stderr
            new = json.loads(second.stdout)["release"]
            assert current_version(lab) == "v2"
            assert events(lab, volume)[f"{new} started"] == hosts
            # The trap runs once the worker's current 0.2 s sleep ends.
            wait_for(lambda: events(lab, volume)[f"{old} got TERM"] == hosts, 10, "the old workers' signal")
            wait_for(lambda: events(lab, volume)[f"{old} finished"] == hosts, 20, "the old workers to finish")
            back = lab.cli("rollback", "--env", "production", "-c", str(config), "--json")
            assert back.returncode == 0, back.stdout + back.stderr
            assert json.loads(back.stdout)["release_id"] == first_deployment["release_id"]
            wait_for(lambda: events(lab, volume)[f"{new} finished"] == hosts, 20, "v2's workers to finish")
            time.sleep(0.3)
        assert current_version(lab) == "v1"
        assert load.stats.sent > 20 and load.stats.failed == 0, load.stats.failures
        print(f"through the edge: {load.stats.sent} requests, {load.stats.failed} failed")
        assert set(load.stats.bodies) == {"v1", "v2"}
        counted = events(lab, volume)
        # Every worker signalled finished its jobs: none was killed before it was done.
        assert counted[f"{old} got TERM"] == counted[f"{old} finished"] == hosts
        assert counted[f"{new} got TERM"] == counted[f"{new} finished"] == hosts
        assert counted[f"{old} started"] == 2 * hosts  # started again by the rollback
    finally:
        # The lab back as the other tests expect it: the plain app (no worker) serving v1 everywhere.
        deployment = lab.start_deployment("v1", max_parallel="100%", monitor=0.5)
        assert lab.wait_deployment(deployment.id).status == "succeeded"
        wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to be up at the edge")
