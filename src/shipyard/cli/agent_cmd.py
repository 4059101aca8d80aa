"""`shipyard agent`: the per-host agent that pulls desired releases from the fleet controller."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import handle_errors
from shipyard.cli.fleet_cmd import CaFileOption, InsecureHttpOption
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
        str, typer.Option("--controller", envvar="SHIPYARD_CONTROLLER", help="controller URL")
    ],
    join_token: Annotated[
        str | None, typer.Option("--join-token", envvar="SHIPYARD_JOIN_TOKEN", help="one-time join token")
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
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Run the agent: register, long-poll the desired releases, swap health-gated, report."""
    from shipyard.agent.runner import AgentSettings, run_agent
    from shipyard.logs import configure_process_logging
    from shipyard.secrets.masking import register_secret

    configure_process_logging()
    if join_token:
        register_secret(join_token)
    settings = AgentSettings(
        controller=controller,
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
        ca_file=ca_file,
        insecure_http=insecure_http,
    )
    run_agent(settings)
