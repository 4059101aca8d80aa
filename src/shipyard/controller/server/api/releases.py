"""Releases: create from image + digest + spec snapshot, list, get."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from shipyard.controller.server.api.deps import Context, ResourceId, Shipper, ShipperViewer, Viewer
from shipyard.controller.server.api.responses import API_TOKEN, BODY, PARAMS, errors
from shipyard.controller.server.api.views import release_out
from shipyard.controller.store import catalog, release_secrets, releases
from shipyard.fleet_api.schemas.common import NAME_PATTERN
from shipyard.fleet_api.schemas.deployments import ReleaseSecretsSet
from shipyard.fleet_api.schemas.releases import ReleaseCreate, ReleaseOut

router = APIRouter(prefix="/releases", tags=["releases"], responses=API_TOKEN)


@router.post(
    "",
    status_code=201,
    summary="Record a release (deployer, or ci for its apps)",
    responses={**BODY, **errors(409)},
)
def create_release(body: ReleaseCreate, caller: Shipper, context: Context) -> ReleaseOut:
    with context.db.transaction() as session:
        release = releases.create_release(
            session,
            body,
            actor=caller.name,
            source_ip=caller.source_ip,
            signing_key=context.settings.signing_key,
            check_app=caller.check_app,
        )
        return release_out(release)


@router.get("", summary="List releases, newest first (viewer)", responses=PARAMS)
def list_releases(
    _caller: Viewer,
    context: Context,
    app: Annotated[str | None, Query(min_length=1, max_length=64, pattern=NAME_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ReleaseOut]:
    with context.db.read() as session:
        return [release_out(r) for r in releases.list_releases(session, app=app, limit=limit)]


@router.get(
    "/{release_id}",
    summary="One release with its spec snapshot (viewer, or ci for its apps)",
    responses={**PARAMS, **errors(404)},
)
def get_release(release_id: ResourceId, caller: ShipperViewer, context: Context) -> ReleaseOut:
    with context.db.read() as session:
        release = releases.find_release(session, release_id)
        caller.check_app(release.app.name)
        return release_out(release)


@router.put(
    "/{release_id}/secrets/{environment}",
    status_code=204,
    summary="Set the release's secrets sealed for an environment (deployer, or ci for its apps)",
    description="The body is never returned by any route; only the agents of the environment receive it.",
    responses={**BODY, **PARAMS, **errors(404)},
)
def set_release_secrets(
    release_id: ResourceId,
    environment: Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)],
    body: ReleaseSecretsSet,
    caller: Shipper,
    context: Context,
) -> Response:
    with context.db.transaction() as session:
        release = releases.find_release(session, release_id)
        caller.check_app(release.app.name)
        env = catalog.find_environment(session, environment)
        release_secrets.set_sealed(
            session,
            release,
            env,
            body.sealed,
            actor=caller.name,
            source_ip=caller.source_ip,
            now=context.now(),
        )
    context.notifier.notify()  # hosts already running this release pick up the new envelope on a redeploy
    return Response(status_code=204)
