"""Desired state: which release each app should run on a host, derived from deployment rows alone.

The rule, per app deployed to the host's environment, from its latest started deployment:
running, paused or failed (without rollback): hosts in started waves get the target, the rest keep the
current release; succeeded: the target everywhere; aborted or rolled back: the current release (the last
succeeded one) everywhere. Each app also carries the latest prune asked of it in the environment
(prunes.py), which the host's agent carries out once, its maintenance message while it is in
maintenance there (maintenance.py), and each host its pending tasks (tasks.py). A preview app is in it
only while its preview is live (previews.py): a torn-down preview leaves every host's desired state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import TypeAdapter
from pydantic_core import to_json
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shipyard.controller.engine.rollout import ACTIVE, FAILED, SUCCEEDED
from shipyard.controller.store import log_requests, maintenance, previews, tasks
from shipyard.controller.store.deployments import current_release_id
from shipyard.controller.store.models import Deployment, DeploymentHost, Environment, Prune, Release, utcnow
from shipyard.controller.store.release_secrets import sealed_by_release
from shipyard.fleet_api.schemas.agent import DesiredApp, DesiredMaintenance, DesiredState
from shipyard.fleet_api.schemas.common import release_name
from shipyard.fleet_api.schemas.logs import DesiredLogRequest
from shipyard.fleet_api.schemas.tasks import TaskOrder


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


# What a host's desired state is made of in a plan: per app with a release for it, the app's index in
# GroupPlan.apps and its Choice. Hosts with the same key get the same apps and version.
_ChoiceKey = tuple[tuple[int, Choice], ...]


@dataclass(frozen=True)
class _SharedAnswer:
    """The part of the desired state that hosts choosing alike share: the apps, their version, and both
    already encoded as the JSON that follows the host's name and group in the answer."""

    apps: list[DesiredApp]
    version: int
    tail: bytes  # b',"version":...,"apps":[...]}'


@dataclass
class GroupPlan:
    """Everything the desired state of any host in one group depends on, read in one short transaction.

    Per-host answers are derived in memory, so all long-polls of a group share one database read. Hosts
    whose releases are chosen alike (all of them, in a deployment's single wave) share one computed and
    encoded answer, which only the host's name distinguishes: a burst of answers after a change encodes
    the apps once, not once per host.
    """

    group: str
    apps: list[AppPlan]
    releases: dict[int, DesiredApp]
    tasks: dict[int, list[TaskOrder]] = field(default_factory=dict)  # pending tasks per host id
    logs: list[DesiredLogRequest] = field(default_factory=list)  # open log requests of the group
    _keys: dict[int, _ChoiceKey] = field(default_factory=dict, compare=False, repr=False)
    _shared: dict[_ChoiceKey, _SharedAnswer] = field(default_factory=dict, compare=False, repr=False)
    _answers: dict[tuple[int, str], DesiredState] = field(default_factory=dict, compare=False, repr=False)
    _bodies: dict[tuple[int, str], bytes] = field(default_factory=dict, compare=False, repr=False)

    def _shared_for(self, host_id: int) -> _SharedAnswer:
        key = self._keys.get(host_id)
        if key is None:
            choices = ((index, plan.choice_for(host_id)) for index, plan in enumerate(self.apps))
            key = self._keys[host_id] = tuple((index, c) for index, c in choices if c is not None)
        shared = self._shared.get(key)
        if shared is None:
            apps = []
            for index, choice in key:
                template = self.releases[choice.release_id]
                plan = self.apps[index]
                update: dict[str, object] = {"deployment_id": choice.deployment_id, "prune": plan.prune}
                if plan.maintenance is not None:
                    update["maintenance"] = DesiredMaintenance(message=plan.maintenance)
                apps.append(template.model_copy(update=update))
            version = version_of(apps, (), self.logs)
            tail = b',"version":%d,"apps":%s,"tasks":[],"logs":%s,"execs":[]}' % (
                version,
                _APPS_JSON.dump_json(apps),
                _LOGS_JSON.dump_json(self.logs),
            )
            shared = self._shared[key] = _SharedAnswer(apps, version, tail)
        return shared

    def version_for(self, host_id: int) -> int:
        """for_host(...).version, without building the host's answer."""
        pending = self.tasks.get(host_id)
        shared = self._shared_for(host_id)
        return version_of(shared.apps, pending, self.logs) if pending else shared.version

    def for_host(self, host_id: int, host_name: str) -> DesiredState:
        key = (host_id, host_name)
        answer = self._answers.get(key)
        if answer is None:
            shared = self._shared_for(host_id)
            pending = self.tasks.get(host_id, [])
            version = version_of(shared.apps, pending, self.logs) if pending else shared.version
            answer = DesiredState(
                host=host_name,
                group=self.group,
                version=version,
                apps=shared.apps,
                tasks=[order for order in pending if order.kind != "exec"],
                logs=self.logs,
                execs=[order for order in pending if order.kind == "exec"],
            )
            self._answers[key] = answer
        return answer

    def json_for(self, host_id: int, host_name: str) -> bytes:
        """for_host() as the JSON body of the API's answer (the same bytes as its model_dump_json)."""
        key = (host_id, host_name)
        body = self._bodies.get(key)
        if body is None and self.tasks.get(host_id):
            # A host with pending tasks (rare): its own answer, tasks included.
            body = self._bodies[key] = self.for_host(host_id, host_name).model_dump_json().encode()
        elif body is None:
            head = b'{"host":%s,"group":%s' % (to_json(host_name), to_json(self.group))
            body = self._bodies[key] = head + self._shared_for(host_id).tail
        return body


_APPS_JSON = TypeAdapter(list[DesiredApp])
_LOGS_JSON = TypeAdapter(list[DesiredLogRequest])


def _release_template(release: Release, sealed_secrets: str | None) -> DesiredApp:
    return DesiredApp(
        app=release.app.name,
        release_id=release.id,
        release=release_name(release.id),
        image=release.image,
        digest=release.digest,
        spec=release.spec,
        deployment_id=None,
        signature=release.signature,
        sealed_secrets=sealed_secrets,
    )


def group_plan(session: Session, group: str) -> GroupPlan:
    environment = session.scalar(select(Environment).where(Environment.name == group))
    if environment is None:
        return GroupPlan(group, [], {})
    app_ids = session.scalars(
        select(Deployment.app_id).where(Deployment.environment_id == environment.id).distinct()
    ).all()
    apps: list[AppPlan] = []
    wanted: list[int] = []
    latest_prunes = (
        select(Prune.app_id, func.max(Prune.id))
        .where(Prune.environment_id == environment.id)
        .group_by(Prune.app_id)
    )
    prunes = {app_id: prune_id for app_id, prune_id in session.execute(latest_prunes)}
    in_maintenance = maintenance.messages_by_app(session, environment.id)
    gone = previews.gone_preview_apps(session, app_ids)
    for app_id in sorted(app_ids):
        if app_id in gone:  # a torn-down preview: its hosts remove everything of it
            continue
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
        wanted.extend(release_id for release_id in (latest.release_id, current) if release_id is not None)
    # Each release with the secrets sealed for this environment (the group), so a rollback brings back
    # the values the older release ran with.
    sealed = sealed_by_release(session, environment.id, sorted(set(wanted)))
    releases = {
        release_id: _release_template(session.get_one(Release, release_id), sealed.get(release_id))
        for release_id in dict.fromkeys(wanted)
    }
    return GroupPlan(
        group,
        apps,
        releases,
        tasks.pending_orders(session, environment),
        log_requests.open_requests(session, environment.id, utcnow()),
    )


def version_of(
    apps: list[DesiredApp], pending: Sequence[TaskOrder] = (), logs: Sequence[DesiredLogRequest] = ()
) -> int:
    """A fingerprint of the content, so any change in what the host should run changes the version.

    A prune, a maintenance, sealed secrets, a pending task or a log request is in it only once one
    exists, so hosts keep the version they had before any of them did."""
    content = json.dumps(
        [
            [
                a.app,
                a.release_id,
                a.digest,
                a.deployment_id,
                *([a.prune] if a.prune else []),
                *([_fingerprint(a.sealed_secrets)] if a.sealed_secrets else []),
                *([["maintenance", a.maintenance.message]] if a.maintenance is not None else []),
            ]
            for a in apps
        ]
        + ([["tasks", *(task.id for task in pending)]] if pending else [])
        + ([["logs", [request.id for request in logs]]] if logs else []),
        sort_keys=True,
    )
    return int(hashlib.sha256(content.encode()).hexdigest()[:13], 16)


def _fingerprint(sealed: str) -> str:
    return hashlib.sha256(sealed.encode()).hexdigest()[:16]
