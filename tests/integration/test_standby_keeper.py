"""A rollback to a warm standby done by the standby keeper, on the real engine and haproxy."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipyard.cli.standby_keeper import SERVED_EVENT
from shipyard.lab.single_host import AppHome, PushedImages

pytestmark = pytest.mark.integration

# Runs the console script's entry in-process, then says whether it loaded the host layer (it does
# not when the keeper did the rollback). The marker goes to a file, so stdout and stderr are the
# command's own.
PROBE = """
import json, sys
from shipyard.cli import entry
marker, args = sys.argv[1], sys.argv[2:]
try:
    entry.run(args)
    code = 0
except SystemExit as exit:
    code = exit.code
with open(marker, "w") as out:
    json.dump({"code": code, "in_process": "shipyard.host.service" in sys.modules}, out)
sys.exit(code)
"""


def socket_path(app_home: AppHome) -> Path:
    return app_home.home / "run" / f"{app_home.app}.sock"


def wait_for_new_keeper(app_home: AppHome, older: int, timeout: float = 60) -> int:
    """The pid of the keeper that took the socket over from `older` (it loads for a while first)."""
    deadline = time.monotonic() + timeout
    while (pid := wait_for_keeper(app_home)) == older:
        assert time.monotonic() < deadline, "no new keeper took the socket over"
        time.sleep(0.2)
    return pid


def wait_for_keeper(app_home: AppHome, timeout: float = 60) -> int:
    """The pid of the keeper listening on the app's socket (its peer credentials)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.chdir(socket_path(app_home).parent)  # the test's path may be too long for a socket
            sock.connect(socket_path(app_home).name)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return int(struct.unpack("3i", creds)[0])
        except OSError:
            time.sleep(0.2)
        finally:
            sock.close()
            os.chdir(app_home.root)
    raise AssertionError("no standby keeper listened on the app's socket")


def rollback(app_home: AppHome, *args: str, keeper: bool = True) -> tuple[int, bool, str, str]:
    """(exit code, done in-process, stdout, stderr) of `shipyard rollback ARGS`."""
    marker = app_home.root / "probe.json"
    env = app_home.env()
    if not keeper:
        env["SHIPYARD_KEEPER"] = "0"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(marker), "rollback", *args, "--config", str(app_home.config)],
        cwd=app_home.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(marker.read_text())
    assert result["code"] == done.returncode
    return done.returncode, result["in_process"], done.stdout, done.stderr


def served_lines(app_home: AppHome) -> list[dict[str, object]]:
    """The operation log's lines of rollbacks a keeper ran."""
    lines = [json.loads(line) for line in (app_home.home / "shipyard.log").read_text().splitlines()]
    return [line for line in lines if line["event"] == SERVED_EVENT]


def normalized(text: str) -> str:
    """Output with what differs between two rollbacks (times, releases, digests, slots) blanked."""
    for pattern, blank in (
        (r"\d+(\.\d+)? ms", "N ms"),
        (r"\d+\.\d+ s\b", "N s"),
        (r"#\d+", "#N"),
        (r"sha256:[0-9a-f]+", "DIGEST"),
        (r"\br\d+\b", "rN"),
        (r":v\d\b", ":vN"),
        (r"\b(blue|green)\b", "SLOT"),
    ):
        text = re.sub(pattern, blank, text)
    return text


def test_the_keeper_rolls_back_as_the_command_would_and_the_command_falls_back_without_it(
    app_home: AppHome, images: PushedImages
) -> None:
    app_home.write_config(images, deploy={"standby": 300})
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("v2"))
    first_keeper = wait_for_keeper(app_home)
    assert oct(socket_path(app_home).stat().st_mode & 0o777) == "0o600"
    assert oct(socket_path(app_home).parent.stat().st_mode & 0o777) == "0o700"

    # The test registry's credentials are named SHIPYARD_TEST_REG_*: one policy lets them through.
    (app_home.root / "policy.yml").write_text(
        json.dumps({"env": {"secret_prefixes": ["SHIPYARD_TEST_REG_"]}})
    )
    (app_home.root / "strict.yml").write_text(json.dumps({"env": {"secret_prefixes": ["OTHER_"]}}))
    # Same output and exit code from the keeper and in-process: dry runs, errors, JSON, policies.
    for args in (
        ("--dry-run",),
        ("--dry-run", "--json"),
        ("r9",),
        ("r1", "--dry-run"),
        ("--dry-run", "--policy", "policy.yml"),
        ("--policy", "strict.yml"),
        ("--policy", "no-such-policy.yml"),
    ):
        by_keeper = rollback(app_home, *args)
        in_process = rollback(app_home, *args, keeper=False)
        assert by_keeper[1] is False and in_process[1] is True, args
        assert by_keeper[0] == in_process[0] and by_keeper[2:] == in_process[2:], args
    assert rollback(app_home, "r9")[3].startswith("error: ")
    assert rollback(app_home, "--policy", "strict.yml")[0] != 0
    assert (
        "the policy file no-such-policy.yml does not exist"
        in rollback(app_home, "--policy", "no-such-policy.yml")[3]
    )

    code, in_process, out, err = rollback(app_home)
    assert (code, in_process, err) == (0, False, ""), out + err
    assert out.splitlines()[-1].startswith("rolled back to release r1 ")
    assert not any(line.startswith("→ start") for line in out.splitlines())  # the standby was warm
    served = [line for line in served_lines(app_home) if not line["dry_run"] and line["exit_code"] == 0]
    assert [line["app"] for line in served] == [app_home.app]

    # The keeper spawned by that rollback took over; the older one became a plain reaper.
    second_keeper = wait_for_new_keeper(app_home, first_keeper)
    deadline = time.monotonic() + 30
    while b"shipyard.host.reaper" not in Path(f"/proc/{first_keeper}/cmdline").read_bytes().split(b"\0"):
        assert time.monotonic() < deadline, "the replaced keeper did not become a reaper"
        time.sleep(0.2)
    # The same rollback in-process prints the same.
    code, in_process, out_back, err = rollback(app_home, keeper=False)
    assert (code, in_process, err) == (0, True, "")
    assert out_back.splitlines()[-1].startswith("rolled back to release r2 ")
    assert normalized(out_back) == normalized(out)

    # A killed keeper leaves a stale socket: the command does the rollback itself.
    pid = wait_for_new_keeper(app_home, second_keeper)  # spawned by the in-process rollback
    os.kill(pid, signal.SIGKILL)
    assert socket_path(app_home).exists()
    code, in_process, out, err = rollback(app_home)
    assert (code, in_process, err) == (0, True, "")
    assert out.splitlines()[-1].startswith("rolled back to release r1 ")
    assert (
        len([line for line in served_lines(app_home) if not line["dry_run"] and line["exit_code"] == 0]) == 1
    )


def test_the_keeper_stops_serving_and_stops_the_standby_at_expiry(
    app_home: AppHome, images: PushedImages
) -> None:
    app_home.write_config(images, deploy={"standby": 12})
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("v2"))
    wait_for_keeper(app_home, timeout=12)
    assert len(_running(app_home)) == 2  # serving and the warm standby
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        # (not `shipyard status`: it would stop the expired standby itself)
        if not socket_path(app_home).exists() and len(_running(app_home)) == 1:
            break
        time.sleep(0.5)
    assert not socket_path(app_home).exists()
    assert len(_running(app_home)) == 1  # the standby was stopped


def _running(app_home: AppHome) -> list[str]:
    listed = subprocess.run(
        ["docker", "-H", app_home.docker_url, "ps", "-q", "--filter", f"label=shipyard.app={app_home.app}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()
