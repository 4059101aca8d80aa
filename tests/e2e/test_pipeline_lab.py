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
import random
import secrets
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
import yaml

from shipyard.lab import control_plane
from shipyard.lab.engine import DEFAULT_SOCKET
from shipyard.lab.load import LoadGenerator
from shipyard.lab.origin import LabOrigin
from shipyard.lab.processes import kill_now

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


@contextlib.contextmanager
def hooked_origin(lab: Lab, root: Path, rollout: dict[str, Any] | None = None) -> Iterator[LabOrigin]:
    """A fresh origin with the app's hook added for the test, removed after it."""
    origin = LabOrigin.create(lab.state, root, rollout=rollout)
    # The repository and the pipelines come from the shipyard.yml in the working copy.
    added = cli(lab, "hooks", "add", "github", "--app", lab.state.app.name, cwd=origin.work, stdin=SECRET)
    assert added.returncode == 0, added.stdout + added.stderr
    assert origin.hook_url in added.stdout and SECRET not in added.stdout + added.stderr
    try:
        yield origin
    finally:
        cli(lab, "hooks", "rm", "--app", lab.state.app.name, cwd=lab.root)
        _remove_built_images(lab.state.image)


@pytest.fixture
def origin(lab: Lab, tmp_path: Path) -> Iterator[LabOrigin]:
    with hooked_origin(lab, tmp_path) as origin:
        yield origin


@pytest.fixture
def quick_origin(lab: Lab, tmp_path: Path) -> Iterator[LabOrigin]:
    """An origin whose commits deploy to every host at once (each host still swaps without a lost
    request), so the failure scenarios spend their time on the failure rather than on waves."""
    with hooked_origin(lab, tmp_path, rollout={"max_parallel": "100%", "monitor": 0.5}) as origin:
        yield origin


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
    # The app's production jobs: a preview's jobs (environment pr-N) are listed with the app too.
    statuses = {
        job["sha"]: job["status"]
        for job in json.loads(listed.stdout)
        if job["environment"] == lab.state.group
    }
    assert statuses == {first_sha: "succeeded", older_sha: "superseded", newer_sha: "succeeded"}


def jobs_of(lab: Lab) -> list[dict[str, Any]]:
    listed = cli(lab, "jobs", "--app", lab.state.app.name, "--json", cwd=lab.root)
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))


def sleeping(seconds: str) -> list[int]:
    """Pids of `sleep SECONDS` on this machine, a BuildKit RUN step's included (one kernel, one /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            if argv[:2] == [b"sleep", seconds.encode()]:
                found.append(int(entry.name))
    return found


def commit_a_slow_build(origin: LabOrigin, version: str) -> tuple[str, str]:
    """A commit serving VERSION whose build sleeps a few seconds in a RUN step, found by its unusual
    length; returns the sha and that length."""
    seconds = f"6.{random.randint(100, 999)}"
    dockerfile = origin.work / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN sleep {seconds}\n")
    return origin.commit(version), seconds


def test_a_failing_build_ships_nothing_and_its_log_shows_the_step_redacted(
    serving_lab: Lab, quick_origin: LabOrigin, tmp_path: Path
) -> None:
    lab, origin = serving_lab, quick_origin
    before = current_version(lab)
    # A build secret from a file on the controller's machine, which the failing step prints.
    token = f"lab-build-token-{secrets.token_hex(16)}"
    token_file = tmp_path / "build-token"
    token_file.write_text(token)
    config = yaml.safe_load((origin.work / "shipyard.yml").read_text())
    config["build"]["secrets"] = [{"id": "token", "file": str(token_file)}]
    (origin.work / "shipyard.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    dockerfile = origin.work / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text()
        + 'RUN --mount=type=secret,id=token echo "token is $(cat /run/secrets/token)"; exit 1\n'
    )
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        sha = origin.commit("pipeline-broken")
        answer = origin.deliver(SECRET, "push", push("release", sha))
        assert answer.json()["verdict"] == "accepted", answer.text
        job = wait_job(origin, answer.json()["job_id"])
        time.sleep(0.5)  # a few more requests after the job ended
    assert job["status"] == "failed", job["message"]
    assert job["step"] == "build" and job["message"].startswith("build failed:"), job["message"]
    assert job["release_id"] is None and job["deployment_id"] is None
    shown = cli(lab, "job", str(job["id"]), cwd=lab.root)
    assert "[build]" in shown.stdout and "token is ***" in shown.stdout, shown.stdout[-3000:]
    assert token not in shown.stdout + shown.stderr + job["message"]
    assert token not in control_plane.controller_log(lab.state).read_text(errors="replace")
    with lab.client() as client:
        assert [r.id for r in client.list_releases(app=lab.state.app.name) if r.git_sha == sha] == []
    assert current_version(lab) == before
    assert load.stats.failed == 0, load.stats.failures
    assert set(load.stats.bodies) == {before}


def test_a_controller_killed_mid_build_ends_in_a_finished_job_with_the_commit_live(
    serving_lab: Lab, quick_origin: LabOrigin
) -> None:
    """The job worker is a thread of the controller: SIGKILL the controller and the worker dies with it."""
    lab, origin = serving_lab, quick_origin
    before = current_version(lab)
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        sha, seconds = commit_a_slow_build(origin, "pipeline-killed")
        job_id = origin.deliver(SECRET, "push", push("release", sha)).json()["job_id"]
        wait_for(lambda: sleeping(seconds), 300, "the build's RUN step", interval=0.1)
        try:
            kill_now(lab.state.controller_pid)  # no cleanup runs: the job's lease simply stops being renewed
        finally:
            control_plane.start_controller(lab.state)
        interrupted = wait_job(origin, job_id, timeout=120)  # the lease lapses, the next round recovers it
        retry = next(job for job in jobs_of(lab) if job["retry_of"] == job_id)
        finished = wait_job(origin, retry["id"])
        time.sleep(0.5)  # a few more requests against the final release
    assert interrupted["status"] == "interrupted" and "lease" in interrupted["message"], interrupted
    assert (finished["status"], finished["sha"], finished["attempt"]) == ("succeeded", sha, 2), finished
    assert current_version(lab) == "pipeline-killed"
    assert load.stats.failed == 0, load.stats.failures
    assert set(load.stats.bodies) <= {before, "pipeline-killed"}


def test_a_controller_restarted_mid_build_stops_the_build_and_its_retry_ships_the_commit(
    serving_lab: Lab, quick_origin: LabOrigin
) -> None:
    lab, origin = serving_lab, quick_origin
    before = current_version(lab)
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        sha, seconds = commit_a_slow_build(origin, "pipeline-restarted")
        job_id = origin.deliver(SECRET, "push", push("release", sha)).json()["job_id"]
        wait_for(lambda: sleeping(seconds), 300, "the build's RUN step", interval=0.1)
        try:
            control_plane.stop_controller(lab.state)  # SIGTERM: the worker stops the build on its way out
        finally:
            control_plane.start_controller(lab.state)
        interrupted = wait_job(origin, job_id, timeout=60)
        retry = next(job for job in jobs_of(lab) if job["retry_of"] == job_id)
        finished = wait_job(origin, retry["id"])
        time.sleep(0.5)
    assert interrupted["status"] == "interrupted", interrupted
    assert interrupted["message"].startswith("the controller stopped during build; stopped docker"), (
        interrupted
    )
    assert (finished["status"], finished["sha"], finished["attempt"]) == ("succeeded", sha, 2), finished
    assert current_version(lab) == "pipeline-restarted"
    assert load.stats.failed == 0, load.stats.failures
    assert set(load.stats.bodies) <= {before, "pipeline-restarted"}
