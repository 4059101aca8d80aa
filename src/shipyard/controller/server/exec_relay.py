"""The exec relay: a deployer's WebSocket spliced to the WebSocket its host's agent opens.

Agents only connect out to the controller, so the agent dials in for a session (it learns of it in its
desired state) and this process pairs the two sockets by the session's task id. Frames pass unchanged:
binary frames are the command's stdin (client to agent) or its output (agent to client, first byte 1
for stdout, 2 for stderr), text frames are small JSON control messages (start, resize, eof, exit,
error). The rules (who may attach, the timeouts) are controller/engine/exec_sessions.py; this module
only waits, copies and closes. Sessions live in this process's memory: both sides must reach the same
controller process (an agent tries each controller URL it knows until one holds the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketState

from shipyard.controller.engine import exec_sessions
from shipyard.controller.engine.exec_sessions import ExecSession
from shipyard.errors import NotFoundError

log = structlog.get_logger("shipyard.controller")
STATUS_CHECK_S = 0.5  # while no agent attached: how often the task's row is read (a refusal ends it)


@dataclass
class PendingSession:
    session: ExecSession
    agent: asyncio.Future[WebSocket] = field(default_factory=asyncio.Future)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Ended:
    reason: str
    exit_code: int | None
    attached: bool
    seconds: float


class ExecRelay:
    """The sessions this process holds, by task id."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sessions: dict[int, PendingSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def offer_agent(self, task_id: int, host_id: int, websocket: WebSocket) -> PendingSession:
        """Hand the agent's socket to the client's waiting handler; the agent's handler then waits."""
        pending = self._sessions.get(task_id)
        if pending is None:
            raise NotFoundError(f"no client waits for exec session {task_id} on this controller.")
        exec_sessions.check_agent(pending.session, host_id)
        if pending.agent.done():
            raise NotFoundError(f"exec session {task_id} has its agent already.")
        pending.agent.set_result(websocket)
        return pending

    async def serve(
        self,
        client: WebSocket,
        session: ExecSession,
        task_status: Callable[[], Awaitable[tuple[str, str]]],
        cancel: Callable[[str], Awaitable[bool]],
    ) -> Ended:
        """Wait for the agent (or the end of the task, or the pickup timeout), then splice until the end.

        `task_status()` reads the task's (status, message); `cancel(reason)` fails it while pending."""
        pending = PendingSession(session)
        self._sessions[session.task_id] = pending
        started = self.clock()
        try:
            early: list[str | bytes] = []
            agent = await self._wait_agent(client, pending, early, task_status, cancel)
            if isinstance(agent, Ended):
                return agent
            pending.session = exec_sessions.attach(pending.session, self.clock())
            try:
                await client.send_text(json.dumps({"type": "attached", "host": session.host}))
                for frame in early:
                    await _send(agent, frame)
            except Exception:  # either side left in between: the other is closed, nothing ran
                await _close_with(client, None)
                await _close_with(agent, None)
                return Ended("a side left as the agent attached", None, True, self.clock() - started)
            return await self._splice(client, agent, pending, started)
        finally:
            self._sessions.pop(session.task_id, None)
            pending.done.set()

    async def _wait_agent(
        self,
        client: WebSocket,
        pending: PendingSession,
        early: list[str | bytes],
        task_status: Callable[[], Awaitable[tuple[str, str]]],
        cancel: Callable[[str], Awaitable[bool]],
    ) -> WebSocket | Ended:
        started = self.clock()
        from_client: asyncio.Task[str | bytes | None] = asyncio.ensure_future(_receive(client))
        try:
            while True:
                waited: set[asyncio.Future[Any]] = {from_client, pending.agent}
                done, _ = await asyncio.wait(
                    waited, timeout=STATUS_CHECK_S, return_when=asyncio.FIRST_COMPLETED
                )
                if pending.agent in done:
                    return pending.agent.result()
                if from_client in done:
                    frame = from_client.result()
                    if frame is None:
                        await cancel("the client left before an agent attached")
                        return Ended("the client left before an agent attached", None, False, 0.0)
                    early.append(frame)  # the start frame (tty, window size): the agent reads it first
                    from_client = asyncio.ensure_future(_receive(client))
                    continue
                status, message = await task_status()
                if status in ("succeeded", "failed"):  # refused by the host's policy, or cancelled
                    await _close_with(client, {"type": "error", "message": message})
                    return Ended(message, None, False, 0.0)
                reason = exec_sessions.expiry(pending.session, self.clock())
                if reason is not None:
                    cancelled = await cancel(reason)
                    text = f"{reason}; the session was cancelled." if cancelled else f"{reason}."
                    await _close_with(client, {"type": "error", "message": text})
                    return Ended(reason, None, False, self.clock() - started)
        finally:
            from_client.cancel()

    async def _splice(
        self, client: WebSocket, agent: WebSocket, pending: PendingSession, started: float
    ) -> Ended:
        exit_code: list[int] = []

        def touched() -> None:
            pending.session = exec_sessions.active(pending.session, self.clock())

        async def pump(source: WebSocket, target: WebSocket, gone: str, from_agent: bool) -> str:
            while True:
                frame = await _receive(source)
                if frame is None:
                    return gone
                touched()
                if from_agent and isinstance(frame, str):
                    code = _exit_code(frame)
                    if code is not None:
                        exit_code.append(code)
                try:
                    await _send(target, frame)
                except Exception:  # the other side is gone
                    return "the agent left" if from_agent is False else "the client left"

        async def watchdog() -> str:
            while True:
                now = self.clock()
                reason = exec_sessions.expiry(pending.session, now)
                if reason is not None:
                    return reason
                due = exec_sessions.next_check(pending.session)
                await asyncio.sleep(max(0.05, min(1.0, (due or now + 1.0) - now)))

        tasks = [
            asyncio.ensure_future(pump(client, agent, "the client left", False)),
            asyncio.ensure_future(pump(agent, client, "the agent left", True)),
            asyncio.ensure_future(watchdog()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            reason = next(iter(done)).result()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        code = exit_code[0] if exit_code else None
        if code is not None:
            reason = f"the command exited with {code}"
        pending.session = exec_sessions.close(pending.session, reason)
        if code is None:
            await _close_with(client, {"type": "error", "message": f"the session ended: {reason}."})
        else:
            await _close_with(client, None)
        await _close_with(agent, None)
        return Ended(reason, code, True, self.clock() - started)


def _exit_code(text: str) -> int | None:
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") == "exit" and isinstance(message.get("code"), int):
        return int(message["code"])
    return None


async def _receive(websocket: WebSocket) -> str | bytes | None:
    """The next frame, or None once the peer left."""
    try:
        message = await websocket.receive()
    except Exception:  # the peer or its transport went away: the session ends, it does not fail
        return None
    if message["type"] == "websocket.disconnect":
        return None
    if message.get("bytes") is not None:
        return bytes(message["bytes"])
    return str(message.get("text") or "")


async def _send(websocket: WebSocket, frame: str | bytes) -> None:
    if isinstance(frame, bytes):
        await websocket.send_bytes(frame)
    else:
        await websocket.send_text(frame)


async def _close_with(websocket: WebSocket, message: dict[str, object] | None) -> None:
    """A last control message (when given) and the close; a peer already gone is fine."""
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    # Whatever the server's transport raises for a peer gone meanwhile (anyio, websockets, OSError).
    with contextlib.suppress(Exception):
        if message is not None:
            await websocket.send_text(json.dumps(message))
        await websocket.close(1000)


async def refuse(websocket: WebSocket, message: str, status: int) -> None:
    """An accepted socket told why it may not go on (one sentence and the HTTP status it stands for)."""
    await _close_with(websocket, {"type": "error", "message": message, "status": status})
