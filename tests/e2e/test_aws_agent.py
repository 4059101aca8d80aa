"""`shipyard agent --aws-lifecycle` as a process: a real host (its own Docker Engine and haproxy) in an
Auto Scaling group held in moto's server, with the instance metadata service faked on 127.0.0.1.

At every AWS call the test notes what the host serves at that moment, so the order is checked against
the host itself: registered and launch completed only once it serves the release; deregistered while it
still serves; termination completed only once its app stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from moto.server import ThreadedMotoServer

from integration.aws_fakes import CallLog, FakeMetadata, RecordingAwsEndpoint, create_group
from shipyard.lab import control_plane
from shipyard.lab.engine import start_extra_engine, stop_extra_engine

from .host_fixtures import empty_lab, short_path
from .lab_harness import Lab, wait_for

__all__ = ["empty_lab", "short_path"]  # fixtures used by name

pytestmark = pytest.mark.e2e

REGION = "eu-west-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    saved = {name: os.environ.get(name) for name in AWS_ENV}
    os.environ.update(AWS_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def serving(lab: Lab, address: str) -> str | None:
    try:
        answer = httpx.get(f"http://{lab.state.app.listen(address)}/version", timeout=2)
    except httpx.HTTPError:
        return None
    return answer.text.strip() if answer.status_code == 200 else None


def test_agent_joins_and_leaves_its_auto_scaling_group_in_order(
    empty_lab: Lab, short_path: Path, moto_url: str
) -> None:
    lab, state = empty_lab, empty_lab.state
    with lab.client() as admin:  # the group has no host yet: its environment is created by hand
        existing = admin._call("GET", "/environments")
        if state.group not in {env["name"] for env in existing}:
            admin._call("POST", "/environments", json={"name": state.group})
    deployment = lab.start_deployment("v1", max_parallel="100%", monitor=0.5)
    assert lab.wait_deployment(deployment.id).status in {"succeeded"}

    group = create_group(moto_url, REGION)
    address = f"{state.subnet}.78"
    log = CallLog(probe=lambda: serving(lab, address))
    endpoint = RecordingAwsEndpoint(moto_url, REGION, log)
    metadata = FakeMetadata(group.instance)
    engine = start_extra_engine(short_path / "engine")
    home = short_path / "home"
    policy = short_path / "policy.yml"
    policy.write_text(yaml.safe_dump({"registries": [state.registry_address], "hooks": {"allow": False}}))
    public_key = state.release_key_file.with_name(state.release_key_file.name + ".pub")
    with lab.client() as admin:
        join_token = admin.create_join_token(state.group).token
    argv = [
        *(sys.executable, "-m", "shipyard.cli.main", "agent"),
        *("--controller", state.controller_url, "--ca-file", str(state.ca_file)),
        *("--name", "asg1", "--home", str(home), "--docker-host", engine.base_url, "--address", address),
        *("--policy", str(policy), "--trusted-key", str(public_key), "--max-backoff", "2"),
        "--aws-lifecycle",
        *("--aws-launch-hook", "launch", "--aws-termination-hook", "terminate"),
        *("--aws-target-group", group.target_group, "--aws-region", REGION),
        *("--aws-endpoint-url", endpoint.url, "--aws-metadata-url", metadata.url),
    ]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SHIPYARD_JOIN_TOKEN": join_token, **AWS_ENV}
    agent_log = (short_path / "agent.log").open("ab")
    started = time.monotonic()
    agent = subprocess.Popen(
        argv, stdout=agent_log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    elb: Any = boto3.client("elbv2", region_name=REGION, endpoint_url=moto_url)

    def target_state() -> str:
        found = elb.describe_target_health(
            TargetGroupArn=group.target_group, Targets=[{"Id": group.instance}]
        )
        return str(found["TargetHealthDescriptions"][0]["TargetHealth"]["State"])

    try:
        # Launch: the release is pulled and serving before the instance joins the target group.
        wait_for(lambda: "CompleteLifecycleAction launch CONTINUE" in log.actions(), 180, "the launch hook")
        print(f"\nagent start -> launch hook CONTINUE: {time.monotonic() - started:.1f} s")
        assert log.seen_at("RegisterTargets") == "v1"
        assert log.seen_at("CompleteLifecycleAction launch CONTINUE") == "v1"
        assert log.actions().index("RegisterTargets") < log.actions().index(
            "CompleteLifecycleAction launch CONTINUE"
        )
        assert all(
            seen == "v1"
            for entry, seen in zip(log.entries, log.observed, strict=True)
            if entry == "RegisterTargets"
        )
        assert target_state() == "healthy"

        # Termination: the group terminates the instance.
        metadata.target_state = "Terminated"
        noticed = time.monotonic()
        wait_for(
            lambda: "CompleteLifecycleAction terminate CONTINUE" in log.actions(), 120, "the termination hook"
        )
        print(f"termination notice -> termination hook CONTINUE: {time.monotonic() - noticed:.1f} s")
        assert log.seen_at("DeregisterTargets") == "v1"  # still serving when it left the target group
        assert log.seen_at("CompleteLifecycleAction terminate CONTINUE") is None  # its app had stopped
        assert target_state() == "unused"
        lifecycle = json.loads((home / "lifecycle.json").read_text())
        assert (
            lifecycle["launch"] == "CONTINUE"
            and lifecycle["drained"] == "Auto Scaling terminates this instance"
        )
        assert agent.poll() is None  # the agent stays up, converging nothing
        with lab.client() as admin:
            host = {h.name: h for h in admin.hosts(state.group)}["asg1"]
        assert host.versions["docker"] and host.versions["haproxy"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(timeout=30)
        pidfile = home / "haproxy/haproxy.pid"
        if pidfile.exists():
            for pid in pidfile.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        stop_extra_engine(engine)
        endpoint.close()
        metadata.close()
        with contextlib.suppress(Exception), control_plane.admin_client(state) as admin:
            admin.delete_host("asg1")
