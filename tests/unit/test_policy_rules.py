"""The agent policy as data: every rule, its defaults, and the tricks it must not fall for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard.domain.policy import (
    AgentPolicy,
    Violation,
    check,
    image_registry,
    load_policy,
    normalise,
    parse_policy,
    spec_paths,
)
from shipyard.domain.spec import AppSpec, parse_spec
from shipyard.errors import ConfigError

BASE: dict[str, Any] = {"app": "web", "image": "127.0.0.1:5000/web"}
DEFAULTS = AgentPolicy()


def spec(**overrides: Any) -> AppSpec:
    return parse_spec({**BASE, **overrides})


def policy(**data: Any) -> AgentPolicy:
    return parse_policy(data)


def found(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.rule, v.key) for v in violations}


def test_a_plain_release_passes_the_default_policy() -> None:
    assert check(DEFAULTS, spec()) == []


def test_an_empty_policy_file_is_the_default_policy() -> None:
    assert parse_policy(None) == DEFAULTS
    assert parse_policy({}) == DEFAULTS


# hooks ----------------------------------------------------------------------------------------------
def test_hooks_are_refused_by_default_for_each_phase() -> None:
    release = spec(hooks={"pre-deploy": "true", "post-deploy": ["true"]})
    violations = check(DEFAULTS, release)
    assert found(violations) == {("hooks", "hooks.pre-deploy"), ("hooks", "hooks.post-deploy")}
    assert "hooks.allow: true" in violations[0].message
    assert str(violations[0]).startswith("hooks.pre-deploy: hooks are off on this host")
    assert str(violations[0]).endswith("(rule hooks)")


def test_hooks_run_when_the_policy_allows_them() -> None:
    release = spec(hooks={"post-swap": ["true"]})
    assert check(policy(hooks={"allow": True}), release) == []


# volumes --------------------------------------------------------------------------------------------
def test_no_host_path_may_be_mounted_by_default() -> None:
    violations = check(DEFAULTS, spec(volumes=["/srv/data:/data"]))
    assert found(violations) == {("host-paths", "volumes.0")}
    assert "volumes.host_paths" in violations[0].message


def test_a_listed_directory_allows_itself_and_what_is_below_it() -> None:
    allowing = policy(volumes={"host_paths": ["/srv/data"]})
    assert check(allowing, spec(volumes=["/srv/data:/data", "/srv/data/logs:/logs:ro"])) == []
    assert found(check(allowing, spec(volumes=["/srv/database:/db"]))) == {("host-paths", "volumes.0")}


@pytest.mark.parametrize(
    "source",
    [
        "/srv/data/../../",
        "/srv/data/..",
        "//",
        "/srv/data/../../etc",
        "/srv/./data/../../var/run/docker.sock",
    ],
)
def test_dot_dot_and_slashes_do_not_escape_a_listed_directory(source: str) -> None:
    allowing = policy(volumes={"host_paths": ["/srv/data"]})
    assert found(check(allowing, spec(volumes=[f"{source}:/x"]))) == {("host-paths", "volumes.0")}


def test_root_is_allowed_only_when_listed_itself() -> None:
    parent_listed = policy(volumes={"host_paths": ["/srv", "/var"]})
    assert found(check(parent_listed, spec(volumes=["/:/host"]))) == {("host-paths", "volumes.0")}
    root_listed = policy(volumes={"host_paths": ["/"]})
    assert check(root_listed, spec(volumes=["/:/host"])) == []
    # Listing / allows ordinary paths below it, but not the Docker socket.
    assert check(root_listed, spec(volumes=["/srv/data:/data"])) == []
    refused = check(root_listed, spec(volumes=["/var/run/docker.sock:/var/run/docker.sock"]))
    assert found(refused) == {("host-paths", "volumes.0")}
    assert "list /var/run/docker.sock itself" in refused[0].message


@pytest.mark.parametrize("socket", ["/var/run/docker.sock", "/run/docker.sock"])
def test_the_docker_socket_needs_its_own_entry(socket: str) -> None:
    parent = policy(volumes={"host_paths": ["/var/run", "/run"]})
    assert found(check(parent, spec(volumes=[f"{socket}:/docker.sock"]))) == {("host-paths", "volumes.0")}
    exact = policy(volumes={"host_paths": [socket]})
    assert check(exact, spec(volumes=[f"{socket}:/docker.sock"])) == []


def test_a_directory_holding_a_protected_path_needs_that_path_listed_too() -> None:
    parent = policy(volumes={"host_paths": ["/var/run"]})
    refused = check(parent, spec(volumes=["/var/run:/host-run"]))
    assert found(refused) == {("host-paths", "volumes.0")}
    assert "it holds /var/run/docker.sock" in refused[0].message
    both = policy(
        volumes={"host_paths": ["/var/run", "/var/run/docker.sock", "/var/run/docker", "/var/run/containerd"]}
    )
    assert check(both, spec(volumes=["/var/run:/host-run"])) == []
    # Inside a protected directory, a listed parent does not reach either.
    assert found(
        check(policy(volumes={"host_paths": ["/var/lib"]}), spec(volumes=["/var/lib/docker/x:/x"]))
    ) == {("host-paths", "volumes.0")}


def test_this_hosts_own_docker_socket_is_protected_like_the_default_one() -> None:
    allowing = policy(volumes={"host_paths": ["/srv"]})
    release = spec(volumes=["/srv/engine/docker.sock:/docker.sock"])
    assert check(allowing, release) == []
    refused = check(allowing, release, protected=["/srv/engine/docker.sock"])
    assert found(refused) == {("host-paths", "volumes.0")}


def test_the_hosts_own_state_is_never_mounted_whatever_the_policy_says() -> None:
    everything = policy(volumes={"host_paths": ["/", "/srv/shipyard"]})
    refused = check(everything, spec(volumes=["/srv/shipyard/agent-token:/t"]), private=["/srv/shipyard"])
    assert found(refused) == {("host-paths", "volumes.0")}
    assert "never mounted" in refused[0].message
    holding = check(everything, spec(volumes=["/srv:/srv"]), private=["/srv/shipyard"])
    assert found(holding) == {("host-paths", "volumes.0")}
    assert check(everything, spec(volumes=["/:/host"]), private=["/srv/shipyard"]) == []


def test_a_symlink_is_judged_by_what_it_resolves_to() -> None:
    allowing = policy(volumes={"host_paths": ["/srv/data"]})
    release = spec(volumes=["/srv/data/link:/x"])
    refused = check(allowing, release, real_paths={"/srv/data/link": "/"})
    assert found(refused) == {("host-paths", "volumes.0")}
    assert "resolving to /" in refused[0].message


def test_a_listed_directory_behind_a_symlink_still_allows_its_contents() -> None:
    allowing = policy(volumes={"host_paths": ["/srv/data"]})
    release = spec(volumes=["/srv/data/logs:/logs"])
    resolved = {"/srv/data": "/mnt/disk/data", "/srv/data/logs": "/mnt/disk/data/logs"}
    assert check(allowing, release, real_paths=resolved) == []


def test_named_volumes_are_allowed_unless_turned_off() -> None:
    release = spec(volumes=["pgdata:/var/lib/postgresql"])
    assert check(DEFAULTS, release) == []
    assert found(check(policy(volumes={"named": False}), release)) == {("named-volumes", "volumes.0")}


def test_a_relative_or_home_source_is_refused() -> None:
    with pytest.raises(ConfigError, match="volumes"):
        spec(volumes=["./data:/data"])
    # The policy refuses them too, should a spec ever reach it unvalidated.
    unvalidated = spec().model_copy(update={"volumes": ["./data:/data", "~/x:/x"]})
    violations = check(DEFAULTS, unvalidated)
    assert found(violations) == {("host-paths", "volumes.0"), ("host-paths", "volumes.1")}


# privileges -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value",
    [
        ("privileged", True),
        ("cap_add", ["SYS_ADMIN"]),
        ("pid", "host"),
        ("ipc", "host"),
        ("devices", ["/dev/sda"]),
        ("security_opt", ["seccomp=unconfined"]),
        ("user", "0"),
    ],
)
def test_a_release_cannot_ask_for_privileges_at_all(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"{key}: unknown key"):
        parse_spec({**BASE, key: value})
    with pytest.raises(ConfigError, match=f"resources.{key}: unknown key"):
        parse_spec({**BASE, "resources": {key: value}})


# registries -----------------------------------------------------------------------------------------
def test_by_default_only_loopback_registries_are_allowed() -> None:
    for image in ("127.0.0.1:5000/web", "localhost:5000/web", "127.0.1.7:5000/team/web", "[::1]:5000/web"):
        assert check(DEFAULTS, spec(image=image)) == [], image
    refused = check(DEFAULTS, spec(image="registry.example.com/web"))
    assert found(refused) == {("registries", "image")}
    assert "loopback registries only" in refused[0].message
    assert found(check(DEFAULTS, spec(image="library/web"))) == {("registries", "image")}


def test_a_listed_registry_replaces_the_default() -> None:
    listed = policy(registries=["Registry.Example.com:5000"])
    assert check(listed, spec(image="registry.example.com:5000/web")) == []
    assert found(check(listed, spec(image="registry.example.com/web"))) == {("registries", "image")}
    assert found(check(listed, spec())) == {("registries", "image")}  # loopback no longer implied
    assert check(policy(registries=["*"]), spec(image="anything.example/web")) == []


def test_the_deployed_image_and_the_registry_server_are_checked_too() -> None:
    release = spec(registry={"server": "evil.example:443"})
    assert found(check(DEFAULTS, release)) == {("registries", "registry.server")}
    pinned = "evil.example/web@sha256:" + "a" * 64
    assert found(check(DEFAULTS, spec(), image=pinned)) == {("registries", "image")}


def test_image_registry_reads_references_like_docker() -> None:
    assert image_registry("127.0.0.1:5000/web") == "127.0.0.1:5000"
    assert image_registry("localhost/web") == "localhost"
    assert image_registry("team/web") == "docker.io"
    assert image_registry("web") == "docker.io"


# environment ----------------------------------------------------------------------------------------
def test_env_secret_names_need_an_allowed_prefix() -> None:
    release = spec(env={"secret": ["SHIPYARD_SECRET_DB", "HOME", "AWS_SECRET_ACCESS_KEY"]})
    assert found(check(DEFAULTS, release)) == {("env-secret", "env.secret.1"), ("env-secret", "env.secret.2")}
    widened = policy(env={"secret_prefixes": ["SHIPYARD_SECRET_", "AWS_"]})
    assert found(check(widened, release)) == {("env-secret", "env.secret.1")}


@pytest.mark.parametrize("name", ["SHIPYARD_TOKEN", "SHIPYARD_JOIN_TOKEN", "SHIPYARD_MASTER_KEY"])
def test_shipyards_own_tokens_are_never_handed_over_whatever_the_prefixes(name: str) -> None:
    lax = policy(env={"secret_prefixes": ["SHIPYARD_", "S"]})
    refused = check(lax, spec(env={"secret": [name]}), stored_secrets=[])
    assert found(refused) == {("env-secret", "env.secret.0")}
    assert "never handed over" in refused[0].message


def test_registry_credentials_from_the_environment_follow_the_same_rule() -> None:
    release = spec(registry={"username_env": "SHIPYARD_SECRET_USER", "password_env": "SHIPYARD_JOIN_TOKEN"})
    assert found(check(DEFAULTS, release)) == {("env-secret", "registry.password_env")}


def test_names_found_in_the_encrypted_store_do_not_read_the_environment() -> None:
    release = spec(env={"secret": ["DATABASE_URL"]})
    assert check(DEFAULTS, release, stored_secrets={"DATABASE_URL"}) == []


# files ----------------------------------------------------------------------------------------------
def test_registry_password_files_only_under_the_allowed_directory() -> None:
    fine = spec(registry={"password_file": "/etc/shipyard/registry/password"})
    assert check(DEFAULTS, fine) == []
    for path in (
        "/etc/shadow",
        "/etc/shipyard/registry/../agent.env",
        "/etc/shipyard/registry",
        "secret.txt",
    ):
        refused = check(DEFAULTS, spec(registry={"password_file": path}))
        assert found(refused) == {("registry-files", "registry.password_file")}, path
    assert found(check(DEFAULTS, spec(registry={"username_file": "/root/user"}))) == {
        ("registry-files", "registry.username_file")
    }


def test_maintenance_pages_only_under_the_allowed_directory() -> None:
    assert check(DEFAULTS, spec(proxy={"maintenance_page": "/etc/shipyard/pages/web.html"})) == []
    refused = check(DEFAULTS, spec(proxy={"maintenance_page": "/var/lib/shipyard/agent-token"}))
    assert found(refused) == {("maintenance-page", "proxy.maintenance_page")}
    assert "/etc/shipyard/pages" in refused[0].message
    custom = policy(files={"maintenance_pages": ["/srv/pages"]})
    assert check(custom, spec(proxy={"maintenance_page": "/srv/pages/503.html"})) == []


def test_a_relative_file_is_judged_by_its_resolved_path() -> None:
    release = spec(proxy={"maintenance_page": "page.html"})
    assert found(check(DEFAULTS, release)) == {("maintenance-page", "proxy.maintenance_page")}
    resolved = {"page.html": "/etc/shipyard/pages/page.html"}
    assert check(DEFAULTS, release, real_paths=resolved) == []
    escaping = {"page.html": "/etc/passwd"}
    assert found(check(DEFAULTS, release, real_paths=escaping)) == {
        ("maintenance-page", "proxy.maintenance_page")
    }


def test_the_hosts_own_files_are_never_read_whatever_the_policy_says() -> None:
    lax = policy(files={"maintenance_pages": ["/"]})
    release = spec(proxy={"maintenance_page": "/var/lib/shipyard/agent-token"})
    assert check(lax, release) == []
    refused = check(lax, release, private=["/var/lib/shipyard"])
    assert "never read" in refused[0].message


def test_spec_paths_lists_what_the_host_must_resolve() -> None:
    release = spec(
        volumes=["/srv/a:/a", "named:/n"],
        registry={"password_file": "pw"},
        proxy={"maintenance_page": "page.html"},
    )
    assert spec_paths(release) == ["/srv/a", "pw", "page.html"]


# the file ------------------------------------------------------------------------------------------
def test_every_problem_of_a_policy_file_is_reported_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "agent-policy.yml"
    path.write_text(
        "hooks:\n  allow: maybe\nvolumes:\n  host_paths: [srv]\nregistries: ['a b']\n"
        "env:\n  secret_prefixes: ['1X']\ncolour: blue\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    details = caught.value.details
    assert any(d.startswith("hooks.allow:") for d in details)
    assert any(d.startswith("volumes.host_paths:") and "absolute" in d for d in details)
    assert any(d.startswith("registries:") for d in details)
    assert any(d.startswith("env.secret_prefixes:") for d in details)
    assert any(d.startswith("colour: unknown key") for d in details)


def test_a_missing_or_broken_policy_file_is_one_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; create it or pass another --policy"):
        load_policy(tmp_path / "nope.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("hooks: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML at line"):
        load_policy(broken)
    listed = tmp_path / "list.yml"
    listed.write_text("- hooks\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_policy(listed)


def test_policy_paths_are_normalised_when_read() -> None:
    read = policy(volumes={"host_paths": ["/srv//data/./x/.."]}, files={"maintenance_pages": ["//pages/"]})
    assert read.volumes.host_paths == ["/srv/data"]
    assert read.files.maintenance_pages == ["/pages"]
    assert normalise("relative") is None
