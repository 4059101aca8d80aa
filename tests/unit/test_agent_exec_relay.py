"""The agent's side of an exec session, with a fake socket and a fake command."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from test_agent_fakes import task_order

from shipyard.agent.exec_relay import ExecRunner, relay
from shipyard.errors import PolicyError
from shipyard.fleet_api.schemas.tasks import TaskUpdate


@dataclass
class FakeChannel:
    incoming: queue.Queue[bytes | dict[str, Any] | None] = field(default_factory=queue.Queue)
    sent: list[bytes | dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    def send_control(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def receive(self, timeout: float | None = None) -> bytes | dict[str, Any] | None:
        try:
            return self.incoming.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None

    def close(self) -> None:
        self.closed = True


@dataclass
class EchoProcess:
    """Echoes each stdin line to stdout (stderr for 'err'), ends at stdin's EOF with `code`."""

    code: int = 3
    lines: queue.Queue[tuple[int, bytes] | None] = field(default_factory=queue.Queue)
    resized: list[tuple[int, int]] = field(default_factory=list)
    closed: bool = False

    def write(self, data: bytes) -> None:
        self.lines.put((2 if data.startswith(b"err") else 1, b"got:" + data))

    def close_stdin(self) -> None:
        self.lines.put(None)

    def read(self) -> tuple[int, bytes] | None:
        return self.lines.get(timeout=5)

    def resize(self, rows: int, cols: int) -> None:
        self.resized.append((rows, cols))

    def exit_code(self) -> int | None:
        return self.code

    def close(self) -> None:
        self.closed = True
        self.lines.put(None)


def test_stdin_goes_in_output_comes_back_by_stream_then_the_exit_code() -> None:
    channel, process = FakeChannel(), EchoProcess(code=3)
    for frame in (b"hello\n", b"err!\n", {"type": "resize", "rows": 40, "cols": 120}, {"type": "eof"}):
        channel.incoming.put(frame)
    outcome = relay(channel, process)
    assert channel.sent == [b"\x01got:hello\n", b"\x02got:err!\n", {"type": "exit", "code": 3}]
    assert process.resized == [(40, 120)]
    assert (outcome.status, outcome.exit_code) == ("failed", 3)


def test_a_client_that_leaves_ends_the_command_and_the_session_fails() -> None:
    channel, process = FakeChannel(), EchoProcess()
    channel.incoming.put(None)
    outcome = relay(channel, process)
    assert process.closed and outcome.exit_code is None
    assert "client left" in outcome.message
    assert not any(isinstance(frame, dict) and frame.get("type") == "exit" for frame in channel.sent)


@dataclass
class FakeController:
    channels: list[FakeChannel] = field(default_factory=list)
    updates: list[tuple[int, TaskUpdate]] = field(default_factory=list)
    opened: int = 0

    def task_update(self, task_id: int, update: TaskUpdate) -> None:
        self.updates.append((task_id, update))

    def agent_exec_channels(self, task_id: int) -> Iterator[FakeChannel]:
        for channel in self.channels:
            self.opened += 1
            yield channel


@dataclass
class FakeExecHost:
    refuse: bool = False
    process: EchoProcess = field(default_factory=EchoProcess)
    started: list[tuple[str, list[str], bool]] = field(default_factory=list)

    def check_exec(self, order: Any) -> str:
        if self.refuse:
            raise PolicyError("this host's policy (p.yml) refuses exec session 7: one-off commands are off")
        return "web-r1-blue"

    def start_exec(self, container: str, argv: list[str], *, tty: bool) -> EchoProcess:
        self.started.append((container, argv, tty))
        return self.process


def test_a_refused_session_starts_nothing_and_fails_with_the_policys_sentence() -> None:
    controller, host = FakeController([FakeChannel()]), FakeExecHost(refuse=True)
    runner = ExecRunner(controller, host, spawn=lambda work: work())  # type: ignore[arg-type]
    runner.run([task_order(7, "exec")])
    assert [update.start for _, update in controller.updates] == [True, False]
    end = controller.updates[-1][1]
    assert end.status == "failed" and end.exit_code is None and "refuses exec session 7" in end.message
    assert controller.opened == 0 and host.started == []


def test_the_agent_tries_each_controller_until_one_holds_the_session_and_serves_it_once() -> None:
    elsewhere, here = FakeChannel(), FakeChannel()
    elsewhere.incoming.put({"type": "error", "status": 404, "message": "no client waits for exec session 7"})
    for frame in ({"type": "start", "tty": True, "rows": 24, "cols": 80}, b"hi\n", {"type": "eof"}):
        here.incoming.put(frame)
    controller = FakeController([elsewhere, here])
    host = FakeExecHost()
    host.process.code = 0
    done = threading.Event()
    runner = ExecRunner(controller, host, spawn=lambda work: (work(), done.set()))  # type: ignore[arg-type]
    order = task_order(7, "exec", argv=["sh"])
    runner.run([order])
    runner.run([order])  # the same session in the next desired state: not served twice
    assert done.is_set() and elsewhere.closed and here.closed
    assert host.started == [("web-r1-blue", ["sh"], True)] and host.process.resized == [(24, 80)]
    assert here.sent == [b"\x01got:hi\n", {"type": "exit", "code": 0}]
    end = controller.updates[-1][1]
    assert (end.status, end.exit_code) == ("succeeded", 0)
    assert [update.start for _, update in controller.updates].count(True) == 1
