"""The policy on a host: files read, paths resolved on disk, the agent refusing first, hooks' env."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_agent_fakes import DIGEST, desired_app

from shipyard.agent.local_host import LocalHost
from shipyard.domain.commands import HookPhase
from shipyard.domain.models import Release
from shipyard.domain.plan import HOOK_PATH, SwapContext, plan_hooks
from shipyard.domain.policy import parse_policy
from shipyard.domain.spec import AppSpec, parse_spec
from shipyard.errors import ConfigError, DeployFailedError, PolicyError
from shipyard.host import policy as host_policy
from shipyard.host.context import HostContext
from shipyard.host.interpreter import Interpreter, SilentReporter
from shipyard.host.policy import HostPolicy, agent_policy, cli_policy

BASE = {"app": "web", "image": "127.0.0.1:5000/web"}


class WatchedEnviron(Mapping[str, str]):
    """An environment that records every name looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.read.append(key)
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        self.read.append(str(key))
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_a_refused_release_leaves_no_trace_on_the_agents_host(tmp_path: Path) -> None:
    context = HostContext(home=tmp_path / "home")
    environ = WatchedEnviron({"SHIPYARD_JOIN_TOKEN": "syj_secret"})
    host = LocalHost(context, environ=environ)
    desired = desired_app()
    desired.spec.update(
        {
            "hooks": {"pre-deploy": ["true"]},
            "volumes": ["/:/host"],
            "registry": {"username_env": "REGISTRY_USER", "password_env": "SHIPYARD_JOIN_TOKEN"},
            # Sealed with the release, not read from the agent's environment: no env-secret rule for it.
            "env": {"secret": ["DATABASE_URL"]},
        }
    )
    with pytest.raises(PolicyError) as refused:
        host.converge(desired, SilentReporter())
    message = refused.value.message
    assert "refuses release r1 of web" in message and "built-in defaults" in message
    assert "hooks.pre-deploy" in message and "(rule hooks)" in message
    assert "volumes.0" in message and "(rule host-paths)" in message
    assert "registry.password_env" in message and "(rule env-secret)" in message
    assert "env.secret.0" not in message
    assert "syj_secret" not in message
    assert environ.read == []  # nothing was read from the agent's environment
    assert not (tmp_path / "home").exists()  # no store opened, no lock taken, no step run
    assert refused.value.exit_code == 13


def test_a_symlink_on_disk_is_followed_before_judging(tmp_path: Path) -> None:
    allowed = tmp_path / "data"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/")
    (allowed / "logs").mkdir()
    rules = parse_policy({"volumes": {"host_paths": [str(allowed)]}})
    policy = HostPolicy(rules, "test")
    assert policy.violations(parse_spec({**BASE, "volumes": [f"{allowed}/logs:/logs"]})) == []
    refused = policy.violations(parse_spec({**BASE, "volumes": [f"{allowed}/escape:/host"]}))
    assert [v.rule for v in refused] == ["host-paths"]
    assert "resolving to /" in refused[0].message


def test_a_relative_maintenance_page_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    monkeypatch.chdir(pages)
    rules = parse_policy({"files": {"maintenance_pages": [str(pages)]}})
    policy = HostPolicy(rules, "test")
    assert policy.violations(parse_spec({**BASE, "proxy": {"maintenance_page": "503.html"}})) == []
    refused = policy.violations(parse_spec({**BASE, "proxy": {"maintenance_page": "../../etc/passwd"}}))
    assert [v.key for v in refused] == ["proxy.maintenance_page"]


def test_the_agent_guards_its_home_token_policy_and_docker_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_policy, "DEFAULT_POLICY_PATH", tmp_path / "absent.yml")
    policy = agent_policy(
        None,
        home=tmp_path / "home",
        token_file=tmp_path / "keys" / "agent-token",
        docker_url=f"unix://{tmp_path}/engine/docker.sock",
    )
    assert policy.source.startswith("built-in defaults")
    lax = HostPolicy(
        parse_policy(
            {"volumes": {"host_paths": [str(tmp_path)]}, "files": {"registry_credentials": [str(tmp_path)]}}
        ),
        "test",
        policy.protected,
        policy.private,
    )
    for volume in (
        f"{tmp_path}/home:/h",
        f"{tmp_path}/keys/agent-token:/t",
        f"{tmp_path}/engine/docker.sock:/d",
    ):
        refused = lax.violations(parse_spec({**BASE, "volumes": [volume]}))
        assert [v.rule for v in refused] == ["host-paths"], volume
    token = lax.violations(
        parse_spec({**BASE, "registry": {"password_file": f"{tmp_path}/keys/agent-token"}})
    )
    assert [v.rule for v in token] == ["registry-files"]


def test_a_policy_named_but_missing_stops_the_agent_and_the_cli(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        agent_policy(tmp_path / "nope.yml", home=tmp_path, token_file=tmp_path / "t", docker_url=None)
    with pytest.raises(ConfigError, match="does not exist"):
        cli_policy(tmp_path / "nope.yml", home=tmp_path)


def test_the_cli_has_no_policy_unless_a_file_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "agent-policy.yml"
    monkeypatch.setattr(host_policy, "DEFAULT_POLICY_PATH", default)
    assert cli_policy(None, home=tmp_path) is None
    default.write_text("hooks:\n  allow: true\n")
    found = cli_policy(None, home=tmp_path)
    assert found is not None and found.rules.hooks.allow and found.source == str(default)


def test_hooks_get_the_releases_environment_and_never_the_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_JOIN_TOKEN", "syj_must_not_leak")
    monkeypatch.setenv("SHIPYARD_TOKEN", "sya_must_not_leak")
    monkeypatch.setenv("UNRELATED", "agent-only")
    out = tmp_path / "env.out"
    spec = parse_spec(
        {
            **BASE,
            "env": {"clear": {"GREETING": "hello"}, "secret": ["SHIPYARD_SECRET_DB"]},
            "hooks": {"post-swap": [f"sh -c 'env > {out}'"]},
        }
    )
    run_hooks(tmp_path, spec, "post-swap", SwapContext(secrets={"SHIPYARD_SECRET_DB": "db://x"}))
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert "must_not_leak" not in out.read_text()
    assert "UNRELATED" not in seen
    assert seen["GREETING"] == "hello" and seen["SHIPYARD_SECRET_DB"] == "db://x"
    assert seen["SHIPYARD_RELEASE"] == "r1" and seen["SHIPYARD_HOOK"] == "post-swap"
    assert seen["PATH"] == HOOK_PATH
    assert os.environ["SHIPYARD_TOKEN"] == "sya_must_not_leak"  # the agent keeps its own


def run_hooks(tmp_path: Path, spec: AppSpec, phase: HookPhase, swap: SwapContext) -> None:
    """Plan the phase's hooks for release r1 and run them through the interpreter."""
    release = Release("r1", "web", "127.0.0.1:5000/web", DIGEST, spec, datetime.now(UTC), "t")
    with HostContext(home=tmp_path / "home") as context:
        Interpreter(context, "web").run(plan_hooks(phase, release, swap))


def test_hooks_run_as_the_policys_user_with_its_own_groups(tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="shipyard-hook-user-"))  # pytest's tmp_path is root-only
    shared.chmod(0o777)
    out = shared / "id.out"
    spec = parse_spec({**BASE, "hooks": {"post-deploy": [f"sh -c 'id -u > {out}; id -G >> {out}'"]}})
    nobody = pwd.getpwnam("nobody")
    as_nobody = SwapContext(hook_user="nobody")
    try:
        if os.geteuid() != 0:  # only root may switch users: the hook is refused, never run as shipyard's user
            with pytest.raises(DeployFailedError, match="could not run"):
                run_hooks(tmp_path, spec, "post-deploy", as_nobody)
            assert not out.exists()
            return
        run_hooks(tmp_path, spec, "post-deploy", as_nobody)
        uid, groups = out.read_text().splitlines()
    finally:
        shutil.rmtree(shared)
    assert int(uid) == nobody.pw_uid
    assert groups.split() == [str(nobody.pw_gid)]


def test_a_hook_user_that_does_not_exist_stops_the_hook(tmp_path: Path) -> None:
    spec = parse_spec({**BASE, "hooks": {"pre-deploy": ["true"]}})
    with pytest.raises(DeployFailedError, match="not a user on this host"):
        run_hooks(tmp_path, spec, "pre-deploy", SwapContext(hook_user="no-such-user-here"))


def test_the_hook_user_must_look_like_a_user() -> None:
    assert parse_policy({"hooks": {"user": "nobody"}}).hooks.user == "nobody"
    assert parse_policy({"hooks": {"user": "65534"}}).hooks.user == "65534"
    with pytest.raises(ConfigError, match=r"hooks\.user"):
        parse_policy({"hooks": {"user": "nobody\nroot"}})
