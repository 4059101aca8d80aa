"""The release phase and `shipyard run` across the lab's three hosts, under load through the edge."""

from __future__ import annotations

import secrets
import time

import docker
import pytest

from shipyard.lab.load import LoadGenerator

from .lab_harness import Lab, current_version

pytestmark = pytest.mark.e2e


def log_lines(lab: Lab, image: str, volume: str) -> dict[str, list[str]]:
    """What the release commands appended to /data/log in `volume`, per host (its own engine)."""
    found = {}
    for host in lab.state.hosts:
        client = docker.DockerClient(base_url=host.docker_url, timeout=60)
        try:
            output = client.containers.run(
                image,
                entrypoint=["sh", "-c", "cat /data/log 2>/dev/null; true"],
                volumes={volume: {"bind": "/data", "mode": "ro"}},
                remove=True,
                network_mode="host",
            )
        finally:
            client.close()
        found[host.name] = bytes(output).decode().split()
    return found


def test_a_failing_release_phase_touches_no_host_a_passing_one_runs_once_and_run_returns_the_exit_code(
    serving_lab: Lab,
) -> None:
    lab = serving_lab
    before = current_version(lab)
    volume = f"tasks-e2e-{secrets.token_hex(4)}"
    fails = ["sh", "-c", "echo migrating; echo 'relation users already exists' >&2; exit 3"]
    appends = ["sh", "-c", 'echo "$SHIPYARD_RELEASE" >> /data/log; echo migrated']
    config = lab.write_config("tasks")
    try:
        with LoadGenerator(lab.edge_version_url, clients=4) as load:
            failing = lab.start_deployment("v2", {"release": fails}, max_parallel="100%", monitor=0.5)
            failed = lab.wait_deployment(failing.id)
            assert failed.status == "failed", failed.message
            assert failed.message == "release phase failed: exited with 3; no host was changed"
            assert failed.hosts == [] and current_version(lab) == before
            followed = lab.cli("deployment", str(failing.id), "--follow")
            assert followed.returncode == 9
            assert "release phase | relation users already exists" in followed.stdout

            extra = {"release": appends, "volumes": [f"{volume}:/data"]}
            passing = lab.start_deployment("v2", extra, max_parallel="100%", monitor=0.5)
            done = lab.wait_deployment(passing.id)
            assert done.status == "succeeded", done.message
            assert current_version(lab) == "v2" and len(done.hosts) == 3
            with lab.client() as client:
                task = client.get_deployment(passing.id).release_task
            assert task is not None and [line.text for line in task.lines] == ["migrated"]

            ran = lab.cli(
                "run", "--env", "production", "-c", str(config), "--",
                "sh", "-c", 'echo "hello from $SHIPYARD_APP $SHIPYARD_RELEASE"; exit 7',
            )  # fmt: skip
            assert ran.returncode == 7, ran.stdout + ran.stderr
            assert ran.stdout.splitlines() == [f"hello from web {done.release}"]
            time.sleep(0.5)
        assert load.stats.failed == 0, load.stats.failures
        appended = log_lines(lab, f"{done.image}@{done.digest}", volume)
        assert sorted(line for lines in appended.values() for line in lines) == [done.release], appended
        assert [name for name, lines in appended.items() if lines] == [task.host]
    finally:  # the lab's other tests expect the release it served before, without the volume
        restored = lab.start_deployment(before, max_parallel="100%", monitor=0.5)
        assert lab.wait_deployment(restored.id).status == "succeeded"
