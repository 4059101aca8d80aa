"""Previews: list them, bring one up or down by hand, pin one against its TTL.

Changes take the deployer role and are audited (`preview.*`); they go through the same engine and
transaction as the webhook's pull_request deliveries (server/previews.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy.orm import Session

from shipyard.controller.engine import previews as engine
from shipyard.controller.errors import ConflictError
from shipyard.controller.server import previews as runtime
from shipyard.controller.server.api.deps import Context, Deployer, Viewer
from shipyard.controller.server.api.params import NameQuery
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.store import previews as store
from shipyard.controller.store.pipeline_models import Preview
from shipyard.domain.previews import preview_app_name
from shipyard.errors import ConfigError, NotFoundError
from shipyard.fleet_api.schemas.previews import PreviewAnswer, PreviewOut, PreviewPin, PreviewUp

router = APIRouter(tags=["previews"], responses=API_TOKEN)

# `shipyard previews` shows a preview this long after it closed (all of them with all=true).
CLOSED_SHOWN = timedelta(hours=1)
AppPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9-]*$")]
PrPath = Annotated[int, Path(ge=1, le=99_999_999)]


def preview_out(row: Preview, now: datetime) -> PreviewOut:
    live = row.status in engine.LIVE
    ttl_left = max(0, int((row.expires_at - now).total_seconds())) if live and not row.pinned else None
    return PreviewOut(
        id=row.id,
        app=row.app.name,
        preview_app=preview_app_name(row.app.name, row.pr),
        repository=row.repository,
        pr=row.pr,
        sha=row.sha,
        fork=row.fork,
        status=row.status,
        message=row.message,
        host_name=row.host_name,
        url=f"http://{row.host_name}/",
        pinned=row.pinned,
        database=row.database,
        release_id=row.release_id,
        job_id=row.job_id,
        age_seconds=max(0, int((now - row.created_at).total_seconds())),
        ttl_left_seconds=ttl_left,
        expires_at=row.expires_at,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
    )


@router.get(
    "/previews",
    summary="Previews, newest first: live ones and those closed lately (viewer)",
    responses=PARAMS,
)
def list_previews(
    _caller: Viewer,
    context: Context,
    app: NameQuery = None,
    all: Annotated[bool, Query(description="closed previews too, however long ago")] = False,
) -> list[PreviewOut]:
    now = context.now()
    with context.db.read() as session:
        since = None if all else now - CLOSED_SHOWN
        rows = store.list_previews(session, app=app, include_closed_since=since)
        return [preview_out(row, now) for row in rows]


def _answer(context: Context, app: str, pr: int, applied: store.Applied) -> PreviewAnswer:
    if applied.refused is not None:
        raise ConflictError(applied.refused)
    with context.db.read() as session:
        app_row = store.find_app(session, app)
        row = store.find_live(session, app_row.id, pr) or _latest(session, app_row.id, pr)
        out = preview_out(row, context.now()) if row is not None else None
    return PreviewAnswer(
        detail=applied.done or applied.summary,
        preview=out,
        job_id=applied.queued[0] if applied.queued else None,
    )


def _latest(session: Session, app_id: int, pr: int) -> Preview | None:
    rows = [row for row in store.app_previews(session, app_id) if row.pr == pr]
    return rows[-1] if rows else None


@router.post(
    "/previews",
    summary="Build and deploy a preview of a PR's commit (deployer)",
    responses={**BODY, **errors(404, 409)},
)
def preview_up(body: PreviewUp, caller: Deployer, context: Context) -> PreviewAnswer:
    repository = body.repository
    if repository is None:
        with context.db.read() as session:
            app_row = store.find_app(session, body.app)
            latest = store.latest_spec(session, app_row.id)
            repository = store.hook_repository(session, app_row) or (latest.repository if latest else None)
        if repository is None:
            raise ConfigError(
                f"app {body.app!r} has neither a hook nor 'repository:' in its latest release to fetch "
                "from; give the repository with --repository URL."
            )
    actor = store.Actor(caller.name, caller.source_ip, "preview up")
    applied = runtime.act(context, body.app, engine.Push(repository, body.pr, body.ref), actor)
    return _answer(context, body.app, body.pr, applied)


@router.delete(
    "/previews/{app}/{pr}",
    summary="Tear a preview down: out of the hosts' desired state, then its database and secrets (deployer)",
    responses={**PARAMS, **errors(404)},
)
def preview_down(app: AppPath, pr: PrPath, caller: Deployer, context: Context) -> PreviewAnswer:
    applied = runtime.act(context, app, engine.Close(None, pr), store.Actor(caller.name, caller.source_ip))
    if applied.ignored is not None and not applied.preview_ids:
        raise NotFoundError(f"{applied.ignored}; list previews with 'shipyard previews --app {app}'.")
    return _answer(context, app, pr, applied)


@router.post(
    "/previews/{app}/{pr}/pin",
    summary="Pin a preview (its TTL no longer applies) or unpin it (deployer)",
    responses={**BODY, **errors(404, 409)},
)
def preview_pin(
    app: AppPath, pr: PrPath, body: PreviewPin, caller: Deployer, context: Context
) -> PreviewAnswer:
    applied = runtime.act(
        context, app, engine.Pin(pr, body.pinned), store.Actor(caller.name, caller.source_ip)
    )
    return _answer(context, app, pr, applied)
