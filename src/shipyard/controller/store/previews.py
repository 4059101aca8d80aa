"""Previews in the database: load an app's records into the engine's views, store its decisions.

The rules are engine/previews.py's. Every change to an app's previews runs in one transaction holding
the app's row, so a webhook, a command and the reconciler never decide on the same records at once.
The settings (`previews:`) are read from the app's latest release, not from the pull request's commit:
a PR cannot choose which environment's secrets its preview reads, nor raise its own limits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from shipyard.controller.engine import jobs as job_engine
from shipyard.controller.engine import previews as engine
from shipyard.controller.engine import rollout
from shipyard.controller.errors import ConflictError
from shipyard.controller.store import audit, deployments, job_store
from shipyard.controller.store.models import App, AuditEntry, Deployment, Release, ReleaseSecrets
from shipyard.controller.store.pipeline_models import Hook, Job, Preview
from shipyard.domain.previews import preview_app_name, preview_host_name
from shipyard.domain.spec import AppSpec, PreviewsSpec, spec_from_snapshot
from shipyard.errors import ConfigError, NotFoundError

ACTIVE_JOB = (job_engine.QUEUED, job_engine.RUNNING)


def find_app(session: Session, app: str, *, lock: bool = False) -> App:
    query = select(App).where(App.name == app)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"app {app!r} does not exist; previews need a release of it with 'previews:'.")
    return row


def latest_spec(session: Session, app_id: int) -> AppSpec | None:
    """The spec of the app's latest release (what it ships), or None before its first release."""
    release = session.scalar(select(Release).where(Release.app_id == app_id).order_by(Release.id.desc()))
    return spec_from_snapshot(release.spec) if release is not None else None


def previews_spec(session: Session, app: App) -> PreviewsSpec:
    """The app's `previews:` settings; ConfigError saying how to add them when it has none."""
    spec = latest_spec(session, app.id)
    if spec is None or spec.previews is None:
        raise ConfigError(
            f"app {app.name!r} has no 'previews:' in the shipyard.yml of its latest release; add a previews "
            "section (group, domain) and ship a release with it."
        )
    return spec.previews


def limits_of(settings: PreviewsSpec) -> engine.Limits:
    return engine.Limits(settings.max, settings.when_full, settings.ttl_seconds)


def app_previews(session: Session, app_id: int) -> Sequence[Preview]:
    return session.scalars(select(Preview).where(Preview.app_id == app_id).order_by(Preview.id)).all()


def views(session: Session, rows: Sequence[Preview]) -> list[engine.PreviewView]:
    job_ids = [row.job_id for row in rows if row.job_id is not None and row.status != engine.CLOSED]
    active: set[int] = set()
    if job_ids:
        active = set(
            session.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.status.in_(ACTIVE_JOB))).all()
        )
    return [
        engine.PreviewView(
            id=row.id,
            repository=row.repository,
            pr=row.pr,
            sha=row.sha,
            status=row.status,
            created_at=row.created_at,
            expires_at=row.expires_at,
            fork=row.fork,
            pinned=row.pinned,
            job_id=row.job_id,
            job_active=row.job_id in active,
            database=row.database,
        )
        for row in rows
    ]


@dataclass
class Applied:
    """What the decisions did: jobs to wake the worker for, whether the desired state moved, the rest."""

    queued: list[int] = field(default_factory=list)
    finish: list[engine.Finish] = field(default_factory=list)
    refused: str | None = None
    ignored: str | None = None
    desired_changed: bool = False
    preview_ids: list[int] = field(default_factory=list)

    notes: list[str] = field(default_factory=list)  # what was done, for a delivery's reason

    @property
    def done(self) -> str:
        return "; ".join(self.notes)

    @property
    def summary(self) -> str:
        return self.refused or self.ignored or ""


@dataclass(frozen=True)
class Actor:
    name: str
    source_ip: str | None = None
    trigger: str = "preview"  # the job's trigger: pull_request | merge_request | preview up
    delivery_id: str | None = None


def decide_and_apply(
    session: Session,
    app: App,
    limits: engine.Limits,
    event: engine.Event,
    actor: Actor,
    now: datetime,
    domain: str = "",
) -> Applied:
    """Lock the app, decide on its records and store the decisions (the caller commits).
    `domain`: previews.domain, which names the host of a preview created now."""
    session.execute(select(App.id).where(App.id == app.id).with_for_update())
    rows = app_previews(session, app.id)
    decisions = engine.decide(views(session, rows), limits, now, event)
    return apply(session, app, domain, rows, decisions, actor, now)


def head_ref(provider: str | None, pr: int) -> str:
    """The provider's name of a PR's head ref (a job's branch label; the build fetches the sha)."""
    return f"merge-requests/{pr}/head" if provider == "gitlab" else f"pull/{pr}/head"


def _job(session: Session, app: App, row: Preview, actor: Actor, now: datetime) -> Job:
    provider = session.scalar(select(Hook.provider).where(Hook.app_id == app.id))
    job = Job(
        app_id=app.id,
        environment=f"pr-{row.pr}",
        branch=head_ref(provider, row.pr),
        sha=row.sha,
        repository=row.repository,
        trigger=actor.trigger,
        delivery_id=actor.delivery_id,
        status=job_engine.QUEUED,
        message="",
        created_by=actor.name,
        created_at=now,
        timings={},
        preview_id=row.id,
    )
    session.add(job)
    session.flush()
    return job


def apply(
    session: Session,
    app: App,
    domain: str,
    rows: Sequence[Preview],
    decisions: Sequence[engine.Decision],
    actor: Actor,
    now: datetime,
) -> Applied:
    by_id = {row.id: row for row in rows}
    applied = Applied()
    for decision in decisions:
        if isinstance(decision, engine.Refuse):
            applied.refused = decision.reason
        elif isinstance(decision, engine.Ignore):
            applied.ignored = decision.reason
        elif isinstance(decision, engine.Create):
            row = Preview(
                app_id=app.id,
                repository=decision.repository,
                pr=decision.pr,
                sha=decision.sha,
                fork=decision.fork,
                status=engine.QUEUED,
                message=f"queued a build of {decision.sha[:12]}",
                host_name=preview_host_name(app.name, decision.pr, domain),
                pinned=False,
                expires_at=decision.expires_at,
                database=False,
                created_by=actor.name,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            by_id[row.id] = row
            _queue_build(session, app, row, actor, now, applied)
            _audit(session, actor, "preview.create", app, row, sha=row.sha, fork=row.fork)
            applied.notes.append(
                f"preview pr-{row.pr}: building {row.sha[:12]}" + (" (a fork)" if row.fork else "")
            )
        elif isinstance(decision, engine.Build):
            row = by_id[decision.preview_id]
            row.sha, row.expires_at, row.status = decision.sha, decision.expires_at, engine.QUEUED
            row.message, row.updated_at = f"queued a build of {decision.sha[:12]}", now
            _queue_build(session, app, row, actor, now, applied)
            _audit(session, actor, "preview.build", app, row, sha=row.sha)
            applied.notes.append(f"preview pr-{row.pr}: building {row.sha[:12]}")
        elif isinstance(decision, engine.CancelBuild):
            _cancel_job(session, decision.job_id, actor, now)
            applied.notes.append(f"job {decision.job_id} cancelled")
        elif isinstance(decision, engine.TearDown):
            row = by_id[decision.preview_id]
            row.status, row.message, row.updated_at = engine.CLOSING, decision.reason, now
            _abort_deployments(session, app.name, row.pr, actor, now)
            applied.desired_changed = True
            applied.preview_ids.append(row.id)
            _audit(session, actor, "preview.teardown", app, row, reason=decision.reason)
            applied.notes.append(f"preview pr-{row.pr} torn down: {decision.reason}")
        elif isinstance(decision, engine.SetPinned):
            row = by_id[decision.preview_id]
            row.pinned, row.updated_at = decision.pinned, now
            applied.preview_ids.append(row.id)
            _audit(session, actor, "preview.pin" if decision.pinned else "preview.unpin", app, row)
        elif isinstance(decision, engine.Finish):
            applied.finish.append(decision)
    return applied


def _queue_build(
    session: Session, app: App, row: Preview, actor: Actor, now: datetime, applied: Applied
) -> None:
    job = _job(session, app, row, actor, now)
    row.job_id = job.id
    applied.queued.append(job.id)
    applied.preview_ids.append(row.id)


def _abort_deployments(session: Session, app_name: str, pr: int, actor: Actor, now: datetime) -> None:
    """A torn-down preview's unfinished deployments end aborted: its hosts will never report on them,
    and a deployment left running would hold back the next one of the same PR (a reopen)."""
    preview_app = session.scalar(select(App.id).where(App.name == preview_app_name(app_name, pr)))
    if preview_app is None:
        return
    unfinished = select(Deployment.id).where(
        Deployment.app_id == preview_app, Deployment.status.in_((*rollout.ACTIVE, rollout.QUEUED))
    )
    for deployment_id in session.scalars(unfinished).all():
        deployments.transition(
            session, deployment_id, "abort", actor=actor.name, source_ip=actor.source_ip, now=now
        )


def _cancel_job(session: Session, job_id: int, actor: Actor, now: datetime) -> None:
    job = session.get(Job, job_id)
    if job is not None and job.status == job_engine.RUNNING and job.cancel_requested:
        return  # asked already: its worker is stopping it (the reconciler asks on every pass)
    with contextlib.suppress(ConflictError, NotFoundError):  # it finished meanwhile: nothing to stop
        job_store.cancel(session, job_id, actor=actor.name, source_ip=actor.source_ip, now=now)


def _audit(session: Session, actor: Actor, action: str, app: App, row: Preview, **detail: object) -> None:
    audit.record(
        session,
        actor=actor.name,
        action=action,
        target=f"{app.name}/pr-{row.pr}",
        source_ip=actor.source_ip,
        repository=row.repository,
        **detail,
    )


def on_pull_request(
    session: Session, hook: Hook, event: engine.Push | engine.Close | str, actor: Actor, now: datetime
) -> Applied | None:
    """A verified pull or merge request delivery for the hook's app, parsed (engine.pull_request_event,
    engine.merge_request_event; a string: the reason it is malformed), if the app has previews; None
    otherwise. `actor`: the hook (hook:github, hook:gitlab) with the delivery's trigger."""
    spec = latest_spec(session, hook.app_id)
    if spec is None or spec.previews is None:
        return None
    if isinstance(event, str):
        return Applied(ignored=event)
    app = session.get_one(App, hook.app_id)
    settings = spec.previews
    return decide_and_apply(session, app, limits_of(settings), event, actor, now, settings.domain)


def hook_repository(session: Session, app: App) -> str | None:
    return session.scalar(select(Hook.repository).where(Hook.app_id == app.id))


def find_live(session: Session, app_id: int, pr: int) -> Preview | None:
    query = select(Preview).where(
        Preview.app_id == app_id, Preview.pr == pr, Preview.status.in_(tuple(engine.LIVE))
    )
    return session.scalar(query.limit(1))


def list_previews(
    session: Session, *, app: str | None = None, include_closed_since: datetime | None = None
) -> Sequence[Preview]:
    """Live and closing previews, with closed ones closed after `include_closed_since` (None: all)."""
    query = select(Preview).options(joinedload(Preview.app)).order_by(Preview.id.desc())
    if app is not None:
        query = query.join(App, Preview.app_id == App.id).where(App.name == app)
    if include_closed_since is not None:
        query = query.where(
            (Preview.status != engine.CLOSED)
            | (Preview.closed_at.is_not(None) & (Preview.closed_at >= include_closed_since))
        )
    return session.scalars(query.limit(500)).all()


def apps_with_previews(session: Session) -> list[int]:
    """Apps with a preview the reconciler may have to act on (not closed)."""
    query = select(Preview.app_id).where(Preview.status != engine.CLOSED).distinct()
    return sorted(session.scalars(query).all())


def forget_secrets(session: Session, app_name: str, pr: int) -> int:
    """Delete the sealed secrets of every release of the preview app: no host is handed them again."""
    preview_app = session.scalar(select(App).where(App.name == preview_app_name(app_name, pr)))
    if preview_app is None:
        return 0
    releases = select(Release.id).where(Release.app_id == preview_app.id)
    result = session.execute(delete(ReleaseSecrets).where(ReleaseSecrets.release_id.in_(releases)))
    return int(getattr(result, "rowcount", 0) or 0)


def teardown_reason(session: Session, app_name: str, pr: int) -> str | None:
    """Why the preview's latest teardown happened (closed, its TTL, replaced, ...), from its audit
    entry: the preview's message says other things while the teardown finishes."""
    detail = session.scalar(
        select(AuditEntry.detail)
        .where(AuditEntry.action == "preview.teardown", AuditEntry.target == f"{app_name}/pr-{pr}")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    reason = detail.get("reason") if detail else None
    return reason if isinstance(reason, str) and reason else None


def mark_closed(session: Session, preview_id: int, *, now: datetime, message: str) -> None:
    row = session.get(Preview, preview_id)
    if row is not None and row.status == engine.CLOSING:
        row.status, row.message, row.updated_at, row.closed_at = engine.CLOSED, message, now, now
        row.database = False
        audit.record(
            session,
            actor=audit.CONTROLLER_ACTOR,
            action="preview.closed",
            target=f"{row.app.name}/pr-{row.pr}",
            repository=row.repository,
        )


def gone_preview_apps(session: Session, app_ids: Sequence[int]) -> set[int]:
    """Of `app_ids`, the preview apps whose preview is not live (torn down, or not deployed yet in its
    current life): the desired state leaves them out, so their hosts remove them."""
    if not app_ids or session.scalar(select(Preview.id).limit(1)) is None:
        return set()  # no preview was ever recorded: one cheap read for every other group
    names = dict(session.execute(select(App.name, App.id).where(App.id.in_(app_ids))).tuples().all())
    rows = session.execute(
        select(App.name, Preview.pr, Preview.status, Preview.release_id).join(App, Preview.app_id == App.id)
    ).all()
    known: set[int] = set()
    live: set[int] = set()
    for base, pr, status, release_id in rows:
        app_id = names.get(preview_app_name(base, pr))
        if app_id is None:
            continue
        known.add(app_id)
        if status in engine.LIVE and release_id is not None:
            live.add(app_id)
    return known - live
