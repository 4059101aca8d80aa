"""Where this host keeps its state, and the adapters one command works with."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from shipyard.adapters.docker import DockerEngine
from shipyard.adapters.haproxy import HaproxyProcess
from shipyard.adapters.haproxy_config import ProxyPaths
from shipyard.host.store import HostStore


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

    @cached_property
    def store(self) -> HostStore:
        return HostStore(self.home / "history.sqlite3")

    @cached_property
    def engine(self) -> DockerEngine:
        return DockerEngine(self.docker_url)

    @cached_property
    def proxy_paths(self) -> ProxyPaths:
        root = self.home / "haproxy"
        root.mkdir(parents=True, exist_ok=True)
        return ProxyPaths(root)

    @cached_property
    def proxy(self) -> HaproxyProcess:
        return HaproxyProcess(self.proxy_paths)

    @property
    def lock_dir(self) -> Path:
        return self.home / "locks"

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if "engine" in self.__dict__:
            self.engine.close()
