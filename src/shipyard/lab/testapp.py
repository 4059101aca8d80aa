"""Build the demo and test web apps: images FROM scratch holding Debian's static busybox.

Each image runs busybox httpd on $HOST:$PORT serving a version page at / and `ok` at /up, plus CGI
endpoints: /cgi-bin/slow (answers after a second, to test draining) and /cgi-bin/fail (answers 500).
Behaviours make the failure cases real: crash at start, hang without listening, start slowly,
listen on the wrong port. Given arguments (a `command`), the image runs them instead: a worker process.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path
from typing import Literal

import docker
import docker.errors

from shipyard.errors import DockerError

Behaviour = Literal["ok", "crash", "hang", "slow-start", "wrong-port"]

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
APPLETS = ("sh", "sleep", "echo", "cat", "env", "httpd", "date")

RUN_SCRIPTS: dict[str, str] = {
    "ok": 'exec httpd -f -v -p "${HOST:-0.0.0.0}:${PORT:-3000}" -h /www',
    "crash": 'echo "fatal: cannot connect to database" >&2; exit 3',
    "hang": 'echo "booting forever" >&2; exec sleep 100000',
    "slow-start": 'echo "warming caches" >&2; sleep ${SLOW_START:-3}; '
    'exec httpd -f -v -p "${HOST:-0.0.0.0}:${PORT:-3000}" -h /www',
    "wrong-port": 'exec httpd -f -v -p "${HOST:-0.0.0.0}:$(( ${PORT:-3000} + 100 ))" -h /www',
}

SLOW_CGI = "#!/bin/sh\nsleep 1\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow done\\n'\n"
FAIL_CGI = (
    "#!/bin/sh\nprintf 'Status: 500 Internal Server Error\\r\\n"
    "Content-Type: text/plain\\r\\n\\r\\nbroken\\n'\n"
)
DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
ENTRYPOINT ["/bin/sh", "/app/run"]
"""


def busybox_path() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and "static" in _describe(path):
            return path
    raise DockerError("a static busybox was not found; install busybox-static (make deps).")


def _describe(path: Path) -> str:
    # A static binary has no interpreter section; enough to tell busybox-static from the dynamic one.
    return "dynamic" if b"/lib64/ld-linux" in path.read_bytes()[:4096] else "static"


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def build_context(version: str, behaviour: Behaviour = "ok") -> bytes:
    """The build context as a tar: Dockerfile plus a root filesystem."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add(tar, "Dockerfile", DOCKERFILE.encode())
        _add(tar, "rootfs/bin/busybox", busybox_path().read_bytes(), 0o755)
        for applet in APPLETS:
            _symlink(tar, f"rootfs/bin/{applet}", "busybox")
        # Arguments (a process's command) run instead of the web server: a worker of the same image.
        run = f'if [ "$#" -gt 0 ]; then exec "$@"; fi\n{RUN_SCRIPTS[behaviour]}\n'
        _add(tar, "rootfs/app/run", run.encode(), 0o755)
        page = f"<html><body><h1>demo app</h1><p>version {version}</p></body></html>\n"
        _add(tar, "rootfs/www/index.html", page.encode())
        _add(tar, "rootfs/www/up", b"ok\n")
        _add(tar, "rootfs/www/version", f"{version}\n".encode())
        _add(tar, "rootfs/www/cgi-bin/slow", SLOW_CGI.encode(), 0o755)
        _add(tar, "rootfs/www/cgi-bin/fail", FAIL_CGI.encode(), 0o755)
    return buffer.getvalue()


def build_test_image(client: docker.DockerClient, tag: str, version: str, behaviour: Behaviour = "ok") -> str:
    """Build and tag the image; return its id."""
    context = io.BytesIO(build_context(version, behaviour))
    try:
        image, _logs = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise DockerError(f"building the test image {tag} failed: {exc}") from exc
    return str(image.id)


def write_context_dir(target: Path, version: str, behaviour: Behaviour = "ok") -> Path:
    """The same context unpacked into a directory, for `docker build` / BuildKit users."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(build_context(version, behaviour))) as tar:
        tar.extractall(target, filter="tar")
    return target


# A worker process for the test image (`sh -c` it, with a host directory mounted on /data): writes a
# heartbeat file every 0.2 s and, on SIGTERM, logs it, takes FINISH_SECONDS (2) to "finish its jobs",
# logs that and exits 0. /data/events tells which release started, was signalled and finished.
HEARTBEAT_WORKER = (
    'finish() { echo "$SHIPYARD_RELEASE got TERM" >> /data/events; sleep "${FINISH_SECONDS:-2}"; '
    'echo "$SHIPYARD_RELEASE finished" >> /data/events; exit 0; }; '
    "trap finish TERM; "
    'echo "$SHIPYARD_RELEASE started" >> /data/events; '
    'while true; do date +%s > "/data/heartbeat-$SHIPYARD_RELEASE"; sleep 0.2; done'
)
# Its health command: the heartbeat of its own release is there.
HEARTBEAT_HEALTH = ["sh", "-c", '[ -f "/data/heartbeat-$SHIPYARD_RELEASE" ]']
