"""Bodies of the pipeline API: hooks (never their secrets), deliveries, jobs and their log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shipyard.controller.schemas.common import Body, Name

Secret = Annotated[str, Field(min_length=16, max_length=512, description="the webhook secret")]


class PipelineIn(Body):
    branch: str = Field(min_length=1, max_length=255, pattern=r"^[^\s~^:?*\[\\]+$")
    environment: Name


class HookCreate(Body):
    provider: Literal["github", "gitlab"] = "github"
    app: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")]
    repository: str = Field(min_length=1, max_length=1024, description="git URL: ssh, https:// or file://")
    secret: Secret
    pipelines: list[PipelineIn] = Field(min_length=1, max_length=50)
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
