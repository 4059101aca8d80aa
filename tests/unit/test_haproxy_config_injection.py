"""No value of shipyard.yml can add a line, a word or a comment to haproxy's config.

Every string of a spec that sets every key is given a newline in turn: the spec is refused, or the
newline lands where it is legitimate (a variable's value, a command argument) and the rendered config
is byte for byte the one without it. The renderer itself refuses such values even when validation
is bypassed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.adapters.haproxy_config import ProxiedApp, ProxyPaths, render_config
from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.errors import ConfigError
from shipyard.host.proxy_sync import proxied_app
from shipyard.host.store import AppRecord
from shipyard.lab.fleet import lab_up

EVERY_KEY: dict[str, Any] = {
    "app": "web",
    "previews": {
        "group": "preview",
        "domain": "preview.example.test",
        "environment": "preview",
        "ttl": "72h",
        "max": 3,
        "when_full": "refuse",
        "resources": {"memory": "256m", "cpus": 0.5},
        "database": {"postgres": {"template": "web_template", "admin_url_secret": "PREVIEW_DB_ADMIN"}},
    },
    "preview": {"repository": "acme/web", "pr": 12, "host_name": "pr-12.web.preview.example.test"},
    "image": "127.0.0.1:5000/web",
    "registry": {
        "server": "127.0.0.1:5000",
        "username_env": "REGISTRY_USER",
        "username_file": "/run/registry-user",
        "password_env": "REGISTRY_PASSWORD",
        "password_file": "/run/registry-password",
        "insecure": True,
    },
    "port": 3000,
    "network": "bridge",
    "bind": "127.0.0.1",
    "proxy": {
        "listen": "127.0.0.1:8080",
        "maintenance_page": "public/503.html",
        "retries": {"attempts": 2, "methods": ["GET", "PUT"], "response_timeout": False},
        "timeouts": {"http_request": 5},
        "max_body": "100m",
    },
    "healthcheck": {"path": "/up", "interval": 0.5, "timeout": 1, "healthy_threshold": 2, "deadline": 20},
    "env": {"clear": {"RAILS_ENV": "production"}, "secret": ["DATABASE_URL"]},
    "deploy": {"drain_timeout": 5, "stop_timeout": 5, "keep_releases": 3, "standby": 0},
    "hooks": {
        "pre-deploy": ["bin/migrate"],
        "post-swap": "bin/warm",
        "post-deploy": ["bin/notify"],
        "timeout": 60,
    },
    "volumes": ["/srv/uploads:/app/uploads:ro"],
    "labels": {"com.example.team": "web"},
    "resources": {"memory": "512m", "cpus": 1.5},
    "command": ["bin/server", "--port", "3000"],
    "release": ["bin/rails", "db:migrate"],
    "build": {
        "context": ".",
        "dockerfile": "Dockerfile",
        "target": "prod",
        "args": {"NODE_ENV": "production"},
        "secrets": [
            {"id": "npm", "env": "NPM_TOKEN"},
            {"id": "gem", "file": "keys/gem"},
            {"id": "s", "secret": "S"},
        ],
        "docker": "/usr/bin/docker",
        "cache": True,
        "scan": True,
    },
    "secrets": {
        "provider": "local",
        "key_file": "keys/master.key",
        "kms_key_id": "alias/web",
        "kms_endpoint": "http://127.0.0.1:4566",
        "region": "eu-west-1",
    },
    "controller": "http://127.0.0.1:9000",
    "repository": "file:///srv/git/web.git",
    "pipelines": [{"branch": "release", "environment": "production"}],
    "rollout": {"max_parallel": "50%", "max_failed": 1, "monitor": 5, "auto_rollback": True},
}
# Where a newline is a legitimate part of the value: passed to the container or a process as is.
NEWLINE_ALLOWED = {
    "env.clear.RAILS_ENV",
    "hooks.pre-deploy.0",
    "hooks.post-swap",
    "hooks.post-deploy.0",
    "command.0",
    "command.1",
    "command.2",
    "release.0",
    "release.1",
    "build.args.NODE_ENV",
}


def variants(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(key path, the document with one string or mapping key of it holding a newline), for every one."""
    if isinstance(node, str):
        for broken in (node + "\n", node[:1] + "\nfrontend evil" + node[1:]):
            yield path, broken
    elif isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            for inner, broken in variants(value, where):
                yield inner, {**node, key: broken}
            if path in ("env.clear", "labels", "build.args"):
                yield f"{where} (key)", {**{k: v for k, v in node.items() if k != key}, key + "\n": value}
    elif isinstance(node, list):
        for index, value in enumerate(node):
            for inner, broken in variants(value, f"{path}.{index}"):
                yield inner, [*node[:index], broken, *node[index + 1 :]]


def rendered(document: dict[str, Any], root: Path) -> str:
    spec = parse_spec(document)
    record = AppRecord(spec.app, "blue", "r1", False, spec, "")
    paths = ProxyPaths(root)
    return render_config([proxied_app(record, paths.page(spec.app))], paths)


def test_every_key_is_covered() -> None:
    dumped = spec_snapshot(parse_spec(EVERY_KEY))
    assert set(dumped) == set(EVERY_KEY)
    for section, value in dumped.items():
        if isinstance(value, dict) and section != "labels":
            assert set(value) == set(EVERY_KEY[section]), section


def test_no_spec_string_with_a_newline_reaches_the_haproxy_config(tmp_path: Path) -> None:
    baseline = rendered(EVERY_KEY, tmp_path)
    allowed, refused = set(), set()
    cases = list(variants(EVERY_KEY))
    assert len(cases) > 60
    for key, document in cases:
        try:
            text = rendered(document, tmp_path)
        except ConfigError as exc:
            assert "\n" not in exc.message
            refused.add(key)
            continue
        assert text == baseline, f"a newline in {key} changed haproxy's config"
        allowed.add(key)
    assert allowed == NEWLINE_ALLOWED
    for key in ("app", "proxy.listen", "healthcheck.path", "bind", "image", "labels.com.example.team (key)"):
        assert key in refused


def app(**overrides: Any) -> ProxiedApp:
    values: dict[str, Any] = {
        "name": "web",
        "listen": "127.0.0.1:8080",
        "upstream_host": "127.0.0.1",
        "slot_ports": {"blue": 3000, "green": 3001},
        "health_path": "/up",
        "active_slot": "blue",
    }
    return ProxiedApp(**{**values, **overrides})


@pytest.mark.parametrize("field", ["name", "listen", "upstream_host", "health_path"])
@pytest.mark.parametrize(
    "injected",
    [
        "\n    http-request return file /etc/shadow",
        "\r",
        "\0",
        " x",
        "\t",
        "#",
        "'",
        '"',
        "\u2028",
        "\x85",
        "}",
    ],
)
def test_the_renderer_refuses_a_value_that_would_start_a_new_line_or_word(
    tmp_path: Path, field: str, injected: str
) -> None:
    value = getattr(app(), field) + injected
    with pytest.raises(ConfigError, match="refusing to write haproxy's config"):
        render_config([app(**{field: value})], ProxyPaths(tmp_path))


def test_the_renderer_refuses_a_maintenance_page_or_state_path_with_a_newline(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="maintenance page"):
        render_config([app(maintenance_page=tmp_path / "page\nfrontend x")], ProxyPaths(tmp_path))
    with pytest.raises(ConfigError, match="admin socket"):
        render_config([app()], ProxyPaths(tmp_path / "home\nglobal"))


def test_the_renderer_refuses_a_port_or_slot_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="port 70000"):
        render_config([app(slot_ports={"blue": 70000, "green": 3001})], ProxyPaths(tmp_path))
    with pytest.raises(ConfigError, match="not a slot"):
        render_config([app(active_slot="blue\n")], ProxyPaths(tmp_path))


def test_valid_values_render_as_before(tmp_path: Path) -> None:
    text = render_config([app(health_path="/health?full=1", listen=":::8080")], ProxyPaths(tmp_path))
    assert "    bind :::8080\n" in text
    assert "    option httpchk GET /health?full=1\n" in text


@pytest.mark.parametrize(
    "command",
    ["show info\nshutdown frontend front_web", "show info;disable server app_web/blue", "show\0info"],
)
def test_the_runtime_api_refuses_a_command_that_would_smuggle_another(tmp_path: Path, command: str) -> None:
    runtime = HaproxyRuntime(tmp_path / "admin.sock")  # nothing listens: refused before connecting
    with pytest.raises(ConfigError, match="refusing to send"):
        runtime.execute(command)


def test_the_lab_refuses_a_subnet_that_would_reach_the_edge_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--subnet"):
        lab_up(tmp_path / "lab", 1, subnet="127.0.1\nfrontend evil")
    assert not (tmp_path / "lab").exists()
