"""A worker that passes its start's health check, then crash-loops: its deployment fails like a failed
health check, and `shipyard status --env` says which process loops."""

from __future__ import annotations

import json
import time

import pytest

from .lab_harness import Lab, wait_for

pytestmark = pytest.mark.e2e

# Healthy at its start (running_for: 1), then it exits every 2 s and the engine restarts it.
CRASHING_WORKER = {
    "processes": {
        "web": {},
        "worker": {"command": ["sh", "-c", "sleep 2; exit 1"], "health": {"running_for": 1}},
    }
}


def test_a_worker_crash_looping_after_its_start_fails_the_deployment_and_shows_in_status(
    serving_lab: Lab,
) -> None:
    lab = serving_lab
    started = time.monotonic()
    try:
        deployment = lab.start_deployment(
            "v2", CRASHING_WORKER, max_parallel="100%", monitor=60, auto_rollback=False
        )
        finished = lab.wait_deployment(deployment.id, timeout=120)
        assert finished.status == "failed", finished.message
        # The first host to see its worker loop fails the deployment (max_failed 0); the others are
        # still in their monitor period then.
        looping = [host for host in finished.hosts if host.outcome == "failed"]
        assert looping and all("process worker is crash-looping: restarted" in h.message for h in looping)
        print(f"crash loop failed the deployment in {time.monotonic() - started:.1f} s")

        # After the deployment, every host keeps the target and says why it is unhealthy.
        config = lab.write_config("crash-loop-status")

        def status_rows() -> list[dict[str, object]] | None:
            status = lab.cli("status", "--env", "production", "-c", str(config), "--json")
            assert status.returncode == 0, status.stderr
            rows: list[dict[str, object]] = json.loads(status.stdout)["hosts"]
            looping = [row for row in rows if "process worker is crash-looping" in str(row["problem"])]
            return rows if len(looping) == len(rows) else None

        rows = wait_for(status_rows, 30, "every host to report its worker's crash loop", interval=1)
        assert {row["health"] for row in rows} == {"unhealthy"}
        table = lab.cli("status", "--env", "production", "-c", str(config))
        assert "h1 web: process worker is crash-looping" in " ".join(table.stdout.split())
    finally:  # the lab's other tests expect the plain app (no worker) serving v1 everywhere
        restored = lab.start_deployment("v1", max_parallel="100%", monitor=0.5)
        assert lab.wait_deployment(restored.id).status == "succeeded"
        wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to be up at the edge")
