"""Where this host keeps its state, and the adapters one command works with.

The only module that names the concrete adapters (Docker Engine, haproxy, SQLite store, the reaper
process); everything else sees the ports of shipyard.host.ports, so a context built from fakes
(`HostContext.of`) runs the same use cases in memory. Adapters are built on first use and imported
then, so a command that never needs the engine never loads the Docker SDK.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType

from shipyard.host.health import wait_healthy
from shipyard.host.ports import Engine, HealthCheck, Proxy, Reaper, Store


def default_home() -> Path:
    if home := os.environ.get("SHIPYARD_HOME"):
        return Path(home)
    if os.geteuid() == 0:
        return Path("/var/lib/shipyard")
    return Path.home() / ".local" / "share" / "shipyard"


def default_actor() -> str:
    return os.environ.get("SHIPYARD_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class HostContext:
    home: Path = field(default_factory=default_home)
    docker_url: str | None = None
    actor: str = field(default_factory=default_actor)
    # the directory of shipyard.yml, where relative registry files are; None for a controller's release
    config_dir: Path | None = None

    @classmethod
    def of(
        cls,
        home: Path,
        *,
        store: Store,
        engine: Engine,
        proxy: Proxy,
        reaper: Reaper,
        health: HealthCheck,
        actor: str = "tester",
    ) -> HostContext:
        """A context over the given ports (in-memory fakes in tests)."""
        context = cls(home=home, actor=actor)
        context.__dict__.update(store=store, engine=engine, proxy=proxy, reaper=reaper, health=health)
        return context

    @cached_property
    def store(self) -> Store:
        from shipyard.host.store import HostStore

        return HostStore(self.home / "history.sqlite3")

    @cached_property
    def engine(self) -> Engine:
        from shipyard.adapters.docker import DockerEngine

        return DockerEngine(self.docker_url)

    @cached_property
    def proxy(self) -> Proxy:
        from shipyard.adapters.haproxy import HaproxyProcess
        from shipyard.adapters.haproxy_config import ProxyPaths

        root = self.home / "haproxy"
        root.mkdir(parents=True, exist_ok=True)
        return HaproxyProcess(ProxyPaths(root))

    @cached_property
    def reaper(self) -> Reaper:
        from shipyard.host.reaper_process import ReaperProcess

        return ReaperProcess(self.home, self.docker_url)

    @cached_property
    def health(self) -> HealthCheck:
        return wait_healthy

    @property
    def lock_dir(self) -> Path:
        return self.home / "locks"

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if "engine" in self.__dict__:
            self.engine.close()

    def __enter__(self) -> HostContext:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
