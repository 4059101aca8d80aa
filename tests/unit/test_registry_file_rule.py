"""One rule for relative registry files: next to shipyard.yml, for the build, the host, the fleet CLI
and the host's policy alike, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.adapters.registry import registry_credentials, registry_file_path
from shipyard.cli.common import host_context, load, repo_root
from shipyard.domain.policy import parse_policy
from shipyard.errors import ConfigError
from shipyard.host.context import HostContext
from shipyard.host.policy import HostPolicy
from shipyard.host.service import host_registry_credentials


@pytest.fixture
def app_and_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """shipyard.yml in app/ with its login in app/creds; the command runs in elsewhere/, which holds
    other files under the same relative names."""
    app = tmp_path / "app"
    (app / "creds").mkdir(parents=True)
    (app / "creds" / "user").write_text("ci\n")
    (app / "creds" / "pass").write_text("next-to-shipyard-yml\n")
    (app / "shipyard.yml").write_text(
        "app: web\nimage: 127.0.0.1:5000/web\n"
        "registry:\n  username_file: creds/user\n  password_file: creds/pass\n"
    )
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "creds").mkdir(parents=True)
    (elsewhere / "creds" / "user").write_text("intruder\n")
    (elsewhere / "creds" / "pass").write_text("from-the-working-directory\n")
    monkeypatch.chdir(elsewhere)
    return app / "shipyard.yml"


def test_build_and_deploy_read_the_same_file_from_another_working_directory(app_and_elsewhere: Path) -> None:
    config = app_and_elsewhere
    spec = load(config)

    built = registry_credentials(spec.registry, None, repo_root(config))  # what `shipyard build` passes
    deployed = host_registry_credentials(spec.registry, host_context(config).config_dir)  # `shipyard deploy`

    assert built is not None and deployed is not None
    assert (built.username, built.password) == (deployed.username, deployed.password)
    assert deployed.password == "next-to-shipyard-yml"


def test_the_host_policy_judges_the_file_the_login_reads(app_and_elsewhere: Path) -> None:
    config = app_and_elsewhere
    spec = load(config)
    app_creds = str(config.parent / "creds")
    elsewhere_creds = str(Path.cwd() / "creds")

    allowing_app = HostPolicy(parse_policy({"files": {"registry_credentials": [app_creds]}}), "test")
    allowing_elsewhere = HostPolicy(
        parse_policy({"files": {"registry_credentials": [elsewhere_creds]}}), "test"
    )

    assert allowing_app.for_config(config).violations(spec) == []
    refused = allowing_elsewhere.for_config(config).violations(spec)
    assert {(v.rule, v.key) for v in refused} == {
        ("registry-files", "registry.username_file"),
        ("registry-files", "registry.password_file"),
    }
    assert all(str(config.parent / "creds") in v.message for v in refused)


def test_without_a_shipyard_yml_a_relative_registry_file_is_refused(app_and_elsewhere: Path) -> None:
    spec = load(app_and_elsewhere)
    agent = HostContext(home=app_and_elsewhere.parent / "home")  # a release from the controller

    with pytest.raises(ConfigError, match="relative path") as caught:
        host_registry_credentials(spec.registry, agent.config_dir)
    assert "from-the-working-directory" not in str(caught.value)
    policy = HostPolicy(parse_policy({"files": {"registry_credentials": [str(Path.cwd())]}}), "agent")
    assert {v.message for v in policy.violations(spec)} == {
        "creds/user must be an absolute path",
        "creds/pass must be an absolute path",
    }


def test_absolute_and_home_paths_stay_where_they_point(tmp_path: Path) -> None:
    assert registry_file_path("/etc/shipyard/registry/pass", tmp_path) == Path("/etc/shipyard/registry/pass")
    assert registry_file_path("~/pass", None) == Path.home() / "pass"
    assert registry_file_path("pass", tmp_path) == tmp_path / "pass"
    assert registry_file_path("pass", None) is None
