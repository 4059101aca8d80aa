"""Stopping a scope's commands, with real processes: the whole group, SIGTERM, then SIGKILL if need be."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from controller_fixtures import wait_for

from shipyard.adapters import process_groups
from shipyard.adapters.process_groups import CommandsStopped, ProcessScope, stoppable

pytestmark = pytest.mark.integration


def _session_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])


def _stop_when(scope: ProcessScope, marker: Path, reason: str) -> threading.Thread:
    """Stop the scope once the command wrote `marker` (it is running, its child started)."""

    def stop() -> None:
        wait_for(marker.exists, timeout=30, what="the command to start")
        scope.stop(reason)

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    return thread


def test_a_command_ignoring_sigterm_and_its_child_are_killed_after_the_grace_period(tmp_path: Path) -> None:
    marker, child_pid = tmp_path / "started", tmp_path / "child.pid"
    script = f"trap '' TERM; sleep 3000 & echo $! > {child_pid}; touch {marker}; wait; wait"
    scope = ProcessScope(grace=0.5)
    stopper = _stop_when(scope, marker, "cancelled")
    with stoppable(scope):
        done = process_groups.run(["sh", "-c", script], timeout=120)
    stopper.join()
    assert done.returncode == -9  # the shell ignored SIGTERM: only SIGKILL ended it
    assert scope.reason == "cancelled"
    assert scope.summary() == "stopped sh (SIGTERM, then SIGKILL after 0.5 s)"
    sleeper = int(child_pid.read_text())
    wait_for(lambda: not Path(f"/proc/{sleeper}").exists(), timeout=30, what="the shell's child to be gone")


def test_a_command_that_obeys_sigterm_ends_with_it_and_later_commands_do_not_start(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    scope = ProcessScope(grace=30)
    stopper = _stop_when(scope, marker, "the controller stopped")
    with stoppable(scope):
        done = process_groups.run(["sh", "-c", f"touch {marker}; exec sleep 3000"], timeout=120)
        stopper.join()
        assert done.returncode == -15
        assert scope.summary() == "stopped sh (SIGTERM)"
        with pytest.raises(CommandsStopped, match=r"^true was not started: the controller stopped\.$"):
            process_groups.run(["true"])
        with pytest.raises(CommandsStopped), process_groups.started(["true"]):
            pass


def test_commands_of_a_scope_lead_their_own_session_and_others_do_not(tmp_path: Path) -> None:
    argv = ["sh", "-c", "echo $$"]
    with stoppable(ProcessScope()):
        inside = process_groups.run(argv, timeout=30)
    outside = process_groups.run(argv, timeout=30)
    # The scope's command is a session (and group) leader: a stop signals it and all it started.
    assert inside.returncode == 0 and outside.returncode == 0
    leader = int(inside.stdout)
    assert leader != _session_of(os.getpid())  # it ran in a session of its own (its pid is the session id)
    with stoppable(ProcessScope()), process_groups.started(["sleep", "30"]) as process:
        assert _session_of(process.pid) == process.pid
        process.kill()
    with process_groups.started(["sleep", "30"]) as plain:
        assert _session_of(plain.pid) == _session_of(os.getpid())
        plain.kill()


def test_a_timeout_kills_the_whole_group_and_is_raised(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    with stoppable(ProcessScope()), pytest.raises(subprocess.TimeoutExpired):
        process_groups.run(["sh", "-c", f"sleep 3000 & echo $! > {child_pid}; wait"], timeout=3)
    sleeper = int(child_pid.read_text())
    wait_for(lambda: not Path(f"/proc/{sleeper}").exists(), timeout=30, what="the timed-out command's child")
