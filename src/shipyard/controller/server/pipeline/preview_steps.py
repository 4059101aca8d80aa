"""A preview's job: fetch the PR's head commit -> build + push -> release -> deployment -> wait.

The same steps as a pipeline job (steps.py: the same fetch, builder, cache and build-secret rules; the
build never sees runtime secrets), then a release of the preview app (engine.previews.preview_spec)
deployed to the hosts of `previews.group` with the usual health-gated swap. Its secrets come from the
preview store only, with DATABASE_URL from the app's preview database; a fork's preview gets neither.
Before anything lasting (the database, the deployment) the job checks, holding the app's row, that
its preview is still live and still at its commit: a close or a newer push in between wins.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.adapters.process_groups import stoppable
from shipyard.controller.engine import previews as engine
from shipyard.controller.server import previews as runtime
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.steps import (
    CONFIG_FILE,
    JobCancelled,
    JobRun,
    build_and_push,
    create_release,
    fetch,
    wait_for_deployment,
)
from shipyard.controller.store import catalog, deployments, job_store, release_secrets, releases
from shipyard.controller.store import previews as store
from shipyard.controller.store.models import App
from shipyard.controller.store.pipeline_models import Preview
from shipyard.domain.spec import AppSpec, PreviewsSpec, load_spec
from shipyard.errors import ConfigError, DeployFailedError, ShipyardError
from shipyard.secrets.envelope import new_data_key, seal
from shipyard.secrets.resolve import resolve_secrets
from shipyard.secrets.store import SecretStore


@dataclass(frozen=True)
class Target:
    """The preview a job builds, and the settings and spec of its app's latest release."""

    preview_id: int
    app: str
    pr: int
    repository: str
    fork: bool
    settings: PreviewsSpec
    base: AppSpec


class NotCurrent(JobCancelled):
    """The preview was closed or pushed to since the job was queued: nothing more is done for it."""


def run_preview_steps(run: JobRun, preview_id: int) -> str:
    """Every step; the preview's status follows (building, deploying, ready; failed with the reason)."""
    try:
        with stoppable(run.processes):
            return _steps_in_order(run, preview_id)
    except JobCancelled:  # NotCurrent too: the preview's status is its newer build's or its teardown's
        raise
    except ShipyardError as exc:
        _set_status(run, preview_id, engine.FAILED, f"{run.log.step or 'job'} failed: {exc.message}")
        raise
    except Exception as exc:
        _set_status(run, preview_id, engine.FAILED, f"{run.log.step or 'job'} failed ({type(exc).__name__})")
        raise


def _steps_in_order(run: JobRun, preview_id: int) -> str:
    target = _target(run, preview_id)
    _set_status(run, preview_id, engine.BUILDING, f"building {run.job.sha[:12]} (job {run.job.job_id})")
    workdir = Path(tempfile.mkdtemp(prefix=f"shipyard-preview-{run.job.job_id}-"))
    try:
        with run.step("fetch"):
            checkout = fetch(run, workdir / "checkout")
            spec = _commit_spec(run, checkout, target)
        with run.step("build"):
            image, digest = build_and_push(run, spec, checkout, target.settings.environment)
        with run.step("release"):
            sealed = _seal(run, target, spec)
            release_id = create_release(run, spec, image, digest)
        with run.step("deploy"):
            deployment_id = _deploy(run, target, release_id, sealed)
        with run.step("wait"):
            wait_for_preview_deployment(run, preview_id, deployment_id)
        url = spec.preview.host_name if spec.preview is not None else ""
        _set_status(run, preview_id, engine.READY, f"serving {run.job.sha[:12]} at {url}")
        return f"preview pr-{target.pr} of {target.app} serves {run.job.sha[:12]} at {url}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def wait_for_preview_deployment(run: JobRun, preview_id: int, deployment_id: int) -> None:
    """Until the deployment finishes; NotCurrent when it failed because the preview was torn down
    (a teardown aborts it) or pushed to meanwhile: that is this job's cancel, not a failure."""
    try:
        wait_for_deployment(run, deployment_id)
    except DeployFailedError:
        with run.context.db.read() as session:
            _current(session, preview_id, run.job.sha, lock=False)
        raise


def _current(session: Session, preview_id: int, sha: str, *, lock: bool = True) -> Preview:
    """The preview (locked with its app in a write transaction) when it is live and still at `sha`;
    NotCurrent otherwise."""
    row = session.get(Preview, preview_id)
    if row is not None and lock:
        session.execute(select(App.id).where(App.id == row.app_id).with_for_update())
        session.refresh(row)
    if row is None or row.status not in engine.LIVE or row.sha != sha:
        raise NotCurrent(f"the preview was closed or pushed to since job was queued; {sha[:12]} not deployed")
    return row


def _target(run: JobRun, preview_id: int) -> Target:
    with run.context.db.read() as session:
        row = _current(session, preview_id, run.job.sha, lock=False)
        app = session.get_one(App, row.app_id)
        base = store.latest_spec(session, row.app_id)
        if base is None or base.previews is None:
            raise ConfigError(f"app {app.name!r} no longer has 'previews:' in its latest release.")
        return Target(row.id, app.name, row.pr, row.repository, row.fork, base.previews, base)


def _set_status(run: JobRun, preview_id: int, status: str, message: str) -> None:
    with run.context.db.transaction() as session:
        try:
            row = _current(session, preview_id, run.job.sha)
        except NotCurrent:
            return
        row.status, row.message, row.updated_at = status, run.log.redact(message), run.context.now()


def _commit_spec(run: JobRun, checkout: Path, target: Target) -> AppSpec:
    path = checkout / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"commit {run.job.sha[:12]} has no {CONFIG_FILE} at the repository root; commit one."
        )
    spec = load_spec(path, target.settings.environment)
    if spec.app != target.app:
        raise ConfigError(
            f"{CONFIG_FILE} at commit {run.job.sha[:12]} is app {spec.app!r}, not {target.app!r}."
        )
    database = target.settings.database is not None and not target.fork
    preview = engine.preview_spec(
        spec,
        app=target.app,
        pr=target.pr,
        repository=target.repository,
        settings=target.settings,
        fork=target.fork,
        database=database,
    )
    secrets = "no secrets (a fork)" if target.fork else f"secrets of env {target.settings.environment}"
    run.log.line(f"{CONFIG_FILE}: preview {preview.app} of {spec.image}, {secrets}")
    return preview


def _seal(run: JobRun, target: Target, spec: AppSpec) -> str | None:
    """The preview's env.secret values (DATABASE_URL included) sealed for the preview environment."""
    if target.fork or not spec.env.secret:
        return None
    store_ = runtime.preview_store(run.context, target.base, target.settings)
    names = [name for name in spec.env.secret if name != engine.DATABASE_URL]
    # The controller's own environment is never a source: only the preview store's values are sealed.
    values = resolve_secrets(names, store_, environ={})
    if target.settings.database is not None:
        values[engine.DATABASE_URL] = _database(run, target, store_)
    for value in values.values():
        run.log.redact.add(value)
    sealed = _seal_values(values, store_)
    run.log.line(f"sealed {len(values)} secret(s) of env {target.settings.environment} for the preview")
    return sealed


def _database(run: JobRun, target: Target, store_: SecretStore) -> str:
    assert target.settings.database is not None
    with run.context.db.transaction() as session:
        # Recorded before it exists, so a teardown drops it even if this job dies right after.
        _current(session, target.preview_id, run.job.sha).database = True
    url = runtime.databases(run.context, target.settings.database, store_.get).create(target.app, target.pr)
    run.log.redact.add(url)
    run.log.line(f"database of pr-{target.pr} ready (DATABASE_URL)")
    return url


def _seal_values(values: dict[str, str], store_: SecretStore) -> str:
    provider = store_.provider
    data_key = new_data_key()
    envelope = seal(
        values,
        env=store_.env,
        provider=provider.name,
        key_id=provider.key_id,
        wrapped_key=provider.wrap(data_key),
        data_key=data_key,
    )
    return envelope.to_json()


def _deploy(run: JobRun, target: Target, release_id: int, sealed: str | None) -> int:
    deployment_id = deploy_release(
        run.context,
        target.preview_id,
        run.job.sha,
        target.settings,
        release_id,
        sealed,
        actor=f"job {run.job.job_id}",
        job_id=run.job.job_id,
    )
    run.log.line(f"deployment {deployment_id} of r{release_id} to the hosts of {target.settings.group}")
    return deployment_id


def deploy_release(
    context: ControllerContext,
    preview_id: int,
    sha: str,
    settings: PreviewsSpec,
    release_id: int,
    sealed: str | None,
    *,
    actor: str,
    job_id: int | None = None,
) -> int:
    """The deployment of a preview's release to the hosts of `previews.group`, with its sealed
    secrets, unless the preview was closed or pushed to meanwhile (NotCurrent): checked and done
    holding the app's row, so a teardown cannot slip in between."""
    with context.db.transaction() as session:
        row = _current(session, preview_id, sha)
        release = releases.find_release(session, release_id)
        if sealed is not None:
            release_secrets.set_sealed(
                session,
                release,
                catalog.find_environment(session, settings.group),
                sealed,
                actor=actor,
                source_ip=None,
                now=context.now(),
                sealed_for=settings.environment,
            )
        deployment = deployments.create_deployment(
            session,
            release_id=release_id,
            environment=settings.group,
            queue=True,
            actor=actor,
            source_ip=None,
            now=context.now(),
        )
        row.release_id, row.status = release_id, engine.DEPLOYING
        row.message, row.updated_at = f"deployment {deployment.id} of r{release_id}", context.now()
        if job_id is not None:
            job_store.note(session, job_id, deployment_id=deployment.id)
        deployment_id = deployment.id
    context.driver.request_tick()
    context.notifier.notify()
    return deployment_id
