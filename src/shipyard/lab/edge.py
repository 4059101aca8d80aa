"""The lab's edge proxy: one haproxy in front of every host, like a cloud load balancer.

Hosts are servers added and removed through the runtime API (no reload). A new server starts DOWN
and joins only when its checks pass: the host's health path answers 200 and so does `/`. The second
check takes a host in maintenance out of the edge: its own haproxy then answers the health path itself
(so a single upstream balancer keeps showing the maintenance page), but `/` answers 503.

When every host is in maintenance (`shipyard maintenance on --env`), no host passes both checks: the
edge then sends requests to the same hosts in a second backend checked on the health path alone, so
clients get the hosts' maintenance page, as behind a cloud balancer checking the health path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.domain.names import HOST, is_name
from shipyard.errors import ConfigError, ProxyError
from shipyard.lab.state import DEFAULT_PREVIEWS_DOMAIN

BACKEND = "hosts"
PREVIEWS = "previews"  # the preview hosts' previews listeners: requests for a Host in the previews domain
PAGES = "pages"  # the same hosts, checked on the health path only: used when none is in BACKEND
OPERATIONAL = {"0": "down", "1": "starting", "2": "up", "3": "stopping"}
EDGE_REPLAY_METHODS = ("GET", "HEAD", "OPTIONS")


def _checks(paths: tuple[str, ...]) -> list[str]:
    checks: list[str] = []
    for path in paths:
        checks += [
            "    http-check connect",
            f"    http-check send meth GET uri {path}",
            "    http-check expect status 200",
        ]
    return checks


def render_edge_config(
    port: int,
    root: Path,
    check_paths: tuple[str, ...] = ("/up", "/"),
    previews_domain: str = DEFAULT_PREVIEWS_DOMAIN,
) -> str:
    checks = _checks(check_paths)
    if not is_name(HOST, previews_domain):
        raise ConfigError(f"the previews domain {previews_domain!r} is not a DNS domain.")
    lines = [
        "global",
        "    master-worker",
        f"    stats socket {root / 'admin.sock'} mode 600 level admin",
        f"    pidfile {root / 'haproxy.pid'}",
        "    maxconn 4000",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        # As on the hosts: a request whose connection failed goes to another host, but one a host may
        # have handled is replayed only when its method is idempotent.
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
        "",
        "frontend edge",
        f"    bind 127.0.0.1:{port}",
        f"    acl preview_host req.hdr(host),field(1,:),lower -m end .{previews_domain.lower()}",
        # No preview host up: a clear answer rather than the app's hosts or a bare 503.
        '    http-request return status 404 content-type text/plain string "no preview host is up" '
        f"if preview_host !{{ nbsrv({PREVIEWS}) gt 0 }}",
        f"    use_backend {PREVIEWS} if preview_host",
        f"    use_backend {BACKEND} if {{ nbsrv({BACKEND}) gt 0 }}",
        f"    default_backend {PAGES}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
        f"    http-request disable-l7-retry unless {{ method {' '.join(EDGE_REPLAY_METHODS)} }}",
        "    option httpchk",
        *checks,
        "    http-response set-header x-lab-host %[srv_name]",
        "",
        f"backend {PAGES}",
        "    balance roundrobin",
        f"    http-request disable-l7-retry unless {{ method {' '.join(EDGE_REPLAY_METHODS)} }}",
        "    option httpchk",
        *_checks(check_paths[:1]),
        "    http-response set-header x-lab-host %[srv_name]",
        "",
        # Any preview host can answer for any preview (each runs every preview of the group); the host's
        # own previews frontend answers 404 for a host name it does not route. A TCP check: there is
        # no path every preview answers.
        f"backend {PREVIEWS}",
        "    balance roundrobin",
        f"    http-request disable-l7-retry unless {{ method {' '.join(EDGE_REPLAY_METHODS)} }}",
        "    http-response set-header x-lab-host %[srv_name]",
        "",
    ]
    return "\n".join(lines)


@dataclass
class EdgeProxy:
    root: Path
    port: int
    previews_domain: str = DEFAULT_PREVIEWS_DOMAIN

    @property
    def runtime(self) -> HaproxyRuntime:
        return HaproxyRuntime(self.root / "admin.sock")

    @property
    def pidfile(self) -> Path:
        return self.root / "haproxy.pid"

    def start(self, timeout: float = 10.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "haproxy.cfg"
        config.write_text(render_edge_config(self.port, self.root, previews_domain=self.previews_domain))
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        with (self.root / "haproxy.log").open("ab") as log:
            done = subprocess.run([binary, "-W", "-D", "-f", str(config)], stdout=log, stderr=log)
        if done.returncode != 0:
            raise ProxyError(f"the edge haproxy did not start; see {self.root / 'haproxy.log'}.")
        deadline = time.monotonic() + timeout
        while not self.runtime.answers():
            if time.monotonic() > deadline:
                raise ProxyError("the edge haproxy did not answer on its admin socket.")
            time.sleep(0.05)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(self.pidfile.read_text().split()[0]), signal.SIGTERM)

    def add_host(self, name: str, listen: str, inter_ms: int = 300) -> None:
        """Add the host DOWN: in one batch it leaves maintenance and is marked down until checks pass."""
        for backend in (BACKEND, PAGES):
            server = f"{backend}/{name}"
            self._expect(f"add server {server} {listen} check inter {inter_ms} rise 2 fall 2", "New server")
            self.runtime.execute(
                f"enable health {server}",
                f"set server {server} state ready",
                f"set server {server} health down",
            )

    def add_preview_host(self, name: str, listen: str, inter_ms: int = 300) -> None:
        """Add a preview host's previews listener, DOWN until its TCP check passes."""
        server = f"{PREVIEWS}/{name}"
        self._expect(f"add server {server} {listen} check inter {inter_ms} rise 2 fall 2", "New server")
        self.runtime.execute(
            f"enable health {server}", f"set server {server} state ready", f"set server {server} health down"
        )

    def remove_host(self, name: str, drain_timeout: float = 5.0) -> None:
        """Drain the host (no new requests, in-flight ones finish), then delete it."""
        if name in self.servers(PREVIEWS):
            self._drain_and_delete(PREVIEWS, name, drain_timeout)
            return
        server = f"{BACKEND}/{name}"
        self.runtime.execute(f"set server {server} state drain")
        deadline = time.monotonic() + drain_timeout
        while self.runtime.sessions(BACKEND).get(name, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.runtime.execute(f"set server {server} state maint", f"shutdown sessions server {server}")
        self._expect(f"del server {server}", "Server deleted")
        pages = f"{PAGES}/{name}"
        self.runtime.execute(f"set server {pages} state maint", f"shutdown sessions server {pages}")
        self._expect(f"del server {pages}", "Server deleted")

    def _drain_and_delete(self, backend: str, name: str, drain_timeout: float) -> None:
        server = f"{backend}/{name}"
        self.runtime.execute(f"set server {server} state drain")
        deadline = time.monotonic() + drain_timeout
        while self.runtime.sessions(backend).get(name, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.runtime.execute(f"set server {server} state maint", f"shutdown sessions server {server}")
        self._expect(f"del server {server}", "Server deleted")

    def servers(self, backend: str = BACKEND) -> dict[str, str]:
        """Each host's state at the edge (in `backend`): up, down or maint."""
        states: dict[str, str] = {}
        for line in self.runtime.execute(f"show servers state {backend}").splitlines():
            fields = line.split()
            if len(fields) > 6 and fields[1] == backend:
                admin = int(fields[6])
                states[fields[3]] = "maint" if admin & 0x23 else OPERATIONAL.get(fields[5], "down")
        return states

    def _expect(self, command: str, success: str) -> None:
        answer = self.runtime.execute(command)
        if success not in answer:
            raise ProxyError(f"the edge refused '{command}': {answer.strip()}")
