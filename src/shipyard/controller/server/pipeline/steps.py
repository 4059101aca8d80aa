"""A job's steps, run by the worker: fetch -> build + push -> release -> deployment -> wait.

Each step reuses what the manual path uses: the build pipeline of `shipyard build --push`, and the
functions behind POST /api/v1/releases and POST /api/v1/deployments. A step raises ShipyardError with
one sentence saying what failed; the worker stores it as the job's message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.adapters import process_groups
from shipyard.adapters.git import without_credentials
from shipyard.adapters.process_groups import ProcessScope, stoppable
from shipyard.controller.engine.rollout import FINISHED, SUCCEEDED
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline import git_access
from shipyard.controller.server.pipeline.job_log import JobLog, LogProgress
from shipyard.controller.store import catalog, deployments, job_store, locks, releases, tasks
from shipyard.domain.spec import AppSpec, load_spec, spec_snapshot
from shipyard.errors import BuildError, ConfigError, DeployFailedError, LockedError, ShipyardError
from shipyard.fleet_api.schemas.releases import ReleaseCreate
from shipyard.imaging.pipeline import BuildOptions, build_image
from shipyard.secrets.factory import open_store
from shipyard.secrets.sealing import seal_secrets

CONFIG_FILE = "shipyard.yml"
# Why a job's commands were stopped: the start of its message ("cancelled during build; ...").
CANCELLED_REASON = "cancelled"
LEASE_LOST_REASON = "lease lost"
STOPPING_REASON = "the controller stopped"
GIT_TIMEOUT_S = 300
DEPLOY_POLL_S = 0.5


class JobCancelled(ShipyardError):
    """The job stopped early: a person cancelled it, its lease was lost, or the controller is stopping."""


@dataclass(frozen=True)
class JobInput:
    job_id: int
    app: str
    environment: str
    branch: str
    sha: str
    repository: str
    deploy_key_secret: str | None = None


@dataclass
class JobRun:
    """What one run of a job needs and collects: its log, step timings, a way to ask about cancels."""

    context: ControllerContext
    job: JobInput
    log: JobLog
    cancel_requested: Callable[[], bool]
    # The step's commands (git, the docker CLI): stopped as a whole on a cancel or a shutdown.
    processes: ProcessScope = field(default_factory=ProcessScope)
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.log.flush()
        with self.context.db.transaction() as session:
            asked = job_store.set_step(session, self.job.job_id, name, self.timings)
        if asked or self.cancel_requested() or self.processes.reason is not None:
            raise JobCancelled(f"{self.processes.reason or CANCELLED_REASON} before {name}")
        self.log.step = name
        started = time.monotonic()
        try:
            yield
        except JobCancelled:
            raise
        except Exception as exc:
            # Whatever a stopped command left behind (an exit status of -15, a cut stream) is the stop.
            if self.processes.reason is None:
                raise
            raise JobCancelled(f"{self.processes.reason} during {name}; {self.processes.summary()}") from exc
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - started
            self.log.flush()


def run_steps(run: JobRun) -> str:
    """Every step in order; the success message, or ShipyardError from the step that failed (JobCancelled
    when the job was stopped). The steps' commands run in `run.processes`, so a stop reaches them."""
    with stoppable(run.processes):
        return _steps_in_order(run)


def _steps_in_order(run: JobRun) -> str:
    workdir = Path(tempfile.mkdtemp(prefix=f"shipyard-job-{run.job.job_id}-"))
    try:
        with run.step("fetch"):
            checkout = fetch(run, workdir / "checkout")
            spec = commit_spec(run, checkout)
        with run.step("build"):
            image, digest = build_and_push(run, spec, checkout, run.job.environment)
        with run.step("release"):
            sealed = seal_release_secrets(run, spec, checkout)
            release_id = create_release(run, spec, image, digest)
        with run.step("deploy"):
            deployment_id = create_deployment(run, release_id, sealed)
        with run.step("wait"):
            return wait_for_deployment(run, deployment_id)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def build_and_push(run: JobRun, spec: AppSpec, checkout: Path, environment: str) -> tuple[str, str]:
    """Build the checkout with the build secrets of `environment` and push it: (repository, digest)."""
    outcome = build_image(
        BuildOptions(spec=spec, config_dir=checkout, env=environment, ref=run.job.sha, push=True),
        LogProgress(run.log),
    )
    # The build pipeline times build, scan and push itself: keep them as the job's own steps.
    run.timings.update({f"build.{name}": seconds for name, seconds in outcome.timings.items()})
    if outcome.digest is None:
        raise BuildError("the push reported no digest; check the registry's answer in the log.")
    run.log.line(f"pushed {outcome.image}@{outcome.digest}")
    return outcome.image.rsplit(":", 1)[0], outcome.digest


def _git(run: JobRun, *args: str, cwd: Path, environment: dict[str, str]) -> None:
    argv = ["git", "-c", "advice.detachedHead=false", *args]
    try:
        done = process_groups.run(argv, cwd=cwd, env=environment, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"running git failed ({type(exc).__name__}); check the git installation.") from exc
    for line in (done.stdout + done.stderr).splitlines():
        run.log.line(line)
    if done.returncode != 0:
        last = run.log.redact((done.stderr.strip().splitlines() or ["no output"])[-1])
        raise BuildError(
            f"git {args[0]} failed ({last}); check the repository URL, its access and that the commit exists."
        )


def fetch(run: JobRun, into: Path) -> Path:
    """A clean checkout of exactly the job's commit in `into` (the deploy key, if any, beside it)."""
    repository, sha = run.job.repository, run.job.sha
    into.mkdir(parents=True)
    key_file = None
    if run.job.deploy_key_secret and git_access.is_ssh_url(repository):
        key = git_access.read_deploy_key(run.context.settings.secrets_root, run.job.deploy_key_secret)
        run.log.redact.add(key)
        key_file = git_access.write_key_file(into.parent, key)
        run.log.line(f"using deploy key {run.job.deploy_key_secret} from the controller's secret store")
    environment = git_access.git_environment(os.environ, key_file)
    run.log.line(f"fetching {without_credentials(repository)} at {sha}")
    _git(run, "init", "-q", ".", cwd=into, environment=environment)
    _git(run, "remote", "add", "origin", repository, cwd=into, environment=environment)
    _git(run, "fetch", "-q", "--no-tags", "--depth", "1", "origin", sha, cwd=into, environment=environment)
    _git(run, "checkout", "-q", "--detach", sha, cwd=into, environment=environment)
    return into


def commit_spec(run: JobRun, checkout: Path) -> AppSpec:
    """The commit's shipyard.yml, which must still be this app's and still ship this branch here."""
    path = checkout / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"commit {run.job.sha[:12]} has no {CONFIG_FILE} at the repository root; commit one."
        )
    spec = load_spec(path, run.job.environment)
    if spec.app != run.job.app:
        raise ConfigError(
            f"{CONFIG_FILE} at commit {run.job.sha[:12]} is app {spec.app!r}, not {run.job.app!r}."
        )
    wanted = {(p.branch, p.environment) for p in spec.pipelines}
    if (run.job.branch, run.job.environment) not in wanted:
        raise ConfigError(
            f"{CONFIG_FILE} at commit {run.job.sha[:12]} no longer ships branch {run.job.branch} to "
            f"{run.job.environment}; nothing was built."
        )
    with run.context.db.transaction() as session:
        job_store.refresh_pipelines(session, run.job.app, [p.model_dump() for p in spec.pipelines])
    run.log.line(
        f"{CONFIG_FILE}: app {spec.app}, image {spec.image}, {run.job.branch} -> {run.job.environment}"
    )
    return spec


def create_release(run: JobRun, spec: AppSpec, image: str, digest: str) -> int:
    body = ReleaseCreate(image=image, digest=digest, spec=spec_snapshot(spec), git_sha=run.job.sha)
    with run.context.db.transaction() as session:
        release = releases.create_release(
            session,
            body,
            actor=f"job {run.job.job_id}",
            source_ip=None,
            signing_key=run.context.settings.signing_key,
        )
        job_store.note(session, run.job.job_id, release_id=release.id)
        run.log.line(f"release r{release.id}: {image}@{digest}")
        return release.id


def seal_release_secrets(run: JobRun, spec: AppSpec, checkout: Path) -> str | None:
    """env.secret's values from the commit's store of the job's environment, sealed for its hosts.

    The worker opens the store as the build does (its master key or KMS access, else exported values);
    only the sealed envelope is kept, and no value reaches the job log.
    """
    if not spec.env.secret:
        return None
    store = open_store(spec.secrets, checkout, run.job.environment)
    sealed = seal_secrets(spec.env.secret, store)
    run.log.line(f"sealed {len(set(spec.env.secret))} secret(s) of env.secret for {run.job.environment}")
    return sealed


def create_deployment(run: JobRun, release_id: int, sealed_secrets: str | None = None) -> int:
    with run.context.db.transaction() as session:
        release = releases.find_release(session, release_id)
        environment = catalog.find_environment(session, run.job.environment)
        held = locks.lock_for(session, release.app_id, environment.id)
        if held is not None:
            # A person locked it: the job stops here rather than hold the worker until someone unlocks.
            raise LockedError(
                f"{run.job.environment} is {locks.describe(held)}; release r{release_id} was not deployed. "
                f"After unlocking, deploy it or run 'shipyard job retry {run.job.job_id}'."
            )
        deployment = deployments.create_deployment(
            session,
            release_id=release_id,
            environment=run.job.environment,
            queue=True,  # behind a deployment already running there, as a person would queue it
            actor=f"job {run.job.job_id}",
            source_ip=None,
            now=run.context.now(),
            sealed_secrets=sealed_secrets,
        )
        job_store.note(session, run.job.job_id, deployment_id=deployment.id)
        deployment_id = deployment.id
    run.context.driver.request_tick()
    run.context.notifier.notify()
    run.log.line(f"deployment {deployment_id} of r{release_id} to {run.job.environment}")
    return deployment_id


def wait_for_deployment(run: JobRun, deployment_id: int) -> str:
    last, printed = "", 0
    while True:
        with run.context.db.read() as session:
            deployment = deployments.find_deployment(session, deployment_id)
            status, message, wave = deployment.status, deployment.message, deployment.current_wave
            total = deployment.total_waves
            release_task = tasks.release_task_of(session, deployment_id)
            output = tasks.lines_after(session, release_task.id, printed) if release_task else []
        for line in output:  # the release phase's output, in the job's log as it arrives
            run.log.line(f"release phase | {line.text}")
            printed = line.number
        progress = f"deployment {deployment_id}: {status}, wave {wave}/{total} {message}".rstrip()
        if progress != last:
            run.log.line(progress)
            last = progress
        if status not in FINISHED and run.processes.reason == STOPPING_REASON:
            # The controller is stopping: the deployment goes on without this job, whose retry follows it.
            raise JobCancelled(f"{STOPPING_REASON} during wait; deployment {deployment_id} goes on")
        if status not in FINISHED and run.cancel_requested():
            with run.context.db.transaction() as session:
                deployments.transition(
                    session,
                    deployment_id,
                    "abort",
                    actor=f"job {run.job.job_id}",
                    source_ip=None,
                    now=run.context.now(),
                )
            run.context.driver.request_tick()
            raise JobCancelled(f"cancelled while deployment {deployment_id} ran; it was aborted")
        if status in FINISHED:
            if status != SUCCEEDED:
                raise DeployFailedError(f"deployment {deployment_id} {status}: {message}")
            return f"shipped {run.job.sha[:12]} to {run.job.environment} (deployment {deployment_id})"
        time.sleep(DEPLOY_POLL_S)
