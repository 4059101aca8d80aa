"""Desired state: which release each app should run on a host, derived from deployment rows alone.

The rule, per app deployed to the host's environment, from its latest started deployment:
running, paused or failed (without rollback): hosts in started waves get the target, the rest keep the
current release; succeeded: the target everywhere; aborted or rolled back: the current release (the last
succeeded one) everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shipyard.controller.deployments import current_release_id
from shipyard.controller.models import Deployment, DeploymentHost, Environment, Host, Release
from shipyard.controller.rollout import ACTIVE, FAILED, SUCCEEDED
from shipyard.controller.schemas.agent import DesiredApp, DesiredState
from shipyard.controller.schemas.common import release_name


@dataclass(frozen=True)
class Choice:
    release_id: int
    deployment_id: int | None


def choose_release(
    latest_status: str,
    latest_release: int,
    latest_id: int,
    current_release: int | None,
    in_started_wave: bool,
) -> Choice | None:
    """The pure rule above, for one app on one host."""
    follows_target = latest_status == SUCCEEDED or (
        (latest_status in ACTIVE or latest_status == FAILED) and in_started_wave
    )
    if follows_target:
        return Choice(latest_release, latest_id)
    return Choice(current_release, None) if current_release is not None else None


def _in_started_wave(session: Session, deployment: Deployment, host_id: int) -> bool:
    wave = session.scalar(
        select(DeploymentHost.wave).where(
            DeploymentHost.deployment_id == deployment.id, DeploymentHost.host_id == host_id
        )
    )
    return wave is not None and 0 < wave <= deployment.current_wave


def _latest_started(session: Session, app_id: int, environment_id: int) -> Deployment | None:
    query = (
        select(Deployment)
        .where(
            Deployment.app_id == app_id,
            Deployment.environment_id == environment_id,
            Deployment.started_at.is_not(None),
        )
        .order_by(Deployment.started_at.desc(), Deployment.id.desc())
    )
    return session.scalar(query.limit(1))


def desired_choices(session: Session, host: Host) -> list[Choice]:
    environment = session.scalar(select(Environment).where(Environment.name == host.group))
    if environment is None:
        return []
    app_ids = session.scalars(
        select(Deployment.app_id).where(Deployment.environment_id == environment.id).distinct()
    ).all()
    choices = []
    for app_id in sorted(app_ids):
        latest = _latest_started(session, app_id, environment.id)
        if latest is None:
            continue
        current = current_release_id(session, app_id, environment.id)
        in_wave = _in_started_wave(session, latest, host.id)
        choice = choose_release(latest.status, latest.release_id, latest.id, current, in_wave)
        if choice is not None:
            choices.append(choice)
    return choices


def version_of(apps: list[DesiredApp]) -> int:
    """A fingerprint of the content, so any change in what the host should run changes the version."""
    content = json.dumps([[a.app, a.release_id, a.digest, a.deployment_id] for a in apps], sort_keys=True)
    return int(hashlib.sha256(content.encode()).hexdigest()[:13], 16)


def desired_state(session: Session, host: Host) -> DesiredState:
    apps = []
    for choice in desired_choices(session, host):
        release = session.get_one(Release, choice.release_id)
        apps.append(
            DesiredApp(
                app=release.app.name,
                release_id=release.id,
                release=release_name(release.id),
                image=release.image,
                digest=release.digest,
                spec=release.spec,
                deployment_id=choice.deployment_id,
            )
        )
    return DesiredState(host=host.name, group=host.group, version=version_of(apps), apps=apps)
