"""One click on the lab: a signed GitHub push to `release` builds the commit and ships it to every host.

The origin is a bare git repository on this machine holding the lab app (its Dockerfile and root
filesystem, and a shipyard.yml with `pipelines:` and the lab's rollout); the hook is added with the
CLI; the lab's controller fetches, builds with BuildKit, pushes to the lab registry and deploys in
waves while clients keep requesting the page through the edge.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from shipyard.lab.engine import DEFAULT_SOCKET
from shipyard.lab.load import LoadGenerator
from shipyard.lab.origin import LabOrigin

from .lab_harness import Lab, current_version, wait_for

# GitHub-shaped payloads, shared with the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from github_payloads import merged_pull_request, push

pytestmark = pytest.mark.e2e

SECRET = "lab-webhook-secret-0123456789abcdef"
FINAL = {"succeeded", "failed", "cancelled", "superseded", "interrupted"}


def wait_job(origin: LabOrigin, job_id: int, timeout: float = 600) -> dict[str, Any]:
    wait_for(lambda: origin.job(job_id)["status"] in FINAL, timeout, f"job {job_id}", interval=1)
    return origin.job(job_id)


def cli(lab: Lab, *args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**lab.env(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        timeout=120,
    )


@pytest.fixture
def origin(lab: Lab, tmp_path: Path) -> Iterator[LabOrigin]:
    origin = LabOrigin.create(lab.state, tmp_path)
    # The repository and the pipelines come from the shipyard.yml in the working copy.
    added = cli(lab, "hooks", "add", "github", "--app", lab.state.app.name, cwd=origin.work, stdin=SECRET)
    assert added.returncode == 0, added.stdout + added.stderr
    assert origin.hook_url in added.stdout and SECRET not in added.stdout + added.stderr
    try:
        yield origin
    finally:
        _remove_built_images(lab.state.image)


def _remove_built_images(repository: str) -> None:
    """The jobs' <sha> and cache tags in the default engine (the lab removes its own tags)."""
    base_url = os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    with contextlib.closing(docker.DockerClient(base_url=base_url)) as client:
        for image in client.images.list(name=repository):
            for tag in image.tags:
                if tag.rsplit(":", 1)[-1] not in {"v1", "v2", "v3", "broken"}:
                    with contextlib.suppress(docker.errors.DockerException):
                        client.images.remove(tag)


def test_a_signed_push_ships_to_every_host_and_quick_merges_end_with_the_newest(
    serving_lab: Lab, origin: LabOrigin
) -> None:
    lab = serving_lab
    before = current_version(lab)
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        first_sha = origin.commit("pipeline-1")
        answer = origin.deliver(SECRET, "push", push("release", first_sha), delivery="lab-delivery-1")
        assert answer.status_code == 202 and answer.json()["verdict"] == "accepted", answer.text
        first_job = answer.json()["job_id"]

        # The same delivery again, and the merged pull request of that commit: no second job.
        again = origin.deliver(SECRET, "push", push("release", first_sha), delivery="lab-delivery-1")
        assert (again.json()["verdict"], again.json()["job_id"]) == ("duplicate", first_job)
        merged = origin.deliver(SECRET, "pull_request", merged_pull_request("release", first_sha))
        assert (merged.json()["verdict"], merged.json()["job_id"]) == ("duplicate", first_job)

        # Two merges in quick succession while the first job runs: the older one never ships.
        older_sha = origin.commit("pipeline-2")
        newer_sha = origin.commit("pipeline-3")
        forged = origin.deliver("not-the-hook-secret-0123456789", "push", push("release", newer_sha))
        assert forged.status_code == 401  # and no job: the newer commit's real delivery is accepted below
        older = origin.deliver(SECRET, "pull_request", merged_pull_request("release", older_sha, number=8))
        newer = origin.deliver(SECRET, "pull_request", merged_pull_request("release", newer_sha, number=9))
        assert older.json()["verdict"] == newer.json()["verdict"] == "accepted"

        shipped = wait_job(origin, first_job)
        assert shipped["status"] == "succeeded", shipped["message"]
        assert {"fetch", "build", "release", "deploy", "wait"} <= set(shipped["timings"])
        newest = wait_job(origin, newer.json()["job_id"])
        assert newest["status"] == "succeeded", newest["message"]
        assert wait_job(origin, older.json()["job_id"])["status"] == "superseded"
        time.sleep(0.5)  # a few more requests against the final release
    assert current_version(lab) == "pipeline-3"
    assert httpx.get(lab.edge_version_url, timeout=5).text.strip() == "pipeline-3"
    assert load.stats.failed == 0, load.stats.failures
    assert set(load.stats.bodies) <= {before, "pipeline-1", "pipeline-3"}
    assert load.stats.bodies["pipeline-3"] > 0

    with lab.client() as client:
        releases = client.list_releases(app=lab.state.app.name)
    assert sum(1 for release in releases if release.spec.get("pipelines")) == 2  # pipeline-1 and -3
    listed = cli(lab, "jobs", "--app", lab.state.app.name, "--json", cwd=lab.root)
    assert listed.returncode == 0, listed.stderr
    statuses = {job["sha"]: job["status"] for job in json.loads(listed.stdout)}
    assert statuses == {first_sha: "succeeded", older_sha: "superseded", newer_sha: "succeeded"}
