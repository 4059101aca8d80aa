"""Apps, environments and hosts as the API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shipyard.fleet_api.schemas.common import Body, Name


class AppCreate(Body):
    name: Name


class AppOut(BaseModel):
    name: str
    created_at: datetime


class EnvironmentCreate(Body):
    name: Name


class EnvironmentOut(BaseModel):
    name: str
    created_at: datetime
    hosts: int
    current: dict[str, int | None]


class HostAppOut(BaseModel):
    app: str
    active_release: int | None
    step: str
    health: str
    outcome: str | None
    message: str
    reported_at: datetime
    maintenance: bool = Field(default=False, description="the host's haproxy answers the maintenance page")


class HostOut(BaseModel):
    name: str
    address: str
    labels: dict[str, str]
    group: str
    status: str
    last_seen: datetime
    agent_version: str
    registered_at: datetime
    apps: list[HostAppOut]
    versions: dict[str, str] = Field(
        default_factory=dict, description="docker, haproxy, kernel and shipyard versions the agent reported"
    )
    skew: list[str] = Field(
        default_factory=list,
        description="components (docker, haproxy, kernel, shipyard) differing from most hosts of its group",
    )
    disk_free: int | None = Field(
        default=None, description="bytes free on the engine's data root filesystem, as last reported"
    )


class PruneCreate(Body):
    app: Name
    environment: Name


class PruneHostOut(BaseModel):
    host: str
    outcome: str = Field(description="succeeded | failed")
    removed: list[str] = Field(description="containers, then images, the host removed")
    disk_free: int | None = Field(description="bytes free on the engine's data root after the prune")
    message: str
    reported_at: datetime


class PruneOut(BaseModel):
    id: int
    app: str
    environment: str
    schedule_id: int | None
    requested_by: str
    requested_at: datetime
    hosts: list[PruneHostOut]
    waiting: list[str] = Field(description="hosts of the environment that have not reported it yet")
    summary: str = Field(description="one line: per host what was removed and the free disk")


class MaintenanceCreate(Body):
    app: Name
    environment: Name
    message: str = Field(
        default="",
        max_length=500,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="one line shown on the maintenance page; empty for the app's own page",
    )


class MaintenanceOut(BaseModel):
    app: str
    environment: str
    message: str
    started_by: str
    started_at: datetime
