"""The host's haproxy: its process (start, seamless reload) and its runtime API over the admin socket.

All socket and process errors become ProxyError here, once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from shipyard.adapters.haproxy_config import (
    PREVIEW_MISSING_PAGE,
    PreviewPool,
    ProxiedApp,
    ProxyPaths,
    render_config,
    render_map,
)
from shipyard.domain.models import AdminState, OpenStreams, Operational, ServerState
from shipyard.domain.names import has_control
from shipyard.errors import ConfigError, ProxyError

__all__ = ["HaproxyProcess", "HaproxyRuntime", "OpenStreams", "ServerState"]

# `show servers state` column indexes (haproxy 2.x format version 1).
OPERATIONAL: dict[int, Operational] = {0: "down", 1: "starting", 2: "up", 3: "stopping"}
ADMIN_MAINT_BITS = 0x01 | 0x02 | 0x20  # forced, inherited, resolution; not 0x04 (config)
ADMIN_DRAIN_BITS = 0x08 | 0x10


SESSION_START = re.compile(r"^0x[0-9a-f]+: \[", re.MULTILINE)
SESSION_FIELDS = {
    "backend": re.compile(r"\bbackend=(\S+)"),
    "server": re.compile(r"\bserver=(\S+)"),
    "status": re.compile(r"\bstatus=(-?\d+)"),
    "response": re.compile(r"\brsp\.st=(\S+)"),
}


def parse_open_streams(show_sess: str, backend: str, server: str) -> OpenStreams:
    """Classify the streams of `show sess all` that are on backend/server."""
    requests = responses = tunnels = 0
    starts = [match.start() for match in SESSION_START.finditer(show_sess)]
    for begin, end in zip(starts, [*starts[1:], len(show_sess)], strict=True):
        block = show_sess[begin:end]
        found = {key: pattern.search(block) for key, pattern in SESSION_FIELDS.items()}
        if not (found["backend"] and found["server"]):
            continue
        if (found["backend"].group(1), found["server"].group(1)) != (backend, server):
            continue
        status = int(found["status"].group(1)) if found["status"] else -1
        response = found["response"].group(1) if found["response"] else ""
        if status == 101 or response == "MSG_TUNNEL":
            tunnels += 1
        elif status > 0:
            responses += 1
        else:
            requests += 1
    return OpenStreams(requests, responses, tunnels)


def _admin_state(bits: int) -> AdminState:
    if bits & ADMIN_MAINT_BITS:
        return "maint"
    if bits & ADMIN_DRAIN_BITS:
        return "drain"
    return "ready"


def backend_counters(stat_csv: str, backend: str) -> tuple[int, int] | None:
    """Parse `show stat` CSV: the BACKEND row's req_tot (stot when absent) and hrsp_5xx."""
    header, *rows = [line for line in stat_csv.splitlines() if line] or [""]
    columns = header.lstrip("# ").split(",")
    if "pxname" not in columns or "svname" not in columns:
        return None
    requests_at = columns.index("req_tot") if "req_tot" in columns else columns.index("stot")
    errors_at = columns.index("hrsp_5xx") if "hrsp_5xx" in columns else None
    for row in rows:
        cells = row.split(",")
        if len(cells) < len(columns) or cells[columns.index("pxname")] != backend:
            continue
        if cells[columns.index("svname")] != "BACKEND":
            continue
        errors = cells[errors_at] if errors_at is not None else ""
        return int(cells[requests_at] or 0), int(errors or 0)
    return None


class HaproxyRuntime:
    """A client for haproxy's runtime API (the admin socket); one connection per command batch."""

    def __init__(self, admin_socket: Path, timeout: float = 5.0) -> None:
        self.admin_socket = admin_socket
        self.timeout = timeout

    def execute(self, *commands: str) -> str:
        for command in commands:
            # A newline or `;` would end the command and start another one of the caller's choosing.
            if has_control(command) or ";" in command:
                raise ConfigError(
                    f"refusing to send {command!r} to haproxy's runtime API: it holds a newline, "
                    "a control character or ';'."
                )
        payload = ";".join(commands).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.admin_socket))
                sock.sendall(payload)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise ProxyError(
                f"haproxy's admin socket {self.admin_socket} does not answer ({exc.strerror or exc}); "
                "run the command again to restart haproxy."
            ) from exc
        answer = b"".join(chunks).decode(errors="replace")
        for marker in ("Unknown command", "No such backend", "No such server", "Require "):
            if marker in answer:
                raise ProxyError(f"haproxy refused '{';'.join(commands)}': {answer.strip()}")
        return answer

    def answers(self) -> bool:
        try:
            self.execute("show info")
            return True
        except ProxyError:
            return False

    def server_states(self, backend: str) -> dict[str, ServerState]:
        answer = self.execute(f"show servers state {backend}")
        sessions = self.sessions(backend)
        states: dict[str, ServerState] = {}
        for line in answer.splitlines():
            fields = line.split()
            if len(fields) < 7 or line.startswith("#") or fields[1] != backend:
                continue
            name = fields[3]
            states[name] = ServerState(
                backend=backend,
                name=name,
                operational=OPERATIONAL.get(int(fields[5]), "down"),
                admin=_admin_state(int(fields[6])),
                sessions=sessions.get(name, 0),
            )
        return states

    def sessions(self, backend: str) -> dict[str, int]:
        """Current sessions per server (`scur` of `show stat`)."""
        answer = self.execute("show stat -1 4 -1")
        header, *rows = [line for line in answer.splitlines() if line]
        columns = header.lstrip("# ").split(",")
        name_at, server_at, scur_at = columns.index("pxname"), columns.index("svname"), columns.index("scur")
        result: dict[str, int] = {}
        for row in rows:
            cells = row.split(",")
            if len(cells) > scur_at and cells[name_at] == backend:
                result[cells[server_at]] = int(cells[scur_at] or 0)
        return result

    def backend_counters(self, backend: str) -> tuple[int, int] | None:
        """(HTTP requests, 5xx responses) of the backend since haproxy started; None when it has none."""
        return backend_counters(self.execute("show stat -1 2 -1"), backend)

    def open_streams(self, backend: str, server: str) -> OpenStreams:
        """What is still open on one server: requests, streamed responses and websockets."""
        return parse_open_streams(self.execute("show sess all"), backend, server)

    def has_backend(self, backend: str) -> bool:
        return any(line.strip() == backend for line in self.execute("show backend").splitlines())

    def switch(
        self, backend: str, to_slot: str, from_slot: str | None, address: tuple[str, int] | None = None
    ) -> None:
        """Point `to_slot` at `address`, make it serve, then drain `from_slot`: one runtime-API batch."""
        commands = []
        if address is not None:
            commands.append(f"set server {backend}/{to_slot} addr {address[0]} port {address[1]}")
        commands += [
            f"set server {backend}/{to_slot} state ready",
            f"set server {backend}/{to_slot} health up",
        ]
        if from_slot:
            commands.append(f"set server {backend}/{from_slot} state drain")
        self.execute(*commands)

    def set_state(self, backend: str, slot: str, state: AdminState) -> None:
        self.execute(f"set server {backend}/{slot} state {state}")

    def add_route(self, map_file: Path, host: str, backend: str) -> None:
        """Point `host` at `backend` in the loaded map: any earlier entry for it is replaced."""
        self.execute(f"del map {map_file} {host}", f"add map {map_file} {host} {backend}")

    def remove_route(self, map_file: Path, host: str) -> None:
        self.execute(f"del map {map_file} {host}")

    def routes(self, map_file: Path) -> dict[str, str]:
        """The loaded map: `show map` answers `0xADDR key value` per entry."""
        routes = {}
        for line in self.execute(f"show map {map_file}").splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[0].startswith("0x"):
                routes[fields[1]] = fields[2]
        return routes

    def dump_server_state(self, state_file: Path) -> None:
        """Save `show servers state` so a reload keeps the current server states."""
        answer = self.execute("show servers state")
        temporary = state_file.with_suffix(".tmp")
        temporary.write_text(answer)
        os.replace(temporary, state_file)


class HaproxyProcess:
    """The one haproxy of this host (master-worker mode): its files, process and runtime API.

    The host's Proxy port (shipyard.host.ports) in full: the interpreter and observe see only that.
    """

    def __init__(self, paths: ProxyPaths, binary: str | None = None) -> None:
        self.paths = paths
        self.binary = binary or shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.runtime = HaproxyRuntime(paths.admin_socket)

    def master_pid(self) -> int | None:
        try:
            pid = int(self.paths.pidfile.read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def running(self) -> bool:
        return self.master_pid() is not None and self.runtime.answers()

    def check_config(self) -> None:
        done = subprocess.run([self.binary, "-c", "-q", "-f", str(self.paths.config)], capture_output=True)
        if done.returncode != 0:
            raise ProxyError(f"the rendered haproxy config is invalid: {done.stderr.decode().strip()[-400:]}")

    def start(self, timeout: float = 10.0) -> None:
        """Start haproxy from the rendered config; a stale state file is dropped so the config rules."""
        self.check_config()
        self.stop_stale()
        self.paths.state_file.unlink(missing_ok=True)
        with self.paths.log.open("ab") as log:
            done = subprocess.run(
                [self.binary, "-W", "-D", "-f", str(self.paths.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if done.returncode != 0:
            alerts = [
                line for line in self.paths.log.read_text(errors="replace").splitlines() if "ALERT" in line
            ]
            raise ProxyError(
                f"haproxy failed to start: {' '.join(alerts[-3:]) or 'see ' + str(self.paths.log)}"
            )
        self._wait(lambda: self.runtime.answers(), timeout, "start")

    # files ------------------------------------------------------------------------------------
    def page_path(self, app: str) -> Path:
        return self.paths.page(app)

    def write_page(self, app: str, text: str) -> None:
        page = self.paths.page(app)
        if not page.exists() or page.read_text() != text:
            page.write_text(text)

    def has_page(self, app: str) -> bool:
        return self.paths.page(app).exists()

    def forget_page(self, app: str) -> None:
        self.paths.page(app).unlink(missing_ok=True)

    def write_config(self, apps: Sequence[ProxiedApp], previews: PreviewPool | None = None) -> None:
        """Render the config of these apps (and the previews frontend, its map and its 404 page) and
        replace each file in one rename; the map comes first, the config loads it."""
        config = render_config(list(apps), self.paths, previews)
        if previews is not None:
            _replace(self.paths.previews_map, render_map(previews.routes))
            if not self.paths.preview_missing_page.exists():
                _replace(self.paths.preview_missing_page, PREVIEW_MISSING_PAGE)
        _replace(self.paths.config, config)

    def save_server_state(self) -> None:
        self.runtime.dump_server_state(self.paths.state_file)

    # the runtime API ----------------------------------------------------------------------------
    def server_states(self, backend: str) -> dict[str, ServerState]:
        return self.runtime.server_states(backend)

    def sessions(self, backend: str) -> dict[str, int]:
        return self.runtime.sessions(backend)

    def open_streams(self, backend: str, server: str) -> OpenStreams:
        return self.runtime.open_streams(backend, server)

    def backend_counters(self, backend: str) -> tuple[int, int] | None:
        return self.runtime.backend_counters(backend)

    def switch(self, backend: str, to_slot: str, from_slot: str | None, address: tuple[str, int]) -> None:
        self.runtime.switch(backend, to_slot, from_slot, address)

    def set_state(self, backend: str, slot: str, state: AdminState) -> None:
        self.runtime.set_state(backend, slot, state)

    def add_route(self, host: str, backend: str) -> None:
        self.runtime.add_route(self.paths.previews_map, host, backend)

    def remove_route(self, host: str) -> None:
        self.runtime.remove_route(self.paths.previews_map, host)

    def routes(self) -> dict[str, str]:
        return self.runtime.routes(self.paths.previews_map)

    # the process ------------------------------------------------------------------------------
    def reload(self, backend: str | None, timeout: float = 10.0) -> None:
        """Seamless reload (listeners passed to the new worker) so a new app's frontend appears.

        `backend`: one the new worker must know before the reload counts as done (None after an
        app was removed: only a new worker is waited for)."""
        self.check_config()
        pid = self.master_pid()
        if pid is None:
            self.start(timeout)
            return
        old_worker = self._worker_pid()
        self.runtime.dump_server_state(self.paths.state_file)
        os.kill(pid, signal.SIGUSR2)
        self._wait(lambda: self._reloaded(old_worker, backend), timeout, "reload")

    def _worker_pid(self) -> str | None:
        try:
            info = self.runtime.execute("show info")
        except ProxyError:
            return None
        for line in info.splitlines():
            if line.startswith("Pid:"):
                return line.split(":", 1)[1].strip()
        return None

    def _reloaded(self, old_worker: str | None, backend: str | None) -> bool:
        """The admin socket is answered by a new worker that knows the backend."""
        try:
            new_worker = self._worker_pid()
            if new_worker is None or new_worker == old_worker:
                return False
            return backend is None or self.runtime.has_backend(backend)
        except ProxyError:
            return False

    def stop_stale(self) -> None:
        """Kill a master whose workers died, so the next start owns the listen ports."""
        pid = self.master_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop haproxy (the host's last app was removed) and wait until its listeners are closed."""
        pid = self.master_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.master_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.02)

    @staticmethod
    def _wait(ready: object, timeout: float, what: str) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.02)
        raise ProxyError(f"haproxy did not {what} within {timeout:.0f} s; see its log for details.")


def _replace(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
