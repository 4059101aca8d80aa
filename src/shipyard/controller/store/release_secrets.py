"""A release's secret values sealed for one environment: stored, replaced, handed to that environment's hosts.

The controller checks only the envelope's header (JSON shape, the environment it was sealed for, its
size) and never holds a key that opens it; nothing here returns it except the desired state of hosts
of the same environment (desired.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.controller.store import audit
from shipyard.controller.store.models import Environment, Release, ReleaseSecrets
from shipyard.secrets.sealing import check_sealed


def set_sealed(
    session: Session,
    release: Release,
    environment: Environment,
    sealed: str,
    *,
    actor: str,
    source_ip: str | None,
    now: datetime,
    sealed_for: str | None = None,
) -> None:
    """Store (or replace) the release's sealed secrets for `environment`; ConfigError if it is no envelope.

    `sealed_for`: the environment whose key sealed them when it is not `environment` itself (a
    preview's secrets come from `previews.environment` and go to the hosts of `previews.group`)."""
    envelope = check_sealed(sealed, sealed_for or environment.name)
    row = session.get(ReleaseSecrets, (release.id, environment.id))
    if row is None:
        row = ReleaseSecrets(release_id=release.id, environment_id=environment.id)
        session.add(row)
    row.sealed, row.key_id, row.set_by, row.set_at = sealed, envelope.key_id[:255], actor, now
    audit.record(
        session,
        actor=actor,
        action="release.secrets.set",
        target=f"{release.app.name}/r{release.id}/{environment.name}",
        source_ip=source_ip,
        provider=envelope.provider,
        key_id=envelope.key_id[:255],
    )


def sealed_by_release(session: Session, environment_id: int, release_ids: list[int]) -> dict[int, str]:
    """The sealed secrets of each of `release_ids` in the environment (absent: none were set)."""
    if not release_ids:
        return {}
    rows = session.execute(
        select(ReleaseSecrets.release_id, ReleaseSecrets.sealed).where(
            ReleaseSecrets.environment_id == environment_id, ReleaseSecrets.release_id.in_(release_ids)
        )
    )
    return {release_id: sealed for release_id, sealed in rows}
