"""Commands that may have to be stopped midway: each in a process group of its own, stopped as a whole.

A pipeline job runs git and the docker CLI (BuildKit) for minutes. Inside `stoppable(scope)`, the
adapters start those commands through `started` and `run`, which put each command in a new session
registered with the scope. `scope.stop(reason)`, from any thread, sends every running group SIGTERM,
then SIGKILL to those still running after the grace period, and makes any later start in the scope
raise CommandsStopped. A whole group, because a command has children of its own (git's transport
helpers, ssh). Outside a scope both are plain subprocesses, so a terminal's Ctrl-C still reaches them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError

GRACE_S = 5.0
# Options of git and docker that take the next word as their value (not a subcommand).
OPTIONS_WITH_VALUE = frozenset({"-c", "-C", "--config", "--context", "-H", "--host", "--log-level"})
NAME_WORDS = 2  # subcommand words kept after the program: "docker buildx build", "git fetch"


class CommandsStopped(ShipyardError):
    """A command was to start after its scope had been stopped."""


@dataclass(frozen=True)
class Stopped:
    """One command a stop signalled, for the log."""

    command: str
    killed: bool = False  # still running after the grace period: SIGKILL


def command_name(argv: Sequence[str]) -> str:
    """The program and its subcommands, without options or their values: nothing secret, fit for a log."""
    words = [Path(argv[0]).name] if argv else ["?"]
    rest = list(argv[1:])
    while rest and rest[0].startswith("-"):  # global options before the subcommand
        option = rest.pop(0)
        if option in OPTIONS_WITH_VALUE and rest:
            rest.pop(0)
    for word in rest:
        if word.startswith("-") or len(words) > NAME_WORDS:
            break
        words.append(word)
    return " ".join(words)


def describe(stopped: Sequence[Stopped], grace: float) -> str:
    """What a stop did, in one clause: 'stopped docker build (SIGTERM)'."""
    if not stopped:
        return "no command was running"
    parts = [
        f"{item.command} (SIGTERM, then SIGKILL after {grace:g} s)"
        if item.killed
        else f"{item.command} (SIGTERM)"
        for item in stopped
    ]
    return "stopped " + ", ".join(parts)


class ProcessScope:
    """The commands one piece of work runs, and the one switch that stops them all."""

    def __init__(self, grace: float = GRACE_S) -> None:
        self.grace = grace
        self._lock = threading.Lock()
        self._running: dict[int, tuple[subprocess.Popen[Any], str]] = {}
        self._reason: str | None = None
        self._stopped: list[Stopped] = []

    @property
    def reason(self) -> str | None:
        """Why the scope was stopped; None while it runs."""
        return self._reason

    def summary(self) -> str:
        with self._lock:
            return describe(self._stopped, self.grace)

    def stop(self, reason: str) -> None:
        """SIGTERM to every running command's group now, SIGKILL after the grace period; idempotent."""
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
            for pid, (_, name) in self._running.items():
                _signal_group(pid, signal.SIGTERM)
                self._stopped.append(Stopped(name))
            signalled = bool(self._running)
        if signalled:
            timer = threading.Timer(self.grace, self._kill_remaining)
            timer.daemon = True
            timer.start()

    def _kill_remaining(self) -> None:
        with self._lock:
            for pid, (_, name) in self._running.items():
                _signal_group(pid, signal.SIGKILL)
                self._stopped = [
                    Stopped(item.command, killed=True) if item.command == name else item
                    for item in self._stopped
                ]

    def _spawn(self, argv: Sequence[str], options: Mapping[str, Any]) -> subprocess.Popen[Any]:
        with self._lock:  # no stop can slip between the check and the registration
            if self._reason is not None:
                raise CommandsStopped(f"{command_name(argv)} was not started: {self._reason}.")
            process: subprocess.Popen[Any] = subprocess.Popen(list(argv), start_new_session=True, **options)
            self._running[process.pid] = (process, command_name(argv))
        return process

    def _release(self, process: subprocess.Popen[Any]) -> None:
        with self._lock:
            self._running.pop(process.pid, None)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


_current: ContextVar[ProcessScope | None] = ContextVar("shipyard_process_scope", default=None)


@contextmanager
def stoppable(scope: ProcessScope) -> Iterator[ProcessScope]:
    """Commands started in this block (in this thread) belong to `scope`."""
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


@contextmanager
def started(argv: Sequence[str], **options: Any) -> Iterator[subprocess.Popen[Any]]:
    """`subprocess.Popen(argv, **options)` as a context manager, in the current scope if there is one."""
    scope = _current.get()
    if scope is None:
        with subprocess.Popen(list(argv), **options) as plain:
            yield plain
        return
    process = scope._spawn(argv, options)
    try:
        with process:
            yield process
    finally:
        scope._release(process)


def run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Like `subprocess.run(argv, capture_output=True, text=True)`; on a timeout the whole group is
    killed (in a scope), then TimeoutExpired is raised."""
    options: dict[str, Any] = {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "stdin": subprocess.DEVNULL,
    }
    options |= {"text": True, "errors": "replace", "cwd": cwd, "env": dict(env) if env is not None else None}
    with started(argv, **options) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            if _current.get() is not None:
                _signal_group(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.communicate()
            raise
    return subprocess.CompletedProcess(list(argv), process.returncode, out, err)
