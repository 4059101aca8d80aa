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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
import yaml

from shipyard.lab import control_plane
from shipyard.lab.engine import DEFAULT_SOCKET
from shipyard.lab.load import LoadGenerator
from shipyard.lab.testapp import write_context_dir

from .lab_harness import Lab, current_version, wait_for

# GitHub-shaped payloads, shared with the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from github_payloads import merged_pull_request, push, signed

pytestmark = pytest.mark.e2e

SECRET = "lab-webhook-secret-0123456789abcdef"
FINAL = {"succeeded", "failed", "cancelled", "superseded", "interrupted"}
GIT = ["git", "-c", "user.email=lab@shipyard.test", "-c", "user.name=lab", "-c", "init.defaultBranch=main"]


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Origin:
    lab: Lab
    work: Path
    bare: Path

    def commit(self, version: str) -> str:
        """Commit a change of the page the app serves at /version and push it to `release`."""
        (self.work / "rootfs" / "www" / "version").write_text(f"{version}\n")
        git(self.work, "commit", "-qam", f"serve {version}")
        git(self.work, "push", "-q", "origin", "HEAD:release")
        return git(self.work, "rev-parse", "HEAD")

    def deliver(self, event: str, payload: dict[str, Any], delivery: str | None = None) -> httpx.Response:
        state = self.lab.state
        body, headers = signed(SECRET, event, payload, delivery)
        return httpx.post(
            f"{state.controller_url}/hooks/github/{state.app.name}",
            content=body,
            headers=headers,
            verify=str(state.ca_file),
            timeout=30,
        )

    def job(self, job_id: int) -> dict[str, Any]:
        state = self.lab.state
        answer = httpx.get(
            f"{state.controller_url}/api/v1/jobs/{job_id}",
            headers={"Authorization": f"Bearer {control_plane.admin_token(state)}"},
            verify=str(state.ca_file),
            timeout=30,
        )
        answer.raise_for_status()
        return dict(answer.json())

    def wait_job(self, job_id: int, timeout: float = 600) -> dict[str, Any]:
        wait_for(lambda: self.job(job_id)["status"] in FINAL, timeout, f"job {job_id}", interval=1)
        return self.job(job_id)


@pytest.fixture
def origin(lab: Lab, tmp_path: Path) -> Iterator[Origin]:
    state = lab.state
    work, bare = tmp_path / "app", tmp_path / "app.git"
    write_context_dir(work, "pipeline-0")
    document = {
        **control_plane.app_document(state),
        "repository": bare.as_uri(),
        "pipelines": [{"branch": "release", "environment": state.group}],
        "build": {"cache": True},
    }
    document["rollout"] = {"max_parallel": "1", "monitor": 1}  # three waves, one host each
    (work / "shipyard.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "the lab app")
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    git(work, "remote", "add", "origin", bare.as_uri())
    added = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "hooks", "add", "github", "--app", state.app.name],
        input=SECRET,
        capture_output=True,
        text=True,
        cwd=work,
        env={**lab.env(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        timeout=120,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert SECRET not in added.stdout + added.stderr
    try:
        yield Origin(lab, work, bare)
    finally:
        _remove_built_images(state.image)


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
    serving_lab: Lab, origin: Origin
) -> None:
    lab = serving_lab
    before = current_version(lab)
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        first_sha = origin.commit("pipeline-1")
        answer = origin.deliver("push", push("release", first_sha), delivery="lab-delivery-1")
        assert answer.status_code == 202 and answer.json()["verdict"] == "accepted", answer.text
        first_job = answer.json()["job_id"]

        # The same delivery again, and the merged pull request of that commit: no second job.
        again = origin.deliver("push", push("release", first_sha), delivery="lab-delivery-1")
        assert (again.json()["verdict"], again.json()["job_id"]) == ("duplicate", first_job)
        merged = origin.deliver("pull_request", merged_pull_request("release", first_sha))
        assert (merged.json()["verdict"], merged.json()["job_id"]) == ("duplicate", first_job)

        # Two merges in quick succession while the first job runs: the older one never ships.
        older_sha = origin.commit("pipeline-2")
        newer_sha = origin.commit("pipeline-3")
        older = origin.deliver("pull_request", merged_pull_request("release", older_sha, number=8))
        newer = origin.deliver("pull_request", merged_pull_request("release", newer_sha, number=9))
        assert older.json()["verdict"] == newer.json()["verdict"] == "accepted"

        shipped = origin.wait_job(first_job)
        assert shipped["status"] == "succeeded", shipped["message"]
        assert {"fetch", "build", "release", "deploy", "wait"} <= set(shipped["timings"])
        newest = origin.wait_job(newer.json()["job_id"])
        assert newest["status"] == "succeeded", newest["message"]
        assert origin.wait_job(older.json()["job_id"])["status"] == "superseded"
        time.sleep(0.5)  # a few more requests against the final release
    assert current_version(lab) == "pipeline-3"
    assert httpx.get(lab.edge_version_url, timeout=5).text.strip() == "pipeline-3"
    assert load.stats.failed == 0, load.stats.failures
    assert set(load.stats.bodies) <= {before, "pipeline-1", "pipeline-3"}
    assert load.stats.bodies["pipeline-3"] > 0

    with lab.client() as client:
        releases = client.list_releases(app=lab.state.app.name)
    assert sum(1 for release in releases if release.spec.get("pipelines")) == 2  # pipeline-1 and -3
    listed = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "jobs", "--app", lab.state.app.name, "--json"],
        capture_output=True,
        text=True,
        env={**lab.env(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        timeout=60,
    )
    statuses = {job["sha"]: job["status"] for job in json.loads(listed.stdout)}
    assert statuses == {first_sha: "succeeded", older_sha: "superseded", newer_sha: "succeeded"}
