"""Shared by the fleet benchmarks: a lab in a temporary directory and deployments through its controller."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shipyard.cli.fleet_cmd import resolve_digest
from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.schemas.deployments import DeploymentOut
from shipyard.lab import control_plane
from shipyard.lab.fleet import edge_of, lab_down, lab_up
from shipyard.lab.state import LabState, load_state

FINISHED = {"succeeded", "failed", "aborted", "rolled_back"}


@contextmanager
def running_lab(hosts: int) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-"))
    root = work / "lab"
    try:
        lab_up(root, hosts, subnet=f"127.0.{random.randint(100, 250)}")
        yield root
    finally:
        if (root / "lab.json").exists():
            lab_down(root)
        shutil.rmtree(work, ignore_errors=True)


def admin(state: LabState) -> ControllerClient:
    return control_plane.admin_client(state)


def deploy(root: Path, tag: str, **rollout: object) -> tuple[DeploymentOut, float]:
    """Deploy TAG to every host and wait for the end; returns the deployment and its seconds."""
    state = load_state(root)
    document = control_plane.app_document(state)
    document["rollout"] = {**document["rollout"], **rollout}  # type: ignore[dict-item]
    spec = parse_spec(document)
    repository, digest = resolve_digest(spec, f"{state.image}:{tag}")
    started = time.perf_counter()
    with admin(state) as client:
        release = client.create_release(repository, digest, spec_snapshot(spec))
        deployment = client.create_deployment(release.id, state.group)
        return wait(client, deployment.id), time.perf_counter() - started


def rollback(root: Path) -> tuple[DeploymentOut, float]:
    state = load_state(root)
    started = time.perf_counter()
    with admin(state) as client:
        deployment = client.rollback(state.app.name, state.group)
        return wait(client, deployment.id), time.perf_counter() - started


def wait(client: ControllerClient, deployment_id: int, timeout: float = 300) -> DeploymentOut:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get_deployment(deployment_id)
        if found.status in FINISHED:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"deployment {deployment_id} did not finish in {timeout} s")


def wait_edge_up(root: Path, timeout: float = 60) -> None:
    state = load_state(root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = edge_of(state).servers()
        if len(servers) == len(state.hosts) and set(servers.values()) == {"up"}:
            return
        time.sleep(0.2)
    raise TimeoutError("not every host joined the edge")


def print_table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
