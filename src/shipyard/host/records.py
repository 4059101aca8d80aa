"""What the host's store hands out: plain values, shared by the store, its fakes and the use cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shipyard.domain.models import HistoryKind, HistoryStatus, Slot
from shipyard.domain.spec import AppSpec


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AppRecord:
    app: str
    active_slot: Slot | None
    active_release_id: str | None
    maintenance: bool
    spec: AppSpec
    updated_at: str


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    app: str
    kind: HistoryKind
    release_id: str | None
    from_release_id: str | None
    status: HistoryStatus
    actor: str
    started_at: str
    finished_at: str | None
    message: str | None
    steps: list[str]
