"""The recording test app's server: stdlib only, run by Debian's python3 inside a FROM scratch image.

It records every request carrying a client-chosen id (header ``X-Request-Id`` or ``?id=``) so tests
can count duplicates and losses across both slots: in memory, and as JSON lines appended to
$RECORD_FILE when set (a volume shared by the slots). Every response carries ``X-App-Version`` and
``X-App-Slot``.

Routes: ``GET /up``, ``GET /`` and ``/version``; ``POST /pay``; ``GET /slow``; ``POST /upload``
(reads the whole body, answers its sha256 and length); ``GET /ids`` (recorded ids with counts);
``/ws`` (websocket echo); ``GET /events`` (server-sent events, ``?interval=S&count=N``). Any route
takes ``?delay=S`` (answer after S seconds) and ``?close=1`` (record the request, then close the
connection without answering, as an app killed mid-request does).

On SIGTERM it stops listening, closes idle keep-alive connections, lets requests in flight finish
(answering them with ``Connection: close``), closes each websocket with a 1001 close frame and ends
each event stream with a final ``end`` event and the last chunk, then exits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator

VERSION = os.environ.get("APP_VERSION", "dev")
SLOT = os.environ.get("SHIPYARD_SLOT", "")
RECORD_FILE = os.environ.get("RECORD_FILE", "")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEAD_LIMIT = 65536
WS_CLOSE_WAIT = 2.0
REASONS = {
    101: "Switching Protocols",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
}


class BadRequest(Exception):
    pass


class Request:
    def __init__(self, method: str, target: str, headers: dict[str, str], reader: asyncio.StreamReader):
        self.method = method
        parsed = urllib.parse.urlsplit(target)
        self.path = parsed.path
        self.query = dict(urllib.parse.parse_qsl(parsed.query))
        self.headers = headers
        self.reader = reader
        self.body_done = False
        self.request_id = headers.get("x-request-id") or self.query.get("id") or ""

    @property
    def wants_close(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()

    def number(self, name: str, default: float = 0.0) -> float:
        try:
            return float(self.query.get(name, default))
        except ValueError as exc:
            raise BadRequest(f"?{name} must be a number") from exc

    async def body(self) -> AsyncIterator[bytes]:
        """The request body in pieces, chunked or by Content-Length."""
        if self.body_done:
            return
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    break
                async for piece in self._pieces(size):
                    yield piece
                await self.reader.readexactly(2)
        else:
            async for piece in self._pieces(int(self.headers.get("content-length", "0") or 0)):
                yield piece
        self.body_done = True

    async def _pieces(self, size: int) -> AsyncIterator[bytes]:
        """The next `size` bytes of the body as they arrive; a connection cut short is IncompleteReadError."""
        remaining = size
        while remaining:
            piece = await self.reader.read(min(remaining, 65536))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(piece)
            yield piece

    async def discard_body(self) -> None:
        async for _ in self.body():
            pass


class Connection:
    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.kind = "idle"  # idle | request | websocket | events
        self.task: asyncio.Task[None] | None = None
        self.stop = asyncio.Event()


class App:
    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.stopping = False
        self.received: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.host = socket.gethostname()

    # recording

    def record(self, request: Request, phase: str) -> None:
        if not request.request_id:
            return
        (self.received if phase == "received" else self.answered)[request.request_id] += 1
        if RECORD_FILE:
            line = {
                "id": request.request_id,
                "phase": phase,
                "method": request.method,
                "path": request.path,
                "version": VERSION,
                "slot": SLOT,
                "host": self.host,
                "time": time.time(),
            }
            data = (json.dumps(line) + "\n").encode()
            descriptor = os.open(RECORD_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, data)  # one write with O_APPEND: lines of both slots never interleave
            finally:
                os.close(descriptor)

    def recorded(self) -> dict[str, object]:
        received, answered = self.received, self.answered
        if RECORD_FILE:
            received, answered = Counter(), Counter()
            try:
                with open(RECORD_FILE, encoding="utf-8") as lines:
                    for text in lines:
                        entry = json.loads(text)
                        (received if entry["phase"] == "received" else answered)[entry["id"]] += 1
            except FileNotFoundError:
                pass
        return {"version": VERSION, "slot": SLOT, "ids": dict(received), "answered": dict(answered)}

    def open_counts(self) -> dict[str, int]:
        return dict(Counter(conn.kind for conn in self.connections))

    # connections

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(writer)
        conn.task = asyncio.current_task()
        self.connections.add(conn)
        try:
            while not self.stopping:
                conn.kind = "idle"
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                conn.kind = "request"
                try:
                    request = parse_head(head, reader)
                    keep_alive = await self.dispatch(conn, request)
                except BadRequest as exc:
                    await self.respond(conn, 400, f"{exc}\n".encode(), close=True)
                    return
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self.connections.discard(conn)
            writer.close()

    async def respond(
        self,
        conn: Connection,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
        close: bool = False,
    ) -> bool:
        close = close or self.stopping
        head = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"X-App-Version: {VERSION}",
            f"X-App-Slot: {SLOT}",
            f"Connection: {'close' if close else 'keep-alive'}",
        ]
        conn.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await conn.writer.drain()
        return not close

    async def dispatch(self, conn: Connection, request: Request) -> bool:
        delay = request.number("delay")
        if request.path == "/ws":
            return await self.websocket(conn, request)
        if request.path == "/events":
            return await self.events(conn, request)
        if request.path == "/upload":
            return await self.upload(conn, request, delay)
        await request.discard_body()
        self.record(request, "received")
        if request.query.get("close"):
            return False  # closed without an answer, as an app killed mid-request
        if delay:
            await asyncio.sleep(delay)
        if request.path == "/up":
            status, body, kind = 200, b"ok\n", "text/plain"
        elif request.path in ("/", "/version"):
            status, body, kind = 200, f"recording app version {VERSION}\n".encode(), "text/plain"
        elif request.path == "/pay":
            if request.method != "POST":
                status, body, kind = 405, b"POST /pay\n", "text/plain"
            else:
                answer = {"id": request.request_id, "paid": True, "version": VERSION, "slot": SLOT}
                status, body, kind = 200, json.dumps(answer).encode(), "application/json"
        elif request.path == "/slow":
            status, body, kind = 200, f"slow done after {delay} s\n".encode(), "text/plain"
        elif request.path == "/ids":
            status, body, kind = 200, json.dumps(self.recorded()).encode(), "application/json"
        else:
            status, body, kind = 404, b"not found\n", "text/plain"
        keep_alive = await self.respond(conn, status, body, kind, close=request.wants_close)
        self.record(request, "answered")
        return keep_alive

    async def upload(self, conn: Connection, request: Request, delay: float) -> bool:
        digest = hashlib.sha256()
        length = 0
        async for piece in request.body():
            digest.update(piece)
            length += len(piece)
        self.record(request, "received")
        if delay:
            await asyncio.sleep(delay)
        answer = {"sha256": digest.hexdigest(), "length": length, "version": VERSION, "slot": SLOT}
        keep_alive = await self.respond(
            conn, 200, json.dumps(answer).encode(), "application/json", close=request.wants_close
        )
        self.record(request, "answered")
        return keep_alive

    # server-sent events

    async def events(self, conn: Connection, request: Request) -> bool:
        interval = request.number("interval", 0.5)
        count = int(request.number("count", 0))
        await request.discard_body()
        self.record(request, "received")
        conn.kind = "events"
        head = [
            "HTTP/1.1 200 OK",
            "Content-Type: text/event-stream",
            "Cache-Control: no-cache",
            "Transfer-Encoding: chunked",
            f"X-App-Version: {VERSION}",
            f"X-App-Slot: {SLOT}",
            "Connection: close",
        ]
        conn.writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        sent = 0
        while not conn.stop.is_set() and (count == 0 or sent < count):
            sent += 1
            event = json.dumps({"n": sent, "version": VERSION, "slot": SLOT})
            conn.writer.write(chunk(f"id: {sent}\nevent: tick\ndata: {event}\n\n".encode()))
            await conn.writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.stop.wait(), interval)
        reason = "shutdown" if conn.stop.is_set() else "complete"
        conn.writer.write(chunk(f"event: end\ndata: {reason}\n\n".encode()) + b"0\r\n\r\n")
        await conn.writer.drain()
        self.record(request, "answered")
        return False

    # websockets

    async def websocket(self, conn: Connection, request: Request) -> bool:
        key = request.headers.get("sec-websocket-key", "")
        if "websocket" not in request.headers.get("upgrade", "").lower() or not key:
            await request.discard_body()
            await self.respond(conn, 426, b"websocket upgrade required\n", close=True)
            return False
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        head = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept}",
            f"X-App-Version: {VERSION}",
            f"X-App-Slot: {SLOT}",
        ]
        conn.writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await conn.writer.drain()
        self.record(request, "received")
        conn.kind = "websocket"
        reader = request.reader
        closer = asyncio.ensure_future(self._close_websocket_on_stop(conn))
        try:
            message = b""
            message_opcode = 1
            while True:
                opcode, payload = await read_frame(reader)
                if opcode == 8:  # close: answer with the same code (unless it answers ours), then end
                    if not conn.stop.is_set():
                        conn.writer.write(frame(8, payload[:2]))
                        await conn.writer.drain()
                    break
                if opcode == 9:
                    conn.writer.write(frame(10, payload))
                elif opcode in (1, 2):
                    message, message_opcode = payload, opcode
                elif opcode == 0:
                    message += payload
                    continue
                else:
                    continue
                if opcode in (1, 2):
                    conn.writer.write(frame(message_opcode, message))
                await conn.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            closer.cancel()
        self.record(request, "answered")
        return False

    async def _close_websocket_on_stop(self, conn: Connection) -> None:
        await conn.stop.wait()
        conn.writer.write(frame(8, struct.pack("!H", 1001) + b"server going away"))
        await conn.writer.drain()
        # The client answers with its own close frame; if it does not, end the connection anyway.
        await asyncio.sleep(WS_CLOSE_WAIT)
        conn.writer.close()

    # shutdown

    def begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        counts = self.open_counts()
        print(f"SIGTERM: stopping with open connections {counts}", flush=True)
        for conn in list(self.connections):
            conn.stop.set()
            if conn.kind == "idle" and conn.task is not None:
                conn.task.cancel()


def parse_head(head: bytes, reader: asyncio.StreamReader) -> Request:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise BadRequest("malformed request line") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"malformed header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers, reader)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (never masked)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    opcode = first & 0x0F
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if second & 0x80 else b""
    payload = await reader.readexactly(size)
    if mask:
        payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return opcode, payload


async def main() -> None:
    app = App()
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "3000"))
    server = await asyncio.start_server(app.serve_connection, host, port, limit=HEAD_LIMIT, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"recording app {VERSION} listening on {host}:{port}", flush=True)
    await stop.wait()
    server.close()
    app.begin_stop()
    while app.connections:
        await asyncio.sleep(0.05)
    print("stopped cleanly", flush=True)


if __name__ == "__main__":
    if "--print-modules" in sys.argv:
        # The image builder copies exactly the files this server loads.
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if path:
                print(path)
        sys.exit(0)
    asyncio.run(main())
