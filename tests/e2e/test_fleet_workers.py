"""A web process and a busybox worker on every lab host, through the controller: deploy, then roll
back, under load through the edge. Web fails no request; each old worker gets SIGTERM and finishes its
jobs (it logs that) before anything removes it."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shipyard.lab.load import LoadGenerator
from shipyard.lab.testapp import HEARTBEAT_HEALTH, HEARTBEAT_WORKER

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e


def with_worker(data: Path) -> dict[str, Any]:
    return {
        "volumes": [f"{data}:/data"],
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


def events(data: Path) -> Counter[str]:
    """Lines of /data/events of every host's workers ("r12 started", "r12 got TERM", ...), counted."""
    path = data / "events"
    return Counter(path.read_text().splitlines() if path.exists() else [])


def test_web_and_worker_deploy_and_roll_back_with_no_failed_request(serving_lab: Lab, tmp_path: Path) -> None:
    lab = serving_lab
    hosts = len(lab.state.hosts)
    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    config = lab.write_config("workers", with_worker(data), max_parallel="100%", monitor=0.5)
    image = lab.state.image
    try:
        first = lab.cli("deploy", f"{image}:v1", "--env", "production", "-c", str(config), "--json")
        assert first.returncode == 0, first.stdout + first.stderr
        old = json.loads(first.stdout)["release_id"]
        wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to be up at the edge")
        assert events(data)[f"{old} started"] == hosts
        with LoadGenerator(lab.edge_version_url, clients=4) as load:
            time.sleep(0.3)
            second = lab.cli("deploy", f"{image}:v2", "--env", "production", "-c", str(config), "--json")
            assert second.returncode == 0, second.stdout + second.stderr
            new = json.loads(second.stdout)["release_id"]
            assert current_version(lab) == "v2"
            assert events(data)[f"{new} started"] == hosts
            assert events(data)[f"{old} got TERM"] == hosts
            wait_for(lambda: events(data)[f"{old} finished"] == hosts, 20, "the old workers to finish")
            back = lab.cli("rollback", "--env", "production", "-c", str(config), "--json")
            assert back.returncode == 0, back.stdout + back.stderr
            assert json.loads(back.stdout)["release_id"] == old
            wait_for(lambda: events(data)[f"{new} finished"] == hosts, 20, "v2's workers to finish")
            time.sleep(0.3)
        assert current_version(lab) == "v1"
        assert load.stats.failed == 0, load.stats.failures
        assert set(load.stats.bodies) == {"v1", "v2"}
        counted = events(data)
        # Every worker signalled finished its jobs: none was killed before it was done.
        assert counted[f"{old} got TERM"] == counted[f"{old} finished"] == hosts
        assert counted[f"{new} got TERM"] == counted[f"{new} finished"] == hosts
        assert counted[f"{old} started"] == 2 * hosts  # started again by the rollback
    finally:
        # The lab back as the other tests expect it: the plain app (no worker) serving v1 everywhere.
        deployment = lab.start_deployment("v1", max_parallel="100%", monitor=0.5)
        assert lab.wait_deployment(deployment.id).status == "succeeded"
        wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to be up at the edge")
