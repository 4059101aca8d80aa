"""Merge -> live on the lab's hosts by step, next to the manual path measured in the same run.

    .venv/bin/python benchmarks/pipeline_lab.py [--hosts 3] [--commits 3]

Starts a lab (registry, https controller with its job worker, HOSTS hosts each with its own Docker
Engine, agent and haproxy, an edge haproxy), serves v1 everywhere, then for each commit: push to
`release` of a bare git origin, one signed push delivery, and the job's seconds per step until its
deployment (one host per wave) succeeded; the first commit builds with an empty cache. Then one more
commit the manual way: `shipyard build --push`, then `shipyard deploy IMAGE:SHA`. Clients request the
page through the edge the whole time; the last line counts their failures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleet_common import print_table, running_lab

from shipyard.lab import control_plane
from shipyard.lab.engine import DEFAULT_SOCKET
from shipyard.lab.load import LoadGenerator
from shipyard.lab.origin import LabOrigin
from shipyard.lab.state import load_state

SECRET = "bench-lab-webhook-secret-0123456789"
STEPS = ("fetch", "build.build", "build.scan", "build.push", "release", "deploy", "wait")
FINAL = {"succeeded", "failed", "cancelled", "superseded", "interrupted"}


def wait_job(origin: LabOrigin, job_id: int) -> dict[str, object]:
    while (job := origin.job(job_id))["status"] not in FINAL:
        time.sleep(0.1)
    return job


def shipyard(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument(
        "--commits", type=int, default=3, help="commits shipped by webhook, one after the other"
    )
    options = parser.parse_args()
    with running_lab(options.hosts) as root, tempfile.TemporaryDirectory() as scratch:
        state = load_state(root)
        origin = LabOrigin.create(state, Path(scratch))
        env = {
            **os.environ,
            "SHIPYARD_CONTROLLER": state.controller_url,
            "SHIPYARD_CA_FILE": str(state.ca_file),
            "SHIPYARD_TOKEN": control_plane.admin_token(state) or "",
            "DOCKER_HOST": os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}",
        }
        subprocess.run(
            [sys.executable, "-m", "shipyard.cli.main", "hooks", "add", "github", "--app", state.app.name],
            input=SECRET,
            cwd=origin.work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        shipyard(env, origin.work, "deploy", f"{state.image}:v1", "--env", state.group)
        rows: list[list[object]] = []
        with LoadGenerator(f"{state.edge_url}/version", clients=4) as load:
            for number in range(1, options.commits + 1):
                sha = origin.commit(f"bench-{number}")
                started = time.perf_counter()
                job_id = origin.deliver(SECRET, "push", _push(sha)).json()["job_id"]
                job = wait_job(origin, job_id)
                total = time.perf_counter() - started
                timings = job["timings"]
                assert isinstance(timings, dict)
                rows.append(
                    [f"{number} ({'cold' if number == 1 else 'warm'})", job["status"]]
                    + [f"{float(timings.get(step, 0)):.2f}" for step in STEPS]
                    + [f"{total:.2f}"]
                )
            sha = origin.commit("bench-manual")
            started = time.perf_counter()
            built = shipyard(env, origin.work, "build", "--push", "--json")
            build_done = time.perf_counter()
            shipyard(env, origin.work, "deploy", f"{state.image}:{sha}", "--env", state.group, "--json")
            deployed = time.perf_counter()
            measured = json.loads(built.stdout)["timings_ms"]
            rows.append(
                ["manual (warm)", "succeeded", "-"]
                + [f"{measured.get(step, 0) / 1000:.2f}" for step in ("build", "scan", "push")]
                + ["-", f"{deployed - build_done:.2f}", "-", f"{deployed - started:.2f}"]
            )
        print_table(
            f"merge -> live, seconds per step ({options.hosts} lab hosts, one per wave)",
            ["commit", "status", *STEPS, "total"],
            rows,
        )
        print(
            f"requests through the edge meanwhile: {load.stats.sent} sent, {load.stats.failed} failed, "
            f"answers {dict(sorted(load.stats.bodies.items()))}"
        )


def _push(sha: str) -> dict[str, object]:
    return {
        "ref": "refs/heads/release",
        "after": sha,
        "deleted": False,
        "head_commit": {"id": sha, "message": "bench"},
    }


if __name__ == "__main__":
    sys.exit(main())
