"""The CLI's side of a fleet exec session: its terminal and stdin to the socket, the output back.

With -t and a terminal on stdin, the exec gets a TTY and this terminal goes to raw mode (keys pass
as typed, ^C included) until the session ends, whichever way it ends; the window size is sent at the
start and on every SIGWINCH. Stdin is forwarded with -i, or whenever it is not a terminal (a pipe).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

from shipyard.errors import ShipyardError
from shipyard.fleet_api.exec_channel import STDERR, ExecChannel

ANSWER_GRACE = 30.0  # seconds past the pickup timeout to wait for the controller's word


@dataclass(frozen=True)
class SessionEnd:
    exit_code: int | None  # the command's; None when it did not run to its end
    message: str = ""


def window_size() -> tuple[int, int] | None:
    for stream in (sys.stdout, sys.stdin):
        try:
            size = os.get_terminal_size(stream.fileno())
        except (OSError, ValueError):
            continue
        return size.lines, size.columns
    return None


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The terminal in raw mode, restored on every way out (an exception, ^C, the end)."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def resizes_sent(channel: ExecChannel) -> Iterator[None]:
    """The window size to the session on SIGWINCH (from the main thread only, where signals land)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGWINCH"):
        yield
        return

    def on_resize(_signum: int, _frame: FrameType | None) -> None:
        size = window_size()
        if size is not None:
            with contextlib.suppress(ShipyardError):
                channel.send_control({"type": "resize", "rows": size[0], "cols": size[1]})

    previous = signal.signal(signal.SIGWINCH, on_resize)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


def _forward_stdin(channel: ExecChannel, fd: int) -> None:
    try:
        while data := os.read(fd, 4096):
            channel.send_bytes(data)
        channel.send_control({"type": "eof"})
    except (OSError, ShipyardError):
        pass  # the session ended meanwhile


def run_session(channel: ExecChannel, *, tty: bool, forward_stdin: bool, pickup_timeout: float) -> SessionEnd:
    stdin_fd = sys.stdin.fileno()
    use_tty = tty and os.isatty(stdin_fd)
    size = window_size() if use_tty else None
    start: dict[str, object] = {"type": "start", "tty": use_tty}
    if size is not None:
        start.update(rows=size[0], cols=size[1])
    channel.send_control(start)
    try:
        first = channel.receive(timeout=pickup_timeout + ANSWER_GRACE)
    except TimeoutError:
        return SessionEnd(None, f"the controller said nothing within {pickup_timeout + ANSWER_GRACE:g} s.")
    if first is None:
        return SessionEnd(None, "the controller closed the session before an agent attached.")
    if not isinstance(first, dict) or first.get("type") != "attached":
        message = first.get("message") if isinstance(first, dict) else None
        return SessionEnd(None, str(message or "the controller refused the session."))
    with contextlib.ExitStack() as stack:
        if use_tty:
            stack.enter_context(raw_terminal(stdin_fd))
            stack.enter_context(resizes_sent(channel))
        if forward_stdin:
            threading.Thread(
                target=_forward_stdin, args=(channel, stdin_fd), name="shipyard-exec-stdin", daemon=True
            ).start()
        else:
            channel.send_control({"type": "eof"})
        return _output(channel)
    raise AssertionError("unreachable: the session returns its end")


def _output(channel: ExecChannel) -> SessionEnd:
    """The command's output to ours until its exit code (or an error) comes."""
    while True:
        frame = channel.receive()
        if frame is None:
            return SessionEnd(None, "the session closed before the command ended (the agent left?).")
        if isinstance(frame, bytes):
            if not frame:
                continue
            target = sys.stderr if frame[0] == STDERR else sys.stdout
            target.buffer.write(frame[1:])
            target.flush()
            continue
        kind = frame.get("type")
        if kind == "exit" and isinstance(frame.get("code"), int):
            return SessionEnd(int(frame["code"]))
        if kind == "error":
            return SessionEnd(None, str(frame.get("message") or "the session failed."))
