"""Mixed traffic for the deploy benchmark: GETs, POSTs with unique ids, uploads and websockets at once.

Runs against the recording test app (shipyard.lab.recording_app), which records every request it
handles by the id the client puts in `X-Request-Id`; the benchmark reads those records afterwards to
count ids handled more than once (duplicates) and POSTs the client saw succeed that the app never
handled (lost). Like _load.Load, the clients run on raw asyncio sockets in a child process, never retry
and pause `FAILURE_PAUSE` after a failure. Four kinds of client, each its own loop:

- get:       `GET /` (keep-alive or a new connection per request, as the client mode says);
- pay:       `POST /pay` with a small JSON body; ok when the answer is 200 and names the same id; with
             `slow_post` S, the first pay client asks the app to take S seconds over each (`?delay=S`),
             so swaps find a POST in flight that may outlast the old container;
- upload:    `POST /upload` with `upload_bytes` of random data; ok when the app's sha256 and length
             of what it received match what was sent (a mismatch is counted as "upload corrupt");
- websocket: opens `/ws`, sends a message every `WS_INTERVAL` s and waits for its echo; a session that
             the server ends with a close frame (1000/1001, e.g. an orderly shutdown) is ok and the
             client opens a new one; one that ends without a close frame (reset, EOF) or loses an
             echo is a failure.

Every HTTP request and every websocket session is one entry of the returned LoadResult (the upgrade's
latency for a session; a broken session is recorded as failing when it broke, so it lands in the swap
during which it broke). MixedResult adds the per-kind counts and the ids.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from _load import (
    FAILURE_PAUSE,
    REQUEST_ERRORS,
    REQUEST_TIMEOUT,
    ChildLoad,
    LoadResult,
    _failure_kind,
    run_for_parent,
)

KINDS = ("get", "pay", "upload", "websocket")
WS_INTERVAL = 0.1
UPLOAD_PIECE = 65536


def split_clients(concurrency: int) -> dict[str, int]:
    """Clients per kind: about 60% GET, 25% POST /pay, 8% uploads and 8% websockets, at least one each."""
    pay = max(1, round(concurrency * 0.25))
    upload = max(1, round(concurrency * 0.08))
    websocket = max(1, round(concurrency * 0.08))
    return {
        "get": max(1, concurrency - pay - upload - websocket),
        "pay": pay,
        "upload": upload,
        "websocket": websocket,
    }


@dataclass(frozen=True)
class MixOptions:
    upload_bytes: int = 256 * 1024
    slow_post: float = 0.0  # seconds the first pay client's POSTs take in the app; 0: none


@dataclass
class MixedResult:
    load: LoadResult
    prefix: str
    clients: dict[str, int]
    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    sent_ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> every id sent
    ok_ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> ids the client saw succeed
    corrupt_uploads: int = 0
    ws_ends: Counter[str] = field(default_factory=Counter)  # how websocket sessions ended
    ws_messages: int = 0  # messages echoed

    def kind_of(self, request_id: str) -> str:
        return request_id.removeprefix(f"{self.prefix}-").split("-", 1)[0]


class _Stream:
    """One client's connection, opened on demand and dropped after an error or `Connection: close`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(part[:-2] for part in parts)
    else:
        body = await reader.read()
        headers["connection"] = "close"
    return status, headers, body


class _Clients:
    def __init__(
        self, host: str, port: int, mode: str, prefix: str, options: MixOptions, result: MixedResult
    ):
        self.host, self.port, self.mode, self.prefix = host, port, mode, prefix
        self.result = result
        self.stop = asyncio.Event()
        self.slow_post = options.slow_post
        self.upload = os.urandom(options.upload_bytes)
        self.upload_sha = hashlib.sha256(self.upload).hexdigest()

    def _head(self, method: str, path: str, request_id: str, extra: str = "") -> bytes:
        connection = "Connection: close\r\n" if self.mode == "close" else ""
        return (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: shipyard-bench\r\n"
            f"X-Request-Id: {request_id}\r\n{connection}{extra}\r\n"
        ).encode()

    def _ok(self, kind: str, request_id: str, started: float) -> None:
        self.result.load.ok_starts.append(started)
        self.result.load.ok_latencies.append(time.monotonic() - started)
        self.result.ok[kind] += 1
        self.result.ok_ids[kind].append(request_id)

    def _fail(self, kind: str, started: float, reason: str) -> None:
        self.result.load.failures.append((started, time.monotonic(), f"{kind}: {reason}"))
        self.result.failed[kind] += 1

    async def http_client(self, kind: str, number: int) -> None:
        stream = _Stream(self.host, self.port)
        sequence = 0
        while not self.stop.is_set():
            sequence += 1
            request_id = f"{self.prefix}-{kind}-{number}-{sequence}"
            self.result.sent_ids[kind].append(request_id)
            started = time.monotonic()
            reused = stream.writer is not None
            got_head = False
            try:
                async with asyncio.timeout(self._timeout(kind, number)):
                    reader, writer = await stream.open()
                    await self._send(kind, request_id, writer, slow=self._slow(kind, number))
                    status, headers, body = await _response(reader)
                    got_head = True
            except REQUEST_ERRORS as exc:
                self._fail(kind, started, _failure_kind(exc, reused, got_head))
                stream.drop()
                await asyncio.sleep(FAILURE_PAUSE)
                continue
            problem = self._check(kind, request_id, status, body)
            if problem is None:
                self._ok(kind, request_id, started)
            else:
                self._fail(kind, started, problem)
            if problem or self.mode == "close" or headers.get("connection", "").lower() == "close":
                stream.drop()
            if problem:
                await asyncio.sleep(FAILURE_PAUSE)
        stream.drop()

    def _slow(self, kind: str, number: int) -> bool:
        return kind == "pay" and number == 0 and self.slow_post > 0

    def _timeout(self, kind: str, number: int) -> float:
        if kind == "upload":
            return REQUEST_TIMEOUT * 3
        return REQUEST_TIMEOUT + (self.slow_post if self._slow(kind, number) else 0.0)

    async def _send(
        self, kind: str, request_id: str, writer: asyncio.StreamWriter, slow: bool = False
    ) -> None:
        if kind == "get":
            writer.write(self._head("GET", "/", request_id))
        elif kind == "pay":
            body = json.dumps({"id": request_id, "amount": 1}).encode()
            extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            path = f"/pay?delay={self.slow_post:g}" if slow else "/pay"
            writer.write(self._head("POST", path, request_id, extra) + body)
        else:
            extra = f"Content-Type: application/octet-stream\r\nContent-Length: {len(self.upload)}\r\n"
            writer.write(self._head("POST", "/upload", request_id, extra))
            for offset in range(0, len(self.upload), UPLOAD_PIECE):
                writer.write(self.upload[offset : offset + UPLOAD_PIECE])
                await writer.drain()
        await writer.drain()

    def _check(self, kind: str, request_id: str, status: int, body: bytes) -> str | None:
        if not 200 <= status < 300:
            return f"HTTP {status}"
        if kind == "get":
            return None
        try:
            answer = json.loads(body)
        except ValueError:
            return "unreadable answer"
        if kind == "pay":
            return None if answer.get("id") == request_id else "answer for another id"
        if answer.get("sha256") != self.upload_sha or answer.get("length") != len(self.upload):
            self.result.corrupt_uploads += 1
            return "upload corrupt"
        return None

    async def websocket_client(self, number: int) -> None:
        sequence = 0
        while not self.stop.is_set():
            sequence += 1
            request_id = f"{self.prefix}-websocket-{number}-{sequence}"
            self.result.sent_ids["websocket"].append(request_id)
            ended = await self._websocket_session(request_id)
            self.result.ws_ends[ended] += 1
            if ended not in ("closed by server, 1000", "closed by server, 1001", "closed by client"):
                await asyncio.sleep(FAILURE_PAUSE)

    async def _websocket_session(self, request_id: str) -> str:
        started = time.monotonic()
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (
            f"GET /ws HTTP/1.1\r\nHost: {self.host}\r\nX-Request-Id: {request_id}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(upgrade.encode())
                head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 101:
                writer.close()
                self._fail("websocket", started, f"HTTP {status}")
                return f"refused, HTTP {status}"
        except REQUEST_ERRORS as exc:
            if writer is not None:
                writer.close()
            reason = _failure_kind(exc, False, False)
            self._fail("websocket", started, reason)
            return f"open failed, {reason}"
        handshake = time.monotonic() - started
        message = 0
        try:
            while True:
                if self.stop.is_set():
                    writer.write(_frame(8, struct.pack("!H", 1000)))
                    await writer.drain()
                    async with asyncio.timeout(2):
                        while (await _read_frame(reader))[0] != 8:
                            pass
                    ended = "closed by client"
                    break
                message += 1
                text = f"{request_id} message {message}".encode()
                writer.write(_frame(1, text))
                await writer.drain()
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    opcode, payload = await _read_frame(reader)
                if opcode == 8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    writer.write(_frame(8, payload[:2]))
                    await writer.drain()
                    ended = f"closed by server, {code}"
                    if code not in (1000, 1001):
                        raise ConnectionError(ended)
                    break
                if payload != text:
                    raise ConnectionError("echo of another message")
                self.result.ws_messages += 1
                await asyncio.sleep(WS_INTERVAL)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            reason = (
                str(exc) if isinstance(exc, ConnectionError) and str(exc) else _failure_kind(exc, True, True)
            )
            if reason == "truncated response":
                reason = "connection ended without a close frame"
            broke = time.monotonic()
            self.result.load.failures.append((broke, broke, f"websocket: {reason}"))
            self.result.failed["websocket"] += 1
            return f"broken, {reason}"
        writer.close()
        self.result.load.ok_starts.append(started)
        self.result.load.ok_latencies.append(handshake)
        self.result.ok["websocket"] += 1
        self.result.ok_ids["websocket"].append(request_id)
        return ended


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: always masked (RFC 6455 5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(size)


async def _run(
    host: str, port: int, mode: str, concurrency: int, prefix: str, options: MixOptions, control: Connection
) -> MixedResult:
    loop = asyncio.get_running_loop()
    clients = split_clients(concurrency)
    load = LoadResult(mode=mode, concurrency=concurrency, started=time.monotonic(), finished=0.0)
    result = MixedResult(load=load, prefix=prefix, clients=clients)
    for kind in KINDS:
        result.sent_ids[kind], result.ok_ids[kind] = [], []
    runner = _Clients(host, port, mode, prefix, options, result)
    loop.add_reader(control.fileno(), runner.stop.set)
    tasks = [
        *(runner.http_client(kind, n) for kind in ("get", "pay", "upload") for n in range(clients[kind])),
        *(runner.websocket_client(n) for n in range(clients["websocket"])),
    ]
    await asyncio.gather(*tasks)
    loop.remove_reader(control.fileno())
    load.finished = time.monotonic()
    return result


def _child(
    host: str, port: int, mode: str, concurrency: int, prefix: str, options: MixOptions, control: Connection
) -> None:
    run_for_parent(_run(host, port, mode, concurrency, prefix, options, control), control)


class MixedLoad(ChildLoad):
    """Mixed traffic in a child process: `start()`, do things, `stop()` returns the MixedResult."""

    description = "the mixed load generator"

    def __init__(self, address: str, mode: str, concurrency: int, prefix: str, options: MixOptions) -> None:
        host, _, port = address.rpartition(":")
        if not host.startswith("127."):
            raise ValueError("load goes to 127.0.0.0/8 only")
        super().__init__()
        self.args = (host, int(port), mode, concurrency, prefix, options)
        self.options = options

    def _child_call(self) -> tuple[Any, tuple[Any, ...]]:
        return _child, self.args

    def _stop_timeout(self) -> float:
        return REQUEST_TIMEOUT * 3 + self.options.slow_post + 30

    def stop(self) -> MixedResult:
        result: MixedResult = self._stop()
        return result
