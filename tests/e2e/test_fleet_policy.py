"""A host's own policy against the controller: a release the policy refuses fails there, nothing runs."""

from __future__ import annotations

import pytest

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e


def test_a_release_the_hosts_policy_refuses_fails_and_the_old_one_keeps_serving(serving_lab: Lab) -> None:
    lab = serving_lab
    before = current_version(lab)
    target = {"v1": "v2", "v2": "v3"}.get(before, "v1")  # v1 after another module's version
    marker = lab.root / "hook-ran"
    # Each lab agent runs with D/hosts/hN/agent-policy.yml: the lab registry only, hooks off.
    deployment = lab.start_deployment(
        target, {"hooks": {"pre-deploy": [f"touch {marker}"]}}, max_parallel="1", monitor=0.5
    )
    finished = lab.wait_deployment(deployment.id)
    assert finished.status in {"failed", "rolled_back"}, finished.message
    refused = [row for row in finished.hosts if row.outcome == "failed"]
    assert len(refused) == 1, finished.hosts
    assert "hooks.pre-deploy" in refused[0].message and "(rule hooks)" in refused[0].message
    assert "policy" in refused[0].message
    assert not marker.exists()
    assert current_version(lab) == before
    wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to stay up at the edge")
