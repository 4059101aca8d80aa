"""Desired state: which release each app should run on a host, derived from deployment rows alone.

The rule, per app deployed to the host's environment, from its latest started deployment:
running, paused or failed (without rollback): hosts in started waves get the target, the rest keep the
current release; succeeded: the target everywhere; aborted or rolled back: the current release (the last
succeeded one) everywhere. Each app also carries the latest prune asked of it in the environment
(prunes.py), which the host's agent carries out once, and its maintenance message while it is in
maintenance there (maintenance.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shipyard.controller.engine.rollout import ACTIVE, FAILED, SUCCEEDED
from shipyard.controller.store import log_requests, maintenance
from shipyard.controller.store.deployments import current_release_id
from shipyard.controller.store.models import Deployment, DeploymentHost, Environment, Prune, Release, utcnow
from shipyard.fleet_api.schemas.agent import DesiredApp, DesiredMaintenance, DesiredState
from shipyard.fleet_api.schemas.common import release_name
from shipyard.fleet_api.schemas.logs import DesiredLogRequest


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


@dataclass(frozen=True)
class AppPlan:
    """One app's latest started deployment in a group, with every host's wave in it."""

    status: str
    release_id: int
    deployment_id: int
    current_wave: int
    current_release: int | None
    waves: dict[int, int]
    prune: int | None = None  # the latest prune asked of the app in this group
    maintenance: str | None = None  # the message, while the app is in maintenance in this group

    def choice_for(self, host_id: int) -> Choice | None:
        wave = self.waves.get(host_id)
        in_wave = wave is not None and 0 < wave <= self.current_wave
        return choose_release(self.status, self.release_id, self.deployment_id, self.current_release, in_wave)


@dataclass
class GroupPlan:
    """Everything the desired state of any host in one group depends on, read in one short transaction.

    Per-host answers are derived in memory, so all long-polls of a group share one database read; each
    is also kept as its JSON body, so a burst of answers after a change serializes each host once.
    """

    group: str
    apps: list[AppPlan]
    releases: dict[int, DesiredApp]
    logs: list[DesiredLogRequest] = field(default_factory=list)  # open log requests of the group
    _answers: dict[tuple[int, str], DesiredState] = field(default_factory=dict, compare=False, repr=False)
    _bodies: dict[tuple[int, str], bytes] = field(default_factory=dict, compare=False, repr=False)

    def for_host(self, host_id: int, host_name: str) -> DesiredState:
        key = (host_id, host_name)
        answer = self._answers.get(key)
        if answer is None:
            apps = []
            for plan in self.apps:
                choice = plan.choice_for(host_id)
                if choice is not None:
                    template = self.releases[choice.release_id]
                    update: dict[str, object] = {"deployment_id": choice.deployment_id, "prune": plan.prune}
                    if plan.maintenance is not None:
                        update["maintenance"] = DesiredMaintenance(message=plan.maintenance)
                    apps.append(template.model_copy(update=update))
            answer = DesiredState(
                host=host_name,
                group=self.group,
                version=version_of(apps, self.logs),
                apps=apps,
                logs=self.logs,
            )
            self._answers[key] = answer
        return answer

    def json_for(self, host_id: int, host_name: str) -> bytes:
        """for_host() as the JSON body of the API's answer."""
        key = (host_id, host_name)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = self.for_host(host_id, host_name).model_dump_json().encode()
        return body


def _release_template(release: Release) -> DesiredApp:
    return DesiredApp(
        app=release.app.name,
        release_id=release.id,
        release=release_name(release.id),
        image=release.image,
        digest=release.digest,
        spec=release.spec,
        deployment_id=None,
        signature=release.signature,
    )


def group_plan(session: Session, group: str) -> GroupPlan:
    environment = session.scalar(select(Environment).where(Environment.name == group))
    if environment is None:
        return GroupPlan(group, [], {})
    app_ids = session.scalars(
        select(Deployment.app_id).where(Deployment.environment_id == environment.id).distinct()
    ).all()
    apps: list[AppPlan] = []
    releases: dict[int, DesiredApp] = {}
    latest_prunes = (
        select(Prune.app_id, func.max(Prune.id))
        .where(Prune.environment_id == environment.id)
        .group_by(Prune.app_id)
    )
    prunes = {app_id: prune_id for app_id, prune_id in session.execute(latest_prunes)}
    in_maintenance = maintenance.messages_by_app(session, environment.id)
    for app_id in sorted(app_ids):
        latest = _latest_started(session, app_id, environment.id)
        if latest is None:
            continue
        current = current_release_id(session, app_id, environment.id)
        rows = session.execute(
            select(DeploymentHost.host_id, DeploymentHost.wave).where(
                DeploymentHost.deployment_id == latest.id
            )
        ).all()
        waves = {host_id: wave for host_id, wave in rows}
        apps.append(
            AppPlan(
                latest.status,
                latest.release_id,
                latest.id,
                latest.current_wave,
                current,
                waves,
                prunes.get(app_id),
                in_maintenance.get(app_id),
            )
        )
        for release_id in (latest.release_id, current):
            if release_id is not None and release_id not in releases:
                releases[release_id] = _release_template(session.get_one(Release, release_id))
    return GroupPlan(group, apps, releases, log_requests.open_requests(session, environment.id, utcnow()))


def version_of(apps: list[DesiredApp], logs: Sequence[DesiredLogRequest] = ()) -> int:
    """A fingerprint of the content, so any change in what the host should run changes the version.

    A prune or a maintenance is in it only once one was asked, so hosts never pruned nor put in
    maintenance keep the version they had."""
    content = json.dumps(
        [
            [
                a.app,
                a.release_id,
                a.digest,
                a.deployment_id,
                *([a.prune] if a.prune else []),
                *([["maintenance", a.maintenance.message]] if a.maintenance is not None else []),
            ]
            for a in apps
        ]
        + ([["logs", [request.id for request in logs]]] if logs else []),
        sort_keys=True,
    )
    return int(hashlib.sha256(content.encode()).hexdigest()[:13], 16)
