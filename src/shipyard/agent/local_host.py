"""The real HostPort: this host's Docker Engine and haproxy, through shipyard.host.service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shipyard.agent.localize import host_release
from shipyard.agent.ports import LocalApp
from shipyard.controller.schemas.agent import DesiredApp, TrafficCounters
from shipyard.domain.policy import AgentPolicy
from shipyard.domain.spec import spec_from_snapshot
from shipyard.errors import ProxyError
from shipyard.host import service
from shipyard.host.context import HostContext
from shipyard.host.executor import Reporter
from shipyard.host.observe import observe
from shipyard.host.policy import HostPolicy
from shipyard.host.proxy_sync import backend_name
from shipyard.host.store import utcnow
from shipyard.secrets.resolve import resolve_secrets
from shipyard.signing import TrustedKeys, release_payload


@dataclass
class LocalHost:
    context: HostContext
    address: str | None = None
    environ: Mapping[str, str] | None = None
    policy: HostPolicy = field(default_factory=lambda: HostPolicy(AgentPolicy(), "built-in defaults"))
    # When set, only releases signed by one of these keys run here (shipyard.signing).
    trusted_keys: TrustedKeys | None = None

    def known_apps(self) -> list[str]:
        return [record.app for record in self.context.store.apps()]

    def recover(self, app: str) -> list[str]:
        record = self.context.store.app(app)
        repository = str(record.spec.get("image")) if record else None
        with service.locked(self.context, app, "agent start: recover", wait=True):
            _state, done = service.recover(self.context, app, repository)
        return done

    def observe(self, app: str) -> LocalApp:
        record = self.context.store.app(app)
        if record is None or record.active_release_id is None or record.active_slot is None:
            return LocalApp(None)
        state = observe(self.context, app)
        container = state.container_in(record.active_slot)
        server = state.servers.get(record.active_slot)
        healthy = server is not None and server.serving and server.operational == "up"
        return LocalApp(
            record.active_release_id,
            container is not None,
            healthy and not record.maintenance,
            self._counters(app),
        )

    def _counters(self, app: str) -> TrafficCounters | None:
        try:
            counted = self.context.proxy.runtime.backend_counters(backend_name(app))
        except ProxyError:  # haproxy is down or busy: the report goes without counters
            return None
        return None if counted is None else TrafficCounters(requests=counted[0], responses_5xx=counted[1])

    def converge(self, desired: DesiredApp, reporter: Reporter) -> str:
        """The health-gated swap to the desired release; raises ShipyardError when it fails."""
        if self.trusted_keys is not None:
            # Before anything is stored or pulled: a forged release must leave no trace on the host.
            payload = release_payload(desired.app, desired.image, desired.digest, desired.spec)
            self.trusted_keys.verify(payload, desired.signature, what=f"release {desired.release}")
        release = host_release(desired, self.address, utcnow())
        spec = spec_from_snapshot(release.spec)
        # Before the store, the environment or any step: a refused release leaves no trace but its report.
        self.policy.enforce(spec, release.pinned_image, release=release.id)
        # The store must know the release before the swap: recovery after a crash looks it up.
        self.context.store.save_release(release)
        secrets = resolve_secrets(spec.env.secret, None, self.environ)
        outcome = service.deploy(
            self.context,
            spec,
            release.pinned_image,
            release=release,
            secrets=secrets,
            wait=True,
            reporter=reporter,
            policy=self.policy,
        )
        if outcome.plan.empty:
            return outcome.plan.describe()[0]
        cutover = outcome.timings.get("cutover")
        return f"{release.id} serves" + (f" (cutover {cutover * 1000:.1f} ms)" if cutover is not None else "")
