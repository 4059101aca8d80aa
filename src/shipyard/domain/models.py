"""What shipyard knows about releases and a host: frozen values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Slot = Literal["blue", "green"]
SLOTS: tuple[Slot, Slot] = ("blue", "green")

LABEL_APP = "shipyard.app"
LABEL_SLOT = "shipyard.slot"
LABEL_RELEASE = "shipyard.release"
LABEL_DIGEST = "shipyard.digest"


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
    """Immutable: an image digest plus the full app spec it was deployed with."""

    id: str
    app: str
    image: str
    digest: str
    spec: dict[str, Any]
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

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting")


@dataclass(frozen=True)
class SlotServer:
    """haproxy's view of one slot: admin state ready/drain/maint, operational up/down."""

    slot: Slot
    admin: str
    operational: str
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

    def container_in(self, slot: Slot, *, running: bool = True) -> ContainerInfo | None:
        for container in self.containers:
            if container.slot == slot and (container.running or not running):
                return container
        return None

    def containers_of(self, release_id: str) -> list[ContainerInfo]:
        return [c for c in self.containers if c.release_id == release_id]
