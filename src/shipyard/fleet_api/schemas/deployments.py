"""Deployment bodies: creation, rollback and the per-host progress view."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shipyard.fleet_api.schemas.common import Body, Id, Name
from shipyard.fleet_api.schemas.releases import ReleaseCreate
from shipyard.fleet_api.schemas.tasks import TaskOut

# shipyard.secrets.sealing.MAX_SEALED_CHARS, repeated so the API's schemas load no cryptography.
MAX_SEALED_CHARS = 256 * 1024


class DeploymentCreate(Body):
    release_id: Id
    environment: Name
    queue: bool = Field(default=False, description="wait for a running deployment or a lock instead of 409")
    sealed_secrets: str | None = Field(
        default=None,
        max_length=MAX_SEALED_CHARS,
        description="the release's env.secret values sealed for the environment (a shipyard secrets "
        "envelope); stored with the release, never returned, handed only to the environment's agents",
    )


class ReleaseSecretsSet(Body):
    sealed: str = Field(
        min_length=1,
        max_length=MAX_SEALED_CHARS,
        description="the release's env.secret values sealed for the environment (a shipyard secrets "
        "envelope)",
    )


class RollbackCreate(Body):
    app: Name
    environment: Name
    release_id: Id | None = Field(default=None, description="default: the previous succeeded release")


class HostProgressOut(BaseModel):
    host: str
    wave: int
    outcome: str = Field(description="waiting, pending, deploying, healthy, succeeded or failed")
    step: str
    message: str
    started_at: datetime | None
    healthy_since: datetime | None
    finished_at: datetime | None


class DeploymentOut(BaseModel):
    id: int
    app: str
    environment: str
    release_id: int
    release: str
    image: str
    digest: str
    status: str = Field(description="queued, running, paused, succeeded, failed, aborted or rolled_back")
    current_wave: int
    total_waves: int
    max_parallel: str
    max_failed: int
    monitor: float
    auto_rollback: bool
    failed_hosts: int
    rollback_of: int | None
    previous_release_id: int | None
    message: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    hosts: list[HostProgressOut] = Field(default_factory=list)
    release_phase: str = Field(
        default="",
        description="empty when the release has no `release:` command; else the release task's status "
        "(pending, running, succeeded, failed) or 'not run for a rollback'",
    )
    release_task: TaskOut | None = Field(default=None, description="the release phase's task and output")


class DeploymentPlanCreate(ReleaseCreate):
    """A release not stored yet (what `shipyard deploy --env E --dry-run` would record) and where it goes."""

    environment: Name


class PlannedHostOut(BaseModel):
    host: str
    wave: int = Field(description="the wave the host would be in; 0 when left out (a lost host)")
    running: str = Field(description="the release the host runs now (r12), empty when it runs none")
    change: str = Field(description="install, replace, none (it runs this image already) or skip (lost)")


class DeploymentPlanOut(BaseModel):
    """What a deployment would do; nothing is stored to answer it."""

    app: str
    environment: str
    release: str = Field(description="r12 for a stored release, 'new' for one not recorded yet")
    image: str
    digest: str
    max_parallel: str
    total_waves: int
    hosts: list[PlannedHostOut] = Field(default_factory=list)
