"""Tasks through the fleet: how long `shipyard run` takes end to end, and what a release phase adds.

On a lab of `--hosts` hosts serving v1:

- `shipyard run` (POST /tasks with `echo`), `--runs` times: request -> started (the agent's start,
  from the controller's timestamps: long-poll wake-up and the agent's answer), request -> finished
  (the client polling GET /tasks/{id} every 20 ms sees the exit code: includes `docker run` of a
  throwaway container on the host);
- a deployment to every host in one wave without and with `release: [echo, migrated]`: its
  wall time, and the release phase's own time (task created -> finished).

Usage: .venv/bin/python benchmarks/fleet_tasks.py [--hosts 3] [--runs 10]
"""

from __future__ import annotations

import argparse
import time

from _load import percentile
from fleet_common import admin, print_table, running_lab, wait, wait_edge_up

from shipyard.cli.fleet_cmd import resolve_digest
from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab import control_plane
from shipyard.lab.state import LabState, load_state


def deploy(
    client: ControllerClient, state: LabState, tag: str, extra: dict[str, object]
) -> tuple[float, int]:
    document = {**control_plane.app_document(state), **extra}
    document["rollout"] = {**document["rollout"], "max_parallel": "100%", "monitor": 0.5}  # type: ignore[dict-item]
    spec = parse_spec(document)
    repository, digest = resolve_digest(spec, f"{state.image}:{tag}")
    started = time.perf_counter()
    release = client.create_release(repository, digest, spec_snapshot(spec))
    deployment = client.create_deployment(release.id, state.group)
    done = wait(client, deployment.id)
    assert done.status == "succeeded", done.message
    return time.perf_counter() - started, deployment.id


def timed_run(client: ControllerClient, app: str, group: str) -> tuple[float, float]:
    started = time.perf_counter()
    task = client.create_task(app, group, ["echo", "hello"])
    while task.status not in ("succeeded", "failed"):
        time.sleep(0.02)
        task = client.get_task(task.id)
    finished = time.perf_counter() - started
    assert task.exit_code == 0 and task.started_at is not None, task.message
    return (task.started_at - task.created_at).total_seconds(), finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with running_lab(args.hosts) as root:
        state = load_state(root)
        with admin(state) as client:
            deploy(client, state, "v1", {})
            wait_edge_up(root)
            samples = [timed_run(client, state.app.name, state.group) for _ in range(args.runs)]
            plain, _ = deploy(client, state, "v2", {})
            phased, deployment_id = deploy(client, state, "v3", {"release": ["echo", "migrated"]})
            task = client.get_deployment(deployment_id).release_task
            assert task is not None and task.finished_at is not None
            phase = (task.finished_at - task.created_at).total_seconds()
    starts, ends = sorted(s for s, _ in samples), sorted(e for _, e in samples)
    print_table(
        f"shipyard run through the fleet ({args.runs} runs of echo, {args.hosts} hosts)",
        ["", "p50 ms", "p90 ms", "max ms"],
        [
            [
                "request -> started",
                *(f"{percentile(starts, q) * 1000:.0f}" for q in (50, 90)),
                f"{starts[-1] * 1000:.0f}",
            ],
            [
                "request -> finished",
                *(f"{percentile(ends, q) * 1000:.0f}" for q in (50, 90)),
                f"{ends[-1] * 1000:.0f}",
            ],
        ],
    )
    print_table(
        f"a deployment to {args.hosts} hosts in one wave (monitor 0.5 s)",
        ["release phase", "deployment s", "release phase s"],
        [["none", f"{plain:.1f}", "-"], ["echo migrated", f"{phased:.1f}", f"{phase:.2f}"]],
    )


if __name__ == "__main__":
    main()
