"""The boto3 adapter's translation of AWS refusals into CloudError, with botocore's Stubber (no network)."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from shipyard.adapters.aws import AwsCloud
from shipyard.errors import CloudError


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


def test_access_denied_names_the_permissions() -> None:
    cloud = AwsCloud(region="eu-west-1", instance_id="i-0abc")
    with Stubber(cloud.autoscaling) as stub:
        stub.add_client_error(
            "complete_lifecycle_action", service_error_code="AccessDenied", service_message="no"
        )
        with pytest.raises(CloudError) as caught:
            cloud.complete("web", "launch", "i-0abc", "CONTINUE")
    assert str(caught.value) == (
        "AWS refused CompleteLifecycleAction: AccessDenied: no; "
        "check the instance role's permissions (docs/aws.md)."
    )


def test_other_refusals_point_at_the_names() -> None:
    cloud = AwsCloud(region="eu-west-1", instance_id="i-0abc")
    with Stubber(cloud.elb) as stub:
        stub.add_client_error(
            "register_targets", service_error_code="TargetGroupNotFound", service_message="gone"
        )
        with pytest.raises(CloudError, match="check the group, hook and target group names"):
            cloud.register_target("arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/x/y", "i-0abc", None)


def test_deregistration_delay_and_health_are_read() -> None:
    cloud = AwsCloud(region="eu-west-1", instance_id="i-0abc")
    target_group = "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/x/y"
    with Stubber(cloud.elb) as stub:
        stub.add_response(
            "describe_target_group_attributes",
            {"Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "45"}]},
            {"TargetGroupArn": target_group},
        )
        stub.add_response(
            "describe_target_health",
            {
                "TargetHealthDescriptions": [
                    {"Target": {"Id": "i-0abc", "Port": 8080}, "TargetHealth": {"State": "draining"}}
                ]
            },
            {"TargetGroupArn": target_group, "Targets": [{"Id": "i-0abc", "Port": 8080}]},
        )
        assert cloud.deregistration_delay(target_group) == 45.0
        assert cloud.target_health(target_group, "i-0abc", 8080) == "draining"
