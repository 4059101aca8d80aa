from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shipyard.cli.init_template import render_template
from shipyard.domain.spec import load_spec, parse_spec, spec_from_snapshot, spec_snapshot
from shipyard.errors import ConfigError

MINIMAL = {"app": "web", "image": "127.0.0.1:5000/web", "port": 3000, "proxy": {"listen": "127.0.0.1:8080"}}


def test_minimal_file_is_five_lines_and_fills_defaults(tmp_path: Path) -> None:
    path = tmp_path / "shipyard.yml"
    path.write_text("app: web\nimage: 127.0.0.1:5000/web\nport: 3000\nproxy:\n  listen: 127.0.0.1:8080\n")
    spec = load_spec(path)
    assert len(path.read_text().splitlines()) == 5
    assert spec.network == "host"
    assert spec.slot_ports == {"blue": 3000, "green": 3001}
    assert spec.healthcheck.path == "/up"
    assert spec.deploy.keep_releases == 3


def test_every_error_is_reported_with_its_key_path() -> None:
    data = {
        **MINIMAL,
        "healthcheck": {"interval": 0, "path": "up"},
        "deploy": {"keep_releases": 0},
        "colour": "blue",
    }
    with pytest.raises(ConfigError) as caught:
        parse_spec(data)
    details = caught.value.details
    assert "healthcheck.interval: must be greater than 0" in details
    assert "healthcheck.path: must start with /" in details
    assert "deploy.keep_releases: must be greater than or equal to 1" in details
    assert any(d.startswith("colour: unknown key") for d in details)
    assert "4 problems" in caught.value.message


def test_extension_keys_are_allowed_anywhere() -> None:
    spec = parse_spec({**MINIMAL, "x-notes": "anything", "deploy": {"x-anchor": {"a": 1}, "standby": 5}})
    assert spec.deploy.standby == 5


def test_inline_registry_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="registry: inline 'password' is not allowed"):
        parse_spec({**MINIMAL, "registry": {"server": "r:5000", "password": "hunter2"}})


def test_missing_required_keys_and_bad_values() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec({"image": "r/web:latest", "network": "overlay", "proxy": {"listen": "8080"}})
    details = caught.value.details
    assert "app: is required" in details
    assert any(d.startswith("image: must be a repository without tag") for d in details)
    assert any(d.startswith("network: must be 'host' or 'bridge'") for d in details)
    assert any(d.startswith("proxy.listen: must be address:port") for d in details)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "shipyard.yml"
    path.write_text("app: web\nimage: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_spec(path)


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shipyard init"):
        load_spec(tmp_path / "shipyard.yml")


def test_snapshot_round_trips_and_holds_secret_names_only() -> None:
    spec = parse_spec({**MINIMAL, "env": {"clear": {"RAILS_ENV": "production"}, "secret": ["DATABASE_URL"]}})
    snapshot = spec_snapshot(spec)
    assert snapshot["env"]["secret"] == ["DATABASE_URL"]
    assert spec_from_snapshot(snapshot) == spec


def test_hooks_accept_one_command_or_a_list() -> None:
    spec = parse_spec({**MINIMAL, "hooks": {"pre-deploy": "./migrate", "post-swap": ["a", "b"]}})
    assert spec.hooks.pre_deploy == ["./migrate"]
    assert spec.hooks.post_swap == ["a", "b"]


def test_init_template_is_valid() -> None:
    spec = parse_spec(yaml.safe_load(render_template("shop", "127.0.0.1:5000/shop")))
    assert spec.app == "shop"


def test_proxy_retries_default_to_idempotent_methods_without_response_timeouts() -> None:
    proxy = parse_spec(MINIMAL).proxy
    assert proxy.retries.attempts == 3
    assert proxy.retries.methods == ["GET", "HEAD", "OPTIONS"]
    assert proxy.retries.response_timeout is False
    assert proxy.timeouts.http_request == 10.0
    assert proxy.max_body is None and proxy.max_body_bytes is None


def test_proxy_retries_accept_put_and_delete_in_any_case() -> None:
    spec = parse_spec(
        {**MINIMAL, "proxy": {**MINIMAL["proxy"], "retries": {"methods": ["get", "put", "DELETE"]}}}
    )
    assert spec.proxy.retries.methods == ["GET", "PUT", "DELETE"]


@pytest.mark.parametrize("method", ["POST", "patch", "CONNECT"])
def test_a_non_idempotent_method_cannot_be_made_replayable(method: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec({**MINIMAL, "proxy": {**MINIMAL["proxy"], "retries": {"methods": ["GET", method]}}})
    assert any(
        d.startswith(f"proxy.retries.methods: {method.upper()!r} cannot be replayed")
        for d in caught.value.details
    )


@pytest.mark.parametrize(
    ("text", "size"), [("512k", 524288), ("100m", 104857600), ("1G", 1073741824), (4096, 4096)]
)
def test_max_body_sizes(text: object, size: int) -> None:
    spec = parse_spec({**MINIMAL, "proxy": {**MINIMAL["proxy"], "max_body": text}})
    assert spec.proxy.max_body_bytes == size


@pytest.mark.parametrize("text", ["lots", "0", "-1m", "1.5g"])
def test_bad_max_body_says_what_a_size_looks_like(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec({**MINIMAL, "proxy": {**MINIMAL["proxy"], "max_body": text}})
    assert "proxy.max_body: must be a size like 512k, 100m or 1g" in caught.value.details


def test_http_request_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec({**MINIMAL, "proxy": {**MINIMAL["proxy"], "timeouts": {"http_request": 0}}})
    assert "proxy.timeouts.http_request: must be greater than 0" in caught.value.details


def test_the_init_templates_commented_proxy_settings_are_valid_once_uncommented() -> None:
    text = render_template("shop", "127.0.0.1:5000/shop")
    for key in ("retries:", "methods:", "timeouts:", "http_request:", "max_body:"):
        text = text.replace(f"  # {key}", f"  {key}").replace(f"  #   {key}", f"    {key}")
    proxy = parse_spec(yaml.safe_load(text)).proxy
    assert proxy.retries.methods == ["GET", "HEAD", "OPTIONS"]
    assert proxy.timeouts.http_request == 10 and proxy.max_body_bytes == 100 * 1024 * 1024


def test_a_plain_build_secret_name_means_the_store_entry_mounted_with_that_id() -> None:
    spec = parse_spec(
        {**MINIMAL, "build": {"secrets": ["NPM_TOKEN", {"id": "sentry", "env": "SENTRY_AUTH_TOKEN"}]}}
    )

    plain, mapped = spec.build.secrets
    assert (plain.id, plain.secret, plain.env, plain.file) == ("NPM_TOKEN", "NPM_TOKEN", None, None)
    assert (mapped.id, mapped.env) == ("sentry", "SENTRY_AUTH_TOKEN")
    # Stored and shown in the long form, which every reader understands.
    assert spec_snapshot(spec)["build"]["secrets"][0] == {
        "id": "NPM_TOKEN",
        "env": None,
        "file": None,
        "secret": "NPM_TOKEN",
    }


def test_a_plain_build_secret_that_is_not_a_name_is_refused_without_echoing_it() -> None:
    pasted = "npm_4f9c2b7e-1d0a token"
    with pytest.raises(ConfigError) as caught:
        parse_spec({**MINIMAL, "build": {"secrets": [pasted]}})

    message = str(caught.value)
    assert "build.secrets" in message and "NPM_TOKEN" in message
    assert pasted not in message
