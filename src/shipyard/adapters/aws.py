"""The agent's CloudPort: boto3 (Auto Scaling, Elastic Load Balancing v2) and the instance metadata service.

botocore's errors become CloudError here, once. The metadata service is read with IMDSv2 (a session
token from PUT /latest/api/token); its address is configurable so a test points it at a local server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shipyard.agent.lifecycle import LifecycleResult
from shipyard.errors import CloudError

DEFAULT_METADATA_URL = "http://169.254.169.254"
TOKEN_TTL = "300"


@contextmanager
def _translate(action: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "error"))
        hint = (
            "check the instance role's permissions (docs/aws.md)"
            if "AccessDenied" in code or "Unauthorized" in code
            else "check the group, hook and target group names"
        )
        raise CloudError(f"AWS refused {action}: {code}: {error.get('Message', '')}; {hint}.") from exc
    except BotoCoreError as exc:
        raise CloudError(f"AWS did not answer {action}: {exc}; the agent tries again.") from exc


class AwsCloud:
    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        metadata_url: str = DEFAULT_METADATA_URL,
        instance_id: str | None = None,
    ) -> None:
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=20)
        with _translate("creating clients"):
            session = boto3.session.Session(region_name=region)
            self.autoscaling: Any = session.client("autoscaling", endpoint_url=endpoint_url, config=config)
            self.elb: Any = session.client("elbv2", endpoint_url=endpoint_url, config=config)
        self.metadata_url = metadata_url.rstrip("/")
        self._instance_id = instance_id

    # instance metadata (IMDSv2) --------------------------------------------------------------------
    def _metadata(self, path: str) -> str | None:
        """The metadata value at `path`; None when it does not exist (404)."""
        try:
            with httpx.Client(base_url=self.metadata_url, timeout=2.0, trust_env=False) as http:
                token = http.put(
                    "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL}
                )
                token.raise_for_status()
                answer = http.get(path, headers={"X-aws-ec2-metadata-token": token.text})
        except httpx.HTTPError as exc:
            raise CloudError(
                f"the instance metadata service at {self.metadata_url} does not answer ({exc}); "
                "pass --aws-instance-id or --aws-metadata-url."
            ) from exc
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise CloudError(f"the instance metadata service answered {answer.status_code} for {path}.")
        return answer.text.strip()

    def instance_id(self) -> str:
        if self._instance_id is None:
            found = self._metadata("/latest/meta-data/instance-id")
            if not found:
                raise CloudError("the instance metadata service has no instance-id; pass --aws-instance-id.")
            self._instance_id = found
        return self._instance_id

    def termination_notice(self) -> str | None:
        target = self._metadata("/latest/meta-data/autoscaling/target-lifecycle-state")
        if target == "Terminated":
            return "Auto Scaling terminates this instance"
        action = self._metadata("/latest/meta-data/spot/instance-action")
        if action:
            try:
                notice = json.loads(action)
            except ValueError:
                notice = {}
            what = notice.get("action", "terminate") if isinstance(notice, dict) else "terminate"
            when = notice.get("time", "soon") if isinstance(notice, dict) else "soon"
            return f"spot interruption notice: {what} at {when}"
        return None

    # Auto Scaling ----------------------------------------------------------------------------------
    def group_of(self, instance_id: str) -> str:
        with _translate("DescribeAutoScalingInstances"):
            found = self.autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])
        instances = found.get("AutoScalingInstances", [])
        if not instances:
            raise CloudError(f"instance {instance_id} is in no Auto Scaling group; drop --aws-lifecycle.")
        return str(instances[0]["AutoScalingGroupName"])

    def hook_timeout(self, group: str, hook: str) -> float:
        with _translate("DescribeLifecycleHooks"):
            found = self.autoscaling.describe_lifecycle_hooks(
                AutoScalingGroupName=group, LifecycleHookNames=[hook]
            )
        hooks = found.get("LifecycleHooks", [])
        if not hooks:
            raise CloudError(
                f"the Auto Scaling group {group} has no lifecycle hook {hook!r}; check --aws-launch-hook."
            )
        return float(hooks[0].get("HeartbeatTimeout", 3600))

    def heartbeat(self, group: str, hook: str, instance_id: str) -> None:
        with _translate("RecordLifecycleActionHeartbeat"):
            self.autoscaling.record_lifecycle_action_heartbeat(
                AutoScalingGroupName=group, LifecycleHookName=hook, InstanceId=instance_id
            )

    def complete(self, group: str, hook: str, instance_id: str, result: LifecycleResult) -> None:
        with _translate("CompleteLifecycleAction"):
            self.autoscaling.complete_lifecycle_action(
                AutoScalingGroupName=group,
                LifecycleHookName=hook,
                InstanceId=instance_id,
                LifecycleActionResult=result,
            )

    # Elastic Load Balancing v2 ---------------------------------------------------------------------
    @staticmethod
    def _target(instance_id: str, port: int | None) -> dict[str, Any]:
        return {"Id": instance_id} if port is None else {"Id": instance_id, "Port": port}

    def register_target(self, target_group: str, instance_id: str, port: int | None) -> None:
        with _translate("RegisterTargets"):
            self.elb.register_targets(TargetGroupArn=target_group, Targets=[self._target(instance_id, port)])

    def deregister_target(self, target_group: str, instance_id: str, port: int | None) -> None:
        with _translate("DeregisterTargets"):
            self.elb.deregister_targets(
                TargetGroupArn=target_group, Targets=[self._target(instance_id, port)]
            )

    def target_health(self, target_group: str, instance_id: str, port: int | None) -> str:
        with _translate("DescribeTargetHealth"):
            found = self.elb.describe_target_health(
                TargetGroupArn=target_group, Targets=[self._target(instance_id, port)]
            )
        descriptions = found.get("TargetHealthDescriptions", [])
        return str(descriptions[0]["TargetHealth"]["State"]) if descriptions else "unused"

    def deregistration_delay(self, target_group: str) -> float:
        with _translate("DescribeTargetGroupAttributes"):
            found = self.elb.describe_target_group_attributes(TargetGroupArn=target_group)
        for attribute in found.get("Attributes", []):
            if attribute.get("Key") == "deregistration_delay.timeout_seconds":
                return float(attribute["Value"])
        return 300.0  # the ELB default
