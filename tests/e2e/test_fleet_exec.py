"""`shipyard exec --env E --host H`: a command in H's serving container, relayed by the controller."""

from __future__ import annotations

import os
import pty
import select
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from shipyard.lab.hosts import agent_log, policy_file, start_agent
from shipyard.lab.processes import kill_now

from .lab_harness import Lab

pytestmark = pytest.mark.e2e


def test_exec_relays_stdin_output_and_exit_code_and_is_audited_and_needs_a_deployer(serving_lab: Lab) -> None:
    lab = serving_lab
    config = lab.write_config("exec")
    started = time.monotonic()
    ran = lab.cli_with(
        lab.env(),
        *("exec", "--env", "production", "--host", "h2", "-c", str(config), "--timeout", "30"),
        *("--", "sh", "-c", "read x; echo got:$x; echo oops >&2; exit 3"),
        stdin="hello\n",
        timeout=90,
    )
    assert ran.returncode == 3, ran.stdout + ran.stderr + _agent_log(lab, "h2")
    assert ran.stdout == "got:hello\n"
    assert "oops" in ran.stderr and "Traceback" not in ran.stderr
    print(f"exec round trip: {time.monotonic() - started:.2f} s")

    with lab.client() as client:
        opened = client.audit(action="exec.opened", limit=5)[0]
        closed = client.audit(action="exec.closed", limit=5)[0]
        viewer = client.create_token(f"exec-viewer-{os.getpid()}", "viewer")
    assert opened.target == "web/production/h2" and opened.detail["argv"][0] == "sh"
    assert opened.actor == closed.actor
    assert closed.detail["task"] == opened.detail["task"] and closed.detail["exit_code"] == 3
    assert "hello" not in str(closed.detail)  # never the session's input or output

    # A viewer may not open a session: 403 from the API, one sentence from the CLI.
    answer = httpx.post(
        f"{lab.state.controller_url}/api/v1/exec",
        json={"app": "web", "environment": "production", "host": "h2", "argv": ["true"]},
        headers={"Authorization": f"Bearer {viewer.token}"},
        verify=ssl.create_default_context(cafile=str(lab.state.ca_file)),
    )
    assert answer.status_code == 403 and "deployer role" in answer.json()["detail"]
    refused = lab.cli_with(
        {**lab.env(), "SHIPYARD_TOKEN": viewer.token},
        *("exec", "--env", "production", "--host", "h2", "-c", str(config), "--", "true"),
    )
    assert refused.returncode != 0 and "deployer role" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    # A host nobody knows: one sentence, before any session.
    unknown = lab.cli(*("exec", "--env", "production", "--host", "nohost", "-c", str(config), "--", "true"))
    assert unknown.returncode == 125 and "host nohost is not in production" in unknown.stderr


def test_exec_with_a_tty_gives_the_command_a_terminal(serving_lab: Lab) -> None:
    lab = serving_lab
    config = lab.write_config("exec-tty")
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "shipyard.cli.main", "exec", "--env", "production", "--host", "h1"),
                *("-c", str(config), "-t", "--", "/bin/busybox", "tty"),
            ],
            stdin=secondary,
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=lab.env(),
            cwd=lab.root,
        )
        os.close(secondary)
        output = _read_all(primary, process, timeout=60)
        code = process.wait(timeout=10)
    finally:
        os.close(primary)
    assert code == 0, output + (process.stderr.read().decode() if process.stderr else "")
    assert "/dev/pts/" in output


def _read_all(fd: int, process: subprocess.Popen[bytes], timeout: float) -> str:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the other side closed (the process ended)
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


def test_a_dead_agent_or_a_policy_refusing_one_off_commands_ends_the_session_with_125(
    serving_lab: Lab,
) -> None:
    lab = serving_lab
    config = lab.write_config("exec-refused")
    state = lab.state
    host = state.host("h3")
    path: Path = policy_file(host)
    original = path.read_text()
    document = yaml.safe_load(original)
    document["tasks"] = {"run": False, "release_phase": True}
    try:
        kill_now(host.agent_pid)  # a dead agent: the session is cancelled after --timeout, never hangs
        dead = lab.cli(
            *("exec", "--env", "production", "--host", "h3", "-c", str(config), "--timeout", "2"),
            *("--", "sh", "-c", "echo ran"),
            timeout=90,
        )
        assert dead.returncode == 125, dead.stdout + dead.stderr
        assert "no agent of h3 attached within 2 s (is the agent of h3 running?)" in dead.stderr
        assert "ran" not in dead.stdout
        path.write_text(yaml.safe_dump(document))
        _restart_agent(lab, "h3")
        refused = lab.cli(
            *("exec", "--env", "production", "--host", "h3", "-c", str(config), "--timeout", "30"),
            *("--", "sh", "-c", "echo ran"),
            timeout=90,
        )
    finally:  # the lab's other tests expect h3's agent with its own policy
        path.write_text(original)
        _restart_agent(lab, "h3")
    assert refused.returncode == 125, refused.stdout + refused.stderr
    assert "ran" not in refused.stdout
    assert "policy" in refused.stderr and "tasks.run: true" in refused.stderr
    assert "Traceback" not in refused.stderr


def _restart_agent(lab: Lab, name: str) -> None:
    state = lab.state
    kill_now(state.host(name).agent_pid)
    start_agent(state, state.host(name))
    state.save()


def _agent_log(lab: Lab, name: str) -> str:
    """The end of the host's agent log, for a failure's message."""
    return agent_log(lab.state.host(name)).read_text(errors="replace")[-3000:]
