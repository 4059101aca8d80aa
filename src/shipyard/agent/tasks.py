"""Tasks the controller assigns to this host: a release phase or a one-off command, each run once.

The agent first tells the controller the task started (the controller takes it out of the desired
state then, and refuses a second start), so a task never runs twice, even after an agent restart. The
output goes back in batches (every BATCH_LINES lines or BATCH_SECONDS), then the exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from shipyard.agent.ports import ControllerPort, HostPort
from shipyard.errors import ControllerError, ShipyardError
from shipyard.fleet_api.schemas.tasks import MAX_LINE, MAX_LINES_PER_POST, TaskOrder, TaskUpdate
from shipyard.secrets.masking import mask

log = structlog.get_logger("shipyard.agent")
BATCH_LINES = 100
BATCH_SECONDS = 0.5
FINAL_ATTEMPTS = 5


def claim(controller: ControllerPort, order: TaskOrder, started: set[int]) -> bool:
    """Tell the controller `order` starts here, noted in `started`; False when it refuses (started
    already, cancelled, or the controller is away), and `order` is forgotten again: only an order still
    pending comes again in the desired state, and that one is tried again."""
    started.add(order.id)
    try:
        controller.task_update(order.id, TaskUpdate(start=True))
    except ShipyardError as exc:
        log.info("not started", task=order.id, kind=order.kind, reason=str(exc))
        started.discard(order.id)
        return False
    return True


@dataclass
class TaskOutput:
    """Output lines of one task on their way to the controller, masked, in batches."""

    controller: ControllerPort
    task_id: int
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    pending: list[str] = field(default_factory=list)
    sent_at: float = 0.0

    def line(self, text: str) -> None:
        self.pending.append(mask(text.replace("\x00", ""))[:MAX_LINE])
        if len(self.pending) >= BATCH_LINES or self.clock() - self.sent_at >= BATCH_SECONDS:
            self._send("running")

    def finish(self, status: str, exit_code: int | None, message: str = "") -> None:
        """The rest of the output and the end; retried a few times, as the end is what a caller waits for."""
        for attempt in range(FINAL_ATTEMPTS):
            if self._send(status, exit_code, message):
                return
            self.sleep(min(2.0**attempt, 10.0))
        log.error("task end could not be reported", task=self.task_id, status=status)

    def _send(self, status: str, exit_code: int | None = None, message: str = "") -> bool:
        while True:
            batch = self.pending[:MAX_LINES_PER_POST]
            last = len(batch) == len(self.pending)
            update = TaskUpdate(
                status="running" if not last else status,
                lines=batch,
                exit_code=exit_code if last else None,
                message=message[:2000] if last else "",
            )
            try:
                self.controller.task_update(self.task_id, update)
            except ControllerError as exc:  # kept for the next batch: the command goes on meanwhile
                log.warning("task output not delivered yet", task=self.task_id, error=str(exc))
                return False
            del self.pending[: len(batch)]
            self.sent_at = self.clock()
            if last:
                return True


@dataclass
class TaskRunner:
    controller: ControllerPort
    host: HostPort
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    started: set[int] = field(default_factory=set)  # this process's tasks, so a stale answer is skipped

    def run(self, orders: list[TaskOrder]) -> None:
        for order in orders:
            if order.id not in self.started:
                self._run(order)

    def _run(self, order: TaskOrder) -> None:
        if not claim(self.controller, order, self.started):
            return
        output = TaskOutput(self.controller, order.id, self.clock, self.sleep)
        log.info("task started", task=order.id, kind=order.kind, app=order.app, release=order.release)
        try:
            code = self.host.run_task(order, output.line)
        except ShipyardError as exc:
            log.error("task could not run", task=order.id, error=str(exc))
            output.finish("failed", None, mask(str(exc)))
            return
        except Exception as exc:  # a started task must end, whatever broke: nobody waits forever
            log.exception("task broke", task=order.id)
            output.finish(
                "failed", None, f"the agent could not finish it ({type(exc).__name__}); see its log"
            )
            return
        log.info("task finished", task=order.id, exit_code=code)
        output.finish("succeeded" if code == 0 else "failed", code)
