"""Secrets on the fleet: set with `shipyard secrets set`, sealed per release, opened by each host's agent.

Under load through the edge: the value reaches the container on every lab host, a new value arrives with
the next deploy, a rollback brings back the older one, and neither value is ever in the controller's
database, its API, the controller's log or an agent's log.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import docker
import pytest

from shipyard.domain.models import LABEL_APP
from shipyard.lab import control_plane
from shipyard.lab.hosts import agent_log
from shipyard.lab.load import LoadGenerator

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e
NAME = "LAB_DATABASE_PASSWORD"


def values_in_containers(lab: Lab) -> dict[str, set[str]]:
    """Per host, the value of NAME in every running container of the lab app (docker exec)."""
    found: dict[str, set[str]] = {}
    for host in lab.state.hosts:
        engine = docker.DockerClient(base_url=host.docker_url)
        try:
            running = engine.containers.list(filters={"label": f"{LABEL_APP}={lab.state.app.name}"})
            values = set()
            for container in running:
                code, output = container.exec_run(["sh", "-c", f'printf %s "${NAME}"'])
                assert code == 0, output
                values.add(output.decode())
            found[host.name] = values
        finally:
            engine.close()
    return found


def serves_everywhere(lab: Lab, value: str) -> bool:
    return all(values == {value} for values in values_in_containers(lab).values())


def deploy(lab: Lab, config: Path, *args: str) -> dict[str, object]:
    done = lab.cli(*args, "--env", lab.state.group, "-c", str(config), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    assert answer["status"] == "succeeded", answer
    return answer


def set_secret(lab: Lab, config: Path, value: str) -> None:
    done = lab.cli_with(
        lab.env(), "secrets", "set", NAME, "--env", lab.state.group, "-c", str(config), stdin=value
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert value not in done.stdout + done.stderr


def test_a_secret_set_with_the_cli_reaches_every_host_and_a_rollback_restores_it(serving_lab: Lab) -> None:
    lab = serving_lab
    old_value = f"old-{secrets.token_hex(12)}"
    new_value = f"new-{secrets.token_hex(12)}"
    config = lab.write_config("sealed", {"env": {"secret": [NAME]}}, max_parallel="100%", monitor=0.5)
    image = lab.state.image
    outputs: list[str] = []
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        time.sleep(0.5)
        set_secret(lab, config, old_value)
        first = deploy(lab, config, "deploy", f"{image}:v2")
        assert serves_everywhere(lab, old_value), values_in_containers(lab)

        set_secret(lab, config, new_value)
        second = deploy(lab, config, "deploy", f"{image}:v1")
        assert serves_everywhere(lab, new_value), values_in_containers(lab)
        assert current_version(lab) == "v1"

        back = deploy(lab, config, "rollback")
        assert back["release_id"] == first["release_id"] != second["release_id"]
        assert serves_everywhere(lab, old_value), values_in_containers(lab)
        assert current_version(lab) == "v2"
        outputs.extend(json.dumps(answer) for answer in (first, second, back))
        time.sleep(0.5)
    assert load.stats.failed == 0, load.stats.failures
    assert set(load.stats.bodies) >= {"v1", "v2"}

    # Every API answer an operator can read, the controller's files and logs, the agents' logs.
    with lab.client() as client:
        answers = [
            *(r.model_dump_json() for r in client.list_releases()),
            *(d.model_dump_json() for d in client.list_deployments()),
            client.get_deployment(int(str(back["id"]))).model_dump_json(),
            *(e.model_dump_json() for e in client.audit(limit=200)),
            *(h.model_dump_json() for h in client.hosts()),
        ]
    state = lab.state
    controller_files = [path for path in (state.path / "controller").rglob("*") if path.is_file()]
    assert any(path.name.startswith("controller.db") for path in controller_files)
    assert control_plane.controller_log(state).is_file()
    files = controller_files + [agent_log(host) for host in state.hosts]
    for value in (old_value, new_value):
        for text in answers + outputs:
            assert value not in text
        for path in files:
            assert value.encode() not in path.read_bytes(), path
    wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to be up at the edge")
