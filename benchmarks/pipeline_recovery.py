"""How fast a pipeline job stops or recovers on the lab: cancel mid-build, controller SIGKILL, SIGTERM.

    .venv/bin/python benchmarks/pipeline_recovery.py [--hosts 3] [--rounds 3]

Starts a lab (registry, https controller with its job worker and the lab's 10 s job lease, HOSTS
hosts, an edge haproxy), serves v1 everywhere, adds the app's hook on a bare git origin, then per
round pushes a commit whose build sleeps in a RUN step and, once that step runs:
- cancel: `POST /api/v1/jobs/ID/cancel`; seconds until the job ended `cancelled` (its recorded end),
  and until the RUN step's process was gone;
- SIGKILL: the controller killed and started again; seconds from the kill until the job ended
  `interrupted` (its lease lapsed, seen by the restarted controller) and until its retry's commit was
  served by every host;
- SIGTERM: the controller stopped gracefully and started again; the same two numbers (the stopping
  controller ends the job itself).
Clients request the page through the edge the whole time; the last line counts their failures.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fleet_common import print_table, running_lab

from shipyard.fleet_api.tls import client_ssl_context
from shipyard.lab import control_plane
from shipyard.lab.engine import DEFAULT_SOCKET
from shipyard.lab.load import LoadGenerator
from shipyard.lab.origin import LabOrigin
from shipyard.lab.processes import kill_now
from shipyard.lab.state import LabState, load_state

SECRET = "bench-recovery-webhook-secret-0123456789"
FINAL = {"succeeded", "failed", "cancelled", "superseded", "interrupted"}
RUN_SLEEP_S = 3000  # the cancelled builds would sleep this long; the others sleep a few seconds


def wait_until(probe: Callable[[], Any], timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.05)
    raise TimeoutError("gave up waiting")


def sleeping(seconds: str) -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:2] == [
                b"sleep",
                seconds.encode(),
            ]:
                return True
        except OSError:
            continue
    return False


def api(state: LabState, method: str, path: str) -> Any:
    answer = httpx.request(
        method,
        f"{state.controller_url}/api/v1{path}",
        headers={"Authorization": f"Bearer {control_plane.admin_token(state)}"},
        verify=client_ssl_context(state.ca_file),
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()


def start_slow_job(origin: LabOrigin, version: str, sleep: str) -> tuple[int, str]:
    """Commit a build that sleeps SLEEP seconds in a RUN step, deliver it, wait until that step runs."""
    dockerfile = origin.work / "Dockerfile"
    lines = [line for line in dockerfile.read_text().splitlines() if not line.startswith("RUN sleep")]
    dockerfile.write_text("\n".join([*lines, f"RUN sleep {sleep}"]) + "\n")
    sha = origin.commit(version)
    payload = {"ref": "refs/heads/release", "after": sha, "deleted": False, "head_commit": {"id": sha}}
    job_id = int(origin.deliver(SECRET, "push", payload).json()["job_id"])
    wait_until(lambda: sleeping(sleep))
    return job_id, sha


def served_everywhere(state: LabState, version: str) -> bool:
    try:
        answer = httpx.get(f"{state.edge_url}/version", timeout=5)
    except httpx.HTTPError:
        return False
    if answer.text.strip() != version:
        return False
    for host in state.hosts:
        try:
            if (
                httpx.get(f"http://{state.app.listen(host.address)}/version", timeout=5).text.strip()
                != version
            ):
                return False
        except httpx.HTTPError:
            return False
    return True


def finished(state: LabState, job_id: int) -> bool:
    return api(state, "GET", f"/jobs/{job_id}")["status"] in FINAL


def ended_after(state: LabState, job_id: int, since: float) -> float:
    """Seconds from the wall-clock time `since` to the job's recorded end (one machine, one clock)."""
    ended = api(state, "GET", f"/jobs/{job_id}")["finished_at"]
    return datetime.fromisoformat(ended.replace("Z", "+00:00")).timestamp() - since


def cancel_round(state: LabState, origin: LabOrigin, number: int) -> tuple[float, float]:
    """Seconds from the cancel to the job's end, and to the RUN step's process gone."""
    sleep = str(RUN_SLEEP_S + number)
    job_id, _ = start_slow_job(origin, f"cancel-{number}", sleep)
    asked, asked_at = time.perf_counter(), time.time()
    api(state, "POST", f"/jobs/{job_id}/cancel")
    wait_until(lambda: finished(state, job_id))
    wait_until(lambda: not sleeping(sleep))
    return ended_after(state, job_id, asked_at), time.perf_counter() - asked


def restart_round(root: Path, origin: LabOrigin, how: str, number: int) -> tuple[float, float]:
    """Seconds from the controller's SIGKILL or SIGTERM to the job interrupted, and to the retry live."""
    version = f"{how.lower()}-{number}"
    job_id, _ = start_slow_job(origin, version, f"4.{random.randint(100, 999)}")
    state = load_state(root)
    stopped, stopped_at = time.perf_counter(), time.time()
    if how == "SIGKILL":
        kill_now(state.controller_pid)
    else:
        control_plane.stop_controller(state)
    control_plane.start_controller(state)
    wait_until(lambda: finished(state, job_id))
    wait_until(lambda: served_everywhere(state, version))
    return ended_after(state, job_id, stopped_at), time.perf_counter() - stopped


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with running_lab(options.hosts) as root, tempfile.TemporaryDirectory() as scratch:
        state = load_state(root)
        origin = LabOrigin.create(state, Path(scratch), rollout={"max_parallel": "100%", "monitor": 0.5})
        env = {
            **os.environ,
            "SHIPYARD_CONTROLLER": state.controller_url,
            "SHIPYARD_CA_FILE": str(state.ca_file),
            "SHIPYARD_TOKEN": control_plane.admin_token(state) or "",
            "DOCKER_HOST": os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}",
        }
        shipyard = [sys.executable, "-m", "shipyard.cli.main"]
        add = [*shipyard, "hooks", "add", "github", "--app", state.app.name]
        subprocess.run(
            add, input=SECRET, cwd=origin.work, env=env, capture_output=True, text=True, check=True
        )
        deploy = [*shipyard, "deploy", f"{state.image}:v1", "--env", state.group]
        subprocess.run(deploy, cwd=origin.work, env=env, capture_output=True, text=True, check=True)
        results: dict[str, list[tuple[float, float]]] = {"cancel": [], "SIGKILL": [], "SIGTERM": []}
        with LoadGenerator(f"{state.edge_url}/version", clients=4) as load:
            for round_number in range(1, options.rounds + 1):
                results["cancel"].append(cancel_round(state, origin, round_number))
                for how in ("SIGKILL", "SIGTERM"):
                    results[how].append(restart_round(root, origin, how, round_number))
        rows: list[list[object]] = []
        for what, pairs in results.items():
            ends, dones = [a for a, _ in pairs], [b for _, b in pairs]
            rows.append(
                [what, len(pairs), *(f"{f(v):.2f}" for v in (ends, dones) for f in (statistics.median, max))]
            )
        print_table(
            f"pipeline job stop and recovery, seconds ({options.hosts} lab hosts, job lease "
            f"{control_plane.LAB_JOB_LEASE:g} s, the build sleeping in a RUN step)",
            ["event", "rounds", "to job end (median)", "(max)", "to done (median)", "(max)"],
            rows,
        )
        print(
            "job end: cancelled (cancel) or interrupted (SIGKILL, SIGTERM); done: the RUN step's process "
            "gone (cancel) or the retry's commit served by every host through the edge (SIGKILL, SIGTERM)"
        )
        print(
            f"requests through the edge meanwhile: {load.stats.sent} sent, {load.stats.failed} failed, "
            f"answers {len(load.stats.bodies)} distinct pages"
        )


if __name__ == "__main__":
    sys.exit(main())
