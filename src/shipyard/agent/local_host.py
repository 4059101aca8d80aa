"""The real HostPort: this host's Docker Engine and haproxy, through shipyard.host.service."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from shipyard.agent import sealed_store
from shipyard.agent.crash_loop import WorkerSample
from shipyard.agent.localize import host_release
from shipyard.agent.log_lines import TimedLine, parse_timed
from shipyard.agent.ports import LocalApp
from shipyard.domain.models import AppState
from shipyard.domain.policy import AgentPolicy, task_violation
from shipyard.domain.preview_host import PreviewSettings
from shipyard.domain.spec import AppSpec, spec_from_snapshot
from shipyard.errors import LockedError, NotFoundError, PolicyError, ProxyError, ShipyardError
from shipyard.fleet_api.schemas.agent import DesiredApp, HostVersions, TrafficCounters
from shipyard.fleet_api.schemas.tasks import TaskOrder
from shipyard.host import maintenance, previews, proxy_sync, service
from shipyard.host.context import HostContext
from shipyard.host.disk import free_bytes
from shipyard.host.interpreter import Reporter
from shipyard.host.observe import observe
from shipyard.host.policy import HostPolicy
from shipyard.host.ports import ExecProcess
from shipyard.host.store import AppRecord, utcnow
from shipyard.host.versions import detect_versions, enforce_requirements
from shipyard.secrets.sealing import host_provider, open_sealed
from shipyard.signing import TrustedKeys, release_payload

log = structlog.get_logger("shipyard.agent")
# The lock name for a change of the previews frontend alone (no app's name can be it: it has a dot).
PREVIEWS_LOCK = "previews.frontend"


@dataclass
class LocalHost:
    context: HostContext
    address: str | None = None
    environ: Mapping[str, str] | None = None
    policy: HostPolicy = field(default_factory=lambda: HostPolicy(AgentPolicy(), "built-in defaults"))
    # When set, only releases signed by one of these keys run here (shipyard.signing).
    trusted_keys: TrustedKeys | None = None
    # Read from the engine and haproxy on first need; a release's `requires:` is checked against them.
    versions: HostVersions | None = None
    data_root: str | None = None  # the engine's DockerRootDir, read once
    # The environment's master key (--secrets-key-file), for releases sealed by the local provider.
    secrets_key_file: Path | None = None
    # This host's labels: they select which of a release's processes run here (processes.*.hosts).
    labels: Mapping[str, str] = field(default_factory=dict)
    # Where previews are served and the ports they get: --previews-listen, --preview-slots, --preview-ports.
    previews: PreviewSettings = field(default_factory=PreviewSettings)

    def disk_free(self) -> int | None:
        if self.data_root is None:
            try:
                self.data_root = self.context.engine.data_root()
            except ShipyardError:  # the engine is away: no number this time, ask again next pass
                return None
        return free_bytes(self.data_root)

    def prune(self, desired: DesiredApp) -> list[str]:
        """The host's own prune of the app (under its lock, refused during a swap), by the desired spec."""
        if self.context.store.app(desired.app) is None:
            return []  # never deployed here: nothing of it to remove
        return maintenance.prune(self.context, spec_from_snapshot(desired.spec), wait=False)

    def host_versions(self) -> HostVersions:
        if self.versions is None:
            self.versions = detect_versions(self.context)
        return self.versions

    def serve_previews(self) -> str | None:
        """The previews frontend listening now (under the lock of the host's proxy), before any preview."""
        with service.locked(self.context, PREVIEWS_LOCK, "open the previews frontend", wait=True):
            return previews.serve_previews(self.context, self.previews)

    def teardown_previews(self, desired: list[DesiredApp]) -> list[str]:
        done = []
        for app in previews.stale_previews(self.context, [entry.app for entry in desired]):
            try:
                plan = previews.remove_preview(self.context, app)
            except LockedError:  # a swap holds it: the next pass removes it
                continue
            except ShipyardError as exc:
                log.error("preview teardown failed", app=app, error=str(exc))
                continue
            sealed_store.forget(self.context.home, app)
            done.append(f"{app}: " + "; ".join(plan.describe()))
        return done

    def known_apps(self) -> list[str]:
        return [record.app for record in self.context.store.apps()]

    def recover(self, app: str) -> list[str]:
        record = self.context.store.app(app)
        repository = record.spec.image if record else None
        with service.locked(self.context, app, "agent start: recover", wait=True):
            state, done = service.recover(self.context, app, repository)
        if record is not None and self._stopped_while_serving(record, state):
            # After a reboot (or the engine's restart) the serving release's container is gone or
            # stopped: start it again from this host's own records, without waiting for the controller.
            spec = record.spec
            secrets = self.serving_secrets(app, spec, record.active_release_id)
            maintenance.start_app(self.context, app, secrets=secrets, wait=True, host_labels=self.labels)
            done.append(f"started {record.active_release_id} again, which served before this host stopped")
        return done

    def serving_secrets(self, app: str, spec: AppSpec, release_id: str | None) -> dict[str, str]:
        """The secrets of the release this host serves, from the envelope it kept at that release's swap."""
        return self.release_secrets(spec, sealed_store.kept(self.context.home, app, release_id))

    def release_secrets(self, spec: AppSpec, sealed: str | None) -> dict[str, str]:
        """The values of the release's env.secret, opened from its sealed envelope with this host's key."""
        return open_sealed(
            sealed, env=None, names=spec.env.secret, provider_for=host_provider(self.secrets_key_file)
        )

    @staticmethod
    def _stopped_while_serving(record: AppRecord, state: AppState) -> bool:
        """An active release, not in maintenance, whose slot has no running container."""
        if not record.active_release_id or not record.active_slot or record.maintenance:
            return False
        return state.container_in(record.active_slot) is None

    def observe(self, app: str) -> LocalApp:
        record = self.context.store.app(app)
        if record is None or record.active_release_id is None or record.active_slot is None:
            return LocalApp(None)
        state = observe(self.context, app)
        container = state.container_in(record.active_slot)
        server = state.servers.get(record.active_slot)
        healthy = server is not None and server.serving and server.operational == "up"
        if record.maintenance:
            # haproxy sends the app nothing and checks nothing: the release is as healthy as it was
            # at its swap while its container runs (a fleet's maintenance), not once it stopped.
            healthy = container is not None
        workers = tuple(
            WorkerSample(worker.process, worker.id, worker.restart_count)
            for worker in state.workers
            if worker.release_id == record.active_release_id and worker.running
        )
        return LocalApp(
            record.active_release_id,
            container is not None,
            healthy,
            self._counters(app),
            record.maintenance,
            workers,
        )

    def log_sources(self, app: str, process: str | None) -> dict[str, str]:
        record = self.context.store.app(app)
        if record is None or record.active_release_id is None:
            raise NotFoundError(f"{app} does not run on this host.")
        # Registered for masking: an agent restarted since its last swap has not opened them yet.
        self.serving_secrets(app, record.spec, record.active_release_id)
        containers = [
            c
            for c in self.context.engine.containers(app)
            if c.release_id == record.active_release_id and c.running and process in (None, c.process)
        ]
        if not containers:
            wanted = f"no {process} container" if process else "no container"
            raise NotFoundError(f"{app} runs {wanted} of {record.active_release_id} on this host.")
        return {c.name: c.process for c in sorted(containers, key=lambda c: c.name)}

    def container_log(self, name: str, since: float | None, tail: int | None) -> list[TimedLine]:
        return parse_timed(self.context.engine.timed_logs(name, since, tail))

    def enter_maintenance(self, desired: DesiredApp, message: str) -> str:
        plan = maintenance.enter_maintenance(self.context, desired.app, message=message or None, wait=False)
        return plan.describe()[0]

    def leave_maintenance(self, desired: DesiredApp) -> str:
        record = self.context.store.app(desired.app)
        spec = record.spec if record is not None else spec_from_snapshot(desired.spec)
        release_id = record.active_release_id if record is not None else None
        secrets = self.serving_secrets(desired.app, spec, release_id)
        plan = maintenance.start_app(
            self.context, desired.app, secrets=secrets, wait=False, host_labels=self.labels
        )
        return plan.describe()[-1]

    def _counters(self, app: str) -> TrafficCounters | None:
        try:
            counted = self.context.proxy.backend_counters(proxy_sync.app_backend(self.context.store, app))
        except ProxyError:  # haproxy is down or busy: the report goes without counters
            return None
        return None if counted is None else TrafficCounters(requests=counted[0], responses_5xx=counted[1])

    def stop_all(self) -> list[str]:
        """Drain: every app's haproxy answers 503 and its containers stop (maintenance)."""
        done = []
        for app in self.known_apps():
            maintenance.stop_app(self.context, app, wait=True)
            done.append(f"stopped {app}")
        return done

    def run_task(self, order: TaskOrder, on_line: Callable[[str], None]) -> int:
        """The task's command in a throwaway container of its release, checked like a swap first."""
        violation = task_violation(self.policy.rules, order.kind)
        if violation is not None:
            raise PolicyError(
                f"this host's policy ({self.policy.source}) refuses task {order.id}: {violation}; "
                "nothing ran."
            )
        if self.trusted_keys is not None:
            payload = release_payload(order.app, order.image, order.digest, order.spec)
            self.trusted_keys.verify(payload, order.signature, what=f"release {order.release}")
        desired = DesiredApp(
            app=order.app,
            release_id=order.release_id,
            release=order.release,
            image=order.image,
            digest=order.digest,
            spec=order.spec,
            deployment_id=None,
        )
        release = host_release(desired, self.address, utcnow())
        spec = release.app_spec
        # As for a swap: env.secret comes sealed with the release, never from this host's environment.
        self.policy.with_stored_secrets(spec.env.secret).enforce(
            spec, release.pinned_image, release=release.id
        )
        # The same secrets as the app's containers get: sealed with the release, opened with this host's key.
        secrets = self.release_secrets(spec, order.sealed_secrets)
        return service.run_task(
            self.context,
            release,
            order.kind,
            order.argv,
            secrets=secrets,
            on_line=on_line,
            timeout=order.timeout,
            name=f"{order.app}-task-{order.id}",
        )

    def check_exec(self, order: TaskOrder) -> str:
        violation = task_violation(self.policy.rules, order.kind)
        if violation is not None:
            raise PolicyError(
                f"this host's policy ({self.policy.source}) refuses exec session {order.id}: {violation}; "
                "nothing ran."
            )
        return service.active_container(self.context, order.app)

    def start_exec(self, container: str, argv: list[str], *, tty: bool) -> ExecProcess:
        return self.context.engine.attach_exec(container, argv, tty=tty)

    def converge(self, desired: DesiredApp, reporter: Reporter) -> str:
        """The health-gated swap to the desired release; raises ShipyardError when it fails."""
        if self.trusted_keys is not None:
            # Before anything is stored or pulled: a forged release must leave no trace on the host.
            payload = release_payload(desired.app, desired.image, desired.digest, desired.spec)
            self.trusted_keys.verify(payload, desired.signature, what=f"release {desired.release}")
        release = host_release(desired, self.address, utcnow())
        spec = release.app_spec
        if spec.requires.as_dict():
            enforce_requirements(spec, self.host_versions(), release=release.id)
        # Before the store, the environment or any step: a refused release leaves no trace but its report.
        # env.secret comes sealed with the release, never from this host's environment.
        policy = self.policy.with_stored_secrets(spec.env.secret)
        policy.enforce(spec, release.pinned_image, release=release.id)
        secrets = self.release_secrets(spec, desired.sealed_secrets)
        # A preview's slot ports are this host's to give (and its pool backend), before it is recorded.
        release = previews.place_preview(self.context, release, self.previews)
        spec = release.app_spec
        # The store must know the release before the swap: recovery after a crash looks it up.
        self.context.store.save_release(release)
        record = self.context.store.app(release.app)
        serving = record.active_release_id if record is not None else None
        sealed_store.keep(self.context.home, release.app, release.id, desired.sealed_secrets, serving=serving)
        outcome = service.deploy(
            self.context,
            spec,
            release.pinned_image,
            release=release,
            secrets=secrets,
            wait=True,
            reporter=reporter,
            policy=policy,
            host_labels=self.labels,
        )
        if outcome.plan.empty:
            return outcome.plan.describe()[0]
        cutover = outcome.timings.get("cutover")
        return f"{release.id} serves" + (f" (cutover {cutover * 1000:.1f} ms)" if cutover is not None else "")
