"""The hooks registry and the handling of one delivery: verify, classify, store, queue a job.

A delivery is stored whatever its verdict, in the same transaction as the job it queues, before the
request is answered; the hook row is locked for that transaction so two deliveries of one app never
race past the duplicate checks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.orm import Session

from shipyard.controller.engine import github, gitlab
from shipyard.controller.engine import previews as previews_engine
from shipyard.controller.errors import ConflictError
from shipyard.controller.store import audit, catalog, job_store, previews
from shipyard.controller.store.models import App
from shipyard.controller.store.pipeline_models import Delivery, Hook
from shipyard.errors import ConfigError, NotFoundError

ACCEPTED, IGNORED, DUPLICATE, REJECTED, PING = "accepted", "ignored", "duplicate", "rejected", "ping"
MIN_SECRET_LENGTH = 16
# The job's trigger, by event header: a merged pull/merge request, else a push.
TRIGGERS = {"pull_request": "pull_request", gitlab.MERGE_REQUEST_EVENT: "merge_request"}
REASON_LIMIT = 500  # a reason may quote the payload (a ref name); stored and echoed bounded
# A quoted ref may hold any character; a control character (NUL above all) is never stored or echoed.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable_reason(reason: str) -> str:
    """The reason as stored and answered: one line of at most REASON_LIMIT characters."""
    return CONTROL.sub("\ufffd", reason)[:REASON_LIMIT]


def check_secret(secret: str) -> str:
    secret = secret.strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"the webhook secret must be at least {MIN_SECRET_LENGTH} characters; "
            "generate one with 'openssl rand -hex 32'."
        )
    return secret


def find_hook(session: Session, app: str, *, lock: bool = False) -> Hook:
    query = select(Hook).join(App, Hook.app_id == App.id).where(App.name == app)
    hook = session.scalar(query.with_for_update(of=Hook) if lock else query)
    if hook is None:
        raise NotFoundError(
            f"app {app!r} has no hook; add one with 'shipyard hooks add github|gitlab --app {app}'."
        )
    return hook


def list_hooks(session: Session) -> Sequence[Hook]:
    return session.scalars(select(Hook).order_by(Hook.id)).all()


def add_hook(
    session: Session,
    *,
    provider: str,
    app: str,
    repository: str,
    secret: str,
    pipelines: list[dict[str, str]],
    actor: str,
    source_ip: str | None,
    deploy_key_secret: str | None = None,
) -> Hook:
    app_row = catalog.ensure_app(session, app)
    if session.scalar(select(Hook.id).where(Hook.app_id == app_row.id)) is not None:
        raise ConflictError(f"app {app!r} already has a hook; remove it first or rotate its secret.")
    hook = Hook(
        provider=provider,
        app_id=app_row.id,
        repository=repository,
        secret=check_secret(secret),
        pipelines=pipelines,
        deploy_key_secret=deploy_key_secret,
        created_by=actor,
    )
    session.add(hook)
    session.flush()
    audit.record(
        session, actor=actor, action="hook.add", target=app, source_ip=source_ip, repository=repository
    )
    return hook


def remove_hook(session: Session, app: str, *, actor: str, source_ip: str | None) -> None:
    session.delete(find_hook(session, app))
    audit.record(session, actor=actor, action="hook.remove", target=app, source_ip=source_ip)


def rotate_secret(
    session: Session, app: str, *, secret: str | None, now: datetime, actor: str, source_ip: str | None
) -> Hook:
    """With a new secret: both it and the current one are accepted. Without: the rotation ends."""
    hook = find_hook(session, app, lock=True)
    if secret is None:
        if hook.previous_secret is None:
            raise ConflictError(f"no rotation of {app!r}'s hook secret is under way; nothing to finish.")
        hook.previous_secret = None
        action = "hook.rotate.finish"
    else:
        hook.previous_secret, hook.secret = hook.secret, check_secret(secret)
        hook.rotated_at = now
        action = "hook.rotate"
    audit.record(session, actor=actor, action=action, target=app, source_ip=source_ip)
    return hook


def accepted_secrets(hook: Hook) -> list[str]:
    return [hook.secret, *([hook.previous_secret] if hook.previous_secret else [])]


@dataclass(frozen=True)
class Received:
    """The request's parts the handling needs; the body was verified before it was parsed."""

    provider: str
    app: str
    delivery_id: str
    event: str
    source_ip: str | None


@dataclass(frozen=True)
class Outcome:
    verdict: str
    reason: str
    job_id: int | None = None
    # A preview left (or may enter) the hosts' desired state: their long-polls are woken.
    previews_changed: bool = False


def record(session: Session, received: Received, outcome: Outcome) -> Delivery:
    delivery = Delivery(
        provider=received.provider,
        app=received.app,
        delivery_id=received.delivery_id,
        event=received.event,
        verdict=outcome.verdict,
        reason=printable_reason(outcome.reason),
        job_id=outcome.job_id,
        source_ip=received.source_ip,
    )
    session.add(delivery)
    return delivery


# The hot path's two statements, built once: Core on a plain connection, no ORM unit of work.
_HOOKS, _APPS = Hook.__table__, App.__table__
_HOOK_KEYS = (
    select(_HOOKS.c.provider, _HOOKS.c.secret, _HOOKS.c.previous_secret, _HOOKS.c.pipelines)
    .select_from(_HOOKS.join(_APPS, _HOOKS.c.app_id == _APPS.c.id))
    .where(_APPS.c.name == bindparam("app"))
)
_INSERT_DELIVERY = insert(Delivery)


@dataclass(frozen=True)
class HookKeys:
    """What verifying and classifying a delivery needs of its hook."""

    provider: str
    secrets: list[str]
    pipelines: list[dict[str, str]]


def hook_keys(connection: Connection, app: str) -> HookKeys:
    row = connection.execute(_HOOK_KEYS, {"app": app}).first()
    if row is None:
        raise NotFoundError(f"app {app!r} has no hook; add one with 'shipyard hooks add github --app {app}'.")
    provider, secret, previous, pipelines = row
    return HookKeys(provider, [secret, *([previous] if previous else [])], list(pipelines or []))


def insert_delivery(connection: Connection, received: Received, outcome: Outcome, now: datetime) -> None:
    """Store a delivery that queues nothing (ping, ignored, malformed) in one prepared insert."""
    connection.execute(
        _INSERT_DELIVERY,
        {
            "provider": received.provider,
            "app": received.app,
            "delivery_id": received.delivery_id,
            "event": received.event,
            "verdict": outcome.verdict,
            "reason": printable_reason(outcome.reason),
            "job_id": outcome.job_id,
            "source_ip": received.source_ip,
            "received_at": now,
        },
    )


def record_rejected(session: Session, received: Received, reason: str) -> None:
    record(session, received, Outcome(REJECTED, reason))
    audit.record(
        session,
        actor=f"hook:{received.provider}",
        action="hook.rejected",
        target=received.app,
        source_ip=received.source_ip,
        delivery=received.delivery_id,
        reason=reason,
    )


def handle(
    session: Session, hook: Hook, received: Received, payload: dict[str, Any], now: datetime
) -> Outcome:
    """Classify a verified delivery, queue its job if it ships a commit, and store it."""
    outcome = _decide(session, hook, received, payload, now)
    record(session, received, outcome)
    return outcome


def preview_event(
    received: Received, payload: dict[str, Any], repository: str
) -> previews_engine.Push | previews_engine.Close | str | None:
    """What a verified delivery means for the app's previews (if it has any): a GitHub pull_request,
    or a GitLab Merge Request Hook whose payload agrees; None for every other delivery."""
    if received.provider == "github" and received.event == "pull_request":
        return previews_engine.pull_request_event(payload, repository)
    if (
        received.provider == "gitlab"
        and received.event == gitlab.MERGE_REQUEST_EVENT
        and payload.get("object_kind") == "merge_request"
    ):
        return previews_engine.merge_request_event(payload, repository)
    return None


def _decide(
    session: Session, hook: Hook, received: Received, payload: dict[str, Any], now: datetime
) -> Outcome:
    seen = session.scalar(
        select(Delivery)
        .where(
            Delivery.provider == received.provider,
            Delivery.app == received.app,
            Delivery.delivery_id == received.delivery_id,
            Delivery.verdict.in_((ACCEPTED, DUPLICATE)),
        )
        .limit(1)
    )
    if seen is not None:
        return Outcome(DUPLICATE, f"delivery {received.delivery_id} was received before", seen.job_id)
    classify = gitlab.classify if received.provider == "gitlab" else github.classify
    verdict = classify(received.event, payload, hook.pipelines)
    trigger = TRIGGERS.get(received.event, "push")
    preview = None
    event = preview_event(received, payload, hook.repository)
    if event is not None:
        actor = previews.Actor(f"hook:{received.provider}", received.source_ip, trigger, received.delivery_id)
        preview = previews.on_pull_request(session, hook, event, actor, now)
    if preview is not None:
        return _with_preview(session, hook, received, verdict, preview, trigger, now)
    if verdict.action == github.PING:
        return Outcome(PING, verdict.reason)
    if verdict.action == github.IGNORE:
        return Outcome(IGNORED, verdict.reason)
    job, admission = job_store.admit_commit(
        session,
        hook,
        verdict,
        trigger=trigger,
        delivery_id=received.delivery_id,
        actor=f"hook:{received.provider}",
        now=now,
    )
    if job is None:
        return Outcome(DUPLICATE, admission.reason, admission.existing)
    reason = verdict.reason + (f"; {admission.reason}" if admission.reason else "")
    return Outcome(ACCEPTED, reason, job.id)


def _with_preview(
    session: Session,
    hook: Hook,
    received: Received,
    verdict: github.Verdict,
    preview: previews.Applied,
    trigger: str,
    now: datetime,
) -> Outcome:
    """A pull or merge request delivery for an app with previews: the preview's decision, and a
    merge's job."""
    reason = preview.summary or preview.done
    job_id = preview.queued[0] if preview.queued else None
    accepted = bool(preview.queued or preview.desired_changed or preview.preview_ids)
    if verdict.action == github.SHIP:  # a merge ships to a pipeline as well as closing the preview
        job, admission = job_store.admit_commit(
            session,
            hook,
            verdict,
            trigger=trigger,
            delivery_id=received.delivery_id,
            actor=f"hook:{received.provider}",
            now=now,
        )
        reason = f"{reason}; {verdict.reason}" + (f"; {admission.reason}" if admission.reason else "")
        if job is not None:
            job_id, accepted = job.id, True
    return Outcome(ACCEPTED if accepted else IGNORED, reason, job_id, preview.desired_changed)


def deliveries(session: Session, *, app: str | None = None, limit: int = 50) -> Sequence[Delivery]:
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if app is not None:
        query = query.where(Delivery.app == app)
    return session.scalars(query).all()
