"""In-memory fakes of the host's ports (shipyard.host.ports): an engine, haproxy, a health check and
a reaper that behave like the real ones in the ways the use cases depend on; the store is the real
HostStore on an in-memory SQLite database.

They let the swap, the recovery from a crash at every command, maintenance, prune and remove run as
unit tests in milliseconds; the real adapters are exercised by tests/integration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.adapters.haproxy_config import PreviewPool, ProxiedApp
from shipyard.domain.models import (
    LABEL_APP,
    LABEL_DIGEST,
    LABEL_PROCESS,
    LABEL_RELEASE,
    LABEL_SLOT,
    LABEL_STOP_SIGNAL,
    LABEL_STOP_TIMEOUT,
    SLOTS,
    AdminState,
    ContainerInfo,
    ContainerSpec,
    OpenStreams,
    ServerState,
)
from shipyard.domain.spec import AppSpec, HealthcheckSpec, parse_spec
from shipyard.errors import DockerError, NotFoundError, ProxyError
from shipyard.host.context import HostContext
from shipyard.host.health import HealthResult
from shipyard.host.store import HostStore
from shipyard.lab.ports import free_port_pair


@dataclass
class FakeContainer:
    spec: ContainerSpec
    status: str = "running"
    started: int = 0
    restarts: int = 0
    signals: list[str] = field(default_factory=list)

    def info(self) -> ContainerInfo:
        labels = self.spec.labels
        return ContainerInfo(
            id=self.spec.name,
            name=self.spec.name,
            app=labels[LABEL_APP],
            slot="green" if labels.get(LABEL_SLOT) == "green" else "blue",
            release_id=labels[LABEL_RELEASE],
            digest=labels[LABEL_DIGEST],
            status=self.status,
            started_at=f"{self.started:06d}",
            process=labels.get(LABEL_PROCESS, "web"),
            stop_signal=labels.get(LABEL_STOP_SIGNAL, "TERM"),
            stop_timeout=int(labels.get(LABEL_STOP_TIMEOUT, "10")),
        )


@dataclass
class FakeEngine:
    images: set[str] = field(default_factory=set)  # repository@digest
    by_name: dict[str, FakeContainer] = field(default_factory=dict)
    pulls: list[str] = field(default_factory=list)
    removed_images: list[str] = field(default_factory=list)
    started: int = 0
    # Worker containers whose process keeps exiting (the restart policy restarts it), by process name.
    crash_looping: set[str] = field(default_factory=set)
    # Exit codes of a worker's health command, by process name (0 when not listed).
    exec_codes: dict[str, int] = field(default_factory=dict)
    # Containers that exit when signalled (the others keep finishing their jobs until killed).
    quick_to_exit: bool = False
    killed: list[str] = field(default_factory=list)  # names removed while running (SIGKILL)
    execs: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    # Throwaway containers run to their end (run_once): each spec, and what the next ones print and exit with.
    ran_once: list[ContainerSpec] = field(default_factory=list)
    once_output: list[str] = field(default_factory=list)
    once_exit_code: int = 0

    def containers_of(self, app: str) -> list[FakeContainer]:
        return [c for c in self.by_name.values() if c.spec.labels.get(LABEL_APP) == app]

    def running(self, app: str) -> list[str]:
        return sorted(c.spec.name for c in self.containers_of(app) if c.status == "running")

    # the Engine port
    def containers(self, app: str) -> list[ContainerInfo]:
        return [c.info() for c in self.containers_of(app)]

    def labelled(self, label: str) -> list[ContainerInfo]:
        return [c.info() for c in self.by_name.values() if label in c.spec.labels]

    def present_digests(self, repository: str) -> frozenset[str]:
        return frozenset(ref.partition("@")[2] for ref in self.images if ref.partition("@")[0] == repository)

    def image_present(self, reference: str) -> bool:
        return reference in self.images

    def pull(
        self,
        repository: str,
        digest: str,
        auth: dict[str, str] | None,
        progress: Callable[[dict[str, Any]], None],
    ) -> None:
        progress({"id": "layer", "status": "Pull complete"})
        self.pulls.append(f"{repository}@{digest}")
        self.images.add(f"{repository}@{digest}")

    def run(self, spec: ContainerSpec) -> str:
        if spec.name in self.by_name:
            raise DockerError(f"starting container {spec.name} failed: the name is in use")
        if spec.image not in self.images:
            raise NotFoundError(f"starting container {spec.name} failed: no such image {spec.image}")
        self.started += 1
        self.by_name[spec.name] = FakeContainer(spec, "running", self.started)
        return spec.name

    def run_once(self, spec: ContainerSpec, on_line: Callable[[str], None], timeout: float) -> int:
        if spec.image not in self.images:
            raise NotFoundError(f"running a container of {spec.image} failed: no such image")
        self.ran_once.append(spec)
        for line in self.once_output:
            on_line(line)
        return self.once_exit_code

    def exec_in(self, name: str, argv: list[str], on_output: Callable[[str], None]) -> int:
        if name not in self.by_name or self.by_name[name].status != "running":
            raise NotFoundError(f"running a command in container {name} failed: it is not running")
        on_output(" ".join(argv) + "\n")
        return 0

    def attach_exec(self, name: str, argv: list[str], *, tty: bool) -> Any:
        """No interactive exec on the fakes (tests/unit/test_agent_exec_relay.py has its own process)."""
        raise NotFoundError(f"starting a command in container {name} failed: the fake engine has no exec")

    def status(self, name: str) -> tuple[str, int | None]:
        if name not in self.by_name:
            raise NotFoundError(f"inspecting container {name} failed: no such container")
        status = self.by_name[name].status
        return status, 0 if status == "exited" else None

    def stop(self, name: str, timeout: int) -> None:
        if name in self.by_name:
            self.by_name[name].status = "exited"

    def kill(self, name: str, signal: str) -> None:
        if name in self.by_name and self.by_name[name].status == "running":
            self.by_name[name].signals.append(signal)
            if self.quick_to_exit:
                self.by_name[name].status = "exited"

    def exec(self, name: str, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        container = self.by_name[name]
        self.execs.append((name, tuple(argv)))
        return self.exec_codes.get(container.spec.labels.get(LABEL_PROCESS, "web"), 0), ""

    def restarts(self, name: str) -> int:
        container = self.by_name[name]
        if container.spec.labels.get(LABEL_PROCESS) in self.crash_looping:
            container.restarts += 1  # each look finds it restarted once more
        return container.restarts

    def remove(self, name: str) -> None:
        container = self.by_name.pop(name, None)
        if container is not None and container.status == "running":
            self.killed.append(name)

    def remove_image(self, reference: str) -> None:
        if any(c.spec.image == reference for c in self.by_name.values()):
            return  # the engine refuses to remove an image a container uses; the adapter ignores it
        self.images.discard(reference)
        self.removed_images.append(reference)

    def logs(self, name: str, tail: int = 20) -> str:
        return f"log of {name}\n"

    def follow_logs(self, name: str, tail: int = 50) -> Iterator[str]:
        yield self.logs(name, tail)

    def timed_logs(self, name: str, since: float | None = None, tail: int | None = None) -> str:
        return f"2026-01-01T00:00:00.5Z log of {name}\n"

    def data_root(self) -> str:
        return "/var/lib/docker"

    def version(self) -> str:
        return "24.0.0-fake"

    def close(self) -> None:
        pass


@dataclass
class FakeProxy:
    """haproxy as the host sees it: a config file of apps, a process, one backend per app with a
    blue and a green server. A reload keeps the runtime's server states (the state file); a start
    takes them from the config (the active slot serves, the other is disabled)."""

    root: Path
    is_running: bool = False
    config: list[ProxiedApp] = field(default_factory=list)
    loaded: list[ProxiedApp] = field(default_factory=list)  # the config the process runs
    pages: dict[str, str] = field(default_factory=dict)
    servers: dict[str, dict[str, ServerState]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    pool: PreviewPool | None = None  # the previews frontend and pool of the config file
    routes_loaded: dict[str, str] = field(default_factory=dict)  # the previews map the process runs

    @property
    def binary(self) -> str:
        return "haproxy"

    def serving(self, backend: str) -> list[str]:
        return [slot for slot, server in self.servers.get(backend, {}).items() if server.serving]

    def kill(self) -> None:
        """The process dies: every runtime state is gone."""
        self.is_running = False
        self.servers = {}

    # the Proxy port
    def running(self) -> bool:
        return self.is_running

    def start(self) -> None:
        if not self.config and self.pool is None:
            raise ProxyError("haproxy failed to start: the config has no frontend")
        self.events.append("start")
        self.is_running = True
        self.loaded = list(self.config)
        self.servers = self._configured_servers()
        self.routes_loaded = dict(self.pool.routes) if self.pool else {}

    def reload(self, backend: str | None) -> None:
        if not self.is_running:
            self.start()
            return
        self.events.append("reload")
        self.loaded = list(self.config)
        kept = self.servers
        self.servers = {
            name: kept.get(name) or servers for name, servers in self._configured_servers().items()
        }
        self.routes_loaded = dict(self.pool.routes) if self.pool else {}
        if backend is not None and backend not in self.servers:
            raise ProxyError(f"haproxy did not reload within 10 s: {backend} is not in the config")

    def stop(self) -> None:
        self.events.append("stop")
        self.kill()

    def page_path(self, app: str) -> Path:
        return self.root / f"maintenance-{app}.html"

    def has_page(self, app: str) -> bool:
        return app in self.pages

    def write_page(self, app: str, text: str) -> None:
        self.pages[app] = text

    def forget_page(self, app: str) -> None:
        self.pages.pop(app, None)

    def write_config(self, apps: Sequence[ProxiedApp], previews: PreviewPool | None = None) -> None:
        self.config = list(apps)
        self.pool = previews

    def add_route(self, host: str, backend: str) -> None:
        self._runtime(f"add map {host} {backend}")
        self.routes_loaded[host] = backend
        self.events.append(f"add map {host}")

    def remove_route(self, host: str) -> None:
        self._runtime(f"del map {host}")
        self.routes_loaded.pop(host, None)
        self.events.append(f"del map {host}")

    def routes(self) -> dict[str, str]:
        self._runtime("show map")
        return dict(self.routes_loaded)

    def save_server_state(self) -> None:
        self._runtime("show servers state")

    def server_states(self, backend: str) -> dict[str, ServerState]:
        self._runtime(f"show servers state {backend}")
        return dict(self.servers.get(backend, {}))

    def sessions(self, backend: str) -> dict[str, int]:
        self._runtime("show stat")
        return {slot: 0 for slot in self.servers.get(backend, {})}

    def open_streams(self, backend: str, server: str) -> OpenStreams:
        self._runtime("show sess all")
        return OpenStreams()

    def backend_counters(self, backend: str) -> tuple[int, int] | None:
        self._runtime("show stat")
        return (0, 0) if backend in self.servers else None

    def switch(self, backend: str, to_slot: str, from_slot: str | None, address: tuple[str, int]) -> None:
        self._server(backend, to_slot)
        self.set_state(backend, to_slot, "ready")
        self.servers[backend][to_slot] = replace(self.servers[backend][to_slot], operational="up")
        if from_slot:
            self.set_state(backend, from_slot, "drain")
        self.events.append(f"switch {backend} {to_slot}")

    def set_state(self, backend: str, slot: str, state: AdminState) -> None:
        server = self._server(backend, slot)
        self.servers[backend][slot] = replace(server, admin=state)

    def _runtime(self, command: str) -> None:
        if not self.is_running:
            raise ProxyError(f"haproxy's admin socket does not answer ({command})")

    def _server(self, backend: str, slot: str) -> ServerState:
        self._runtime(f"set server {backend}/{slot}")
        if slot not in self.servers.get(backend, {}):
            raise ProxyError(f"haproxy refused 'set server {backend}/{slot}': No such backend")
        return self.servers[backend][slot]

    def _configured_servers(self) -> dict[str, dict[str, ServerState]]:
        servers = {app.backend: self._configured(app) for app in self.config}
        if self.pool is not None:
            for index in range(self.pool.slots):
                name = f"preview_{index}"
                servers.setdefault(name, {slot: ServerState(name, slot, "down", "maint") for slot in SLOTS})
        return servers

    @staticmethod
    def _configured(app: ProxiedApp) -> dict[str, ServerState]:
        def server(slot: str) -> ServerState:
            serving = slot == app.active_slot and not app.maintenance
            return ServerState(
                app.backend, slot, "up" if serving else "down", "ready" if serving else "maint"
            )

        return {slot: server(slot) for slot in SLOTS}


@dataclass
class FakeHealth:
    """Healthy when the container runs, unless its URL is listed as failing."""

    failing: set[str] = field(default_factory=set)
    probed: list[str] = field(default_factory=list)

    def __call__(
        self, url: str, check: HealthcheckSpec, container_status: Callable[[], tuple[str, int | None]]
    ) -> HealthResult:
        self.probed.append(url)
        status, _ = container_status()
        if status != "running":
            return HealthResult(False, f"the container is {status}", 0.0)
        if url in self.failing:
            return HealthResult(False, "answered 500", 0.0)
        return HealthResult(True, "200 OK", 0.0)


@dataclass
class FakeReaper:
    spawned: list[tuple[str, float]] = field(default_factory=list)

    def spawn(self, app: str, seconds: float) -> None:
        self.spawned.append((app, seconds))


@dataclass
class FakeHost:
    """A host context over the fakes, with the handles a test inspects."""

    context: HostContext
    engine: FakeEngine
    proxy: FakeProxy
    store: HostStore
    health: FakeHealth
    reaper: FakeReaper

    def close(self) -> None:
        self.store.close()


def fake_host(home: Path) -> FakeHost:
    engine, proxy, health, reaper = FakeEngine(), FakeProxy(home / "haproxy"), FakeHealth(), FakeReaper()
    store = HostStore(":memory:")
    context = HostContext.of(home, store=store, engine=engine, proxy=proxy, reaper=reaper, health=health)
    return FakeHost(context, engine, proxy, store, health, reaper)


REPOSITORY = "127.0.0.1:5000/web"
DIGESTS = {version: "sha256:" + str(number) * 64 for number, version in enumerate(["v1", "v2", "v3"], 1)}


def app_spec(app: str = "web", **overrides: Any) -> AppSpec:
    port, listen = free_port_pair(), free_port_pair()
    document: dict[str, Any] = {
        "app": app,
        "image": REPOSITORY,
        "port": port,
        "proxy": {"listen": f"127.0.0.1:{listen}"},
    }
    document.update(overrides)
    return parse_spec(document)


def now() -> datetime:
    return datetime.now(UTC)
