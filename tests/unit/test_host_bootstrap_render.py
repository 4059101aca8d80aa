"""The bootstrap rendered as data: pins, units, formats; and the CLI's refusals."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shipyard.adapters.apt import parse_policy
from shipyard.cli.main import app
from shipyard.host.bootstrap import Bootstrap, agent_command, agent_unit, haproxy_unit, render

POLICY = """docker.io:
  Installed: 20.10.24+dfsg1-1+deb12u1+b6
  Candidate: 20.10.24+dfsg1-1+deb12u1+b6
  Version table:
 *** 20.10.24+dfsg1-1+deb12u1+b6 500
haproxy:
  Installed: (none)
  Candidate: 2.6.12-1+deb12u4
  Version table:
     2.6.12-1+deb12u4 500
nginx:
  Installed: (none)
  Candidate: (none)
"""

PLAN = Bootstrap(
    controller="https://controller.example:8443",
    join_token_file="/root/join-token",
    pins={"docker.io": "20.10.24+dfsg1-1", "haproxy": "2.6.12-1+deb12u4"},
    package="shipyard==0.1.0",
    ca_pem="-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n",
    policy_yaml="registries: [registry.example:5000]\n",
    trusted_keys=("-----BEGIN PUBLIC KEY-----\nk1\n-----END PUBLIC KEY-----\n", "K2\n"),
    name="web-1",
    address="10.0.0.5",
    labels={"zone": "a b"},
    agent_args=("--aws-lifecycle",),
)


def test_apt_policy_pins_installed_else_candidate() -> None:
    assert parse_policy(POLICY) == {"docker.io": "20.10.24+dfsg1-1+deb12u1+b6", "haproxy": "2.6.12-1+deb12u4"}


def test_agent_command_installs_every_trust_file() -> None:
    argv = agent_command(PLAN)
    assert argv[:2] == ["/opt/shipyard/venv/bin/shipyard", "agent"]
    pairs = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert pairs["--controller"] == "https://controller.example:8443"
    assert pairs["--join-token-file"] == "/etc/shipyard/join-token"
    assert pairs["--ca-file"] == "/etc/shipyard/ca.pem"
    assert pairs["--policy"] == "/etc/shipyard/agent-policy.yml"
    assert argv.count("--trusted-key") == 2 and "/etc/shipyard/release-key-2.pub" in argv
    assert argv[-1] == "--aws-lifecycle"


def test_units_restart_always_after_docker_and_quote_their_words() -> None:
    unit = agent_unit(PLAN)
    assert "Restart=always" in unit and "Requires=docker.service" in unit
    assert "After=network-online.target docker.service" in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == agent_command(PLAN)
    assert '"zone=a b"' in exec_start
    proxy = haproxy_unit(PLAN)
    assert "ConditionPathExists=/var/lib/shipyard/haproxy/haproxy.cfg" in proxy
    assert "PIDFile=/var/lib/shipyard/haproxy/haproxy.pid" in proxy


def test_script_pins_and_never_holds_the_token_value() -> None:
    script = render(PLAN, "script")
    assert "apt-get install -y --allow-downgrades --allow-change-held-packages" in script
    assert "docker.io=20.10.24+dfsg1-1 haproxy=2.6.12-1+deb12u4" in script
    assert "apt-mark hold docker.io haproxy" in script
    assert "Pin: version 2.6.12-1+deb12u4\nPin-Priority: 1001" in script
    assert "install -m 0600 /root/join-token /etc/shipyard/join-token" in script


def test_root_prefix_is_in_every_path() -> None:
    prefixed = Bootstrap(**{**PLAN.__dict__, "root": "/tmp/tree"})
    script = render(prefixed, "script")
    assert "ROOT=/tmp/tree" in script
    assert "/tmp/tree/etc/systemd/system/shipyard-agent.service" in script
    assert agent_command(prefixed)[0] == "/tmp/tree/opt/shipyard/venv/bin/shipyard"


def test_cloud_init_wraps_the_script() -> None:
    rendered = render(PLAN, "cloud-init")
    assert rendered.startswith("#cloud-config\n")
    document = yaml.safe_load(rendered)
    assert document["write_files"][0]["content"] == render(PLAN, "script")
    assert document["runcmd"] == [["/bin/sh", "/var/lib/shipyard-bootstrap.sh"]]


def test_packer_builds_an_image_without_a_join_token() -> None:
    rendered = render(PLAN, "packer")
    assert rendered.count('provisioner "shell"') == 1
    assert "join-token /etc/shipyard/join-token" not in rendered.replace("--join-token-file ", "")
    assert "install -m 0600" not in rendered
    assert "systemctl enable docker.service shipyard-haproxy.service shipyard-agent.service" in rendered


runner = CliRunner()


def test_cli_refuses_an_unknown_format_and_plain_http(tmp_path: Path) -> None:
    token = tmp_path / "t"
    args = [
        "host",
        "bootstrap",
        "--join-token-file",
        str(token),
        "--docker-version",
        "1",
        "--haproxy-version",
        "2",
    ]
    wrong = runner.invoke(app, [*args, "--controller", "https://c.example", "--format", "ansible"])
    assert wrong.exit_code == 2 and "is not one of script, cloud-init, packer" in wrong.output
    plain = runner.invoke(app, [*args, "--controller", "http://c.example"])
    assert plain.exit_code == 2 and "https" in plain.output
    fine = runner.invoke(app, [*args, "--controller", "https://c.example", "--format", "cloud-init"])
    assert fine.exit_code == 0 and fine.output.startswith("#cloud-config")


def test_cli_refuses_an_unreadable_ca_file(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            *("host", "bootstrap", "--controller", "https://c.example", "--join-token-file", "t"),
            *("--docker-version", "1", "--haproxy-version", "2", "--ca-file", str(tmp_path / "missing.pem")),
        ],
    )
    assert result.exit_code == 2 and "cannot read the CA file" in result.output
    assert "Traceback" not in result.output


def test_drain_without_an_agent_times_out_with_a_clear_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["host", "drain", "--home", str(tmp_path), "--timeout", "1"])
    assert result.exit_code == 1
    assert "did not drain this host within 1 s" in result.output
    assert (tmp_path / "drain-request").read_text().strip() == "shipyard host drain"
    queued = runner.invoke(app, ["host", "drain", "--home", str(tmp_path / "b"), "--no-wait"])
    assert queued.exit_code == 0 and "drain requested" in queued.output


def test_aws_options_need_aws_lifecycle() -> None:
    result = runner.invoke(
        app, ["agent", "--controller", "https://c.example", "--aws-target-group", "arn:aws:x"]
    )
    assert result.exit_code == 2 and "need --aws-lifecycle" in result.output


@pytest.mark.parametrize("form", ["script", "cloud-init", "packer"])
def test_content_holding_the_heredoc_delimiter_is_refused(form: str) -> None:
    from shipyard.errors import ConfigError

    bad = Bootstrap(**{**PLAN.__dict__, "policy_yaml": "a: 1\nSHIPYARD_FILE_END\n"})
    with pytest.raises(ConfigError, match="contains the line SHIPYARD_FILE_END"):
        render(bad, form)
