"""A test image with a real app server: Debian's lighttpd, copied with its shared libraries FROM scratch.

The regular test image (testapp.py) runs busybox httpd, which forks a process per connection, closes
every connection after one response and has a listen backlog of 9: right for testing deploys, but it
makes any measurement of a network path a measurement of fork(). lighttpd is one event-driven process
that keeps connections alive (listen backlog 1024). It serves the same pages as the test image (a
version page at /, `ok` at /up, the version at /version) on $HOST:$PORT.

The same binary and configuration can run natively (`write_native_root`), so a container and a plain
process on the host serve byte-identical responses from the same code.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import docker
import docker.errors

from shipyard.errors import DockerError

LIGHTTPD_CANDIDATES = ("/usr/sbin/lighttpd", "/usr/bin/lighttpd")
IMAGE_BINARY = "/usr/sbin/lighttpd"
IMAGE_CONFIG = "/etc/lighttpd.conf"
IMAGE_DOCUMENT_ROOT = "/www"

DOCKERFILE = f"""\
FROM scratch
COPY rootfs/ /
ENV HOST=0.0.0.0 PORT=3000
ENTRYPOINT ["{IMAGE_BINARY}", "-D", "-f", "{IMAGE_CONFIG}"]
"""

# `env.HOST` / `env.PORT` are read when lighttpd starts, so the image needs no shell to template them.
# Keep-alive is capped by request count and idle time only: a load generator may reuse a connection
# for the whole run, as a browser or a proxy's connection pool would.
CONFIG_TEMPLATE = """\
server.document-root = "{document_root}"
server.bind = env.HOST
server.port = env.PORT
server.upload-dirs = ( "{upload_dir}" )
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 30
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html", "" => "text/plain" )
"""

_LDD_LINE = re.compile(r"^\s*(?:(\S+)\s+=>\s+)?(\S+)(?:\s+\(0x[0-9a-f]+\))?\s*$")


def lighttpd_config(document_root: str, upload_dir: str = "/tmp") -> str:
    return CONFIG_TEMPLATE.format(document_root=document_root, upload_dir=upload_dir)


def pages(version: str) -> dict[str, bytes]:
    """The files served, by path under the document root (the same bytes as the busybox test image)."""
    page = f"<html><body><h1>demo app</h1><p>version {version}</p></body></html>\n"
    return {"index.html": page.encode(), "up": b"ok\n", "version": f"{version}\n".encode()}


def parse_ldd(output: str) -> list[str]:
    """Absolute paths of the shared libraries and the loader listed by `ldd`, in order.

    The vDSO (no file) is skipped; a library ldd could not find is an error, since an image
    without it would not start.
    """
    paths: list[str] = []
    for line in output.splitlines():
        if not line.strip() or "statically linked" in line:
            continue
        if "not found" in line:
            name = line.split("=>")[0].strip()
            raise DockerError(f"the shared library {name} was not found on this machine; reinstall lighttpd.")
        match = _LDD_LINE.match(line)
        if match is None:
            raise DockerError(f"cannot read this line of ldd's output: {line.strip()!r}")
        path = match.group(2)
        if path.startswith("/"):
            paths.append(path)
    return paths


def lighttpd_path() -> Path:
    for candidate in LIGHTTPD_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise DockerError("lighttpd was not found; install it with 'make deps' (apt-get install lighttpd).")


def shared_libraries(binary: Path) -> list[Path]:
    """The libraries `binary` loads, as ldd resolves them on this machine."""
    ldd = shutil.which("ldd")
    if ldd is None:
        raise DockerError("ldd was not found; install libc-bin.")
    done = subprocess.run([ldd, str(binary)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise DockerError(f"ldd {binary} failed: {done.stderr.strip() or done.stdout.strip()}")
    return [Path(path) for path in parse_ldd(done.stdout)]


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _directory(tar: tarfile.TarFile, name: str, mode: int = 0o1777) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def build_server_context(version: str) -> bytes:
    """The build context as a tar: Dockerfile, lighttpd and its libraries, its config, the pages."""
    binary = lighttpd_path()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add(tar, "Dockerfile", DOCKERFILE.encode())
        _add(tar, f"rootfs{IMAGE_BINARY}", binary.read_bytes(), 0o755)
        # Each library goes where ldd found it (the loader's path is baked into the binary); a
        # symlinked soname is stored as the file it points to.
        for library in shared_libraries(binary):
            _add(tar, f"rootfs{library}", library.read_bytes(), 0o755)
        _add(tar, f"rootfs{IMAGE_CONFIG}", lighttpd_config(IMAGE_DOCUMENT_ROOT).encode())
        _directory(tar, "rootfs/tmp")
        for name, data in pages(version).items():
            _add(tar, f"rootfs{IMAGE_DOCUMENT_ROOT}/{name}", data)
    return buffer.getvalue()


def build_server_image(client: docker.DockerClient, tag: str, version: str) -> str:
    """Build and tag the lighttpd image; return its id."""
    context = io.BytesIO(build_server_context(version))
    try:
        image, _logs = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise DockerError(f"building the lighttpd test image {tag} failed: {exc}") from exc
    return str(image.id)


def write_native_root(target: Path, version: str) -> list[str]:
    """Pages and config under `target` for running the host's lighttpd as a plain process.

    Returns the argv; the process reads HOST and PORT from its environment, as in the image.
    """
    www = target / "www"
    www.mkdir(parents=True, exist_ok=True)
    for name, data in pages(version).items():
        (www / name).write_bytes(data)
    uploads = target / "tmp"
    uploads.mkdir(exist_ok=True)
    config = target / "lighttpd.conf"
    config.write_text(lighttpd_config(str(www), str(uploads)))
    return [str(lighttpd_path()), "-D", "-f", str(config)]
