"""The lab speaks https end to end: its controller serves a certificate from the lab's throwaway CA, the
agents registered through it, and the CLI needs the CA (lab.env names it) to talk to it."""

from __future__ import annotations

import json

import httpx
import pytest

from shipyard.lab.hosts import agent_log

from .lab_harness import Lab

pytestmark = pytest.mark.e2e


def test_the_lab_controller_serves_only_https(lab: Lab) -> None:
    state = lab.state
    assert state.controller_url.startswith("https://127.0.0.1:")
    with pytest.raises(httpx.HTTPError):
        httpx.get(state.controller_url.replace("https://", "http://") + "/healthz", timeout=5)
    lab_env = (state.path / "lab.env").read_text()
    assert f"export SHIPYARD_CA_FILE={state.ca_file}\n" in lab_env
    assert f"export SHIPYARD_CONTROLLER={state.controller_url}\n" in lab_env


def test_agents_registered_over_https(lab: Lab) -> None:
    with lab.client() as admin:
        names = {host.name for host in admin.hosts(lab.state.group)}
    assert names >= {host.name for host in lab.state.hosts}
    for host in lab.state.hosts:
        log = agent_log(host).read_text(errors="replace")
        assert "certificate" not in log.lower(), log[-600:]


def test_the_cli_trusts_the_lab_controller_through_its_ca_only(lab: Lab) -> None:
    trusted = lab.cli("hosts", "--json")
    assert trusted.returncode == 0, trusted.stderr
    assert {host["name"] for host in json.loads(trusted.stdout)} >= {host.name for host in lab.state.hosts}
    env = {name: value for name, value in lab.env().items() if name != "SHIPYARD_CA_FILE"}
    refused = lab.cli_with(env, "hosts")
    assert refused.returncode == 10, refused.stderr
    assert "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ca-file" in lines[0], lines
