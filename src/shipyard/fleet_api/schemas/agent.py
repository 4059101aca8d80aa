"""Agent bodies: registration, the desired state long-poll and progress reports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shipyard.fleet_api.schemas.common import LINE_PATTERN, MAX_ID, Body, Line, Name, Text
from shipyard.fleet_api.schemas.logs import DesiredLogRequest
from shipyard.fleet_api.schemas.tasks import TaskOrder

Health = Literal["healthy", "unhealthy", "unknown"]
Outcome = Literal["in_progress", "succeeded", "failed"]
# The step of a report whose app is unhealthy because a worker crash-loops (agent/crash_loop.py): the
# rollout fails such a host like a failed health check, whether or not it had reported healthy yet.
CRASH_LOOP_STEP = "crash-loop"
MAX_WAIT_QUERY = 300  # seconds; the controller caps the actual wait at its max_wait setting


MAX_LABELS = 64
LabelKey = Annotated[str, Field(min_length=1, max_length=64)]
LabelValue = Annotated[str, Field(max_length=255)]


class HostVersions(Body):
    """What the host runs beneath its apps, as its agent found it; an empty string when unknown."""

    docker: str = Field(default="", max_length=64, description="Docker Engine version")
    haproxy: str = Field(default="", max_length=64, description="haproxy version")
    kernel: str = Field(default="", max_length=128, description="kernel release (uname -r)")
    shipyard: str = Field(default="", max_length=64, description="the agent's shipyard version")


class AgentRegister(Body):
    name: Name
    address: Line = Field(default="", max_length=255)
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=MAX_LABELS, description="at most 64; keys 1-64, values 0-255 chars"
    )
    agent_version: Line = Field(default="", max_length=64)
    versions: HostVersions | None = None


class AgentRegistered(BaseModel):
    host: str
    group: str
    agent_token: str = Field(description="the host's own token; shown only in this response")


MAX_MAINTENANCE_MESSAGE = 500


class DesiredMaintenance(BaseModel):
    """The app is in maintenance in its environment: haproxy answers 503 with the page, containers run."""

    message: str = Field(default="", description="shown on the maintenance page; empty for the default page")


class DesiredApp(BaseModel):
    app: str
    release_id: int
    release: str
    image: str
    digest: str
    spec: dict[str, Any]
    deployment_id: int | None = Field(description="the deployment that put this release here, if any")
    signature: str | None = Field(default=None, description="ed25519 signature over the release, if signed")
    prune: int | None = Field(
        default=None, description="the latest prune asked of the app's hosts; agents prune once per new one"
    )
    sealed_secrets: str | None = Field(
        default=None,
        description="the release's env.secret values sealed for this host's environment; the agent opens it",
    )
    maintenance: DesiredMaintenance | None = Field(
        default=None, description="set while the app is in maintenance in the host's environment"
    )


class DesiredState(BaseModel):
    host: str
    group: str
    version: int = Field(description="opaque; pass it back as ?version= to wait for a change")
    apps: list[DesiredApp]
    tasks: list[TaskOrder] = Field(
        default_factory=list, description="tasks assigned to this host that its agent has not started yet"
    )
    logs: list[DesiredLogRequest] = Field(
        default_factory=list, description="open log requests of the host's environment"
    )
    execs: list[TaskOrder] = Field(
        default_factory=list,
        description="exec sessions waiting for this host's agent to attach (kind exec; apart from tasks, "
        "so an agent that predates them ignores them)",
    )


class TrafficCounters(Body):
    """Cumulative counters of the app's haproxy backend on the host (`show stat`)."""

    requests: int = Field(ge=0, le=2**63 - 1, description="HTTP requests (req_tot)")
    responses_5xx: int = Field(ge=0, le=2**63 - 1, description="responses with a 5xx status (hrsp_5xx)")


class AppReport(Body):
    app: Name
    step: Line = Field(default="", max_length=64)
    active_release: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="release serving traffic now"
    )
    release: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="release that step and outcome refer to"
    )
    health: Health = "unknown"
    outcome: Outcome | None = None
    message: Text = Field(default="", max_length=2000)
    counters: TrafficCounters | None = Field(default=None, description="haproxy counters, when known")
    maintenance: bool = Field(default=False, description="haproxy answers the app's maintenance page here")


MAX_REMOVED = 500


class PruneReport(Body):
    """What the host removed for one prune of one app (or why it could not)."""

    app: Name
    prune: int = Field(ge=1, le=MAX_ID, description="the prune's id, from the desired state")
    outcome: Literal["succeeded", "failed"]
    removed: list[Annotated[str, Field(max_length=255, pattern=LINE_PATTERN)]] = Field(
        default_factory=list, max_length=MAX_REMOVED, description="containers, then images"
    )
    message: Text = Field(default="", max_length=2000)


class AgentReport(Body):
    agent_version: Line | None = Field(default=None, max_length=64)
    versions: HostVersions | None = Field(default=None, description="sent when known; kept until changed")
    apps: list[AppReport] = Field(default_factory=list)
    prunes: list[PruneReport] = Field(default_factory=list, max_length=64)
    disk_free: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="bytes free on the engine's data root filesystem"
    )


class DesiredQuery(BaseModel):
    """The query of GET /agent/desired, validated by the route and by the agents' hot path alike."""

    model_config = ConfigDict(allow_inf_nan=False)

    wait: float = Field(default=0.0, ge=0, le=MAX_WAIT_QUERY, description="seconds to wait for a change")
    version: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="the version the agent already has"
    )


class ReportAck(BaseModel):
    host: str
    status: str
    received_at: datetime
