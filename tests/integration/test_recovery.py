"""Crashes: the CLI SIGKILLed at each step of a swap, haproxy killed, concurrent deploys."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from shipyard.host.lock import app_lock
from shipyard.lab.load import LoadGenerator
from shipyard.lab.single_host import AppHome, PushedImages

pytestmark = pytest.mark.integration


def kill_when(home: AppHome, marker: str, *args: str) -> str:
    """Run a command and SIGKILL it as soon as it prints a line starting with `marker`."""
    home.environ["PYTHONUNBUFFERED"] = "1"
    process = home.popen(*args)
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if line.strip().startswith(marker):
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(30)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    return "".join(seen)


def _group_members(group: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _parent, process_group = (entry / "stat").read_text().rsplit(") ", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if state != "Z" and int(process_group) == group:
            members.append(int(entry.name))
    return members


def serving_slots(document: dict[str, object]) -> list[str]:
    servers = document["servers"]
    assert isinstance(servers, dict)
    return [name for name, server in servers.items() if server["admin"] == "ready"]


@pytest.mark.parametrize(
    "marker",
    [
        "→ start release",
        "✓",  # the first step finished: the new container runs, not yet healthy-checked
        "→ wait until",
        "→ switch haproxy",
        "→ drain the",
        "→ stop container",
    ],
)
def test_killed_mid_swap_then_run_again_leaves_exactly_one_slot_serving(
    app_home: AppHome, images: PushedImages, marker: str
) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    with LoadGenerator(app_home.listen_url + "/version", clients=4) as load:
        kill_when(app_home, marker, "deploy", images.ref("v2"))
        document = json.loads(app_home.run("status", "--json").stdout)
        time.sleep(0.3)
    stats = load.stop()
    assert stats.failed == 0, stats.failures
    assert len(serving_slots(document)) == 1
    active = document["active_release"]
    assert isinstance(active, dict)
    containers = document["containers"]
    assert isinstance(containers, list)
    running = [c for c in containers if c["status"] == "running"]
    assert [c["release"] for c in running] == [active["id"]], containers
    assert all(c["status"] != "created" for c in containers)
    served = httpx.get(app_home.listen_url + "/version", timeout=5).text.strip()
    assert served == {"r1": "v1", "r2": "v2"}[active["id"]]
    history = json.loads(app_home.run("releases", "--json").stdout)["history"]
    assert all(entry["outcome"] != "running" for entry in history)
    # And the next deploy goes through.
    app_home.run("deploy", images.ref("v3"))
    assert httpx.get(app_home.listen_url + "/version", timeout=5).text.strip() == "v3"


def test_haproxy_killed_is_restarted_with_the_active_slot(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("v2"))
    pid = int((app_home.home / "haproxy" / "haproxy.pid").read_text().split()[0])
    group = os.getpgid(pid)
    os.killpg(group, signal.SIGKILL)
    # A busy machine can take a while to tear the processes down: until then they still listen.
    deadline = time.monotonic() + 30
    while _group_members(group) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _group_members(group), "haproxy survived SIGKILL"
    with pytest.raises(httpx.ConnectError):
        httpx.get(app_home.listen_url + "/version", timeout=2)
    document = json.loads(app_home.run("status", "--json").stdout)
    assert document["proxy_running"] is True
    assert serving_slots(document) == ["green"]
    assert httpx.get(app_home.listen_url + "/version", timeout=5).text.strip() == "v2"


def test_a_second_deploy_is_refused_with_who_holds_the_lock(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    with app_lock(app_home.home / "locks", app_home.app, "alice@ci", "deploy v9"):
        refused = app_home.run("deploy", images.ref("v2"), check=False)
    assert refused.returncode == 4
    assert "is locked by alice@ci" in refused.stderr and "deploy v9" in refused.stderr
    assert "--wait" in refused.stderr


def test_wait_queues_behind_the_lock_holder(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    released = threading.Event()

    held = threading.Event()

    def hold() -> None:
        with app_lock(app_home.home / "locks", app_home.app, "bob", "deploy"):
            held.set()
            time.sleep(1.5)
            released.set()  # still inside: the deploy cannot hold the lock before this

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30), "the holder never got the lock"
    app_home.run("deploy", images.ref("v2"), "--wait")
    assert released.is_set()
    holder.join()
    assert httpx.get(app_home.listen_url + "/version", timeout=5).text.strip() == "v2"
