"""Shared helpers for the benchmarks: an HTTP load generator that records every request, and small tools.

The load generator runs N concurrent HTTP/1.1 clients on raw asyncio sockets in a child process (so the
benchmark's own work, e.g. running `shipyard deploy`, never steals its event loop). Every request is
recorded: successful ones as (start, latency), failed ones as (start, end, kind). A request fails when
it gets a non-2xx status, any socket error (refused, reset, EOF before a full response), or no full
response within the request timeout. Clients do not retry; after a failure a client pauses
`FAILURE_PAUSE` seconds before its next request, so a refused port does not turn into a busy loop
whose failure count only measures how fast Python can call connect().

Two client modes:
- keep-alive: HTTP/1.1 persistent connections, reused as long as the server keeps them open (busybox
  httpd closes after every response, so direct to busybox this is one connection per request too;
  through haproxy the client side stays open).
- close: a new TCP connection for every request (`Connection: close`).

Timestamps are `time.monotonic()`, which is the same clock in every process of the machine, so the
parent can place failures inside its own swap timeline.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Self

from shipyard.lab.single_host import (
    PushedImages,
    Registry,
    push_images,
    start_engine,
    start_local_registry,
    unique_name,
)
from shipyard.lab.testapp import Behaviour

MODES = ("keep-alive", "close")
FAILURE_PAUSE = 0.010
REQUEST_TIMEOUT = 10.0


@dataclass
class LoadResult:
    """Every request of one load run."""

    mode: str
    concurrency: int
    started: float
    finished: float
    ok_starts: array[float] = field(default_factory=lambda: array("d"))
    ok_latencies: array[float] = field(default_factory=lambda: array("d"))
    failures: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return len(self.ok_latencies)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def total(self) -> int:
        return self.ok + self.failed

    @property
    def rps(self) -> float:
        return self.total / max(self.finished - self.started, 1e-9)

    def percentile(self, q: float) -> float:
        """Latency percentile (seconds) of the successful requests, nearest-rank."""
        return percentile(self.ok_latencies, q)

    def failure_kinds(self) -> Counter[str]:
        return Counter(kind for _, _, kind in self.failures)


def percentile(values: array[float] | list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the client ------------------------------------------------------------------------------


def _request_bytes(host: str, path: str, mode: str) -> bytes:
    connection = "Connection: close\r\n" if mode == "close" else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: shipyard-bench\r\n{connection}\r\n".encode()


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> tuple[int, bool]:
    """Parse the response head and read its body; return (status, connection reusable)."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status = int(rest[:3])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    keep = version == "HTTP/1.1" and headers.get("connection") != "close"
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status not in (204, 304):
        await reader.read()  # body delimited by the end of the connection
        keep = False
    return status, keep


# What a request can fail with, each one counted as a failure of its kind rather than crashing the load.
REQUEST_ERRORS = (
    OSError,
    TimeoutError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ValueError,
)


def _failure_kind(exc: BaseException, reused: bool, got_head: bool) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, asyncio.IncompleteReadError):
        if not got_head and not exc.partial:
            return "closed before response (reused conn)" if reused else "closed before response"
        return "truncated response"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError):
        return f"socket error {exc.errno}"
    return type(exc).__name__


async def _client(
    host: str, port: int, request: bytes, mode: str, stop: asyncio.Event, result: LoadResult, timeout: float
) -> None:
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    now = time.monotonic
    while not stop.is_set():
        started = now()
        reused = writer is not None
        got_head = False
        try:
            async with asyncio.timeout(timeout):
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                got_head = True
                status, keep = await _read_body(reader, head)
        except REQUEST_ERRORS as exc:
            result.failures.append((started, now(), _failure_kind(exc, reused, got_head)))
            if writer is not None:
                writer.close()
            writer = reader = None
            await asyncio.sleep(FAILURE_PAUSE)
            continue
        finished = now()
        if 200 <= status < 300:
            result.ok_starts.append(started)
            result.ok_latencies.append(finished - started)
        else:
            result.failures.append((started, finished, f"HTTP {status}"))
        if not keep or mode == "close":
            writer.close()
            writer = reader = None
        if status >= 300:
            await asyncio.sleep(FAILURE_PAUSE)
    if writer is not None:
        writer.close()


async def _run(
    host: str, port: int, path: str, mode: str, concurrency: int, control: Connection, timeout: float
) -> LoadResult:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(control.fileno(), stop.set)
    request = _request_bytes(host, path, mode)
    result = LoadResult(mode=mode, concurrency=concurrency, started=time.monotonic(), finished=0.0)
    clients = [
        asyncio.create_task(_client(host, port, request, mode, stop, result, timeout))
        for _ in range(concurrency)
    ]
    await asyncio.gather(*clients)
    loop.remove_reader(control.fileno())
    result.finished = time.monotonic()
    return result


def _child(
    host: str, port: int, path: str, mode: str, concurrency: int, timeout: float, control: Connection
) -> None:
    run_for_parent(_run(host, port, path, mode, concurrency, control, timeout), control)


def run_for_parent(load: Coroutine[Any, Any, Any], control: Connection) -> None:
    """Runs `load` in a child process until the parent says stop, then hands it the result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the load stops
    result = asyncio.run(load)
    control.recv()  # the stop message
    control.send(result)
    control.close()


class ChildLoad:
    """A load generator in a forked child process, spoken to over a pipe: `start()`, `stop()`, `kill()`."""

    description = "the load generator"

    def __init__(self) -> None:
        self._process: multiprocessing.process.BaseProcess | None = None
        self._control: Connection | None = None

    def _child_call(self) -> tuple[Any, tuple[Any, ...]]:
        """The child's function and its arguments, the control pipe's end left out (it goes last)."""
        raise NotImplementedError

    def _stop_timeout(self) -> float:
        raise NotImplementedError

    def start(self) -> Self:
        context = multiprocessing.get_context("fork")
        parent, child = context.Pipe()
        target, args = self._child_call()
        self._process = context.Process(target=target, args=(*args, child), daemon=True)
        self._process.start()
        child.close()
        self._control = parent
        return self

    def _stop(self) -> Any:
        assert self._process is not None and self._control is not None
        self._control.send("stop")
        if not self._control.poll(self._stop_timeout()):
            self._process.kill()
            raise RuntimeError(f"{self.description} did not stop")
        result = self._control.recv()
        self._process.join(5)
        self._control.close()
        return result

    def kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class Load(ChildLoad):
    """A load run in a child process: `start()`, do things, `stop()` returns the LoadResult."""

    def __init__(
        self,
        address: str,
        mode: str,
        concurrency: int = 65,
        path: str = "/",
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        host, _, port = address.rpartition(":")
        if not host.startswith("127."):
            raise ValueError("load goes to 127.0.0.0/8 only")
        super().__init__()
        self.host, self.port, self.path = host, int(port), path
        self.mode, self.concurrency, self.timeout = mode, concurrency, timeout

    def _child_call(self) -> tuple[Any, tuple[Any, ...]]:
        return _child, (self.host, self.port, self.path, self.mode, self.concurrency, self.timeout)

    def _stop_timeout(self) -> float:
        return self.timeout + 30

    def stop(self) -> LoadResult:
        result: LoadResult = self._stop()
        return result


# --- timelines: which phase of which swap a failure fell in -----------------------------------


@dataclass
class Swap:
    """One swap: its label and (event, monotonic time) pairs in order, the first being its start."""

    label: str
    events: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, event: str, at: float | None = None) -> None:
        self.events.append((event, time.monotonic() if at is None else at))

    @property
    def started(self) -> float:
        return self.events[0][1]

    def phase_at(self, moment: float) -> str:
        phase = "before"
        for event, at in self.events:
            if at <= moment:
                phase = event
        return phase


def attribute(
    failures: list[tuple[float, float, str]], swaps: list[Swap]
) -> list[list[tuple[float, float, str]]]:
    """Failures grouped per swap: a failure belongs to the last swap started before the request started."""
    starts = [swap.started for swap in swaps]
    groups: list[list[tuple[float, float, str]]] = [[] for _ in swaps]
    for failure in failures:
        index = bisect.bisect_right(starts, failure[0]) - 1
        if index >= 0:
            groups[index].append(failure)
    return groups


def error_window(failures: list[tuple[float, float, str]]) -> float:
    """Seconds from the start of the first failed request to the start of the last one; 0 when none.

    Start times, not end times: a request that hangs until the client timeout would otherwise stretch
    the window by the timeout itself.
    """
    if not failures:
        return 0.0
    starts = [start for start, _, _ in failures]
    return max(starts) - min(starts)


def phase_durations(swaps: list[Swap]) -> dict[str, float]:
    """Median seconds spent in each phase (from its event to the next one) over the swaps."""
    spent: dict[str, list[float]] = {}
    for swap in swaps:
        for (name, at), (_, following) in zip(swap.events, swap.events[1:], strict=False):
            spent.setdefault(name, []).append(following - at)
    return {name: statistics.median(values) for name, values in spent.items()}


def completions_per_second(result: LoadResult, start: float, end: float) -> list[int]:
    """Successful responses completed per second in [start, end): a stall, or only a few stuck requests?"""
    buckets = [0] * max(1, math.ceil(end - start))
    for began, latency in zip(result.ok_starts, result.ok_latencies, strict=True):
        done = began + latency
        if start <= done < end:
            buckets[int(done - start)] += 1
    return buckets


TCP_COUNTERS = ("ListenOverflows", "SyncookiesSent", "SyncookiesRecv", "TCPTimeouts", "TCPAbortOnData")


def tcp_counters() -> dict[str, int]:
    """Machine-wide TcpExt counters (listen-queue overflows, SYN cookies, retransmission timeouts)."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        lines = Path("/proc/net/netstat").read_text().splitlines()
        for header, row in zip(lines[::2], lines[1::2], strict=False):
            for name, value in zip(header.split()[1:], row.split()[1:], strict=False):
                if name in TCP_COUNTERS:
                    values[name] = int(value)
    return values


# --- small tools shared by the scripts ---------------------------------------------------------


# git as the benchmarks commit: a fixed identity, whatever the machine's configuration says.
GIT = [
    "git",
    "-c",
    "user.email=bench@shipyard.test",
    "-c",
    "user.name=bench",
    "-c",
    "init.defaultBranch=main",
]


def git(root: Path, *args: str) -> str:
    """Runs git in the repository at `root`; its output, stripped."""
    return subprocess.run(
        [*GIT, "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def docker_cli() -> str:
    """The docker CLI matching the engine (Debian's docker.io), else whatever is on PATH."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no docker CLI found")


def run(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True
) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-600:]}")
    return done.stdout


def wait_http(address: str, path: str = "/", expect: str | None = None, timeout: float = 15.0) -> float:
    """Poll http://address/path until it answers 200 (and contains `expect`); return when (monotonic)."""
    import httpx

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://{address}{path}", timeout=1.0)
            if response.status_code == 200 and (expect is None or expect in response.text):
                return time.monotonic()
            last = f"HTTP {response.status_code} {response.text.strip()[:40]!r}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.02)
    raise RuntimeError(
        f"http://{address}{path} did not serve {expect or '200'} within {timeout:g} s ({last})"
    )


def free_port_block(count: int = 2) -> int:
    """A port p with p .. p+count-1 all free on 127.0.0.1."""
    import socket

    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count >= 65000:
            continue
        ok = True
        for port in range(base, base + count):
            with socket.socket() as probe, contextlib.suppress(OSError):
                probe.bind(("127.0.0.1", port))
                continue
            ok = False
            break
        if ok:
            return base
    raise RuntimeError("no free block of ports found")


def describe_run() -> str:
    """One line for the top of a benchmark's output: the code measured and how busy the machine is."""
    root = Path(__file__).resolve().parent.parent
    commit = run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], check=False).strip() or "unknown"
    dirty = run(["git", "-C", str(root), "status", "--porcelain", "--", "src"], check=False).strip()
    changes = f" + uncommitted changes in {len(dirty.splitlines())} src files" if dirty else ""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"shipyard at {commit}{changes}; {os.cpu_count()} CPUs; load average {load}"


def fmt_ms(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    return f"{seconds * 1000:.1f}"


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    """Print (and return) a GitHub-markdown table, aligned so it also reads well in a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False))
            + " |"
        )

    text = "\n".join(
        [f"\n{title}\n", line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]
    )
    print(text, flush=True)
    return text


# --- the lab: engine, registry and the two test images -----------------------------------------


@dataclass
class Lab:
    work: Path
    docker_url: str
    registry: Registry
    images: PushedImages

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.docker_url}

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return run([docker_cli(), *args], env=self.env(), timeout=timeout, check=check)


@contextlib.contextmanager
def lab(prefix: str) -> Iterator[Lab]:
    """Docker Engine (started when none answers), a registry on 127.0.0.1 and images v1 and v2 in it."""
    work = Path(tempfile.mkdtemp(prefix=f"shipyard-bench-{prefix}-"))
    registry: Registry | None = None
    images: PushedImages | None = None
    docker_url = ""
    try:
        docker_url = start_engine(work)
        registry = start_local_registry(work)
        variants: dict[str, tuple[str, Behaviour]] = {"v1": ("v1", "ok"), "v2": ("v2", "ok")}
        images = push_images(docker_url, registry, unique_name(f"bench-{prefix}-"), variants)
        yield Lab(work, docker_url, registry, images)
    finally:
        if images is not None:
            _remove_images(docker_url, images)
        if registry is not None:
            registry.server.stop()
        shutil.rmtree(work, ignore_errors=True)


def _remove_images(docker_url: str, images: PushedImages) -> None:
    """Untag this run's references only: builds are reproducible, so other users' tags may share the ids."""
    import docker
    import docker.errors

    client = docker.DockerClient(base_url=docker_url)
    try:
        for image in client.images.list(name=images.repository):
            references = (image.attrs.get("RepoTags") or []) + (image.attrs.get("RepoDigests") or [])
            for reference in references:
                if reference.startswith((f"{images.repository}:", f"{images.repository}@")):
                    with contextlib.suppress(docker.errors.DockerException):
                        client.images.remove(reference)
    finally:
        client.close()
