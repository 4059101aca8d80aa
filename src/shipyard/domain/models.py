"""What shipyard knows about releases and a host: frozen values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shipyard.domain.preview_host import PreviewAllocation
from shipyard.domain.spec import AppSpec

Slot = Literal["blue", "green"]
SLOTS: tuple[Slot, Slot] = ("blue", "green")
# haproxy's admin state of a server, and its health check's verdict.
AdminState = Literal["ready", "drain", "maint"]
Operational = Literal["down", "starting", "up", "stopping"]
# How a recorded deploy, rollback or removal ended; 'running' while it goes on (or was interrupted).
HistoryStatus = Literal["running", "succeeded", "failed", "interrupted"]
HistoryKind = Literal["deploy", "rollback"]

LABEL_APP = "shipyard.app"
LABEL_SLOT = "shipyard.slot"
LABEL_RELEASE = "shipyard.release"
LABEL_DIGEST = "shipyard.digest"
# A worker's labels: its process name, and how it stops (what a recovery needs to stop it gracefully).
LABEL_PROCESS = "shipyard.process"
LABEL_STOP_SIGNAL = "shipyard.stop-signal"
LABEL_STOP_TIMEOUT = "shipyard.stop-timeout"
WEB = "web"
# A task's throwaway container (release phase, `shipyard run`): its kind and app, never LABEL_APP.
LABEL_TASK = "shipyard.task"
LABEL_TASK_APP = "shipyard.task-app"


def other_slot(slot: Slot) -> Slot:
    return "green" if slot == "blue" else "blue"


@dataclass(frozen=True)
class ImageRef:
    """`registry/repository:tag` or `registry/repository@sha256:...`, split into its parts."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository as docker names it, with the registry host."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def pinned(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"

    def __str__(self) -> str:
        return self.pinned


@dataclass(frozen=True)
class Release:
    """Immutable: an image digest plus the full app spec it was deployed with (typed; the store and
    the API serialize it with spec_snapshot)."""

    id: str
    app: str
    image: str
    digest: str
    app_spec: AppSpec
    created_at: datetime
    created_by: str
    tag: str | None = None

    @property
    def pinned_image(self) -> str:
        return f"{self.image}@{self.digest}"

    @property
    def short_digest(self) -> str:
        return self.digest.split(":", 1)[-1][:12]


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    app: str
    slot: Slot
    release_id: str
    digest: str
    status: str  # created | running | exited | ...
    started_at: str = ""
    image_id: str = ""
    process: str = WEB
    stop_signal: str = "TERM"
    stop_timeout: int = 10
    restart_count: int = 0  # times the engine restarted it (its restart policy) since it was created

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting")

    @property
    def is_worker(self) -> bool:
        return self.process != WEB


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to start one app container; argv-free, values only.

    `env` may hold secret values: the repr shows the names only, so a log or an error never prints them.
    """

    name: str
    image: str
    env: dict[str, str] = field(repr=False)
    labels: dict[str, str]
    network: str  # host | bridge
    ports: dict[int, tuple[str, int]] = field(default_factory=dict)  # container port -> (host ip, port)
    volumes: list[str] = field(default_factory=list)
    memory: str | None = None
    cpus: float | None = None
    command: list[str] | None = None
    # A worker's: the signal docker sends on a stop (and after which it does not restart the container).
    stop_signal: str | None = None
    entrypoint: list[str] | None = None  # replaces the image's (a task runs exactly its argv)

    def __repr__(self) -> str:
        return (
            f"ContainerSpec(name={self.name!r}, image={self.image!r}, env=<{', '.join(sorted(self.env))}>, "
            f"labels={self.labels!r}, network={self.network!r}, ports={self.ports!r}, "
            f"volumes={self.volumes!r}, memory={self.memory!r}, cpus={self.cpus!r}, "
            f"command={self.command!r}, stop_signal={self.stop_signal!r}"
            + (f", entrypoint={self.entrypoint!r})" if self.entrypoint is not None else ")")
        )


@dataclass(frozen=True)
class ServerState:
    """One server of a backend as haproxy's runtime API reports it."""

    backend: str
    name: str
    operational: Operational
    admin: AdminState
    sessions: int = 0

    @property
    def serving(self) -> bool:
        return self.admin == "ready"


@dataclass(frozen=True)
class OpenStreams:
    """What a server still has open, from `show sess all`: requests waiting for (or sending) their
    request or response, responses being streamed (server-sent events, downloads) and tunnels
    (websockets)."""

    requests: int = 0
    responses: int = 0
    tunnels: int = 0

    @property
    def total(self) -> int:
        return self.requests + self.responses + self.tunnels

    def describe(self) -> str:
        parts = [
            _count(self.requests, "request"),
            _count(self.responses, "streamed response"),
            _count(self.tunnels, "websocket"),
        ]
        return ", ".join(part for part in parts if part) or "nothing"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}" if number else ""


@dataclass(frozen=True)
class SlotServer:
    """haproxy's view of one slot: admin state ready/drain/maint, operational up/down."""

    slot: Slot
    admin: AdminState
    operational: Operational
    sessions: int = 0

    @property
    def serving(self) -> bool:
        return self.admin == "ready"


@dataclass(frozen=True)
class PendingSwap:
    """A deploy or rollback recorded as started but not finished: a crash happened mid-swap."""

    history_id: int
    release_id: str
    to_slot: Slot
    from_slot: Slot | None


@dataclass(frozen=True)
class WorkerStop:
    """A worker asked to finish: recorded before its signal, so no later command kills it early."""

    container: str
    deadline: datetime  # the end of its stop timeout: only then may it be killed
    signalled: bool


@dataclass(frozen=True)
class AppState:
    """Everything observed about one app on this host before planning."""

    app: str
    proxy_running: bool
    proxy_has_app: bool
    active_slot: Slot | None
    active_release_id: str | None
    maintenance: bool
    containers: tuple[ContainerInfo, ...] = ()
    servers: dict[str, SlotServer] = field(default_factory=dict)
    pending: PendingSwap | None = None
    images_present: frozenset[str] = frozenset()
    # The spec recorded with the active release (None before the first deploy): what haproxy's
    # config says about the app, compared with a new release's to know whether a reload is needed.
    spec: AppSpec | None = None
    # Worker containers (every process but web; `containers` holds web's), and the ones sent their
    # stop signal, with the moment their stop timeout ends and whether the signal was sent.
    workers: tuple[ContainerInfo, ...] = ()
    worker_stops: dict[str, WorkerStop] = field(default_factory=dict)
    # A preview app's pool backend, ports and host name (None for any other app); `routed` is what
    # haproxy's previews map says while it runs.
    preview: PreviewAllocation | None = None

    @property
    def backend(self) -> str:
        """The haproxy backend serving the app: its own, or the pool backend a preview holds."""
        return self.preview.backend if self.preview is not None else f"app_{self.app}"

    def container_in(self, slot: Slot, *, running: bool = True) -> ContainerInfo | None:
        for container in self.containers:
            if container.slot == slot and (container.running or not running):
                return container
        return None
