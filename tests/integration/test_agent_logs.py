"""The agent's own log (stderr) goes through the same masking as the controller's."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.controller.store.tokens import JOIN_PREFIX, new_token
from shipyard.lab.ports import free_port

pytestmark = pytest.mark.integration


def test_a_token_in_the_controller_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    join_token = new_token(JOIN_PREFIX)
    url = f"http://operator:{join_token}@127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "shipyard.cli.main", "agent", "--controller", url]
    command += ["--join-token", join_token, "--home", str(tmp_path / "home"), "--name", "h1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "must not carry credentials" in done.stderr
    assert join_token not in done.stdout + done.stderr
    assert join_token[len(JOIN_PREFIX) :] not in done.stdout + done.stderr


def test_the_join_token_never_reaches_the_agents_log_while_it_retries(tmp_path: Path) -> None:
    join_token = new_token(JOIN_PREFIX)
    url = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "shipyard.cli.main", "agent", "--controller", url]
    command += ["--join-token", join_token, "--home", str(tmp_path / "home"), "--name", "h1"]
    command += ["--max-backoff", "0.2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # until the second retry: the agent has logged its failures by then
            lines.append(line)
            if sum("controller unreachable at registration" in seen for seen in lines) >= 2:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    output = "".join(lines) + rest
    assert "controller unreachable at registration" in output, output
    assert "[shipyard.agent]" in output
    assert join_token not in output and join_token[len(JOIN_PREFIX) :] not in output
