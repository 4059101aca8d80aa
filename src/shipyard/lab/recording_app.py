"""Build the recording test app: an image FROM scratch running recording_server.py with Debian's python3.

The image holds the interpreter, the shared libraries it and its extension modules link (found with
ldd) and exactly the standard-library files the server loads (asked of the interpreter itself), so it
stays small and never needs a base image. See recording_server.py for what the app answers.

Tests deploy it like any app (it reads $HOST and $PORT) and read what it recorded either from each
slot's ``GET /ids`` or, across slots and stopped containers, from the JSON lines it appends to
$RECORD_FILE (mount a host directory with ``volumes``), see read_records.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import subprocess
import tarfile
import tempfile
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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
ENV APP_VERSION={version} RECORD_FILE={record_file} PYTHONPATH=/app
ENTRYPOINT ["{python}", "-S", "-u", "-m", "{module}"]
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
        done = subprocess.run(  # started exactly as the image's entrypoint starts it
            [str(python), "-S", "-m", SERVER.stem, "--print-modules"],
            env={"PYTHONPATH": str(SERVER.parent)},
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
    info.mtime = int(source.stat().st_mtime)  # a module's .pyc is valid only for its source's mtime
    tar.addfile(info, io.BytesIO(data))


def _cache_tag(python: Path) -> str:
    return "cpython-" + python.name.removeprefix("python").replace(".", "")


def _compiled(module: Path, cache_tag: str) -> Path | None:
    """Debian's byte-compiled module next to its source: without it every start compiles asyncio again."""
    if module.suffix != ".py":
        return None
    compiled = module.parent / "__pycache__" / f"{module.stem}.{cache_tag}.pyc"
    return compiled if compiled.is_file() else None


def _compile_server(python: Path, target: Path) -> Path:
    """The server byte-compiled by the image's interpreter (valid for the server's mtime, kept in the tar)."""
    script = "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"
    try:
        subprocess.run([str(python), "-I", "-c", script, str(SERVER), str(target)], check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DockerError(f"compiling the recording app with {python} failed: {exc}") from exc
    return target


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
        dockerfile = DOCKERFILE_TEMPLATE.format(
            version=version, record_file=RECORD_FILE, python=python, module=SERVER.stem
        )
        _add_file_bytes(tar, "Dockerfile", dockerfile.encode())
        _add_file(tar, python, mode=0o755)
        for library in _shared_libraries([python, *extensions]):
            _add_file(tar, library, mode=0o755)
        for module in modules:
            _add_file(tar, module, mode=0o755 if module.suffix == ".so" else 0o644)
            compiled = _compiled(module, _cache_tag(python))
            if compiled is not None:
                _add_file(tar, compiled)
        # The interpreter finds its prefix by the os.py landmark and warns without lib-dynload.
        _add_dir(tar, f"rootfs/usr/lib/{python.name}/lib-dynload")
        _add_dir(tar, f"rootfs{RECORD_DIR}")
        _add_dir(tar, "rootfs/tmp")
        _add_file(tar, SERVER, f"rootfs/app/{SERVER.name}")
        with tempfile.TemporaryDirectory() as scratch:
            compiled = _compile_server(python, Path(scratch) / "server.pyc")
            _add_file(tar, compiled, f"rootfs/app/__pycache__/{SERVER.stem}.{_cache_tag(python)}.pyc")
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


@dataclass
class PaymentOutcomes:
    """What the clients of PaymentClients saw, by request id."""

    succeeded: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # id -> what the client got instead

    @property
    def sent(self) -> int:
        return len(self.succeeded) + len(self.failed)


class PaymentClients:
    """Client threads sending `POST /pay` through `url`, each request with a unique id, on keep-alive.

    `delay` asks the app to take that long to answer (a long request a drain may outlast); `pause` is
    the time each client waits between requests (0: as fast as it can).
    """

    def __init__(
        self, url: str, clients: int = 4, delay: float = 0.0, prefix: str = "pay", pause: float = 0.0
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.clients = clients
        self.delay = delay
        self.pause = pause
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.outcomes = PaymentOutcomes()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> PaymentClients:
        for number in range(self.clients):
            thread = threading.Thread(target=self._client, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> PaymentOutcomes:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.delay + 30)
        return self.outcomes

    def __enter__(self) -> PaymentClients:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _client(self, number: int) -> None:
        connection: http.client.HTTPConnection | None = None
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            request_id = f"{self.prefix}-{number}-{sequence}"
            query = f"id={request_id}" + (f"&delay={self.delay:g}" if self.delay else "")
            body = json.dumps({"amount": 1, "id": request_id}).encode()
            failure = ""
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(self.host, self.port, timeout=self.delay + 30)
                connection.request("POST", f"/pay?{query}", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200:
                    failure = f"HTTP {response.status}"
                elif json.loads(answer).get("id") != request_id:
                    failure = "answer for another request"
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                failure = type(exc).__name__
                if connection is not None:
                    connection.close()
                connection = None
            with self._lock:
                if failure:
                    self.outcomes.failed[request_id] = failure
                else:
                    self.outcomes.succeeded.add(request_id)
            if self.pause:
                self._stop.wait(self.pause)
        if connection is not None:
            connection.close()
