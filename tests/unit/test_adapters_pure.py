"""The pure parts of the adapters: image references and haproxy config rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.adapters.haproxy import _admin_state
from shipyard.adapters.haproxy_config import ProxiedApp, ProxyPaths, render_config
from shipyard.adapters.registry import parse_image
from shipyard.errors import ConfigError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("127.0.0.1:5000/web:v1", "127.0.0.1:5000", "web", "v1", None),
        ("registry.example/team/web", "registry.example", "team/web", "latest", None),
        (f"localhost/web@{DIGEST}", "localhost", "web", None, DIGEST),
        ("web:2", None, "web", "2", None),
    ],
)
def test_image_references(
    text: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_image(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize("text", ["", "Web:1", "web@sha256:abc", "web:!bad", "two words"])
def test_bad_image_references_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_image(text)


def test_config_has_one_frontend_and_backend_per_app_and_the_idle_slot_disabled(tmp_path: Path) -> None:
    paths = ProxyPaths(tmp_path)
    apps = [
        ProxiedApp("web", "127.0.0.1:8080", "127.0.0.1", {"blue": 3000, "green": 3001}, "/up", "green"),
        ProxiedApp(
            "api",
            "127.0.0.1:8081",
            "127.0.0.1",
            {"blue": 4000, "green": 4001},
            "/health",
            "blue",
            maintenance=True,
        ),
    ]
    text = render_config(apps, paths)
    assert "master-worker" in text
    assert f"stats socket {paths.admin_socket} mode 600 level admin expose-fd listeners" in text
    assert f"server-state-file {paths.state_file}" in text
    assert "frontend front_web\n    bind 127.0.0.1:8080" in text
    assert "server blue 127.0.0.1:3000 check inter 1000 fall 3 rise 2 disabled" in text
    assert "server green 127.0.0.1:3001 check inter 1000 fall 3 rise 2\n" in text
    # An app in maintenance has both slots disabled: haproxy answers the maintenance page.
    assert "server blue 127.0.0.1:4000 check inter 1000 fall 3 rise 2 disabled" in text
    assert "server green 127.0.0.1:4001 check inter 1000 fall 3 rise 2 disabled" in text
    assert 'string "ok" if { path /health }' in text
    assert "option idle-close-on-response" in text
    assert text.count("http-request return status 503") == 1


@pytest.mark.parametrize(
    ("bits", "state"), [(0, "ready"), (4, "ready"), (5, "maint"), (8, "drain"), (1, "maint")]
)
def test_server_admin_state_bits(bits: int, state: str) -> None:
    assert _admin_state(bits) == state
