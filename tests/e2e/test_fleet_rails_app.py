"""A Rails-shaped app on the lab's three hosts, as a team runs it: a web process and a worker, a
release phase (the migration), a secret from `shipyard secrets set`, `shipyard run`, a rollback.

All of it under load through the edge, with no failed request on the web process: a failing migration
stops its deployment before any host is touched, a passing one runs once for the three hosts, the
secret reaches every container (web and worker) and the rollback brings back the older value without
running the migration again.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from shipyard.lab import control_plane
from shipyard.lab.hosts import agent_log
from shipyard.lab.load import LoadGenerator

from .lab_harness import Lab, current_version, wait_for
from .test_fleet_secrets import NAME, set_secret, values_in_containers
from .test_fleet_tasks import log_lines
from .test_fleet_workers import events, with_worker

pytestmark = pytest.mark.e2e

MIGRATE = ["sh", "-c", 'echo "$SHIPYARD_RELEASE" >> /data/log; echo migrated']
BROKEN_MIGRATION = ["sh", "-c", "echo 'relation users already exists' >&2; exit 3"]


def rails_app(volume: str, release: list[str]) -> dict[str, Any]:
    document = with_worker(volume)
    document["env"] = {"clear": {"FINISH_SECONDS": "1"}, "secret": [NAME]}
    document["release"] = release
    return document


def fleet(lab: Lab, config: Path, *args: str) -> dict[str, Any]:
    done = lab.cli(*args, "--env", lab.state.group, "-c", str(config), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["status"] == "succeeded", answer
    return answer


def test_web_worker_migration_secret_run_and_rollback_with_no_failed_request(serving_lab: Lab) -> None:
    lab = serving_lab
    hosts = len(lab.state.hosts)
    volume = f"shipyard-e2e-rails-{uuid.uuid4().hex[:8]}"
    config = lab.write_config("rails", rails_app(volume, MIGRATE), max_parallel="100%", monitor=0.5)
    broken = lab.write_config("rails-broken", rails_app(volume, BROKEN_MIGRATION), max_parallel="100%")
    image = lab.state.image
    old_value, new_value = f"old-{secrets.token_hex(12)}", f"new-{secrets.token_hex(12)}"
    outputs: list[str] = []
    try:
        with LoadGenerator(lab.edge_version_url, clients=4) as load:
            time.sleep(0.3)
            set_secret(lab, config, old_value)
            first = fleet(lab, config, "deploy", f"{image}:v2")
            assert current_version(lab) == "v2"
            wait_for(lambda: events(lab, volume)[f"{first['release']} started"] == hosts, 20, "the workers")
            assert all(values == {old_value} for values in values_in_containers(lab).values())
            pinned = f"{first['image']}@{first['digest']}"
            assert sum(len(lines) for lines in log_lines(lab, pinned, volume).values()) == 1

            failing = lab.cli("deploy", f"{image}:v1", "--env", lab.state.group, "-c", str(broken), "--json")
            assert failing.returncode == 9, failing.stdout + failing.stderr
            assert json.loads(failing.stdout)["message"].startswith("release phase failed: exited with 3")
            assert current_version(lab) == "v2"

            set_secret(lab, config, new_value)
            second = fleet(lab, config, "deploy", f"{image}:v1")
            assert current_version(lab) == "v1"
            assert all(values == {new_value} for values in values_in_containers(lab).values())

            ran = lab.cli(
                "run", "--env", lab.state.group, "-c", str(config), "--",
                "sh", "-c", 'echo "runs $SHIPYARD_RELEASE"; exit 7',
            )  # fmt: skip
            assert ran.returncode == 7, ran.stdout + ran.stderr
            assert ran.stdout.splitlines() == [f"runs {second['release']}"]

            back = fleet(lab, config, "rollback")
            assert back["release_id"] == first["release_id"]
            assert current_version(lab) == "v2"
            assert all(values == {old_value} for values in values_in_containers(lab).values())
            outputs += [json.dumps(answer) for answer in (first, second, back)] + [ran.stdout, failing.stdout]
            time.sleep(0.3)
        assert load.stats.sent > 20 and load.stats.failed == 0, load.stats.failures
        # One migration per deployment that ran it (the failing one touched nothing, the rollback none).
        migrated = log_lines(lab, f"{second['image']}@{second['digest']}", volume)
        assert sorted(line for lines in migrated.values() for line in lines) == sorted(
            [first["release"], second["release"]]
        )
        counted = events(lab, volume)
        assert counted[f"{second['release']} got TERM"] == counted[f"{second['release']} finished"] == hosts
        controller = [path for path in (lab.state.path / "controller").rglob("*") if path.is_file()]
        files = [*controller, control_plane.controller_log(lab.state), *map(agent_log, lab.state.hosts)]
        for value in (old_value, new_value):
            assert not any(value in text for text in outputs)
            assert not any(value.encode() in path.read_bytes() for path in files if path.is_file())
    finally:  # the lab's other tests expect the plain app serving v1 everywhere
        restored = lab.start_deployment("v1", max_parallel="100%", monitor=0.5)
        assert lab.wait_deployment(restored.id).status == "succeeded"
        wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to be up at the edge")
