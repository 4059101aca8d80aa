"""`shipyard agent`: the per-host agent that pulls desired releases from the fleet controller."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import handle_errors
from shipyard.cli.fleet_cmd import CaFileOption, InsecureHttpOption
from shipyard.domain.preview_host import (
    DEFAULT_PREVIEW_PORTS,
    DEFAULT_PREVIEW_SLOTS,
    DEFAULT_PREVIEWS_LISTEN,
    preview_settings,
)
from shipyard.errors import ConfigError
from shipyard.host.context import default_home


def parse_labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"label {pair!r} must be key=value, for example --label zone=a.")
        labels[key] = value
    return labels


@handle_errors
def agent(
    controller: Annotated[
        list[str],
        typer.Option(
            "--controller",
            envvar="SHIPYARD_CONTROLLER",
            help="controller URL; repeat it (or separate with commas) for replicas to fail over between",
        ),
    ],
    join_token: Annotated[
        str | None, typer.Option("--join-token", envvar="SHIPYARD_JOIN_TOKEN", help="one-time join token")
    ] = None,
    join_token_file: Annotated[
        Path | None,
        typer.Option(
            "--join-token-file",
            help="file holding the one-time join token (used only while no agent token is saved)",
        ),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="agent token file (default HOME/agent-token, 0600)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="host name (default: the machine's)")] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="expected host group (checked at registration)")
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="key=value, repeatable")] = None,
    home: Annotated[
        Path | None, typer.Option("--home", help="state directory (default SHIPYARD_HOME)")
    ] = None,
    docker_host: Annotated[
        str | None, typer.Option("--docker-host", envvar="DOCKER_HOST", help="Docker URL")
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="address the apps and haproxy listen on, e.g. 127.0.1.2")
    ] = None,
    previews_listen: Annotated[
        str | None,
        typer.Option(
            "--previews-listen",
            help="HOST:PORT of the frontend serving previews by host name (default "
            f"{DEFAULT_PREVIEWS_LISTEN}, opened with the first preview; given, it is opened at start)",
        ),
    ] = None,
    preview_slots: Annotated[
        int, typer.Option("--preview-slots", help="haproxy backends declared for previews (previews at once)")
    ] = DEFAULT_PREVIEW_SLOTS,
    preview_ports: Annotated[
        str, typer.Option("--preview-ports", help="FIRST-LAST: the ports this host gives previews' slots")
    ] = DEFAULT_PREVIEW_PORTS,
    poll_wait: Annotated[float, typer.Option("--poll-wait", help="long-poll seconds")] = 25.0,
    max_backoff: Annotated[float, typer.Option("--max-backoff", help="longest wait between retries")] = 30.0,
    retry_failed_after: Annotated[
        float, typer.Option("--retry-failed-after", help="first wait before retrying a failed release")
    ] = 60.0,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            envvar="SHIPYARD_POLICY",
            help="this host's policy file (default /etc/shipyard/agent-policy.yml; see docs/policy.md)",
        ),
    ] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-key",
            help="public key (from 'shipyard signing-key'); when given, only releases it signed run here. "
            "Repeatable, for a rotation.",
        ),
    ] = None,
    secrets_key_file: Annotated[
        Path | None,
        typer.Option(
            "--secrets-key-file",
            help="the master key of this host's environment (mode 0600), to open releases' secrets sealed "
            "with the local key provider; aws-kms secrets use the host's AWS credentials",
        ),
    ] = None,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
    aws_lifecycle: Annotated[
        bool,
        typer.Option(
            "--aws-lifecycle",
            envvar="SHIPYARD_AWS_LIFECYCLE",
            help="this instance is in an Auto Scaling group: complete its lifecycle hooks (docs/aws.md)",
        ),
    ] = False,
    aws_launch_hook: Annotated[
        str | None, typer.Option("--aws-launch-hook", help="launch lifecycle hook completed once converged")
    ] = None,
    aws_termination_hook: Annotated[
        str | None, typer.Option("--aws-termination-hook", help="termination hook completed once drained")
    ] = None,
    aws_target_group: Annotated[
        str | None,
        typer.Option("--aws-target-group", help="ALB target group ARN to register in, once healthy"),
    ] = None,
    aws_target_port: Annotated[
        int | None, typer.Option("--aws-target-port", min=1, max=65535, help="port (default: the group's)")
    ] = None,
    aws_launch_timeout: Annotated[
        float | None,
        typer.Option(
            "--aws-launch-timeout", min=1, help="seconds to converge before ABANDON (default: hook's)"
        ),
    ] = None,
    aws_region: Annotated[str | None, typer.Option("--aws-region", envvar="AWS_REGION")] = None,
    aws_endpoint_url: Annotated[
        str | None, typer.Option("--aws-endpoint-url", help="another AWS API endpoint (tests, VPC endpoints)")
    ] = None,
    aws_metadata_url: Annotated[
        str, typer.Option("--aws-metadata-url", help="instance metadata service")
    ] = "http://169.254.169.254",
    aws_instance_id: Annotated[
        str | None, typer.Option("--aws-instance-id", help="instance id (default: from instance metadata)")
    ] = None,
) -> None:
    """Run the agent: register, long-poll the desired releases, swap health-gated, report."""
    from shipyard.agent.identity import read_token
    from shipyard.agent.lifecycle import LifecycleSettings
    from shipyard.agent.runner import AgentSettings, AwsSettings, run_agent
    from shipyard.logs import configure_process_logging, stop_process_logging
    from shipyard.secrets.masking import register_secret

    configure_process_logging()
    try:
        aws_options = [
            aws_launch_hook,
            aws_termination_hook,
            aws_target_group,
            aws_instance_id,
            aws_launch_timeout,
        ]
        if not aws_lifecycle and any(value is not None for value in aws_options):
            raise ConfigError("the --aws-* options need --aws-lifecycle; add it or drop them.")
        aws = (
            AwsSettings(
                LifecycleSettings(
                    launch_hook=aws_launch_hook,
                    termination_hook=aws_termination_hook,
                    target_group=aws_target_group,
                    target_port=aws_target_port,
                    launch_timeout=aws_launch_timeout,
                ),
                region=aws_region,
                endpoint_url=aws_endpoint_url,
                metadata_url=aws_metadata_url,
                instance_id=aws_instance_id,
            )
            if aws_lifecycle
            else None
        )

        if join_token is None and join_token_file is not None:
            join_token = read_token(join_token_file)
        if join_token:
            register_secret(join_token)
        settings = AgentSettings(
            controller=",".join(controller),
            home=home or default_home(),
            name=name or socket.gethostname(),
            join_token=join_token,
            token_file=token_file,
            group=group,
            labels=parse_labels(label or []),
            docker_url=docker_host,
            address=address,
            poll_wait=poll_wait,
            max_backoff=max_backoff,
            retry_failed_after=retry_failed_after,
            policy_file=policy,
            trusted_keys=tuple(trusted_key or ()),
            secrets_key_file=secrets_key_file,
            ca_file=ca_file,
            insecure_http=insecure_http,
            aws=aws,
            previews=preview_settings(
                previews_listen or DEFAULT_PREVIEWS_LISTEN, preview_slots, preview_ports
            ),
            serve_previews_at_start=previews_listen is not None,
        )
        run_agent(settings)
    finally:
        stop_process_logging()
