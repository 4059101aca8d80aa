"""Build the recording test app: an image FROM scratch running recording_server.py with Debian's python3.

The image holds the interpreter, the shared libraries it and its extension modules link (found with
ldd) and exactly the standard-library files the server loads (asked of the interpreter itself), so it
stays small and never needs a base image. See recording_server.py for what the app answers.

Tests deploy it like any app (it reads $HOST and $PORT) and read what it recorded either from each
slot's ``GET /ids`` or, across slots and stopped containers, from the JSON lines it appends to
$RECORD_FILE (mount a host directory with ``volumes``), see read_records.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from shipyard.errors import DockerError

DEBIAN_PYTHON = Path("/usr/bin/python3")  # a symlink to python3.X, whose stdlib is /usr/lib/python3.X
SERVER = Path(__file__).with_name("recording_server.py")
RECORD_DIR = "/records"
RECORD_FILE = f"{RECORD_DIR}/requests.jsonl"
LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")

DOCKERFILE_TEMPLATE = """\
FROM scratch
COPY rootfs/ /
ENV APP_VERSION={version} RECORD_FILE={record_file}
ENTRYPOINT ["{python}", "-I", "-S", "-u", "/app/server.py"]
"""


def _python() -> Path:
    python = DEBIAN_PYTHON.resolve()
    if not python.is_file() or not Path(f"/usr/lib/{python.name}/asyncio").is_dir():
        raise DockerError(
            f"{DEBIAN_PYTHON} with its standard library was not found; install python3 (make deps)."
        )
    return python


def _loaded_files(python: Path) -> list[Path]:
    """The standard-library files the server imports, as the interpreter reports them."""
    try:
        done = subprocess.run(
            [str(python), "-I", "-S", str(SERVER), "--print-modules"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DockerError(f"listing the recording app's modules with {python} failed: {exc}") from exc
    files = {Path(line) for line in done.stdout.split() if line.startswith("/usr/lib/python3")}
    return sorted(files)


def _shared_libraries(binaries: list[Path]) -> list[Path]:
    libraries: set[Path] = set()
    for binary in binaries:
        try:
            done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise DockerError(f"ldd {binary} failed: {exc}") from exc
        for line in done.stdout.splitlines():
            match = LDD_LINE.search(line)
            if match:
                libraries.add(Path(match.group(1)))
    return sorted(libraries)


def _add_file(tar: tarfile.TarFile, source: Path, name: str | None = None, mode: int | None = None) -> None:
    data = source.read_bytes()  # resolves symlinks: the image gets the real file under each name
    info = tarfile.TarInfo(name or f"rootfs{source}")
    info.size = len(data)
    info.mode = 0o644 if mode is None else mode
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def build_context(version: str) -> bytes:
    """The build context as a tar: Dockerfile plus interpreter, libraries, stdlib files and server."""
    python = _python()
    modules = _loaded_files(python)
    extensions = [path for path in modules if path.suffix == ".so"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        dockerfile = DOCKERFILE_TEMPLATE.format(version=version, record_file=RECORD_FILE, python=python)
        _add_file_bytes(tar, "Dockerfile", dockerfile.encode())
        _add_file(tar, python, mode=0o755)
        for library in _shared_libraries([python, *extensions]):
            _add_file(tar, library, mode=0o755)
        for module in modules:
            _add_file(tar, module, mode=0o755 if module.suffix == ".so" else 0o644)
        # The interpreter finds its prefix by the os.py landmark and warns without lib-dynload.
        _add_dir(tar, f"rootfs/usr/lib/{python.name}/lib-dynload")
        _add_dir(tar, f"rootfs{RECORD_DIR}")
        _add_dir(tar, "rootfs/tmp")
        _add_file(tar, SERVER, "rootfs/app/server.py")
    return buffer.getvalue()


def _add_file_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build_recording_image(docker_url: str, tag: str, version: str = "v1") -> str:
    """Build and tag the recording app image in the engine at docker_url; return its id."""
    context = io.BytesIO(build_context(version))
    client = docker.DockerClient(base_url=docker_url)
    try:
        image, _logs = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise DockerError(f"building the recording app image {tag} failed: {exc}") from exc
    finally:
        client.close()
    return str(image.id)


@dataclass
class Records:
    """What the recording app saw, read from its record file: ids received and answered, with counts."""

    received: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    entries: list[dict[str, object]] = field(default_factory=list)

    def duplicates(self) -> dict[str, int]:
        return {request_id: count for request_id, count in self.received.items() if count > 1}


def read_records(record_dir: Path) -> Records:
    """The records appended by every container that mounted record_dir at /records."""
    records = Records()
    path = record_dir / Path(RECORD_FILE).name
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        records.entries.append(entry)
        (records.received if entry["phase"] == "received" else records.answered)[str(entry["id"])] += 1
    return records


def record_volume(record_dir: Path) -> str:
    """The `volumes` entry that makes the app record into record_dir."""
    record_dir.mkdir(parents=True, exist_ok=True)
    return f"{record_dir}:{RECORD_DIR}"
