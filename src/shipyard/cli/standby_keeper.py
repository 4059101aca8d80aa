"""The standby keeper: the process that stops a warm standby at expiry also serves rollbacks to it.

A warm standby exists exactly while this process waits to stop it, so it is the one process that is
running whenever a rollback can be a mere switch. While it waits it listens on HOME/run/APP.sock
(0600 in a 0700 directory, peers of another user refused) and runs, for `shipyard rollback`
(shipyard.cli.keeper_client), the same rollback the command would run in-process: same lock, plan,
history and policy check, its output lines streamed back as they are printed, then the exit code.

- The host layer is imported at low priority by a helper thread while it waits (nice applies per
  thread on Linux), so the keeper is ready without slowing the swap that spawned it, and the
  rollbacks it serves run at normal priority.
- One keeper serves an app: a new one binds a fresh socket and renames it over APP.sock; the older
  one sees its socket replaced, stops serving and becomes a plain reaper (shipyard.host.reaper) for
  the rest of its time.
- It declines (the command then does the rollback itself) anything it could not do identically:
  another app, a shipyard.yml that differs from the command's, another DOCKER_HOST, an app with
  env.secret (secrets are read by the command only), a malformed or oversized request.
- At expiry it takes the app lock, stops serving, then runs the recovery that stops the standby, as
  the reaper does; a rollback it is serving finishes first (one request at a time).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.cli.keeper_client import MAX_REQUEST_BYTES, PROTOCOL, peer_uid, run_dir, socket_name

# Loaded ahead of the first request (by the niced helper thread).
_HOST_MODULES = (
    "shipyard.cli.host_actions",
    "shipyard.cli.render",
    "shipyard.domain.spec",
    "shipyard.host.service",
    "shipyard.host.policy",
    "shipyard.host.store",
    "shipyard.adapters.docker",
    "shipyard.adapters.haproxy",
    "shipyard.adapters.haproxy_config",
)
LOADER_NICENESS = 10
# The operation log's line for each rollback a keeper ran (shipyard.log in the host's home).
SERVED_EVENT = "rollback served by the standby keeper"
# How often a waiting keeper checks that it still owns the socket.
_OWNERSHIP_CHECK_SECONDS = 1.0
_REQUEST_READ_SECONDS = 5.0


class BadRequest(ValueError):
    """A request the keeper does not serve; the message says why (sent back as a decline)."""


@dataclass(frozen=True)
class RollbackRequest:
    app: str
    release: str | None
    dry_run: bool
    wait: bool
    as_json: bool
    config: Path
    config_sha256: str
    policy: Path | None
    actor: str
    cwd: Path
    docker_host: str | None


def parse_request(raw: bytes) -> RollbackRequest:
    """One request line, validated field by field; BadRequest for anything else."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise BadRequest("request too large")
    try:
        document = json.loads(raw)
    except ValueError:
        raise BadRequest("request is not JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("request is not an object")
    if document.get("protocol") != PROTOCOL or document.get("command") != "rollback":
        raise BadRequest("unknown protocol or command")

    def text(name: str, optional: bool = False) -> str | None:
        value = document.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value or len(value) > 4096 or "\0" in value:
            raise BadRequest(f"{name} must be a non-empty string")
        return value

    def flag(name: str) -> bool:
        value = document.get(name)
        if not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false")
        return value

    def absolute(name: str, optional: bool = False) -> Path | None:
        value = text(name, optional)
        if value is None:
            return None
        path = Path(value)
        if not path.is_absolute():
            raise BadRequest(f"{name} must be an absolute path")
        return path

    config, cwd = absolute("config"), absolute("cwd")
    assert config is not None and cwd is not None
    policy = text("policy", optional=True)
    return RollbackRequest(
        app=str(text("app")),
        release=text("release", optional=True),
        dry_run=flag("dry_run"),
        wait=flag("wait"),
        as_json=flag("json"),
        config=config,
        config_sha256=str(text("config_sha256")),
        policy=Path(policy) if policy is not None else None,
        actor=str(text("actor")),
        cwd=cwd,
        docker_host=text("docker_host", optional=True),
    )


def decline_reason(
    request: RollbackRequest, *, app: str, config_sha256: str | None, docker_host: str | None
) -> str | None:
    """Why this keeper would not do exactly what the command would, or None to serve it."""
    if request.app != app:
        return f"this keeper serves {app}, not {request.app}"
    if config_sha256 is None:
        return "the keeper cannot read the configuration"
    if config_sha256 != request.config_sha256:
        return "the configuration differs from the command's"
    if (request.docker_host or None) != (docker_host or None):
        return "another DOCKER_HOST"
    return None


class _Relay:
    """A text stream whose writes go to the client as {"out"|"err": text} lines."""

    def __init__(self, conn: socket.socket, key: str) -> None:
        self.conn = conn
        self.key = key
        self.written = False

    def write(self, text: str) -> int:
        if text:
            self.written = True
            # A client gone (Ctrl-C) does not stop the rollback half-way: it finishes unread.
            _send(self.conn, {self.key: text})
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(message).encode() + b"\n")


def _read_line(conn: socket.socket) -> bytes:
    conn.settimeout(_REQUEST_READ_SECONDS)
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise BadRequest("request too large")
    return data.split(b"\n", 1)[0]


def _sha256(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Keeper:
    def __init__(self, app: str, home: Path) -> None:
        self.app = app
        self.home = home
        self.listener: socket.socket | None = None
        self.inode: int | None = None
        self.served = 0

    # --- the socket -------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        return run_dir(self.home)

    def _dir_fd(self) -> int:
        return os.open(self.directory, os.O_PATH | os.O_DIRECTORY)

    def listen(self) -> bool:
        """Bind a fresh socket and make it APP.sock (taking over from an older keeper)."""
        directory = self.directory
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(directory)
            if info.st_uid != os.getuid() or not os.path.isdir(directory) or os.path.islink(directory):
                return False
            os.chmod(directory, 0o700)
        except OSError:
            return False
        temporary = f".{socket_name(self.app)}.{os.getpid()}"
        descriptor = self._dir_fd()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=descriptor)
            listener.bind(f"/proc/self/fd/{descriptor}/{temporary}")
            os.chmod(temporary, 0o600, dir_fd=descriptor)
            listener.listen(16)
            os.rename(temporary, socket_name(self.app), src_dir_fd=descriptor, dst_dir_fd=descriptor)
            self.inode = os.stat(socket_name(self.app), dir_fd=descriptor).st_ino
        except OSError:
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=descriptor)
            return False
        finally:
            os.close(descriptor)
        self.listener = listener
        return True

    def owns_socket(self) -> bool:
        try:
            return os.stat(self.directory / socket_name(self.app)).st_ino == self.inode
        except OSError:
            return False

    def stop_serving(self) -> None:
        """Close the socket, and remove APP.sock when it is still this keeper's."""
        if self.listener is None:
            return
        if self.owns_socket():
            with contextlib.suppress(OSError):
                os.unlink(self.directory / socket_name(self.app))
        self.listener.close()
        self.listener = None

    # --- requests ---------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                if peer_uid(conn) != os.getuid():
                    return
                request = parse_request(_read_line(conn))
            except BadRequest as exc:
                _send(conn, {"decline": str(exc)})
                return
            except OSError:
                return
            reason = decline_reason(
                request,
                app=self.app,
                config_sha256=_sha256(request.config),
                docker_host=os.environ.get("DOCKER_HOST"),
            )
            if reason is not None:
                _send(conn, {"decline": reason})
                return
            conn.settimeout(None)
            self.rollback(conn, request)

    def rollback(self, conn: socket.socket, request: RollbackRequest) -> None:
        """What HostRollback.run does in the command, with its output relayed to the client."""
        from shipyard.cli.host_actions import load, rollback_here
        from shipyard.cli.render import print_error
        from shipyard.errors import ShipyardError
        from shipyard.host.context import HostContext
        from shipyard.host.oplog import host_logger

        saved = sys.stdout, sys.stderr, os.getcwd()
        out, err = _Relay(conn, "out"), _Relay(conn, "err")
        try:
            os.chdir(request.cwd)
            # Errors reading the config are the command's to print (its own messages, exit codes).
            spec = load(request.config)
            if spec.app != self.app:
                _send(conn, {"decline": f"this keeper serves {self.app}"})
                return
            if spec.env.secret:
                _send(conn, {"decline": "the app reads secrets; the command reads them itself"})
                return
            sys.stdout, sys.stderr = out, err
            try:
                rollback_here(
                    request.config,
                    request.release,
                    env="production",
                    dry_run=request.dry_run,
                    wait=request.wait,
                    as_json=request.as_json,
                    policy_file=request.policy,
                    spec=spec,
                    context=HostContext(home=self.home, actor=request.actor),
                )
                code = 0
            except ShipyardError as exc:
                print_error(exc)
                code = exc.exit_code
            self.served += 1
            _send(conn, {"exit": code})
        except Exception as exc:  # the command decides what to do: falls back when nothing was printed
            if out.written or err.written:
                _send(conn, {"err": f"error: the standby keeper failed: {type(exc).__name__}\n"})
                _send(conn, {"exit": 1})
            else:
                _send(conn, {"decline": "the keeper could not run it"})
            return
        finally:
            sys.stdout, sys.stderr = saved[0], saved[1]
            with contextlib.suppress(OSError):
                os.chdir(saved[2])
        with contextlib.suppress(OSError):
            log = host_logger(self.home / "shipyard.log", app=self.app, actor=request.actor)
            log.info(SERVED_EVENT, pid=os.getpid(), exit_code=code, dry_run=request.dry_run)

    def serve_until(self, deadline: float) -> bool:
        """Serve until `deadline` (monotonic); False when another keeper took the socket over."""
        while (remaining := deadline - time.monotonic()) > 0:
            assert self.listener is not None
            ready, _, _ = select.select([self.listener], [], [], min(remaining, _OWNERSHIP_CHECK_SECONDS))
            if not self.owns_socket():
                return False
            if ready:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    continue
                self.handle(conn)
        return True

    def expire(self) -> None:
        """Stop serving, then stop the expired standby: both under the app lock, as the reaper does."""
        from shipyard.errors import ShipyardError
        from shipyard.host.context import HostContext
        from shipyard.host.service import locked, recover

        if not self.home.exists():
            self.stop_serving()
            return
        try:
            with (
                HostContext(home=self.home) as context,
                locked(context, self.app, "stop expired standby", wait=False),
            ):
                self.stop_serving()
                recover(context, self.app)
        except ShipyardError:
            pass  # a deploy holds the lock: its own recovery stops the standby
        finally:
            self.stop_serving()


def load_host_layer() -> None:
    """Import the host layer from a thread at low priority (Linux: nice is per thread)."""

    def load() -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICENESS)
        import importlib

        for name in _HOST_MODULES:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        # The config model builds its validators on first use (a third of a rollback's CPU time
        # here): build them now, with a document that fails validation and changes nothing.
        with contextlib.suppress(Exception):
            from shipyard.domain.spec import parse_spec

            parse_spec({"app": "-"}, source="-")

    loader = threading.Thread(target=load, name="keeper-loader", daemon=True)
    loader.start()
    loader.join()


def become_reaper(app: str, home: Path, seconds: float) -> None:
    """The rest of the wait as a plain reaper (its memory is that of a bare interpreter)."""
    argv = [sys.executable, "-m", "shipyard.host.reaper", "--app", app, "--home", str(home)]
    os.execv(sys.executable, [*argv, "--after", f"{max(seconds, 0.0):.1f}"])


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", required=True)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--after", required=True, type=float)
    args = parser.parse_args()
    deadline = time.monotonic() + args.after
    # Output is relayed to a pipe: the command only asks a keeper when it would print plain text.
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        os.environ.pop(name, None)
    load_host_layer()
    keeper = Keeper(args.app, args.home)
    if not args.home.exists() or not keeper.listen():
        become_reaper(args.app, args.home, deadline - time.monotonic())
        return
    if not keeper.serve_until(deadline):
        keeper.stop_serving()
        become_reaper(args.app, args.home, deadline - time.monotonic())
        return
    keeper.expire()


if __name__ == "__main__":
    main()
