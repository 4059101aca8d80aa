"""Run the agent as a process: settings, identity, recovery, then the loop until SIGTERM or SIGINT."""

from __future__ import annotations

import dataclasses
import signal
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import structlog

from shipyard import __version__
from shipyard.adapters.aws import DEFAULT_METADATA_URL, AwsCloud
from shipyard.agent.backoff import Backoff
from shipyard.agent.identity import TOKEN_FILE_NAME, agent_token
from shipyard.agent.lifecycle import HostLifecycle, LifecycleSettings
from shipyard.agent.local_host import LocalHost
from shipyard.agent.loop import AgentLoop
from shipyard.domain.preview_host import PreviewSettings
from shipyard.errors import ControllerError, ShipyardError
from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.schemas.agent import DesiredState, HostVersions
from shipyard.host.context import HostContext
from shipyard.host.policy import agent_policy
from shipyard.host.versions import detect_versions
from shipyard.secrets.local_key import read_key_file
from shipyard.signing import load_trusted_keys

log = structlog.get_logger("shipyard.agent")


@dataclass(frozen=True)
class AgentSettings:
    controller: str  # one URL, or several comma-separated (replicas): the client fails over between them
    home: Path
    name: str = field(default_factory=socket.gethostname)
    join_token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    group: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    docker_url: str | None = None
    address: str | None = None
    poll_wait: float = 25.0
    max_backoff: float = 30.0
    retry_failed_after: float = 60.0
    policy_file: Path | None = None
    trusted_keys: tuple[Path, ...] = ()
    # The environment's master key, opening releases' secrets sealed by the local provider.
    secrets_key_file: Path | None = None
    ca_file: Path | None = None
    insecure_http: bool = False
    # Auto Scaling lifecycle (--aws-lifecycle): None on a host outside an Auto Scaling group.
    aws: AwsSettings | None = None
    # Where previews are served and the ports they get: --previews-listen, --preview-slots, --preview-ports.
    previews: PreviewSettings = field(default_factory=PreviewSettings)
    # --previews-listen given: the previews frontend listens from the start, not from the first preview.
    serve_previews_at_start: bool = False

    @property
    def token_path(self) -> Path:
        return self.token_file or self.home / TOKEN_FILE_NAME

    def client(self, token: str | None = None) -> ControllerClient:
        """A client under the URL policy, verifying the controller against `ca_file`."""
        return ControllerClient(
            self.controller, token, ca_file=self.ca_file, insecure_http=self.insecure_http
        )


@dataclass(frozen=True)
class AwsSettings:
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    region: str | None = None
    endpoint_url: str | None = None
    metadata_url: str = DEFAULT_METADATA_URL
    instance_id: str | None = None

    def cloud(self) -> AwsCloud:
        return AwsCloud(
            region=self.region,
            endpoint_url=self.endpoint_url,
            metadata_url=self.metadata_url,
            instance_id=self.instance_id,
        )


class Stopping(Exception):
    """Raised by the signal handler between swaps: the agent stops at once."""


def _refused(exc: ControllerError) -> bool:
    return "refused the token" in exc.message


def identify(
    settings: AgentSettings,
    backoff: Backoff,
    stop: threading.Event,
    versions: HostVersions | None = None,
) -> str:
    """The agent token; registration is retried with backoff while the controller is unreachable."""
    with settings.client() as client:
        client.host_versions = versions
        while True:
            try:
                return agent_token(
                    client,
                    settings.token_path,
                    join_token=settings.join_token,
                    name=settings.name,
                    address=settings.address or "",
                    labels=settings.labels,
                    group=settings.group,
                    agent_version=__version__,
                )
            except ControllerError as exc:
                if _refused(exc):
                    raise
                delay = backoff.next_delay()
                log.info("controller unreachable at registration", retry_in=round(delay, 2), error=str(exc))
                if stop.wait(delay):
                    raise Stopping() from exc


def announce_versions(client: ControllerClient) -> None:
    """One report at start, so the controller learns this host's versions even when it runs no app yet."""
    try:
        client.report([], agent_version=__version__)
    except ControllerError as exc:  # the loop's reports carry them again later
        log.info("versions not reported yet", error=str(exc))


def run_guarded(agent: AgentLoop, stop: threading.Event) -> DesiredState | None:
    """One pass of the loop; an unexpected failure (an engine down, a bug) waits and retries."""
    try:
        return agent.run_once()
    except Stopping:
        raise
    except Exception as exc:  # the agent outlives any one failure; the host keeps serving meanwhile
        delay = agent.backoff.next_delay()
        log.error("agent pass failed", error=str(exc) or type(exc).__name__, retry_in=round(delay, 2))
        stop.wait(delay)
        return None


def lifecycle_pass(
    agent: AgentLoop, host: LocalHost, lifecycle: HostLifecycle, stop: threading.Event
) -> None:
    """One pass under the host's lifecycle: drain when asked, idle once drained, else the loop's pass."""
    try:
        reason = lifecycle.termination_reason()
        if reason is not None:
            log.warning("draining", reason=reason)
            for line in lifecycle.terminate(reason, host.stop_all):
                log.info("drain", what=line)
            return
    except ShipyardError as exc:
        log.error("drain check failed", error=str(exc))
    if lifecycle.drained:
        stop.wait(agent.poll_wait)
        return
    state = run_guarded(agent, stop)
    try:
        if lifecycle.launch_pending or lifecycle.registration_pending:  # else nothing to observe for it
            apps = state.apps if state is not None else None
            lifecycle.after_pass(apps, {app.app: host.observe(app.app) for app in apps or []})
    except ShipyardError as exc:
        log.error("lifecycle step failed", error=str(exc))


def serve_previews(host: LocalHost) -> None:
    try:
        done = host.serve_previews()
    except ShipyardError as exc:  # the apps serve on; previews wait for the first one to come
        log.error("previews frontend not opened", error=str(exc))
        return
    if done:
        log.info("previews", what=done)


def run_agent(settings: AgentSettings) -> None:
    settings.client().close()  # a refused URL or unreadable CA bundle stops the agent before anything runs
    stop = threading.Event()
    loop_ref: list[AgentLoop] = []
    lifecycle_ref: list[HostLifecycle] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        if not (loop_ref and loop_ref[0].busy):
            raise Stopping()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    trusted = load_trusted_keys(settings.trusted_keys) if settings.trusted_keys else None
    context = HostContext(home=settings.home, docker_url=settings.docker_url, actor=f"agent:{settings.name}")
    try:
        # Read first: a broken policy file stops the agent before it spends its join token.
        policy = agent_policy(
            settings.policy_file,
            home=settings.home,
            token_file=settings.token_path,
            docker_url=settings.docker_url,
        )
        if settings.secrets_key_file is not None:
            # Read once now: a missing or unprotected key stops the agent before it spends its join token.
            read_key_file(settings.secrets_key_file)
            # No release may mount the key that opens every release's secrets.
            policy = dataclasses.replace(policy, private=(*policy.private, str(settings.secrets_key_file)))
        backoff = Backoff(cap=settings.max_backoff)
        versions = detect_versions(context)
        token = identify(settings, backoff, stop, versions)
        with settings.client(token) as client:
            client.host_versions = versions
            announce_versions(client)
            host = LocalHost(
                context,
                settings.address,
                policy=policy,
                trusted_keys=trusted,
                versions=versions,
                secrets_key_file=settings.secrets_key_file,
                labels=settings.labels,
                previews=settings.previews,
            )
            poll_wait = settings.poll_wait
            if settings.aws is not None:  # termination and spot notices are read between polls
                poll_wait = min(poll_wait, settings.aws.lifecycle.check_every)
            agent = AgentLoop(client, host, poll_wait=poll_wait)
            agent.backoff, agent.agent_version = backoff, __version__
            agent.failures.first_retry = settings.retry_failed_after
            loop_ref.append(agent)
            lifecycle = HostLifecycle(
                settings.home,
                settings.aws.cloud() if settings.aws is not None else None,
                settings.aws.lifecycle if settings.aws is not None else LifecycleSettings(),
            )
            lifecycle_ref.append(lifecycle)
            lifecycle.begin()
            lifecycle.heartbeats()
            if not lifecycle.drained:
                for line in agent.start():
                    log.info("recovered", what=line)
                if settings.serve_previews_at_start:
                    serve_previews(host)
            log.info(
                "agent running", name=settings.name, controller=settings.controller, policy=policy.source
            )
            while not stop.is_set():
                lifecycle_pass(agent, host, lifecycle, stop)
    except Stopping:
        log.info("agent stopped", name=settings.name)
    finally:
        for lifecycle in lifecycle_ref:
            lifecycle.close()
        context.close()
