"""What the lifecycle tests put around moto's server on 127.0.0.1.

- RecordingAwsEndpoint: forwards every AWS API call to moto and records its Action, in order. moto
  (5.x) does not implement CompleteLifecycleAction and RecordLifecycleActionHeartbeat: those two are
  answered here, as AWS answers them (an empty result in the query protocol), after checking that the
  group, hook and instance exist in moto, and are recorded with their parameters.
- FakeMetadata: the instance metadata service (IMDSv2: a token from PUT /latest/api/token), serving
  instance-id, autoscaling/target-lifecycle-state and spot/instance-action as EC2 does.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    """Test credentials for boto3, and nothing of the machine's own AWS configuration."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free port of 127.0.0.1; yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


NAMESPACE = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
ANSWERED_HERE = ("CompleteLifecycleAction", "RecordLifecycleActionHeartbeat")


@dataclass
class CallLog:
    """AWS actions and the host's own steps (e.g. "stop apps"), in the order they happened.

    With a `probe`, what it returns at the moment of each call is kept too (e.g. what the host serves)."""

    entries: list[str] = field(default_factory=list)
    parameters: list[dict[str, str]] = field(default_factory=list)
    observed: list[object] = field(default_factory=list)
    probe: Callable[[], object] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: str, parameters: dict[str, str] | None = None) -> None:
        seen = self.probe() if self.probe is not None else None
        with self.lock:
            self.entries.append(entry)
            self.parameters.append(parameters or {})
            self.observed.append(seen)

    def seen_at(self, entry: str) -> object:
        with self.lock:
            return self.observed[self.entries.index(entry)]

    def actions(self, *names: str) -> list[str]:
        with self.lock:
            return [entry for entry in self.entries if not names or entry.split(" ")[0] in names]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the agent at the end of a test) is not the fake's failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[_Server, str]:
    """`handler` served on a free port of 127.0.0.1 in a daemon thread; the server and its URL."""
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class RecordingAwsEndpoint:
    def __init__(self, moto_url: str, region: str, log: CallLog) -> None:
        self.moto_url, self.region, self.log = moto_url, region, log
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                form = dict(parse_qsl(body.decode()))
                action = form.get("Action", self.headers.get("X-Amz-Target", "?"))
                if action in ANSWERED_HERE:
                    status, answer = endpoint.lifecycle_action(action, form)
                    self._send(status, answer.encode(), "text/xml")
                    return
                endpoint.log.add(action, {k: v for k, v in form.items() if k not in ("Action", "Version")})
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                forwarded = httpx.post(
                    endpoint.moto_url + self.path, content=body, headers=headers, timeout=30
                )
                self._send(
                    forwarded.status_code, forwarded.content, forwarded.headers.get("content-type", "")
                )

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server, self.url = _serve(Handler)

    def lifecycle_action(self, action: str, form: dict[str, str]) -> tuple[int, str]:
        group, hook, instance = (
            form.get("AutoScalingGroupName", ""),
            form.get("LifecycleHookName", ""),
            form.get("InstanceId", ""),
        )
        autoscaling: Any = boto3.client("autoscaling", region_name=self.region, endpoint_url=self.moto_url)
        hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group)["LifecycleHooks"]
        members = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
        if hook not in {h["LifecycleHookName"] for h in hooks} or not members:
            return 400, self._error(
                "ValidationError", f"No active Lifecycle Action found with instance ID {instance}"
            )
        parameters = {k: v for k, v in form.items() if k not in ("Action", "Version")}
        result = parameters.get("LifecycleActionResult")
        self.log.add(f"{action} {hook}" + (f" {result}" if result else ""), parameters)
        request_id = uuid.uuid4()
        return 200, (
            f'<{action}Response xmlns="{NAMESPACE}"><{action}Result/>'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
        )

    @staticmethod
    def _error(code: str, message: str) -> str:
        return (
            f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeMetadata:
    """IMDSv2 on 127.0.0.1: set `target_state` or `spot_action` to send a notice."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.target_state = "InService"
        self.spot_action: str | None = None
        self.tokens: set[str] = set()
        metadata = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_PUT(self) -> None:
                if (
                    self.path != "/latest/api/token"
                    or "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers
                ):
                    self._send(400, "")
                    return
                token = uuid.uuid4().hex
                metadata.tokens.add(token)
                self._send(200, token)

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") not in metadata.tokens:
                    self._send(401, "")
                    return
                values = {
                    "/latest/meta-data/instance-id": metadata.instance_id,
                    "/latest/meta-data/autoscaling/target-lifecycle-state": metadata.target_state,
                }
                if metadata.spot_action is not None:
                    values["/latest/meta-data/spot/instance-action"] = metadata.spot_action
                value = values.get(self.path)
                self._send(200, value) if value is not None else self._send(404, "Not Found")

            def _send(self, status: int, text: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server, self.url = _serve(Handler)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class AutoScalingGroup:
    name: str
    instance: str
    target_group: str


def create_group(moto_url: str, region: str) -> AutoScalingGroup:
    """In moto: an Auto Scaling group of one instance with "launch" and "terminate" lifecycle hooks,
    and an ALB target group with a 2 s deregistration delay."""
    name = f"web-{time.monotonic_ns()}"
    ec2: Any = boto3.client("ec2", region_name=region, endpoint_url=moto_url)
    autoscaling: Any = boto3.client("autoscaling", region_name=region, endpoint_url=moto_url)
    elb: Any = boto3.client("elbv2", region_name=region, endpoint_url=moto_url)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{region}a")["Subnet"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"}
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"},
        MinSize=1,
        MaxSize=2,
        DesiredCapacity=1,
        VPCZoneIdentifier=subnet["SubnetId"],
    )
    for hook, transition in (("launch", "LAUNCHING"), ("terminate", "TERMINATING")):
        autoscaling.put_lifecycle_hook(
            AutoScalingGroupName=name,
            LifecycleHookName=hook,
            LifecycleTransition=f"autoscaling:EC2_INSTANCE_{transition}",
            HeartbeatTimeout=60,
            DefaultResult="ABANDON",
        )
    target_group = elb.create_target_group(
        Name=name[:32], Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    elb.modify_target_group_attributes(
        TargetGroupArn=target_group,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "2"}],
    )
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return AutoScalingGroup(name, groups[0]["Instances"][0]["InstanceId"], target_group)
