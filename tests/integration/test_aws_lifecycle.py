"""The Auto Scaling lifecycle through boto3 against moto's server on 127.0.0.1: the calls and their order.

The group, its hooks and the ALB target group are created in moto. What moto lacks (the two lifecycle
action calls, instance metadata) is answered by the fakes in aws_fakes.py; see docs/aws.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_fakes import (
    CallLog,
    FakeMetadata,
    RecordingAwsEndpoint,
    create_group,
    fake_aws_credentials,
    moto_server,
)

from shipyard.adapters.aws import AwsCloud
from shipyard.agent.lifecycle import HostLifecycle, LifecycleSettings, request_drain
from shipyard.agent.ports import LocalApp
from shipyard.errors import CloudError
from shipyard.fleet_api.schemas.agent import DesiredApp

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@dataclass
class Group:
    name: str
    instance: str
    target_group: str
    elb: Any
    log: CallLog
    endpoint: RecordingAwsEndpoint
    metadata: FakeMetadata

    def target_state(self) -> str:
        found = self.elb.describe_target_health(
            TargetGroupArn=self.target_group, Targets=[{"Id": self.instance}]
        )
        return str(found["TargetHealthDescriptions"][0]["TargetHealth"]["State"])


@pytest.fixture
def group(moto_url: str) -> Iterator[Group]:
    """An Auto Scaling group of one instance with launch and termination hooks, and an ALB target group."""
    created = create_group(moto_url, REGION)
    elb: Any = boto3.client("elbv2", region_name=REGION, endpoint_url=moto_url)
    log = CallLog()
    endpoint = RecordingAwsEndpoint(moto_url, REGION, log)
    metadata = FakeMetadata(created.instance)
    yield Group(created.name, created.instance, created.target_group, elb, log, endpoint, metadata)
    endpoint.close()
    metadata.close()


def desired(release_id: int = 2) -> DesiredApp:
    spec = {"app": "web", "image": "127.0.0.1:5000/web"}
    return DesiredApp(
        app="web",
        release_id=release_id,
        release=f"r{release_id}",
        image="127.0.0.1:5000/web",
        digest=DIGEST,
        spec=spec,
        deployment_id=1,
    )


def lifecycle(home: Path, group: Group, **settings: Any) -> HostLifecycle:
    cloud = AwsCloud(region=REGION, endpoint_url=group.endpoint.url, metadata_url=group.metadata.url)
    defaults: dict[str, Any] = {
        "launch_hook": "launch",
        "termination_hook": "terminate",
        "target_group": group.target_group,
        "check_every": 0.2,
    }
    found = HostLifecycle(home, cloud, LifecycleSettings(**{**defaults, **settings}))
    found.begin()
    return found


ORDERING = (
    "RegisterTargets",
    "DeregisterTargets",
    "CompleteLifecycleAction",
    "RecordLifecycleActionHeartbeat",
    "stop",
)


def test_launch_registers_and_continues_only_after_converged_and_healthy(
    tmp_path: Path, group: Group
) -> None:
    host = lifecycle(tmp_path, group)
    assert host.instance == group.instance and host.group == group.name
    old, converging = LocalApp("r1", running=True, healthy=True), LocalApp("r2", running=True, healthy=False)
    host.after_pass([desired()], {"web": old})
    host.heartbeat_once()  # a long pull runs: the hook is kept open
    host.after_pass([desired()], {"web": converging})
    host.after_pass(None, {})  # the controller is away
    assert group.log.actions(*ORDERING) == ["RecordLifecycleActionHeartbeat launch"]
    assert group.target_state() == "unused"  # never registered before healthy

    host.after_pass([desired()], {"web": LocalApp("r2", running=True, healthy=True)})
    assert group.log.actions(*ORDERING) == [
        "RecordLifecycleActionHeartbeat launch",
        "RegisterTargets",
        "CompleteLifecycleAction launch CONTINUE",
    ]
    assert group.log.actions("DescribeTargetHealth")  # it asked the target group before completing
    assert group.target_state() == "healthy"
    completion = group.log.parameters[group.log.entries.index("CompleteLifecycleAction launch CONTINUE")]
    assert completion["AutoScalingGroupName"] == group.name and completion["InstanceId"] == group.instance

    # A restarted agent does not complete the launch a second time.
    again = lifecycle(tmp_path, group)
    again.after_pass([desired()], {"web": LocalApp("r2", running=True, healthy=True)})
    assert group.log.actions("CompleteLifecycleAction").count("CompleteLifecycleAction launch CONTINUE") == 1


def test_launch_abandons_when_it_cannot_converge_in_time(tmp_path: Path, group: Group) -> None:
    host = lifecycle(tmp_path, group, launch_timeout=0.5)
    host.after_pass([desired()], {"web": LocalApp(None)})
    time.sleep(0.6)
    host.after_pass([desired()], {"web": LocalApp(None)})
    assert group.log.actions(*ORDERING) == ["CompleteLifecycleAction launch ABANDON"]
    assert group.target_state() == "unused"


def run_termination(host: HostLifecycle, group: Group) -> list[str]:
    reason = host.termination_reason()
    assert reason is not None

    def stop_apps() -> list[str]:
        group.log.add("stop apps")
        return ["stopped web"]

    return host.terminate(reason, stop_apps)


def test_termination_notice_deregisters_before_stopping_then_completes(tmp_path: Path, group: Group) -> None:
    host = lifecycle(tmp_path, group)
    host.after_pass([desired()], {"web": LocalApp("r2", running=True, healthy=True)})
    assert host.termination_reason() is None
    group.metadata.target_state = "Terminated"
    done = run_termination(host, group)
    assert group.log.actions(*ORDERING) == [
        "RegisterTargets",
        "CompleteLifecycleAction launch CONTINUE",
        "DeregisterTargets",
        "stop apps",
        "CompleteLifecycleAction terminate CONTINUE",
    ]
    assert group.log.actions("DescribeTargetGroupAttributes")  # read the deregistration delay
    assert group.target_state() == "unused"
    assert "stopped web" in done and host.drained


def test_spot_interruption_takes_the_same_path(tmp_path: Path, group: Group) -> None:
    host = lifecycle(tmp_path, group, launch_hook=None)
    host.after_pass([desired()], {"web": LocalApp("r2", running=True, healthy=True)})  # no hook: registers
    group.metadata.spot_action = '{"action": "terminate", "time": "2026-11-29T18:00:00Z"}'
    assert host.termination_reason() == "spot interruption notice: terminate at 2026-11-29T18:00:00Z"
    run_termination(host, group)
    assert group.log.actions(*ORDERING) == [
        "RegisterTargets",
        "DeregisterTargets",
        "stop apps",
        "CompleteLifecycleAction terminate CONTINUE",
    ]


def test_drain_by_hand_without_a_pending_termination(tmp_path: Path, group: Group) -> None:
    host = lifecycle(tmp_path, group, launch_hook=None, termination_hook="no-such-hook")
    request_drain(tmp_path, "shipyard host drain")
    done = run_termination(host, group)
    assert group.log.actions(*ORDERING) == ["stop apps"]  # never registered: nothing to deregister
    assert any("is not registered in the target group" in line for line in done)
    assert any("no termination hook to complete" in line for line in done)


def test_refusals_are_one_clear_sentence(tmp_path: Path, group: Group) -> None:
    with pytest.raises(CloudError, match="has no lifecycle hook 'nope'"):
        lifecycle(tmp_path, group, launch_hook="nope")
    cloud = AwsCloud(region=REGION, endpoint_url=group.endpoint.url, metadata_url="http://127.0.0.1:9")
    with pytest.raises(CloudError, match=r"instance metadata service .* does not answer"):
        cloud.instance_id()
    outside = AwsCloud(region=REGION, endpoint_url=group.endpoint.url, instance_id="i-00000000000000000")
    with pytest.raises(CloudError, match="in no Auto Scaling group"):
        outside.group_of("i-00000000000000000")
