"""Releases signed by the lab controller: a release altered in the controller's database never runs."""

from __future__ import annotations

import json
import sqlite3

import pytest

from shipyard.cli.fleet_cmd import resolve_digest
from shipyard.domain.spec import load_spec, spec_snapshot

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e


def test_a_release_altered_in_the_database_is_refused_by_every_host(serving_lab: Lab) -> None:
    lab = serving_lab
    before = current_version(lab)
    target = {"v1": "v2", "v2": "v3"}.get(before, "v1")  # v1 after another module's version
    spec = load_spec(lab.write_config(f"signed-{target}", None, max_parallel="1", monitor=0.5))
    repository, digest = resolve_digest(spec, f"{lab.state.image}:{target}")
    with lab.client() as client:
        release = client.create_release(repository, digest, spec_snapshot(spec))
        assert release.signature is not None, "the lab controller signs releases"
        # Whoever can write the database tries to hand every host a container that mounts its root.
        tampered = {**release.spec, "volumes": ["/:/host"]}
        database = lab.state.path / "controller" / "controller.db"
        with sqlite3.connect(database) as connection:
            connection.execute(
                "UPDATE releases SET spec = ? WHERE id = ?", (json.dumps(tampered), release.id)
            )
        deployment = client.create_deployment(release.id, lab.state.group)
    finished = lab.wait_deployment(deployment.id)
    assert finished.status in {"failed", "rolled_back"}, finished.message
    refused = [row for row in finished.hosts if row.outcome == "failed"]
    assert len(refused) == 1, finished.hosts
    assert "altered after signing" in refused[0].message
    assert current_version(lab) == before
    wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to stay up at the edge")
