"""`shipyard host bootstrap --format script` run on this machine into a fresh directory tree, then booted
and rebooted the way systemd would: the commands come from the generated units' ExecStart lines.

A lab without hosts provides the registry, the controller (https, signed releases) and the edge; the
bootstrapped host gets its own Docker Engine. The reboot kills the agent, the host's haproxy and every
container of its engine; starting the units' commands again must bring the release back, by itself.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import stat
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest
import yaml

from shipyard.adapters.apt import distribution_versions
from shipyard.lab import control_plane
from shipyard.lab.engine import ExtraEngine, start_extra_engine, stop_extra_engine

from .host_fixtures import empty_lab, short_path
from .lab_harness import Lab, wait_for

__all__ = ["empty_lab", "short_path"]  # fixtures used by name

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Unit:
    exec_start: list[str]
    conditions: list[str]  # ConditionPathExists=| lines: any one will do
    required: list[str]  # ConditionPathExists= lines: each must hold
    restart: str
    kill_mode: str

    def may_start(self) -> bool:
        return all(Path(p).exists() for p in self.required) and (
            not self.conditions or any(Path(p).exists() for p in self.conditions)
        )


def parse_unit(path: Path) -> Unit:
    """The [Service] and [Unit] keys this test needs, read from the generated file."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    exists = values.get("ConditionPathExists", [])
    return Unit(
        exec_start=shlex.split(values["ExecStart"][0]),
        conditions=[c[1:] for c in exists if c.startswith("|")],
        required=[c for c in exists if not c.startswith("|")],
        restart=values.get("Restart", [""])[0],
        kill_mode=values.get("KillMode", ["control-group"])[0],
    )


@dataclass
class BootedHost:
    tree: Path
    address: str
    engine: ExtraEngine
    lab: Lab
    agent: subprocess.Popen[bytes] | None = None

    @property
    def units(self) -> Path:
        return self.tree / "etc/systemd/system"

    @property
    def home(self) -> Path:
        return self.tree / "var/lib/shipyard"

    def boot(self) -> None:
        """What systemd does at boot, in unit order: the host's haproxy (when it has a config), the agent."""
        haproxy = parse_unit(self.units / "shipyard-haproxy.service")
        if haproxy.may_start():
            subprocess.run(haproxy.exec_start, check=True, env={"PATH": SYSTEMD_PATH}, timeout=30)
        agent = parse_unit(self.units / "shipyard-agent.service")
        assert agent.may_start()
        log = (self.tree / "agent.log").open("ab")
        self.agent = subprocess.Popen(
            agent.exec_start,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": SYSTEMD_PATH},
            start_new_session=True,
        )

    def power_off(self) -> None:
        """Every shipyard process and container of this host dies at once."""
        if self.agent is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.agent.pid, signal.SIGKILL)
            self.agent.wait(timeout=30)
        pidfile = self.home / "haproxy/haproxy.pid"
        if pidfile.exists():
            for pid in pidfile.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        client = docker.DockerClient(base_url=self.engine.base_url, timeout=30)
        try:
            for container in client.containers.list():
                container.kill()
        finally:
            client.close()

    def version(self) -> str | None:
        try:
            answer = httpx.get(f"http://{self.lab.state.app.listen(self.address)}/version", timeout=2)
        except httpx.HTTPError:
            return None
        return answer.text.strip() if answer.status_code == 200 else None


def bootstrap_script(lab: Lab, tree: Path, token_file: Path, address: str, docker_url: str) -> str:
    state = lab.state
    policy = tree.parent / "policy.yml"
    policy.write_text(yaml.safe_dump({"registries": [state.registry_address], "hooks": {"allow": False}}))
    public_key = state.release_key_file.with_name(state.release_key_file.name + ".pub")
    args = [
        *("host", "bootstrap", "--format", "script", "--root", str(tree)),
        *("--controller", state.controller_url, "--join-token-file", str(token_file)),
        *("--ca-file", str(state.ca_file), "--policy", str(policy), "--trusted-key", str(public_key)),
        *("--name", "boot1", "--group", state.group, "--address", address, "--docker-host", docker_url),
        # The agent's code from this checkout; its dependencies come from the test's environment
        # (a .pth below) instead of a download of every dependency into the new virtualenv.
        *("--package", str(REPOSITORY), "--pip-arg", "--no-deps"),
    ]
    env = {"PATH": os.environ.get("PATH", SYSTEMD_PATH), "HOME": str(tree.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bootstrap_then_reboot_serves_the_release_again(empty_lab: Lab, short_path: Path) -> None:
    lab, tmp_path = empty_lab, short_path
    state = lab.state
    tree = tmp_path / "tree"
    token_file = tmp_path / "join-token"
    with lab.client() as admin:
        join_token = admin.create_join_token(state.group).token
    token_file.write_text(join_token + "\n")
    engine = start_extra_engine(tmp_path / "engine")
    address = f"{state.subnet}.77"
    host = BootedHost(tree, address, engine, lab)
    try:
        script = bootstrap_script(lab, tree, token_file, address, engine.base_url)
        assert join_token not in script  # the token is copied at run time, never printed
        (tmp_path / "bootstrap.sh").write_text(script)
        ran = subprocess.run(
            ["sh", str(tmp_path / "bootstrap.sh")], capture_output=True, text=True, timeout=600
        )
        assert ran.returncode == 0, ran.stderr[-2000:]

        # The tree: pins as the distribution reports them, the host's files, the units.
        pins = distribution_versions(["docker.io", "haproxy"])
        preferences = (tree / "etc/apt/preferences.d/shipyard-pins").read_text()
        for package, version in pins.items():
            assert f"Package: {package}\nPin: version {version}\nPin-Priority: 1001" in preferences
        etc = tree / "etc/shipyard"
        assert stat.S_IMODE((etc / "join-token").stat().st_mode) == 0o600
        assert (etc / "join-token").read_text().strip() == join_token
        assert (etc / "ca.pem").read_text() == state.ca_file.read_text()
        assert "registries" in (etc / "agent-policy.yml").read_text()
        assert (etc / "release-key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
        agent_unit = parse_unit(tree / "etc/systemd/system/shipyard-agent.service")
        assert agent_unit.restart == "always" and agent_unit.kill_mode == "process"
        assert (
            "After=network-online.target docker.service"
            in (tree / "etc/systemd/system/shipyard-agent.service").read_text()
        )
        assert agent_unit.exec_start[:2] == [str(tree / "opt/shipyard/venv/bin/shipyard"), "agent"]
        assert not parse_unit(
            tree / "etc/systemd/system/shipyard-haproxy.service"
        ).may_start()  # no config yet

        # The virtualenv's own shipyard, with the test environment's dependencies.
        site = next((tree / "opt/shipyard/venv/lib").glob("python3*/site-packages"))
        (site / "zz-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

        # First boot: the agent registers with the join token; a deployment reaches the host.
        host.boot()
        wait_for(lambda: (host.home / "agent-token").exists(), 120, "the agent to register")
        deployment = lab.start_deployment("v1", max_parallel="100%", monitor=0.5)
        assert lab.wait_deployment(deployment.id, timeout=180).status == "succeeded"
        wait_for(lambda: host.version() == "v1", 60, "the host to serve v1")
        with lab.client() as admin:
            reported = {h.name: h for h in admin.hosts(state.group)}["boot1"]
        assert reported.versions["haproxy"] and reported.versions["docker"] and reported.versions["kernel"]

        listed = lab.cli_with({**lab.env(), "COLUMNS": "300"}, "hosts")
        assert listed.returncode == 0, listed.stderr
        assert reported.versions["haproxy"] in listed.stdout and "version skew" not in listed.stdout

        # Reboot while the controller is away too: everything of the host dies; the units' commands
        # start again; nobody runs anything else, and the host serves from its own records.
        host.power_off()
        assert host.version() is None
        control_plane.stop_controller(lab.state)
        try:
            assert parse_unit(tree / "etc/systemd/system/shipyard-haproxy.service").may_start()
            rebooted = time.monotonic()
            host.boot()
            wait_for(lambda: host.version() == "v1", 120, "the host to serve v1 again after the reboot")
            print(f"\nreboot (controller away) -> serving v1 again: {time.monotonic() - rebooted:.1f} s")
        finally:
            control_plane.start_controller(lab.state)

        # A release needing a newer haproxy than the pinned one is refused here; v1 keeps serving.
        needs = {"requires": {"haproxy": ">=99"}}
        refused = lab.start_deployment("v2", needs, max_parallel="100%", monitor=0.5, auto_rollback=False)
        assert lab.wait_deployment(refused.id, timeout=120).status == "failed"
        with lab.client() as admin:
            app = {h.name: h for h in admin.hosts(state.group)}["boot1"].apps[0]
        assert app.outcome == "failed"
        assert "this host refuses release" in app.message and "haproxy >=99 is required" in app.message
        assert host.version() == "v1"

        # shipyard host drain: the agent stops the app and converges nothing more, also after a restart.
        drained = lab.cli_with(lab.env(), "host", "drain", "--home", str(host.home), "--timeout", "120")
        assert drained.returncode == 0, drained.stderr
        assert "drained" in drained.stdout and host.version() is None
        assert host.agent is not None and host.agent.poll() is None
        host.power_off()
        host.boot()
        time.sleep(3)
        assert host.version() is None
    finally:
        host.power_off()
        stop_extra_engine(engine)
        with contextlib.suppress(Exception), control_plane.admin_client(state) as admin:
            admin.delete_host("boot1")
