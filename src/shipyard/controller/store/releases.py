"""Releases: immutable records of an image digest and the spec snapshot it was built with."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.controller.store import audit, catalog
from shipyard.controller.store.models import App, Release
from shipyard.domain.spec import spec_from_snapshot, spec_snapshot
from shipyard.errors import ConfigError, NotFoundError
from shipyard.fleet_api.schemas.releases import ReleaseCreate
from shipyard.signing import release_payload, sign


def create_release(
    session: Session,
    body: ReleaseCreate,
    *,
    actor: str,
    source_ip: str | None,
    signing_key: Ed25519PrivateKey | None = None,
    check_app: Callable[[str], None] | None = None,
) -> Release:
    """Record a release; `check_app` may refuse the spec's app (a ci token's scope) first."""
    spec = spec_from_snapshot(body.spec)  # raises ConfigError with every problem and its key path
    if check_app is not None:
        check_app(spec.app)
    if spec.image != body.image:
        raise ConfigError(f"image {body.image!r} does not match the spec's image {spec.image!r}.")
    snapshot = spec_snapshot(spec)
    signature = body.signature
    if signature is not None and snapshot != body.spec:
        # Hosts verify the stored snapshot; a signature over anything else could never verify.
        raise ConfigError(
            "the signed spec is not a canonical snapshot; sign the output of spec_snapshot "
            "(the fleet CLI does when SHIPYARD_SIGNING_KEY is set)."
        )
    if signature is None and signing_key is not None:
        signature = sign(signing_key, release_payload(spec.app, body.image, body.digest, snapshot))
    app = catalog.ensure_app(session, spec.app)
    release = Release(
        app_id=app.id,
        image=body.image,
        digest=body.digest,
        spec=snapshot,
        created_by=actor,
        signature=signature,
        git_sha=body.git_sha,
    )
    session.add(release)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="release.create",
        target=f"{app.name}/r{release.id}",
        source_ip=source_ip,
        digest=body.digest,
        signed=signature is not None,
    )
    return release


def find_release(session: Session, release_id: int) -> Release:
    release = session.get(Release, release_id)
    if release is None:
        raise NotFoundError(f"release r{release_id} does not exist; list releases with GET /api/v1/releases.")
    return release


def list_releases(session: Session, *, app: str | None = None, limit: int = 100) -> Sequence[Release]:
    query = select(Release).order_by(Release.id.desc()).limit(limit)
    if app is not None:
        query = query.join(App).where(App.name == app)
    return session.scalars(query).all()
