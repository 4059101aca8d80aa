"""Every change a host can undergo, as a typed command holding all it needs: frozen data, no I/O.

The planners (shipyard.domain.plan, shipyard.domain.host_plan) resolve everything - the container
spec, the health URL, the backend and address, a hook's argv and environment - so a command list
printed by `--dry-run` is exactly what the interpreter (shipyard.host.interpreter) runs, and the
interpreter decides nothing. Each command describes itself; a command holding environment values
never shows them: `describe()` and the repr name the variables only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shipyard.domain.models import ContainerSpec, HistoryKind, HistoryStatus, Release, Slot
from shipyard.domain.spec import AppSpec, HealthcheckSpec, ProcessHealthSpec

HookPhase = Literal["pre-deploy", "post-swap", "post-deploy"]


def container_name(app: str, release_id: str, slot: Slot) -> str:
    return f"shipyard-{app}-{release_id}-{slot}"


def worker_container_name(app: str, release_id: str, process: str, number: int = 1) -> str:
    """A worker's container; `number` grows when an earlier one of the same release is still
    finishing its jobs after its stop signal (a rollback to it), so that one is never replaced."""
    return f"shipyard-{app}-{release_id}-{process}-{number}"


def backend_name(app: str) -> str:
    return f"app_{app}"


# haproxy ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnsureProxy:
    """Start haproxy from the config of every app the store knows."""

    reason: str

    def describe(self) -> str:
        return f"start haproxy ({self.reason})"


@dataclass(frozen=True)
class RegisterApp:
    """Give the app its frontend and backend: record it (when new), write its maintenance page and
    haproxy's config, then reload seamlessly (or start haproxy)."""

    spec: AppSpec
    new: bool  # not in the store yet: recorded without an active release
    proxy_running: bool

    @property
    def app(self) -> str:
        return self.spec.app

    def describe(self) -> str:
        how = "seamless reload" if self.proxy_running else "start haproxy"
        return f"add {self.app}'s frontend to haproxy ({how})"


@dataclass(frozen=True)
class UnregisterApp:
    """Drop the app's frontend and backend: forget its record, rewrite the config, reload (or stop
    haproxy when no other app is left)."""

    app: str
    last: bool  # no other app on this host: haproxy stops
    proxy_running: bool

    def describe(self) -> str:
        how = "stop haproxy, it serves no other app" if self.last else "seamless reload"
        return f"remove {self.app}'s frontend and backend from haproxy ({how})"


@dataclass(frozen=True)
class RoutePreview:
    """Send the preview's host name to its pool backend: an entry added to the previews map through
    the runtime API (no reload), the map file rewritten to match."""

    app: str
    host_name: str
    backend: str

    def describe(self) -> str:
        return f"route {self.host_name} to {self.backend} (previews map, no reload)"


@dataclass(frozen=True)
class UnroutePreview:
    """Take the preview's host name out of the previews map and both servers of its pool backend out
    of rotation (runtime API, no reload); the app's record goes and the config and map are rewritten."""

    app: str
    host_name: str
    backend: str

    def describe(self) -> str:
        return f"stop routing {self.host_name} and free {self.backend} (previews map, no reload)"


@dataclass(frozen=True)
class SwitchBackend:
    """Point the slot's server at `address`, make it serve and drain `from_slot` (one runtime-API
    batch), then record `release` as the active one."""

    backend: str
    to_slot: Slot
    from_slot: Slot | None
    address: tuple[str, int]
    release: Release
    reload: bool = False  # the release changes the frontend: a seamless reload follows the switch

    def describe(self) -> str:
        source = f" from {self.from_slot}" if self.from_slot else ""
        return f"switch haproxy to the {self.to_slot} slot{source}"


@dataclass(frozen=True)
class Drain:
    backend: str
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
class EnterMaintenance:
    """Both slots to maint: haproxy answers 503 with the maintenance page, the health path 200."""

    app: str
    backend: str
    # The page's text to write first (a maintenance message); None keeps the page the app has.
    page: str | None = None

    def describe(self) -> str:
        page = " with a new message" if self.page is not None else ""
        return f"put {self.app} in maintenance (haproxy answers 503 with its maintenance page{page})"


@dataclass(frozen=True)
class LeaveMaintenance:
    """The slot serves again (the other stays in maint) and `release` is recorded as active."""

    app: str
    backend: str
    slot: Slot
    address: tuple[str, int]
    release: Release

    def describe(self) -> str:
        return f"serve {self.app} from the {self.slot} slot again (leave maintenance)"


# images and containers --------------------------------------------------------------------------
@dataclass(frozen=True)
class Pull:
    repository: str
    digest: str

    def describe(self) -> str:
        return f"pull {self.repository}@{self.digest}"


@dataclass(frozen=True)
class StartContainer:
    slot: Slot
    release_id: str
    short_digest: str
    container: ContainerSpec
    bind: str  # the slot's address on the host, which must be free before the start
    port: int

    def describe(self) -> str:
        return f"start release {self.release_id} ({self.short_digest}) in the {self.slot} slot"


@dataclass(frozen=True)
class WaitHealthy:
    slot: Slot
    release_id: str
    container: str
    url: str
    check: HealthcheckSpec
    warm: bool = False  # a standby that has been serving health checks all along: one pass suffices

    def describe(self) -> str:
        if self.warm:
            return f"check that the warm standby in the {self.slot} slot answers its health check"
        return f"wait until the {self.slot} slot answers its health check"


@dataclass(frozen=True)
class StopContainer:
    container: str
    timeout: int
    # The backend and slot the container served: what is still open on it is counted before the stop.
    backend: str | None = None
    slot: Slot | None = None

    def describe(self) -> str:
        return f"stop container {self.container}"


@dataclass(frozen=True)
class StartWorker:
    """Run a worker process of the release (no port, no proxy: it never answers HTTP)."""

    process: str
    release_id: str
    short_digest: str
    container: ContainerSpec

    def describe(self) -> str:
        return f"start the {self.process} process of release {self.release_id} ({self.short_digest})"


@dataclass(frozen=True)
class WaitWorkerHealthy:
    """Its health: a command inside it exits 0, or it runs `running_for` seconds without a restart;
    an exit or a restart meanwhile fails the deploy."""

    process: str
    release_id: str
    container: str
    health: ProcessHealthSpec

    def describe(self) -> str:
        if self.health.running_for is not None:
            seconds = self.health.running_for
            return f"wait until the {self.process} process has run {seconds:g} s without a restart"
        return f"wait until the {self.process} process passes its health command"


@dataclass(frozen=True)
class StopWorker:
    """Ask an old worker to finish: record the stop (deadline = now + timeout), have the reaper come
    back after the deadline, then send the signal. Nothing kills it before the deadline."""

    app: str
    process: str
    container: str
    signal: str
    timeout: int

    def describe(self) -> str:
        return (
            f"send SIG{self.signal} to {self.container} ({self.process}); it has {self.timeout} s to "
            "finish before it may be killed"
        )


@dataclass(frozen=True)
class KeepStandby:
    app: str
    container: str
    release_id: str
    seconds: float

    def describe(self) -> str:
        return f"keep {self.container} running as a warm standby for {self.seconds:g} s"


@dataclass(frozen=True)
class RemoveContainer:
    container: str
    reason: str

    def describe(self) -> str:
        return f"remove container {self.container} ({self.reason})"


@dataclass(frozen=True)
class RemoveImage:
    reference: str

    def describe(self) -> str:
        return f"remove image {self.reference}"


# hooks ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunHook:
    """One hook command, run with the release's own environment (never this process's)."""

    phase: HookPhase
    release_id: str
    command: str  # as written in shipyard.yml
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)
    timeout: float = 300.0
    user: str | None = None  # the policy's hooks.user; None: shipyard's own user

    def describe(self) -> str:
        return f"run the {self.phase} hook '{self.command}' for release {self.release_id}"

    def __repr__(self) -> str:
        return (
            f"RunHook(phase={self.phase!r}, release_id={self.release_id!r}, command={self.command!r}, "
            f"env=<{', '.join(sorted(self.env))}>, timeout={self.timeout!r}, user={self.user!r})"
        )


# tasks ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunTask:
    """A command run once in a throwaway container of the release (the release phase): no ports, no
    slot, removed when it ends; its output is kept in the host's log whether it passes or fails."""

    kind: str  # release | run
    release_id: str
    container: ContainerSpec  # env may hold secrets: its repr names them only
    timeout: float

    def describe(self) -> str:
        argv = " ".join([*(self.container.entrypoint or []), *(self.container.command or [])])
        return f"run the {self.kind} command '{argv}' once in a new container of release {self.release_id}"


# the host's records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BeginHistory:
    """Record the swap as running before anything changes: after a crash, recovery finds it."""

    app: str
    kind: HistoryKind
    release_id: str
    from_release_id: str | None
    to_slot: Slot
    from_slot: Slot | None
    actor: str

    def describe(self) -> str:
        return f"record the {self.kind} of release {self.release_id} to the {self.to_slot} slot as running"


@dataclass(frozen=True)
class FinishHistory:
    outcome: HistoryStatus
    reason: str = ""
    history_id: int | None = None  # None: the record this command list began

    def describe(self) -> str:
        what = "the interrupted swap" if self.history_id is not None else "the swap"
        return f"record {what} as {self.outcome}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class ForgetApp:
    """Delete the app's releases, history and standbys from the host's store."""

    app: str

    def describe(self) -> str:
        return f"forget {self.app}'s releases and history on this host"


# The names `--json` timings and the agent's progress reports have always used for these kinds (both
# are documented as stable); every other kind goes by its class name.
STEP_NAMES = {
    "StartContainer": "Start",
    "SwitchBackend": "Switch",
    "StopContainer": "Stop",
    "RemoveContainer": "Remove",
    "RunHook": "RunHooks",
    "FinishHistory": "FinishPending",
    "RegisterApp": "AddAppToProxy",
}


def step_name(command: Command) -> str:
    """The command's kind as `timings_ms` and progress reports name it ("Start", "WaitHealthy")."""
    kind = type(command).__name__
    return STEP_NAMES.get(kind, kind)


Command = (
    EnsureProxy
    | RegisterApp
    | UnregisterApp
    | RoutePreview
    | UnroutePreview
    | SwitchBackend
    | Drain
    | EnterMaintenance
    | LeaveMaintenance
    | Pull
    | StartContainer
    | WaitHealthy
    | StopContainer
    | StartWorker
    | WaitWorkerHealthy
    | StopWorker
    | KeepStandby
    | RemoveContainer
    | RemoveImage
    | RunHook
    | RunTask
    | BeginHistory
    | FinishHistory
    | ForgetApp
)
