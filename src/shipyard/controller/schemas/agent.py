"""Agent bodies: registration, the desired state long-poll and progress reports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shipyard.controller.schemas.common import Body, Name

Health = Literal["healthy", "unhealthy", "unknown"]
Outcome = Literal["in_progress", "succeeded", "failed"]


MAX_LABELS = 64
LabelKey = Annotated[str, Field(min_length=1, max_length=64)]
LabelValue = Annotated[str, Field(max_length=255)]


class AgentRegister(Body):
    name: Name
    address: str = Field(default="", max_length=255)
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=MAX_LABELS, description="at most 64; keys 1-64, values 0-255 chars"
    )
    agent_version: str = Field(default="", max_length=64)


class AgentRegistered(BaseModel):
    host: str
    group: str
    agent_token: str = Field(description="the host's own token; shown only in this response")


class DesiredApp(BaseModel):
    app: str
    release_id: int
    release: str
    image: str
    digest: str
    spec: dict[str, Any]
    deployment_id: int | None = Field(description="the deployment that put this release here, if any")
    signature: str | None = Field(default=None, description="ed25519 signature over the release, if signed")


class DesiredState(BaseModel):
    host: str
    group: str
    version: int = Field(description="opaque; pass it back as ?version= to wait for a change")
    apps: list[DesiredApp]


class TrafficCounters(Body):
    """Cumulative counters of the app's haproxy backend on the host (`show stat`)."""

    requests: int = Field(ge=0, le=2**63 - 1, description="HTTP requests (req_tot)")
    responses_5xx: int = Field(ge=0, le=2**63 - 1, description="responses with a 5xx status (hrsp_5xx)")


class AppReport(Body):
    app: Name
    step: str = Field(default="", max_length=64)
    active_release: int | None = Field(default=None, description="release serving traffic now")
    release: int | None = Field(default=None, description="release that step and outcome refer to")
    health: Health = "unknown"
    outcome: Outcome | None = None
    message: str = Field(default="", max_length=2000)
    counters: TrafficCounters | None = Field(default=None, description="haproxy counters, when known")


class AgentReport(Body):
    agent_version: str | None = Field(default=None, max_length=64)
    apps: list[AppReport] = Field(default_factory=list)


class ReportAck(BaseModel):
    host: str
    status: str
    received_at: datetime
