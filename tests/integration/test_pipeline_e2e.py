"""Commit to production by webhook alone: a bare git repository as origin, a signed push, a real build.

`shipyard controller` runs on uvicorn in a subprocess with its job worker; the hook is added with the
CLI (secret on standard input); a push event signed like GitHub's makes a job that fetches the commit
from the file:// origin, builds it with BuildKit, pushes it to the test registry, records the release
and deploys it to a host played by a fake agent. `shipyard job ID --follow` streams the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from controller_fixtures import FakeAgent, wait_for
from github_payloads import merged_pull_request, push, signed
from test_build_support import BASE_DOCKERFILE, AppRepo, git, make_app_repo, pushed

from shipyard.errors import ControllerError
from shipyard.fleet_api.client import ControllerClient
from shipyard.imaging.metadata import image_tags
from shipyard.lab.ports import free_port
from shipyard.lab.single_host import Registry

pytestmark = pytest.mark.integration

RUN_CONTROLLER = "import typer; from shipyard.cli.controller_cmd import controller; typer.run(controller)"
SECRET = "e2e-webhook-secret-0123456789abcdef"
FINAL = {"succeeded", "failed", "cancelled", "superseded", "interrupted"}


@dataclass
class Pipeline:
    url: str
    repo: AppRepo
    origin: Path
    command: list[str]
    env: dict[str, str]
    token_file: Path
    output: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    readers: list[threading.Thread] = field(default_factory=list)

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    def start(self) -> None:
        process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        reader = threading.Thread(target=lambda: self.output.extend(process.stdout or []), daemon=True)
        reader.start()
        self.process, self.readers = process, [*self.readers, reader]
        wait_for(lambda: process.poll() is None and answers(self.url), timeout=60, what="the controller")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, the job's lease is simply no longer renewed."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        for reader in self.readers:
            reader.join(timeout=5)

    def cli(
        self, *args: str, stdin: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SHIPYARD_CONTROLLER": self.url, "SHIPYARD_TOKEN": self.token}
        argv = [sys.executable, "-m", "shipyard.cli.main", *args]
        return subprocess.run(
            argv, cwd=self.repo.root, env=env, input=stdin, capture_output=True, text=True, timeout=timeout
        )

    def api(self) -> ControllerClient:
        return ControllerClient(self.url, self.token)

    def get(self, path: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v1{path}", headers={"Authorization": f"Bearer {self.token}"})
        answer.raise_for_status()
        return answer.json()

    def deliver(self, sha: str, *, delivery: str | None = None, secret: str = SECRET) -> httpx.Response:
        body, headers = signed(secret, "push", push("release", sha), delivery)
        return httpx.post(
            f"{self.url}/hooks/github/{self.repo.app}", content=body, headers=headers, timeout=10
        )

    def push_commit(self, message: str) -> str:
        sha = self.repo.commit(message)
        git(self.repo.root, "push", "-q", "origin", "HEAD:release")
        return sha

    def wait_job(self, job_id: int, timeout: float = 400) -> dict[str, Any]:
        wait_for(
            lambda: self.get(f"/jobs/{job_id}")["status"] in FINAL, timeout=timeout, what=f"job {job_id}"
        )
        return dict(self.get(f"/jobs/{job_id}"))


def sleeping(seconds: str) -> list[int]:
    """Pids of `sleep SECONDS` on this machine, a BuildKit RUN step's included (one kernel, one /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().split(b"\0")[:2] == [
                b"sleep",
                seconds.encode(),
            ]:
                found.append(int(entry.name))
    return found


def answers(url: str) -> bool:
    try:
        with ControllerClient(url, timeout=1.0) as client:
            client.healthz()
        return True
    except ControllerError:
        return False


@pytest.fixture
def pipeline(tmp_path: Path, registry: Registry, docker_url: str) -> Iterator[Pipeline]:
    repo = make_app_repo(tmp_path / "web", registry, docker_url)
    origin = tmp_path / "web.git"
    repo.write_config(
        repository=origin.as_uri(),
        pipelines=[{"branch": "release", "environment": "production"}],
        rollout={"monitor": 0.1},
    )
    repo.commit("ship release to production")
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.root), str(origin)], check=True)
    git(repo.root, "remote", "add", "origin", origin.as_uri())
    port = free_port()
    command = [sys.executable, "-c", RUN_CONTROLLER, "--db", f"sqlite:///{tmp_path / 'controller.db'}"]
    command += ["--port", str(port), "--bootstrap-token-file", str(tmp_path / "admin.token")]
    env = {**repo.env(), "SHIPYARD_ADMIN_TOKEN": ""}
    pipeline = Pipeline(f"http://127.0.0.1:{port}", repo, origin, command, env, tmp_path / "admin.token")
    try:
        pipeline.start()
        yield pipeline
    finally:
        pipeline.stop()
        repo.remove_images()
        logged = "".join(pipeline.output)
        assert SECRET not in logged and registry.password not in logged, "secrets must never reach the log"


@pytest.fixture
def agent(pipeline: Pipeline) -> Iterator[FakeAgent]:
    """A production host that applies whatever it is told, syncing in the background."""
    admin = pipeline.api()
    registered = ControllerClient(pipeline.url).register_agent(
        admin.create_join_token("production").token, "h1"
    )
    host = FakeAgent("h1", registered.agent_token, ControllerClient(pipeline.url, registered.agent_token))
    stop = threading.Event()

    def sync() -> None:
        while not stop.wait(0.2):
            with contextlib.suppress(ControllerError):
                host.sync()

    thread = threading.Thread(target=sync, daemon=True)
    thread.start()
    yield host
    stop.set()
    thread.join(timeout=5)


def test_a_signed_push_builds_releases_and_deploys(
    pipeline: Pipeline, agent: FakeAgent, registry: Registry
) -> None:
    added = pipeline.cli(
        "hooks",
        "add",
        "github",
        "--app",
        pipeline.repo.app,
        "--repository",
        pipeline.origin.as_uri(),
        stdin=SECRET,
    )
    assert added.returncode == 0, added.stderr
    assert f"{pipeline.url}/hooks/github/{pipeline.repo.app}" in added.stdout
    assert SECRET not in added.stdout + added.stderr

    sha = pipeline.push_commit("v2")
    answer = pipeline.deliver(sha, delivery="delivery-1")
    assert answer.status_code == 202 and answer.json()["verdict"] == "accepted"
    job_id = answer.json()["job_id"]

    followed = pipeline.cli("job", str(job_id), "--follow", timeout=600)
    assert followed.returncode == 0, followed.stdout[-3000:] + followed.stderr
    assert "[fetch] fetching" in followed.stdout and "[build] ==> building" in followed.stdout
    assert "succeeded" in followed.stdout

    job = pipeline.wait_job(job_id)
    assert job["status"] == "succeeded", job["message"]
    assert {"fetch", "build", "release", "deploy", "wait"} <= set(job["timings"])
    release = pipeline.api().get_release(job["release_id"])
    assert pushed(registry, f"{release.image}@{release.digest}")
    assert release.git_sha == job["sha"]  # the release says which commit it is
    assert release.spec["pipelines"] == [{"branch": "release", "environment": "production"}]
    deployment = pipeline.api().get_deployment(job["deployment_id"])
    assert deployment.status == "succeeded" and agent.running[pipeline.repo.app] == release.id

    # The same delivery again, and a bad signature: no second job, nothing changed.
    assert pipeline.deliver(sha, delivery="delivery-1").json()["verdict"] == "duplicate"
    body, headers = signed(SECRET, "pull_request", merged_pull_request("release", sha))
    merged = httpx.post(f"{pipeline.url}/hooks/github/{pipeline.repo.app}", content=body, headers=headers)
    assert merged.json()["verdict"] == "duplicate" and merged.json()["job_id"] == job_id
    assert pipeline.deliver(sha, secret="a-wrong-secret-0123456789").status_code == 401
    listed = pipeline.cli("jobs", "--json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [job_id]
    verdicts = [d["verdict"] for d in json.loads(pipeline.cli("hooks", "deliveries", "--json").stdout)]
    assert verdicts == ["rejected", "duplicate", "duplicate", "accepted"]
    assert len(pipeline.api().list_releases(app=pipeline.repo.app)) == 1


def test_a_failing_build_deploys_nothing_and_its_log_shows_the_step(
    pipeline: Pipeline, agent: FakeAgent
) -> None:
    # The repository and the pipelines come from shipyard.yml this time.
    added = pipeline.cli("hooks", "add", "github", "--app", pipeline.repo.app, stdin=SECRET, timeout=60)
    assert added.returncode == 0, added.stderr
    pipeline.repo.write("Dockerfile", "FROM scratch\nCOPY no-such-directory/ /\n")
    sha = pipeline.push_commit("broken build")
    job_id = pipeline.deliver(sha).json()["job_id"]
    job = pipeline.wait_job(job_id)
    assert job["status"] == "failed"
    assert job["step"] == "build" and job["message"].startswith("build failed:")
    assert job["release_id"] is None and job["deployment_id"] is None
    assert pipeline.api().list_releases(app=pipeline.repo.app) == []
    assert pipeline.api().list_deployments(app=pipeline.repo.app) == []
    shown = pipeline.cli("job", str(job_id))
    assert "[build]" in shown.stdout and "no-such-directory" in shown.stdout
    assert "failed" in shown.stdout


def test_a_controller_killed_mid_build_ends_in_a_finished_job(pipeline: Pipeline, agent: FakeAgent) -> None:
    """SIGKILL mid-build, then start on the same database: interrupted when the lease lapses, retried."""
    added = pipeline.cli("hooks", "add", "github", "--app", pipeline.repo.app, stdin=SECRET, timeout=60)
    assert added.returncode == 0, added.stderr
    sha = pipeline.push_commit("v2")
    job_id = pipeline.deliver(sha).json()["job_id"]
    wait_for(lambda: pipeline.get(f"/jobs/{job_id}")["step"] == "build", timeout=120, what="the build step")
    pipeline.kill()
    pipeline.start()
    interrupted = pipeline.wait_job(job_id, timeout=120)  # within the 30 s lease and a worker round
    assert interrupted["status"] == "interrupted" and "lease" in interrupted["message"]
    retry = next(job for job in pipeline.get("/jobs") if job["retry_of"] == job_id)
    finished = pipeline.wait_job(retry["id"])
    assert finished["status"] == "succeeded", finished["message"]
    assert (finished["sha"], finished["attempt"]) == (sha, 2)
    assert pipeline.api().get_deployment(finished["deployment_id"]).status == "succeeded"


def test_hooks_and_jobs_commands(pipeline: Pipeline) -> None:
    app = pipeline.repo.app
    assert pipeline.cli("hooks", "add", "github", "--app", app, stdin="").returncode == 2  # no secret
    assert pipeline.cli("hooks", "add", "bitbucket", "--app", app, stdin=SECRET).returncode == 2
    added = pipeline.cli(
        "hooks", "add", "github", "--app", app, "--pipeline", "release=production", stdin=SECRET
    )
    assert added.returncode == 0, added.stderr
    listed = pipeline.cli("hooks", "list", "--json")
    assert json.loads(listed.stdout)[0]["pipelines"] == [{"branch": "release", "environment": "production"}]
    assert SECRET not in listed.stdout
    new_secret = "rotated-secret-0123456789abcdef"
    started = pipeline.cli("hooks", "rotate", "--app", app, stdin=new_secret)
    assert started.returncode == 0 and "--finish" in started.stdout
    assert pipeline.deliver("f" * 40, secret=SECRET).status_code == 202
    assert pipeline.cli("hooks", "rotate", "--app", app, "--finish").returncode == 0
    assert pipeline.deliver("e" * 40, secret=SECRET).status_code == 401

    # A commit the origin does not have: the job fails at fetch, saying so.
    job_id = pipeline.deliver("f" * 40, secret=new_secret, delivery="again").json()["job_id"]
    failed = pipeline.wait_job(job_id, timeout=120)
    assert failed["status"] == "failed" and failed["message"].startswith("fetch failed")
    refused = pipeline.cli("job", "cancel", str(job_id))
    assert refused.returncode != 0 and "already finished" in refused.stderr
    assert "Traceback" not in refused.stderr
    retried = pipeline.cli("job", "retry", str(job_id))
    assert retried.returncode == 0 and f"retry of {job_id}" in retried.stdout
    assert pipeline.cli("job", "nonsense").returncode == 2
    assert pipeline.cli("hooks", "rm", "--app", app).returncode == 0
    assert pipeline.deliver("d" * 40, secret=new_secret).status_code == 404


def test_merges_in_quick_succession_end_with_the_newest_live(pipeline: Pipeline, agent: FakeAgent) -> None:
    added = pipeline.cli("hooks", "add", "github", "--app", pipeline.repo.app, stdin=SECRET, timeout=60)
    assert added.returncode == 0, added.stderr
    first = pipeline.push_commit("first")
    first_job = pipeline.deliver(first).json()["job_id"]
    wait_for(lambda: pipeline.get(f"/jobs/{first_job}")["status"] == "running", timeout=60, what="job 1")
    second = pipeline.push_commit("second")
    second_job = pipeline.deliver(second).json()["job_id"]
    third = pipeline.push_commit("third")
    third_job = pipeline.deliver(third).json()["job_id"]
    assert pipeline.get(f"/jobs/{second_job}")["status"] == "superseded"  # it never ran
    assert pipeline.wait_job(third_job)["status"] == "succeeded"
    assert pipeline.wait_job(first_job)["status"] == "succeeded"
    live = pipeline.api().get_release(agent.running[pipeline.repo.app])
    assert live.id == pipeline.get(f"/jobs/{third_job}")["release_id"]
    assert [j["sha"] for j in pipeline.get("/jobs") if j["status"] == "succeeded"] == [third, first]


def test_a_locked_environment_stops_the_job_before_deploying(pipeline: Pipeline, agent: FakeAgent) -> None:
    app = pipeline.repo.app
    added = pipeline.cli("hooks", "add", "github", "--app", app, stdin=SECRET, timeout=60)
    assert added.returncode == 0, added.stderr
    pipeline.api().lock(app, "production", "database migration")
    job_id = pipeline.deliver(pipeline.push_commit("while locked")).json()["job_id"]
    job = pipeline.wait_job(job_id)
    assert (job["status"], job["step"]) == ("failed", "deploy")
    assert "database migration" in job["message"] and f"shipyard job retry {job_id}" in job["message"]
    assert job["release_id"] is not None and job["deployment_id"] is None
    assert pipeline.api().list_deployments(app=app) == []
    pipeline.api().unlock(app, "production")
    retried = pipeline.cli("job", "retry", str(job_id))
    assert retried.returncode == 0, retried.stderr
    again = next(j for j in pipeline.get("/jobs") if j["retry_of"] == job_id)
    assert pipeline.wait_job(again["id"])["status"] == "succeeded"


def test_cancel_stops_a_running_build_and_the_next_job_runs(
    pipeline: Pipeline, agent: FakeAgent, registry: Registry
) -> None:
    app = pipeline.repo.app
    added = pipeline.cli("hooks", "add", "github", "--app", app, stdin=SECRET, timeout=60)
    assert added.returncode == 0, added.stderr
    # A RUN step that would sleep for hours, of a length nothing else on the machine sleeps.
    seconds = str(random.randint(20_000, 90_000))
    (pipeline.repo.root / "rootfs" / "bin" / "sleep").symlink_to("busybox")
    pipeline.repo.write("Dockerfile", BASE_DOCKERFILE + f"RUN sleep {seconds}\n")
    sha = pipeline.push_commit("a build that sleeps")
    job_id = pipeline.deliver(sha).json()["job_id"]
    wait_for(lambda: bool(sleeping(seconds)), timeout=300, what="the build's RUN step")

    asked = pipeline.cli("job", "cancel", str(job_id))
    assert asked.returncode == 0, asked.stderr
    assert f"job {job_id}: running" in asked.stdout
    job = pipeline.wait_job(job_id, timeout=120)  # only a stopped build ends this soon
    assert job["status"] == "cancelled", job["message"]
    assert job["step"] == "build"
    assert job["message"].startswith("cancelled during build; stopped docker "), job["message"]
    assert job["release_id"] is None and job["deployment_id"] is None
    shown = pipeline.cli("job", str(job_id))
    assert "[build] cancelled during build; stopped docker" in shown.stdout, shown.stdout[-2000:]
    # BuildKit ended the RUN step with the CLI, and nothing was pushed or released.
    wait_for(lambda: not sleeping(seconds), timeout=60, what="the RUN step to end")
    assert not pushed(registry, image_tags(pipeline.repo.image, sha)[0])
    assert pipeline.api().list_releases(app=app) == []

    # The next commit of the app runs as usual.
    pipeline.repo.write("Dockerfile", BASE_DOCKERFILE)
    next_sha = pipeline.push_commit("without the sleep")
    next_job = pipeline.wait_job(pipeline.deliver(next_sha).json()["job_id"])
    assert next_job["status"] == "succeeded", next_job["message"]
    assert pushed(registry, image_tags(pipeline.repo.image, next_sha)[0])
