"""Bodies of the pipeline API: hooks (never their secrets), deliveries, jobs and their log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shipyard.fleet_api.schemas.common import LINE_PATTERN, Body, Line, Name

# A hooked app's name is also a path segment of its payload URL (/hooks/github/{app}).
HOOK_APP_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
HookApp = Annotated[str, Field(min_length=1, max_length=40, pattern=HOOK_APP_PATTERN)]
Secret = Annotated[
    str, Field(min_length=16, max_length=512, pattern=LINE_PATTERN, description="the webhook secret")
]
# What git accepts in a branch name: no whitespace or control character, none of ~ ^ : ? * [ and backslash.
BRANCH_PATTERN = r"^[^\s\x00-\x1f\x7f~^:?*\[\\]+$"


class PipelineIn(Body):
    branch: str = Field(min_length=1, max_length=255, pattern=BRANCH_PATTERN)
    environment: Name


class HookCreate(Body):
    provider: Literal["github", "gitlab"] = "github"
    app: HookApp
    repository: Line = Field(min_length=1, max_length=1024, description="git URL: ssh, https:// or file://")
    secret: Secret
    pipelines: list[PipelineIn] = Field(
        default_factory=list,
        max_length=50,
        description="the branches a push or a merge ships, and where; none: the hook acts on pull and "
        "merge requests only (previews)",
    )
    deploy_key_secret: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="name of the ssh key in the controller's secret store (env controller)",
    )


class HookRotate(Body):
    secret: Secret | None = Field(default=None, description="the new secret; omit to end the rotation")


class HookOut(BaseModel):
    id: int
    provider: str
    app: str
    repository: str
    pipelines: list[dict[str, str]]
    deploy_key_secret: str | None = None
    rotating: bool = Field(description="two secrets are accepted until the rotation ends")
    payload_path: str = Field(description="where the provider posts, relative to the controller's URL")
    created_by: str
    created_at: datetime
    rotated_at: datetime | None


class DeliveryOut(BaseModel):
    id: int
    provider: str
    app: str
    delivery_id: str
    event: str
    verdict: str = Field(description="accepted, ignored, duplicate, rejected or ping")
    reason: str
    job_id: int | None
    source_ip: str | None
    received_at: datetime


class DeliveryAnswer(BaseModel):
    """The webhook's answer to a verified delivery, stored before it is sent."""

    detail: str = Field(description="why the delivery was accepted, ignored or taken as a duplicate")
    verdict: Literal["accepted", "ignored", "duplicate", "ping"]
    job_id: int | None = Field(description="the job the delivery queued (or its duplicate's)")


class JobOut(BaseModel):
    id: int
    app: str
    environment: str
    branch: str
    sha: str
    trigger: str
    status: str = Field(
        description="queued, running, succeeded, failed, cancelled, superseded or interrupted"
    )
    step: str
    message: str
    attempt: int
    retry_of: int | None
    cancel_requested: bool
    timings: dict[str, Any] = Field(description="seconds per step")
    release_id: int | None
    deployment_id: int | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class LogLineOut(BaseModel):
    id: int
    step: str
    line: str
    at: datetime


Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$", description="a full commit sha")]


class ScheduleCreate(Body):
    app: Name
    cron: Line = Field(min_length=1, max_length=128, examples=["0 3 * * *"])
    timezone: str = Field(
        default="UTC", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$", examples=["Asia/Tokyo"]
    )
    action: Literal["deploy", "rebuild", "prune"] = Field(
        description="deploy: ship `ref` to the environment; rebuild: build its current commit again; "
        "prune: every host of the environment removes the app's old releases"
    )
    environment: Name
    ref: Sha | None = Field(default=None, description="deploy only: the commit to ship")
    overlap: Literal["skip", "queue"] = Field(
        default="skip", description="when the previous run's job is still queued or running"
    )
    missed: Literal["run-once", "skip"] = Field(
        default="run-once", description="runs missed while the controller was down"
    )


class ScheduleOut(BaseModel):
    id: int
    app: str
    cron: str
    timezone: str
    action: str
    environment: str
    ref: str | None
    overlap: str
    missed: str
    next_run_at: datetime = Field(description="UTC")
    next_run_local: str = Field(description="the next run in the schedule's time zone")
    last_run_at: datetime | None
    last_job_id: int | None
    last_result: str
    created_by: str
    created_at: datetime


class NotifyCreate(Body):
    url: str = Field(
        min_length=8, max_length=2048, pattern=r"^https?://[^\s]+$", description="where events are posted"
    )
    format: Literal["slack", "json"] = "json"
    app: Name | None = Field(default=None, description="only this app's events; omit for every app")


class NotifyOut(BaseModel):
    id: int
    url: str = Field(description="scheme and host only: the path often holds the target's token")
    format: str
    app: str | None
    created_by: str
    created_at: datetime


class NotificationOut(BaseModel):
    id: int
    target_id: int
    event: str
    status: str = Field(description="pending, sent or failed")
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None
