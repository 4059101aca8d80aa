"""Two controller replicas on PostgreSQL: the leader killed mid-deployment under load, the other takes over.

This module runs its own small lab (2 controllers sharing a PostgreSQL the lab starts, 2 hosts), since
the package's shared lab has one controller on SQLite.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipyard.lab import control_plane
from shipyard.lab.fleet import controller_replicas, lab_down, lab_up
from shipyard.lab.load import LoadGenerator
from shipyard.lab.processes import alive, kill_now

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def replicated_lab() -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="shipyard-e2e-replicas-"))
    subnet = f"127.0.{random.randint(60, 99)}"  # apart from the shared lab's 100-250
    try:
        lab_up(root / "lab", 2, subnet=subnet, controllers=2, database="postgres")
        the_lab = Lab(root / "lab")
        deployment = the_lab.start_deployment("v1", max_parallel="100%", monitor=0.5)
        assert the_lab.wait_deployment(deployment.id).status == "succeeded"
        wait_for(lambda: set(the_lab.edge_servers().values()) == {"up"}, 30, "both hosts up at the edge")
        yield the_lab
    finally:
        if (root / "lab" / "lab.json").exists():
            lab_down(root / "lab")
        shutil.rmtree(root, ignore_errors=True)


def _leaders(lab: Lab) -> list[int]:
    return [index for index, replica in enumerate(controller_replicas(lab.state)) if replica["leader"]]


def _last_seen(lab: Lab) -> dict[str, datetime]:
    """Each host's last_seen, in UTC (stored without a zone)."""
    with lab.client() as client:
        found = client.hosts(lab.state.group)
    return {h.name: h.last_seen if h.last_seen.tzinfo else h.last_seen.replace(tzinfo=UTC) for h in found}


def test_the_leader_killed_mid_deployment_under_load_hands_over_and_nothing_is_lost(
    replicated_lab: Lab,
) -> None:
    lab = replicated_lab
    wait_for(lambda: len(_leaders(lab)) == 1, 30, "one leading replica")
    leader = _leaders(lab)[0]
    state = lab.state
    assert all(alive(pid) for pid in state.controller_pids)
    listed = json.loads(lab.cli("lab", "status", "--dir", str(lab.root), "--json").stdout)["controllers"]
    assert [(c["url"], c["pid"], c["leader"]) for c in listed] == [
        (url, pid, index == leader)
        for index, (url, pid) in enumerate(zip(state.controller_urls, state.controller_pids, strict=True))
    ]
    target = {"v1": "v2", "v2": "v1"}[current_version(lab)]
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        deployment = lab.start_deployment(target, max_parallel="1", monitor=1)
        wait_for(
            lambda: target in {lab.host_version(h.name) for h in state.hosts}, 120, "the first wave to switch"
        )
        killed_at = datetime.now(UTC)
        kill_now(state.controller_pids[leader])  # as abruptly as a crash or a lost machine
        try:
            wait_for(lambda: _leaders(lab) == [1 - leader], 30, "the other replica to lead")
            finished = lab.wait_deployment(deployment.id)
        finally:
            # Restarted whatever happened above, on its port and database.
            state = lab.state
            if not alive(state.controller_pids[leader]):
                control_plane.start_controller(state, replica=leader)
    assert finished.status == "succeeded", finished.message
    assert current_version(lab) == target
    assert load.stats.failed == 0, load.stats.failures
    assert load.stats.sent > 0
    # Both agents still report: each is seen again after the kill (the one that polled the killed
    # replica moved over to the other).
    wait_for(
        lambda: all(seen > killed_at for seen in _last_seen(lab).values()), 60, "both agents to be seen again"
    )
    with lab.client() as client:
        hosts = client.hosts(lab.state.group)
        entries = client.audit(limit=500)
    assert all(host.status != "lost" for host in hosts)
    target_name = f"web/{lab.state.group}/deployment {deployment.id}"
    actions = [entry.action for entry in entries if entry.target == target_name]
    # One record of each step: the creation and exactly one ending, whoever led at the time.
    assert sorted(actions) == ["deployment.create", "deployment.succeeded"]
    assert not [entry for entry in entries if entry.action == "host.lost"]
    # The restarted replica serves again and follows.
    wait_for(lambda: len(_leaders(lab)) == 1, 30, "one leader after the restart")
    assert all(replica["running"] for replica in controller_replicas(lab.state))
