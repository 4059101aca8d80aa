"""Exec sessions the controller assigns to this host (`shipyard exec --env E --host H`).

The agent only dials out, so for each session in its desired state it tells the controller it starts
(once, as for a task), asks its policy (refused: the session fails with the reason, nothing ran),
opens the session's WebSocket to the controller, which splices it to the deployer's, and runs the
command in the app's serving container with `docker exec`: the socket's bytes become its stdin, its
output goes back, then its exit code. Each session runs in a thread of its own, so a console left
open does not hold up the agent's swaps; the controller ends idle and overlong sessions.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from shipyard.agent.ports import ControllerPort, HostPort, RelayChannel
from shipyard.agent.tasks import claim
from shipyard.errors import ShipyardError
from shipyard.fleet_api.schemas.tasks import TaskOrder, TaskUpdate
from shipyard.host.ports import ExecProcess
from shipyard.secrets.masking import mask

log = structlog.get_logger("shipyard.agent")
START_TIMEOUT = 30.0  # seconds for the client's start message once the agent's socket is in
RECEIVE_SLICE = 0.5  # seconds between looks at whether the command's output ended
CLIENT_GRACE = 10.0  # seconds the client's socket may take to reach the controller
CLIENT_RETRY_S = 0.5


def _thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="shipyard-exec", daemon=True).start()


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded | failed
    exit_code: int | None
    message: str = ""


@dataclass
class ExecRunner:
    controller: ControllerPort
    host: HostPort
    spawn: Callable[[Callable[[], None]], None] = _thread
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    started: set[int] = field(default_factory=set)  # this process's sessions: each is served once

    def run(self, orders: list[TaskOrder]) -> None:
        """Start each new session: its policy and container are looked up here, in the loop's thread
        (the host's store belongs to it), the relay itself then runs in a thread of its own."""
        for order in orders:
            if order.id in self.started or not claim(self.controller, order, self.started):
                continue
            log.info("exec session", task=order.id, app=order.app)
            try:
                container = self.host.check_exec(order)
            except ShipyardError as exc:  # refused by the policy, or the app does not run here
                self._finish(order, Outcome("failed", None, str(exc)))
                continue
            self.spawn(lambda order=order, container=container: self.serve(order, container))  # type: ignore[misc]

    def serve(self, order: TaskOrder, container: str) -> None:
        try:
            outcome = self._serve(order, container)
        except Exception as exc:  # a started session must end, whatever broke
            log.exception("exec session broke", task=order.id)
            outcome = Outcome("failed", None, f"the agent could not finish it ({type(exc).__name__})")
        self._finish(order, outcome)

    def _finish(self, order: TaskOrder, outcome: Outcome) -> None:
        log.info("exec session ended", task=order.id, exit_code=outcome.exit_code, message=outcome.message)
        update = TaskUpdate(
            status="succeeded" if outcome.status == "succeeded" else "failed",
            exit_code=outcome.exit_code,
            message=mask(outcome.message)[:2000],
        )
        try:
            self.controller.task_update(order.id, update)
        except ShipyardError as exc:
            log.warning("exec session end not reported", task=order.id, error=str(exc))

    def _serve(self, order: TaskOrder, container: str) -> Outcome:
        opened = self._connect(order.id)
        if opened is None:
            return Outcome("failed", None, "no controller held the session's client (it left?)")
        channel, start = opened
        try:
            try:
                process = self.host.start_exec(container, list(order.argv), tty=bool(start.get("tty")))
            except Exception as exc:
                reason = (
                    str(exc) if isinstance(exc, ShipyardError) else f"the agent failed ({type(exc).__name__})"
                )
                with contextlib.suppress(ShipyardError):
                    channel.send_control({"type": "error", "message": mask(reason)})
                if not isinstance(exc, ShipyardError):
                    raise
                return Outcome("failed", None, reason)
            try:
                rows, cols = start.get("rows"), start.get("cols")
                if isinstance(rows, int) and isinstance(cols, int) and rows > 0 and cols > 0:
                    process.resize(rows, cols)
                return relay(channel, process)
            finally:
                process.close()
        finally:
            channel.close()

    def _connect(self, task_id: int) -> tuple[RelayChannel, dict[str, object]] | None:
        """The session's socket and the client's start message, on the controller that holds it. The
        client opens its socket right after asking for the session, but may still be on its way: each
        controller is asked again for a few seconds."""
        deadline = self.clock() + CLIENT_GRACE
        while True:
            for channel in self.controller.agent_exec_channels(task_id):
                try:
                    first = channel.receive(timeout=START_TIMEOUT)
                except TimeoutError:
                    first = None
                if isinstance(first, dict) and first.get("type") == "start":
                    return channel, first
                channel.close()
                if isinstance(first, dict) and first.get("type") == "error":
                    log.info("exec session not here", task=task_id, reason=first.get("message"))
                    if first.get("status") != 404:  # refused, not missing: asking again will not help
                        return None
            if self.clock() >= deadline:
                return None
            self.sleep(CLIENT_RETRY_S)


def relay(channel: RelayChannel, process: ExecProcess) -> Outcome:
    """Copy the socket's bytes to the command's stdin and its output back, until its output ends (then
    its exit code goes back) or the client leaves."""
    output_ended = threading.Event()

    def copy_output() -> None:
        try:
            while (chunk := process.read()) is not None:
                stream, data = chunk
                channel.send_bytes(bytes([stream]) + data)
        except (ShipyardError, OSError):
            pass  # the socket or the exec went away: the main loop sees why
        finally:
            output_ended.set()

    copier = threading.Thread(target=copy_output, name="shipyard-exec-output", daemon=True)
    copier.start()
    while not output_ended.is_set():
        try:
            frame = channel.receive(timeout=RECEIVE_SLICE)
        except TimeoutError:
            continue
        if frame is None:
            process.close()  # the command sees its stdin and terminal go
            copier.join(timeout=5)
            return Outcome("failed", None, "the session's client left before the command ended")
        if isinstance(frame, bytes):
            try:
                process.write(frame)
            except (ShipyardError, OSError):
                process.close_stdin()
        elif frame.get("type") == "eof":
            process.close_stdin()
        elif frame.get("type") == "resize":
            rows, cols = frame.get("rows"), frame.get("cols")
            if isinstance(rows, int) and isinstance(cols, int) and rows > 0 and cols > 0:
                process.resize(rows, cols)
    copier.join()
    code = process.exit_code()
    # The client may have left as the command ended: the exit code still goes in the task's record.
    with contextlib.suppress(ShipyardError):
        channel.send_control({"type": "exit", "code": code if code is not None else -1})
    if code is None:
        return Outcome("failed", None, "the engine did not say how the command ended")
    return Outcome("succeeded" if code == 0 else "failed", code, f"exited with {code}")
