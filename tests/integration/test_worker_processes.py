"""A web process and a worker on a real Docker Engine and haproxy: the worker rolls with each deploy and
rollback, the old one gets SIGTERM and finishes its jobs before anything removes it, web fails no
request; a crash-looping worker fails the deploy and leaves the old release running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import pytest

from shipyard.lab.load import LoadGenerator
from shipyard.lab.single_host import AppHome, PushedImages
from shipyard.lab.testapp import HEARTBEAT_HEALTH, HEARTBEAT_WORKER

pytestmark = pytest.mark.integration


def events(data: Path) -> list[str]:
    path = data / "events"
    return path.read_text().splitlines() if path.exists() else []


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def worker_config(app_home: AppHome, images: PushedImages, data: Path, command: list[str]) -> None:
    app_home.write_config(
        images,
        volumes=[f"{data}:/data"],
        env={"clear": {"FINISH_SECONDS": "5"}},  # the old worker is still finishing when status looks
        processes={
            "web": {},
            "worker": {
                "command": command,
                "stop_signal": "TERM",
                "stop_timeout": 20,
                "health": {"exec": HEARTBEAT_HEALTH, "timeout": 10},
            },
        },
    )


def test_a_worker_rolls_with_deploy_and_rollback_and_finishes_its_jobs(
    app_home: AppHome, images: PushedImages, docker_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    worker_config(app_home, images, data, ["sh", "-c", HEARTBEAT_WORKER])
    app_home.run("deploy", images.ref("v1"))
    assert events(data) == ["r1 started"]
    client = docker.DockerClient(base_url=docker_url)
    try:
        with LoadGenerator(app_home.listen_url + "/version", clients=4) as load:
            app_home.run("deploy", images.ref("v2"))
            # r2's worker started and passed its health before r1's was signalled.
            assert events(data)[:2] == ["r1 started", "r2 started"]
            # The trap runs once the old worker's current 0.2 s sleep ends.
            wait_until(
                lambda: events(data)[:3] == ["r1 started", "r2 started", "r1 got TERM"], 10, "r1's signal"
            )
            status = json.loads(app_home.run("status", "--json").stdout)
            workers = {c["name"]: c for c in status["processes"]["worker"]}
            old = workers.get(f"shipyard-{app_home.app}-r1-worker-1")
            if old is not None:  # still finishing (or finished, not yet reaped) when status looked
                assert old["status"] in ("stopping", "exited") and old["stop_deadline"]
            else:  # a slow machine: it had finished, and status's recovery removed it
                assert "r1 finished" in events(data)
            assert workers[f"shipyard-{app_home.app}-r2-worker-1"]["status"] == "running"
            wait_until(lambda: "r1 finished" in events(data), 15, "r1's worker to finish its jobs")
            app_home.run("rollback")  # r1's old worker is gone by now: its name is free again
            wait_until(lambda: "r2 finished" in events(data), 15, "r2's worker to finish its jobs")
        stats = load.stop()
        assert stats.sent > 20 and stats.failed == 0, stats.failures
        assert set(stats.bodies) == {"v1", "v2"}
        assert events(data) == [
            "r1 started",
            "r2 started",
            "r1 got TERM",
            "r1 finished",
            "r1 started",
            "r2 got TERM",
            "r2 finished",
        ]
        # Finished after its signal, the old worker is not restarted by the engine's restart policy.
        assert client.containers.get(f"shipyard-{app_home.app}-r2-worker-1").status == "exited"
        assert client.containers.get(f"shipyard-{app_home.app}-r1-worker-1").status == "running"
        # The next command's recovery removes the finished workers and drops their records.
        status = json.loads(app_home.run("status", "--json").stdout)
        assert [c["name"] for c in status["processes"]["worker"]] == [f"shipyard-{app_home.app}-r1-worker-1"]
        text = app_home.run("status").stdout
        assert "worker processes" in text  # the table (its names may be cut to the terminal's width)
    finally:
        client.close()


def test_a_crash_looping_worker_fails_the_deploy_and_the_old_release_keeps_running(
    app_home: AppHome, images: PushedImages, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    worker_config(app_home, images, data, ["sh", "-c", HEARTBEAT_WORKER])
    app_home.run("deploy", images.ref("v1"))
    # v2's worker writes its heartbeat, then dies: the engine restarts it, which fails its health.
    crashing = (
        'date +%s > "/data/heartbeat-$SHIPYARD_RELEASE"; echo "$SHIPYARD_RELEASE crashed" >> /data/events; '
        "exit 3"
    )
    app_home.write_config(
        images,
        volumes=[f"{data}:/data"],
        processes={"web": {}, "worker": {"command": ["sh", "-c", crashing], "health": {"running_for": 3}}},
    )
    failed = app_home.run("deploy", images.ref("v2"), check=False)
    assert failed.returncode != 0
    assert "the worker process of release r2 failed its health check" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    status = json.loads(app_home.run("status", "--json").stdout)
    assert status["active_release"]["id"] == "r1"
    assert [(c["release"], c["status"]) for c in status["processes"]["worker"]] == [("r1", "running")]
    assert "r2 crashed" in events(data) and "r1 got TERM" not in events(data)
    history = json.loads(app_home.run("releases", "--json").stdout)["history"]
    assert (history[0]["release"], history[0]["outcome"]) == ("r2", "failed")
