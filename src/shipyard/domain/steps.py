"""The steps a plan is made of: frozen data, each able to describe itself.

A plan is printed by `--dry-run`, stored in a job log and compared in tests; the executor is the
only place that turns a step into an action.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.domain.models import Release, Slot


@dataclass(frozen=True)
class EnsureProxy:
    reason: str

    def describe(self) -> str:
        return f"start haproxy ({self.reason})"


@dataclass(frozen=True)
class AddAppToProxy:
    app: str

    def describe(self) -> str:
        return f"add {self.app}'s frontend to haproxy (seamless reload)"


@dataclass(frozen=True)
class Pull:
    release: Release

    def describe(self) -> str:
        return f"pull {self.release.pinned_image}"


@dataclass(frozen=True)
class RunHooks:
    phase: str
    release: Release

    def describe(self) -> str:
        return f"run {self.phase} hooks for release {self.release.id}"


@dataclass(frozen=True)
class Start:
    slot: Slot
    release: Release

    def describe(self) -> str:
        return f"start release {self.release.id} ({self.release.short_digest}) in the {self.slot} slot"


@dataclass(frozen=True)
class WaitHealthy:
    slot: Slot
    release: Release
    warm: bool = False  # a standby that has been serving health checks all along: one pass suffices

    def describe(self) -> str:
        if self.warm:
            return f"check that the warm standby in the {self.slot} slot answers its health check"
        return f"wait until the {self.slot} slot answers its health check"


@dataclass(frozen=True)
class Switch:
    to_slot: Slot
    from_slot: Slot | None
    release: Release

    def describe(self) -> str:
        source = f" from {self.from_slot}" if self.from_slot else ""
        return f"switch haproxy to the {self.to_slot} slot{source}"


@dataclass(frozen=True)
class Drain:
    slot: Slot
    timeout: float
    # False when the old container keeps running (a warm standby): the slot stays in haproxy's drain
    # state, which sends it no new requests and lets those in flight finish, so nobody waits for them.
    wait: bool = True

    def describe(self) -> str:
        if not self.wait:
            return f"take the {self.slot} slot out of rotation (requests in flight finish on it)"
        return f"drain the {self.slot} slot (up to {self.timeout:g} s for requests in flight)"


@dataclass(frozen=True)
class Stop:
    container: str
    timeout: int
    # The slot the container served: what is still open on it is counted just before the stop.
    slot: Slot | None = None

    def describe(self) -> str:
        return f"stop container {self.container}"


@dataclass(frozen=True)
class KeepStandby:
    container: str
    release_id: str
    seconds: float

    def describe(self) -> str:
        return f"keep {self.container} running as a warm standby for {self.seconds:g} s"


@dataclass(frozen=True)
class Remove:
    container: str
    reason: str

    def describe(self) -> str:
        return f"remove container {self.container} ({self.reason})"


@dataclass(frozen=True)
class FinishPending:
    history_id: int
    outcome: str
    reason: str

    def describe(self) -> str:
        return f"record the interrupted swap as {self.outcome} ({self.reason})"


Step = (
    EnsureProxy
    | AddAppToProxy
    | Pull
    | RunHooks
    | Start
    | WaitHealthy
    | Switch
    | Drain
    | Stop
    | KeepStandby
    | Remove
    | FinishPending
)
