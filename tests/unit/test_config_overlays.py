"""Environment overlays: shipyard.<env>.yml deep-merged over shipyard.yml, each key with its origin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.domain.overlay import Layer, merge_layers, overlay_name
from shipyard.domain.spec import load_spec
from shipyard.errors import ConfigError

BASE = """\
app: web
image: 127.0.0.1:5000/web
port: 8080
env:
  clear:
    RAILS_ENV: staging
    LOG_LEVEL: debug
  secret: [DATABASE_URL]
deploy:
  standby: 30
hooks:
  pre-deploy: ["true"]
"""

PRODUCTION = """\
env:
  clear:
    RAILS_ENV: production
    LOG_LEVEL: null
deploy:
  keep_releases: 9
hooks:
  pre-deploy: ["echo prod", "true"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "shipyard.yml").write_text(BASE)
    (tmp_path / "shipyard.production.yml").write_text(PRODUCTION)
    return tmp_path / "shipyard.yml"


def test_mappings_merge_and_other_values_replace() -> None:
    merged = merge_layers(
        [
            Layer("base", {"a": {"b": 1, "c": [1, 2]}, "d": "x"}),
            Layer("over", {"a": {"c": [3]}, "e": {"f": True}}),
        ]
    )
    assert merged.data == {"a": {"b": 1, "c": [3]}, "d": "x", "e": {"f": True}}
    assert merged.origins == {"a.b": "base", "a.c": "over", "d": "base", "e.f": "over"}
    assert merged.origin("a.zzz") == "default"


def test_null_removes_a_key_and_its_origin() -> None:
    merged = merge_layers([Layer("base", {"a": {"b": 1, "c": 2}}), Layer("over", {"a": {"b": None}})])
    assert merged.data == {"a": {"c": 2}}
    assert "a.b" not in merged.origins


def test_a_mapping_replacing_a_scalar_records_each_leaf() -> None:
    merged = merge_layers([Layer("base", {"a": 1}), Layer("over", {"a": {"b": 2, "c": {"d": 3}}})])
    assert merged.origins == {"a.b": "over", "a.c.d": "over"}


def test_merging_does_not_alias_the_layers() -> None:
    base = {"a": {"b": [1]}}
    merged = merge_layers([Layer("base", base)])
    merged.data["a"]["b"].append(2)
    assert base == {"a": {"b": [1]}}


def test_overlay_file_name() -> None:
    assert overlay_name("shipyard.yml", "production") == "shipyard.production.yml"
    assert overlay_name("app.yaml", "staging") == "app.staging.yaml"


def test_load_spec_merges_the_environment_overlay(config: Path) -> None:
    base = load_spec(config)
    production = load_spec(config, "production")
    staging = load_spec(config, "staging")  # no overlay file: the base as it is
    assert base.env.clear == {"RAILS_ENV": "staging", "LOG_LEVEL": "debug"}
    assert production.env.clear == {"RAILS_ENV": "production"}
    assert production.env.secret == ["DATABASE_URL"]
    assert production.deploy.keep_releases == 9 and production.deploy.standby == 30
    assert production.hooks.pre_deploy == ["echo prod", "true"]
    assert staging == base


def test_an_invalid_overlay_names_both_files(config: Path) -> None:
    config.with_name("shipyard.staging.yml").write_text("deploy:\n  standby: -1\n")
    with pytest.raises(ConfigError, match=r"shipyard.yml \+ shipyard.staging.yml is invalid.*deploy.standby"):
        load_spec(config, "staging")


def test_an_overlay_that_is_not_a_mapping_is_refused(config: Path) -> None:
    config.with_name("shipyard.staging.yml").write_text("- a list\n")
    with pytest.raises(ConfigError, match=r"shipyard\.staging\.yml must be a mapping"):
        load_spec(config, "staging")


def test_an_environment_name_cannot_reach_another_file(config: Path) -> None:
    with pytest.raises(ConfigError, match="is not a valid name"):
        load_spec(config, "../production")


def test_config_command_shows_each_keys_origin(config: Path) -> None:
    shown = CliRunner().invoke(app, ["config", "--config", str(config), "--env", "production"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "    RAILS_ENV: production  # shipyard.production.yml" in lines
    assert "  keep_releases: 9  # shipyard.production.yml" in lines
    assert "  standby: 30.0  # shipyard.yml" in lines
    assert "app: web  # shipyard.yml" in lines
    assert "  drain_timeout: 10.0" in lines  # a default: no origin comment
    assert not any("LOG_LEVEL" in line for line in lines)


def test_config_command_json_is_the_merged_document(config: Path) -> None:
    shown = CliRunner().invoke(app, ["config", "--config", str(config), "--env", "production", "--json"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    assert document["env"]["clear"] == {"RAILS_ENV": "production"}
    assert document["deploy"]["keep_releases"] == 9


def test_config_command_refuses_a_bad_environment_name(config: Path) -> None:
    shown = CliRunner().invoke(app, ["config", "--config", str(config), "--env", "a/b"])
    assert shown.exit_code != 0
    assert "is not a valid name" in shown.output
    assert "Traceback" not in shown.output
