"""The lab's record of what it started, as JSON in its directory, so separate CLI calls share one lab."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import NotFoundError

STATE_FILE = "lab.json"
PREVIEW_GROUP = "preview"
PREVIEWS_PORT = 8800
DEFAULT_PREVIEWS_DOMAIN = "preview.lab.test"
# The lab's controller looks at its previews this often (the controller's own default is 30 s): a
# closed PR or a passed TTL is gone within seconds, which the lab's tests and benchmarks wait for.
LAB_PREVIEW_RECONCILE_INTERVAL = 3.0


@dataclass
class HostRecord:
    name: str
    index: int
    address: str
    root: str
    engine_pid: int | None = None
    agent_pid: int | None = None
    # The host's group: the lab's own (empty) or "preview", whose hosts run the apps' previews.
    group: str = ""

    @property
    def previews_listen(self) -> str:
        """Where a preview host's haproxy serves previews by host name, on the host's own address."""
        return f"{self.address}:{PREVIEWS_PORT}"

    @property
    def home(self) -> Path:
        return Path(self.root) / "home"

    @property
    def engine_root(self) -> Path:
        return Path(self.root) / "engine"

    @property
    def docker_url(self) -> str:
        return f"unix://{self.engine_root / 'docker.sock'}"


@dataclass
class ControllerRecord:
    """A controller replica beyond the first (the first is LabState.controller_port/controller_pid)."""

    port: int
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@dataclass
class AppPlan:
    """The lab's demo app: the same ports on every host, each host on its own address."""

    name: str = "web"
    port: int = 3000
    listen_port: int = 8080

    def listen(self, address: str) -> str:
        return f"{address}:{self.listen_port}"


@dataclass
class LabState:
    root: str
    subnet: str = "127.0.1"
    group: str = "production"
    registry_address: str = ""
    registry_pid: int | None = None
    controller_port: int = 0
    controller_pid: int | None = None
    edge_port: int = 0
    app: AppPlan = field(default_factory=AppPlan)
    hosts: list[HostRecord] = field(default_factory=list)
    # The controllers' database: empty for SQLite in the lab's directory, else a PostgreSQL URL.
    database_url: str = ""
    # A PostgreSQL server the lab started itself (`lab up --db postgres`), stopped by `lab down`.
    postgres_root: str = ""
    postgres_port: int = 0
    extra_controllers: list[ControllerRecord] = field(default_factory=list)
    # Requests whose Host ends in this domain go, at the edge, to the preview hosts' previews listeners.
    previews_domain: str = DEFAULT_PREVIEWS_DOMAIN
    # The controller's --preview-reconcile-interval, kept here so that every restart keeps it.
    preview_reconcile_interval: float = LAB_PREVIEW_RECONCILE_INTERVAL

    @property
    def path(self) -> Path:
        return Path(self.root)

    @property
    def controller_url(self) -> str:
        return f"https://127.0.0.1:{self.controller_port}"

    @property
    def controller_urls(self) -> list[str]:
        """Every controller replica's URL, the first one first."""
        return [self.controller_url, *(record.url for record in self.extra_controllers)]

    @property
    def controller_pids(self) -> list[int | None]:
        return [self.controller_pid, *(record.pid for record in self.extra_controllers)]

    @property
    def tls_dir(self) -> Path:
        """The lab's throwaway CA certificate and the controller's certificate and key."""
        return self.path / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def release_key_file(self) -> Path:
        """The controller's release signing key; agents trust release.key.pub beside it."""
        return self.path / "controller" / "release.key"

    @property
    def secrets_key_file(self) -> Path:
        """The master key of the lab's environment: `shipyard secrets set` in the lab directory seals with
        it, and each agent opens releases' secrets with its own copy (--secrets-key-file)."""
        return self.path / "secrets" / f"{self.group}.key"

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    @property
    def admin_token_file(self) -> Path:
        return self.path / "controller" / "admin-token"

    @property
    def image(self) -> str:
        return f"{self.registry_address}/{self.app.name}"

    def group_of(self, host: HostRecord) -> str:
        return host.group or self.group

    def hosts_of(self, group: str) -> list[HostRecord]:
        return [host for host in self.hosts if self.group_of(host) == group]

    def host(self, name: str) -> HostRecord:
        for host in self.hosts:
            if host.name == name:
                return host
        raise NotFoundError(f"the lab has no host {name!r}; see 'shipyard lab status'.")

    def next_index(self) -> int:
        used = {host.index for host in self.hosts}
        return next(index for index in range(1, 255) if index not in used)

    def save(self) -> None:
        temporary = self.path / (STATE_FILE + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        os.replace(temporary, self.path / STATE_FILE)


def load_state(root: Path) -> LabState:
    path = root / STATE_FILE
    if not path.is_file():
        raise NotFoundError(f"no lab in {root}; start one with 'shipyard lab up --dir {root}'.")
    data: dict[str, Any] = json.loads(path.read_text())
    hosts = [HostRecord(**host) for host in data.pop("hosts", [])]
    app = AppPlan(**data.pop("app", {}))
    extra = [ControllerRecord(**record) for record in data.pop("extra_controllers", [])]
    return LabState(**data, app=app, hosts=hosts, extra_controllers=extra)
