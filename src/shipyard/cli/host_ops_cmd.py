"""`shipyard host bootstrap` and `shipyard host drain`: making a machine a host, and taking it out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from shipyard import __version__
from shipyard.cli.common import JsonOption, handle_errors
from shipyard.cli.fleet_cmd import InsecureHttpOption
from shipyard.errors import ConfigError, ShipyardError
from shipyard.host.context import default_home

host_app = typer.Typer(
    name="host", help="Bootstrap a machine into a host, or drain one.", no_args_is_help=True
)


def _read_text(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}; check the path.") from exc


@host_app.command("bootstrap")
@handle_errors
def bootstrap(
    controller: Annotated[str, typer.Option("--controller", help="controller URL the agent talks to")],
    join_token_file: Annotated[
        Path,
        typer.Option(
            "--join-token-file",
            help="file holding a one-time join token, on the machine (copied at run time, never printed)",
        ),
    ],
    output_format: Annotated[str, typer.Option("--format", help="script, cloud-init or packer")] = "script",
    root: Annotated[
        Path | None,
        typer.Option("--root", "--prefix", help="install under this directory instead of / (no packages)"),
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="CA bundle the agent verifies the controller with")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="the host's agent policy (docs/policy.md)")
    ] = None,
    trusted_key: Annotated[
        list[Path] | None, typer.Option("--trusted-key", help="release signing public key; repeatable")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="host name (default: the machine's)")] = None,
    group: Annotated[str | None, typer.Option("--group", help="expected host group")] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="address apps and haproxy listen on")
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="key=value, repeatable")] = None,
    docker_host: Annotated[str | None, typer.Option("--docker-host", help="Docker URL for the agent")] = None,
    home: Annotated[str, typer.Option("--home", help="the agent's state directory")] = "/var/lib/shipyard",
    docker_version: Annotated[
        str | None, typer.Option("--docker-version", help="docker.io version (default: apt-cache policy)")
    ] = None,
    haproxy_version: Annotated[
        str | None, typer.Option("--haproxy-version", help="haproxy version (default: apt-cache policy)")
    ] = None,
    package: Annotated[
        str, typer.Option("--package", help="what pip installs into the agent's virtualenv")
    ] = f"shipyard=={__version__}",
    python: Annotated[
        str, typer.Option("--python", help="interpreter of the virtualenv")
    ] = "/usr/bin/python3",
    pip_arg: Annotated[
        list[str] | None, typer.Option("--pip-arg", help="extra pip argument, repeatable")
    ] = None,
    agent_arg: Annotated[
        list[str] | None, typer.Option("--agent-arg", help="extra 'shipyard agent' argument, repeatable")
    ] = None,
    insecure_http: InsecureHttpOption = False,
) -> None:
    """Print what turns a plain Debian/Ubuntu machine into a host: pinned middleware, agent, units."""
    from shipyard.adapters.apt import distribution_versions
    from shipyard.cli.agent_cmd import parse_labels
    from shipyard.fleet_api.url_policy import check_controller_url
    from shipyard.host.bootstrap import FORMATS, PACKAGES, Bootstrap, render

    if output_format not in FORMATS:
        raise ConfigError(f"--format {output_format!r} is not one of {', '.join(FORMATS)}; pick one of them.")
    url = check_controller_url(controller, insecure_http=insecure_http)
    if not home.startswith("/"):
        raise ConfigError(f"--home {home!r} must be an absolute path, for example /var/lib/shipyard.")
    wanted = {"docker": docker_version, "haproxy": haproxy_version}
    missing = [PACKAGES[key] for key, version in wanted.items() if version is None]
    found = distribution_versions(missing) if missing else {}
    pins = {PACKAGES[key]: version or found[PACKAGES[key]] for key, version in wanted.items()}
    if root is not None and not root.is_absolute():
        root = root.resolve()
    keys = [_read_text(path, "trusted key") or "" for path in trusted_key or []]
    plan = Bootstrap(
        controller=url,
        join_token_file=str(join_token_file.absolute()),
        pins=pins,
        package=package,
        root=str(root) if root is not None and str(root) != "/" else "",
        home=home,
        python=python,
        pip_args=tuple(pip_arg or ()),
        ca_pem=_read_text(ca_file, "CA file"),
        policy_yaml=_read_text(policy, "policy file"),
        trusted_keys=tuple(keys),
        name=name,
        group=group,
        address=address,
        docker_host=docker_host,
        labels=parse_labels(label or []),
        agent_args=tuple(agent_arg or ()),
    )
    typer.echo(render(plan, output_format), nl=False)


@host_app.command("drain")
@handle_errors
def drain(
    home: Annotated[
        Path | None, typer.Option("--home", help="the agent's state directory (default SHIPYARD_HOME)")
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="why; kept in the agent's log")
    ] = "shipyard host drain",
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="wait until the agent has drained the host")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="seconds to wait")] = 120.0,
    as_json: JsonOption = False,
) -> None:
    """Take this host out: the agent deregisters it from its target group, waits, stops its apps."""
    from shipyard.agent.lifecycle import drained_reason, request_drain

    state_dir = home or default_home()

    def tell(state: str, text: str) -> None:
        typer.echo(json.dumps({"drain": state, "home": str(state_dir)}) if as_json else text)

    if drained_reason(state_dir) is not None:
        tell("drained", f"this host is drained already ({drained_reason(state_dir)}).")
        return
    request_drain(state_dir, reason.strip() or "shipyard host drain")
    if not wait:
        tell("requested", "drain requested; the agent acts at its next pass.")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if drained_reason(state_dir) is not None:
            tell("drained", "drained: deregistered, apps stopped; the agent converges nothing more here.")
            return
        time.sleep(0.5)
    raise ShipyardError(
        f"the agent did not drain this host within {timeout:.0f} s; is 'shipyard agent' running with "
        f"--home {state_dir} (systemctl status shipyard-agent)? The request stays until it does."
    )
