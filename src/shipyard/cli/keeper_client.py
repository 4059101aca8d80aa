"""`shipyard rollback` asks the app's standby keeper to do it (see shipyard.cli.standby_keeper).

While a warm standby exists, the process that will stop it at expiry is running with the host layer
loaded and listens on HOME/run/APP.sock. Handing it the rollback saves this process the imports
(pydantic, the config model, the host layer) that are most of a rollback's time on a busy machine.
Only the standard library is used here, and of it what starts fast: the C `_socket` (not `socket`,
which loads enum), the built-in SHA-256 (not hashlib, which loads OpenSSL), json.

Every doubt means "do it in-process": no socket, nobody listening, a socket that is not ours, a
terminal to style output for, the keeper declining (another app, a different shipyard.yml or
DOCKER_HOST, secrets to read) or going away before it answered. `try_keeper` then returns None and
the caller runs the rollback itself, with the same output and exit code.
"""

from __future__ import annotations

import _socket
import json
import os
import stat
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import TextIO

PROTOCOL = 1
MAX_REQUEST_BYTES = 64 * 1024
# A unix socket's path is at most 107 bytes; longer ones are reached through the directory's fd.
_MAX_SUN_PATH = 100
# Set to 0 to never use a keeper (every rollback in-process).
DISABLE_ENV = "SHIPYARD_KEEPER"


def run_dir(home: Path) -> Path:
    return home / "run"


def socket_name(app: str) -> str:
    return f"{app}.sock"


def home_dir() -> Path:
    """SHIPYARD_HOME as shipyard.host.context.default_home reads it (not imported: it loads more)."""
    if home := os.environ.get("SHIPYARD_HOME"):
        return Path(home)
    if os.geteuid() == 0:
        return Path("/var/lib/shipyard")
    return Path.home() / ".local" / "share" / "shipyard"


def actor() -> str:
    """As shipyard.host.context.default_actor (with getpass.getuser's order of variables)."""
    if name := os.environ.get("SHIPYARD_ACTOR"):
        return name
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if user := os.environ.get(variable):
            break
    else:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    return f"{user}@{_socket.gethostname()}"


def sha256_hex(data: bytes) -> str:
    try:  # the interpreter's own SHA-256: no OpenSSL to load
        from _sha256 import sha256  # type: ignore[import-not-found]
    except ImportError:
        from hashlib import sha256
    return str(sha256(data).hexdigest())


def app_name(config_text: str) -> str | None:
    """The top-level `app:` of a shipyard.yml when it is a plain name; None for anything else.

    Only picks the socket: the keeper loads the file itself and declines when the app is not its own.
    """
    for line in config_text.splitlines():
        if not line.startswith("app:"):
            continue
        value = line[4:].split(" #", 1)[0].strip().strip("'\"")
        if value and all(c.isalnum() or c in "-_." for c in value):
            return value
        return None
    return None


def plain_output(streams: tuple[TextIO, ...]) -> bool:
    """True when the CLI would print without styles (as shipyard.cli.render.LazyConsole.plain)."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "0"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color == ""
    for stream in streams:
        try:
            if stream.isatty():
                return False
        except (AttributeError, ValueError):
            continue
    return True


def own_private_dir(path: Path) -> bool:
    """The run directory: a real directory of this user that nobody else can enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0


def peer_uid(sock: _socket.socket) -> int:
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def connect(directory: Path, name: str, timeout: float = 2.0) -> _socket.socket | None:
    """A connection to the socket `name` in `directory`, or None (absent, stale, not ours)."""
    if not own_private_dir(directory):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    path = str(directory / name)
    descriptor = None
    try:
        if len(path.encode()) > _MAX_SUN_PATH:
            descriptor = os.open(directory, os.O_PATH | os.O_DIRECTORY)
            path = f"/proc/self/fd/{descriptor}/{name}"
        sock.connect(path)
        if peer_uid(sock) != os.getuid():
            sock.close()
            return None
        return sock
    except OSError:
        sock.close()
        return None
    finally:
        if descriptor is not None:
            os.close(descriptor)


def request_for(
    *,
    app: str,
    config: Path,
    config_text: bytes,
    release: str | None,
    dry_run: bool,
    wait: bool,
    as_json: bool,
    policy_file: Path | None,
) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL,
        "command": "rollback",
        "app": app,
        "release": release,
        "dry_run": dry_run,
        "wait": wait,
        "json": as_json,
        "config": str(config.absolute()),
        "config_sha256": sha256_hex(config_text),
        # As given: the keeper works in `cwd`, and a policy error names the path as the user wrote it.
        "policy": str(policy_file) if policy_file is not None else None,
        "actor": actor(),
        "cwd": os.getcwd(),
        "docker_host": os.environ.get("DOCKER_HOST"),
    }


def lines(sock: _socket.socket) -> Iterator[bytes]:
    """The lines the peer sends, as they come, until it closes the connection."""
    pending = b""
    while chunk := sock.recv(65536):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def exchange(
    sock: _socket.socket,
    request: dict[str, Any],
    write_out: Callable[[str], None],
    write_err: Callable[[str], None],
) -> int | None:
    """Send the request, relay the keeper's output as it comes; its exit code, or None to fall back.

    None only while nothing was printed: once the keeper has written a line, it did the rollback.
    """
    payload = json.dumps(request).encode() + b"\n"
    if len(payload) > MAX_REQUEST_BYTES:
        return None
    printed = False
    try:
        sock.sendall(payload)
        sock.settimeout(None)  # the rollback itself may wait for the lock (--wait) or a health check
        for line in lines(sock):
            message = json.loads(line)
            if "decline" in message and not printed:
                return None
            if "out" in message:
                write_out(str(message["out"]))
                printed = True
            elif "err" in message:
                write_err(str(message["err"]))
                printed = True
            elif "exit" in message:
                return int(message["exit"])
    except (OSError, ValueError, TypeError):
        pass
    if not printed:
        return None
    write_err("error: the standby keeper stopped before the rollback finished; see 'shipyard status'.\n")
    return 1


def try_keeper(
    *,
    config: Path,
    release: str | None,
    dry_run: bool,
    wait: bool,
    as_json: bool,
    policy_file: Path | None,
) -> int | None:
    """The exit code of the rollback done by the app's keeper, or None: do it in-process."""
    if os.environ.get(DISABLE_ENV) == "0" or not plain_output((sys.stdout, sys.stderr)):
        return None
    try:
        config_text = config.read_bytes()
    except OSError:
        return None
    app = app_name(config_text.decode("utf-8", "replace"))
    if app is None:
        return None
    sock = connect(run_dir(home_dir()), socket_name(app))
    if sock is None:
        return None
    request = request_for(
        app=app,
        config=config,
        config_text=config_text,
        release=release,
        dry_run=dry_run,
        wait=wait,
        as_json=as_json,
        policy_file=policy_file,
    )

    def write(stream: TextIO) -> Callable[[str], None]:
        def emit(text: str) -> None:
            stream.write(text)
            stream.flush()

        return emit

    try:
        return exchange(sock, request, write(sys.stdout), write(sys.stderr))
    finally:
        sock.close()
