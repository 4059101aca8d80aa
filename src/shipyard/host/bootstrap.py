"""What turns a plain Debian/Ubuntu machine (or a base image build) into a shipyard host. Pure rendering.

One shell script does the work; the cloud-init and Packer forms wrap that same script. It installs
Docker Engine and haproxy at pinned distribution versions (and pins them in apt), the agent in its own
virtualenv, the host's files (controller CA, agent policy, release keys, the one-time join token) and
two systemd units: the agent (restart always, after docker) and the host's haproxy, which starts from
the config the agent last wrote so a reboot serves again before the agent has even polled.

The join token's value never appears in what is rendered: the script copies it at run time from a
file on the machine (`--join-token-file`), readable by root only.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml

from shipyard.adapters.haproxy_config import ProxyPaths
from shipyard.errors import ConfigError

Format = Literal["script", "cloud-init", "packer"]
FORMATS: tuple[str, ...] = ("script", "cloud-init", "packer")
PACKAGES = {"docker": "docker.io", "haproxy": "haproxy"}
AGENT_UNIT = "shipyard-agent.service"
HAPROXY_UNIT = "shipyard-haproxy.service"
_DELIMITER = "SHIPYARD_FILE_END"


@dataclass(frozen=True)
class Bootstrap:
    controller: str
    join_token_file: str  # a path on the machine being bootstrapped
    pins: Mapping[str, str]  # Debian package -> version, e.g. {"docker.io": "20.10.24+dfsg1-1", ...}
    package: str  # what pip installs into the agent's virtualenv
    root: str = ""  # a directory prefix for every path ("" installs into /)
    home: str = "/var/lib/shipyard"
    python: str = "/usr/bin/python3"
    pip_args: Sequence[str] = ()
    ca_pem: str | None = None
    policy_yaml: str | None = None
    trusted_keys: Sequence[str] = ()  # public keys (PEM)
    name: str | None = None
    group: str | None = None
    address: str | None = None
    docker_host: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    agent_args: Sequence[str] = ()  # further `shipyard agent` options, e.g. --aws-lifecycle
    haproxy_binary: str = "/usr/sbin/haproxy"

    # paths as the running host sees them (the prefix included, so a prefixed tree runs where it is)
    def path(self, absolute: str) -> str:
        return str(PurePosixPath(self.root + absolute)) if self.root else absolute

    @property
    def etc(self) -> str:
        return self.path("/etc/shipyard")

    @property
    def host_home(self) -> str:
        return self.path(self.home)

    @property
    def venv(self) -> str:
        return self.path("/opt/shipyard/venv")

    @property
    def units(self) -> str:
        return self.path("/etc/systemd/system")

    def key_path(self, index: int) -> str:
        return f"{self.etc}/release-key{'' if index == 0 else f'-{index + 1}'}.pub"


def _q(value: str) -> str:
    return shlex.quote(value)


def agent_command(plan: Bootstrap) -> list[str]:
    """The agent's ExecStart, as argv."""
    argv = [
        f"{plan.venv}/bin/shipyard",
        "agent",
        *("--controller", plan.controller),
        *("--join-token-file", f"{plan.etc}/join-token"),
        *("--home", plan.host_home),
        *("--policy", f"{plan.etc}/agent-policy.yml"),
    ]
    if plan.ca_pem is not None:
        argv += ["--ca-file", f"{plan.etc}/ca.pem"]
    for index in range(len(plan.trusted_keys)):
        argv += ["--trusted-key", plan.key_path(index)]
    for option, value in (
        ("--name", plan.name),
        ("--group", plan.group),
        ("--address", plan.address),
        ("--docker-host", plan.docker_host),
    ):
        if value is not None:
            argv += [option, value]
    for key, value in sorted(plan.labels.items()):
        argv += ["--label", f"{key}={value}"]
    return argv + list(plan.agent_args)


def _exec_start(argv: Sequence[str]) -> str:
    """systemd's ExecStart quoting: double quotes around a word with spaces, % and $ escaped."""

    def word(value: str) -> str:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
        return f'"{escaped}"' if any(c in value for c in " \t'\"") else escaped

    return " ".join(word(value) for value in argv)


def agent_unit(plan: Bootstrap) -> str:
    return f"""[Unit]
Description=shipyard agent: pulls this host's releases from the controller and serves them
After=network-online.target docker.service {HAPROXY_UNIT}
Wants=network-online.target {HAPROXY_UNIT}
Requires=docker.service
# Registered already (its own token) or able to register (a join token): either will do.
ConditionPathExists=|{plan.etc}/join-token
ConditionPathExists=|{plan.host_home}/agent-token

[Service]
Type=simple
ExecStart={_exec_start(agent_command(plan))}
Restart=always
RestartSec=2
# Only the agent: the haproxy it started and the app containers keep serving while it restarts.
KillMode=process
TimeoutStopSec=120

[Install]
WantedBy=multi-user.target
"""


def haproxy_command(plan: Bootstrap) -> list[str]:
    paths = ProxyPaths(Path(plan.host_home) / "haproxy")
    return [plan.haproxy_binary, "-W", "-D", "-f", str(paths.config)]


def haproxy_unit(plan: Bootstrap) -> str:
    paths = ProxyPaths(Path(plan.host_home) / "haproxy")
    return f"""[Unit]
Description=haproxy of this shipyard host (the agent writes its config and switches it at run time)
After=network-online.target
Before=shipyard-agent.service
# Nothing to serve before the agent wrote a config: the agent starts haproxy itself then.
ConditionPathExists={paths.config}

[Service]
Type=forking
PIDFile={paths.pidfile}
ExecStart={_exec_start(haproxy_command(plan))}
ExecReload=/bin/kill -USR2 $MAINPID
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def apt_preferences(pins: Mapping[str, str]) -> str:
    blocks = [
        f"Package: {name}\nPin: version {version}\nPin-Priority: 1001\n"
        for name, version in sorted(pins.items())
    ]
    return "# Written by shipyard host bootstrap: every host runs the same middleware.\n" + "\n".join(blocks)


def _file(path: str, content: str, mode: str) -> list[str]:
    if any(line.strip() == _DELIMITER for line in content.splitlines()):
        raise ConfigError(f"the content for {path} contains the line {_DELIMITER}; remove it.")
    body = content if content.endswith("\n") else content + "\n"
    return [
        f"cat > {_q(path)} <<'{_DELIMITER}'",
        *body.rstrip("\n").split("\n"),
        _DELIMITER,
        f"chmod {mode} {_q(path)}",
    ]


def script(plan: Bootstrap, *, with_token: bool = True, start: bool = True) -> str:
    """The bootstrap as one POSIX shell script. Without a --root prefix it installs packages and
    enables the units; with one it checks the installed versions match the pins and writes the tree."""
    pins = dict(plan.pins)
    install = " ".join(_q(f"{name}={version}") for name, version in sorted(pins.items()))
    held = " ".join(_q(name) for name in sorted(pins))
    lines = [
        "#!/bin/sh",
        "# shipyard host bootstrap: pinned middleware, the agent in its own virtualenv, systemd units.",
        "set -eu",
        f"ROOT={_q(plan.root)}",
        "",
        "# 1. Docker Engine and haproxy at the pinned distribution versions.",
        'if [ -z "$ROOT" ]; then',
        "  export DEBIAN_FRONTEND=noninteractive",
        "  apt-get update",
        f"  apt-get install -y --allow-downgrades --allow-change-held-packages {install} python3-venv",
        f"  apt-mark hold {held}",
        "  # the distribution's haproxy would hold port 80 with its own config; this host's haproxy is ours",
        "  systemctl disable --now haproxy.service || true",
        "fi",
    ]
    for name, version in sorted(pins.items()):
        lines += [
            f"installed=$(dpkg-query -W -f='${{Version}}' {_q(name)} 2>/dev/null || true)",
            f'if [ "$installed" != {_q(version)} ]; then',
            f'  echo "bootstrap: {name} is ${{installed:-not installed}}, the pin says {version}; '
            f'install {name}={version} or bootstrap again with its version." >&2',
            "  exit 1",
            "fi",
        ]
    lines += [
        f"mkdir -p {_q(plan.path('/etc/apt/preferences.d'))}",
        *_file(plan.path("/etc/apt/preferences.d/shipyard-pins"), apt_preferences(pins), "0644"),
        "",
        "# 2. This host's files: controller CA, agent policy, release keys, the one-time join token.",
        f"install -d -m 0755 {_q(plan.etc)}",
        f"install -d -m 0700 {_q(plan.host_home)}",
    ]
    if plan.ca_pem is not None:
        lines += _file(f"{plan.etc}/ca.pem", plan.ca_pem, "0644")
    policy = plan.policy_yaml or "# this host's policy; see docs/policy.md (built-in defaults apply)\n{}\n"
    lines += _file(f"{plan.etc}/agent-policy.yml", policy, "0644")
    for index, key in enumerate(plan.trusted_keys):
        lines += _file(plan.key_path(index), key, "0644")
    if with_token:
        token = _q(plan.join_token_file)
        lines += [
            f"if [ ! -s {token} ]; then",
            f'  echo "bootstrap: the join token file {plan.join_token_file} is missing or empty; '
            'ask an admin for a join token (POST /api/v1/join-tokens)." >&2',
            "  exit 1",
            "fi",
            f"install -m 0600 {token} {_q(plan.etc + '/join-token')}",
        ]
    pip = " ".join(_q(arg) for arg in plan.pip_args)
    lines += [
        "",
        "# 3. The agent in its own virtualenv.",
        f"{_q(plan.python)} -m venv {_q(plan.venv)}",
        f"{_q(plan.venv + '/bin/pip')} install --quiet {pip} {_q(plan.package)}".replace("  ", " "),
        "",
        "# 4. systemd units: the agent (restart always, after docker) and the host's haproxy.",
        f"mkdir -p {_q(plan.units)}",
        *_file(f"{plan.units}/{AGENT_UNIT}", agent_unit(plan), "0644"),
        *_file(f"{plan.units}/{HAPROXY_UNIT}", haproxy_unit(plan), "0644"),
    ]
    if start:
        lines += [
            'if [ -z "$ROOT" ]; then',
            "  systemctl daemon-reload",
            f"  systemctl enable docker.service {HAPROXY_UNIT} {AGENT_UNIT}",
            f"  systemctl start docker.service {AGENT_UNIT}",
            "fi",
        ]
    lines.append('echo "bootstrap: done"')
    return "\n".join(lines) + "\n"


def cloud_init(plan: Bootstrap) -> str:
    """#cloud-config running the script at first boot (the join token file must be there by then)."""
    document = {
        "write_files": [
            {"path": "/var/lib/shipyard-bootstrap.sh", "permissions": "0700", "content": script(plan)},
        ],
        "runcmd": [["/bin/sh", "/var/lib/shipyard-bootstrap.sh"]],
    }
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False, width=1000)


def packer(plan: Bootstrap) -> str:
    """A Packer (HCL2) provisioner for a base image: everything but the join token, units enabled.

    Each instance launched from the image gets its join token at boot (e.g. user-data writing the
    join token file); the agent's unit waits for it (ConditionPathExists)."""
    body = script(plan, with_token=False, start=False)
    body += f"systemctl daemon-reload\nsystemctl enable docker.service {HAPROXY_UNIT} {AGENT_UNIT}\n"
    quoted = body.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${").replace("%{", "%%{")
    inline = ",\n".join(f'      "{line}"' for line in quoted.rstrip("\n").split("\n"))
    return (
        "# Packer provisioner: add it to your source's build block.\n"
        'provisioner "shell" {\n'
        "  execute_command = \"sudo sh -c '{{ .Vars }} {{ .Path }}'\"\n"
        "  inline = [\n"
        f"{inline}\n"
        "  ]\n"
        "}\n"
    )


def render(plan: Bootstrap, form: str) -> str:
    if form == "script":
        return script(plan)
    if form == "cloud-init":
        return cloud_init(plan)
    if form == "packer":
        return packer(plan)
    raise ConfigError(f"--format {form!r} is not one of {', '.join(FORMATS)}; pick one of them.")
