"""The pure parts of the adapters: image references and haproxy config rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard.adapters.haproxy import OpenStreams, _admin_state, parse_open_streams
from shipyard.adapters.haproxy_config import ProxiedApp, ProxyPaths, render_config
from shipyard.adapters.registry import parse_image
from shipyard.errors import ConfigError
from shipyard.lab.edge import render_edge_config

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


def _web(**options: Any) -> ProxiedApp:
    """App web on 127.0.0.1:8080, blue live on port 3000 and green on 3001, with `options`."""
    return ProxiedApp(
        "web", "127.0.0.1:8080", "127.0.0.1", {"blue": 3000, "green": 3001}, "/up", "blue", **options
    )


def _backend_lines(text: str, backend: str) -> list[str]:
    section = text.split(f"backend {backend}\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in section.splitlines()]


def test_only_idempotent_methods_are_replayed_and_never_after_a_response_timeout(tmp_path: Path) -> None:
    app = _web()
    text = render_config([app], ProxyPaths(tmp_path))
    assert "response-timeout" not in text
    assert "retry-on conn-failure\n" in text  # the defaults: only a request that reached no server
    backend = _backend_lines(text, "app_web")
    assert "retries 3" in backend
    assert "retry-on conn-failure empty-response" in backend
    assert "http-request disable-l7-retry unless { method GET HEAD OPTIONS }" in backend


def test_an_app_may_list_put_and_opt_into_response_timeout_retries(tmp_path: Path) -> None:
    app = _web(retry_attempts=2, replay_methods=("GET", "HEAD", "PUT"), replay_on_response_timeout=True)
    backend = _backend_lines(render_config([app], ProxyPaths(tmp_path)), "app_web")
    assert "retries 2" in backend
    assert "retry-on conn-failure empty-response response-timeout" in backend
    assert "http-request disable-l7-retry unless { method GET HEAD PUT }" in backend


def test_no_replayable_method_retries_connection_failures_only_and_zero_attempts_none(tmp_path: Path) -> None:
    only_connections = _web(replay_methods=())
    backend = _backend_lines(render_config([only_connections], ProxyPaths(tmp_path)), "app_web")
    assert "retry-on conn-failure" in backend and not any("disable-l7-retry" in line for line in backend)
    never = _web(retry_attempts=0)
    backend = _backend_lines(render_config([never], ProxyPaths(tmp_path)), "app_web")
    assert "retries 0" in backend and "retry-on none" in backend


def test_request_timeout_and_body_limit_are_rendered_in_the_frontend(tmp_path: Path) -> None:
    app = _web(http_request_timeout=2.5, max_body_bytes=1048576)
    text = render_config([app], ProxyPaths(tmp_path))
    frontend = text.split("frontend front_web\n", 1)[1].split("\n\n", 1)[0]
    assert "timeout http-request 2500ms" in frontend
    assert "http-request deny deny_status 413 if { req.hdr_val(content-length) gt 1048576 }" in frontend
    assert "http-request return status 411" in frontend
    unlimited = _web()
    assert "deny_status 413" not in render_config([unlimited], ProxyPaths(tmp_path))


def test_the_lab_edge_replays_only_idempotent_methods(tmp_path: Path) -> None:
    text = render_edge_config(8000, tmp_path)
    assert "response-timeout" not in text
    assert "retry-on conn-failure empty-response" in text
    assert "http-request disable-l7-retry unless { method GET HEAD OPTIONS }" in text


# `show sess all` of haproxy 2.6 with a websocket, a request waiting for its answer and a server-sent
# event stream on app_web/blue, one request on green and the CLI's own stream (trimmed to the lines read).
SHOW_SESS = """\
0x55fffc932800: [29/Nov/2026:16:36:05.424040] id=0 proto=tcpv4 source=127.0.0.1:34152
  frontend=front_web (id=2 mode=http), listener=? (id=1) addr=127.0.0.1:18740
  backend=app_web (id=3 mode=http) addr=127.0.0.1:33494
  server=blue (id=1) addr=127.0.0.1:18731
  txn=0x55fffca4ca30 flags=0x8000 meth=1 status=101 req.st=MSG_TUNNEL rsp.st=MSG_TUNNEL req.f=0xcc rsp.f=0xcc
0x55fffca4d630: [29/Nov/2026:16:36:05.579836] id=2 proto=tcpv4 source=127.0.0.1:34180
  frontend=front_web (id=2 mode=http), listener=? (id=1) addr=127.0.0.1:18740
  backend=app_web (id=3 mode=http) addr=127.0.0.1:33516
  server=blue (id=1) addr=127.0.0.1:18731
  txn=0x55fffca4db90 flags=0x3000 meth=1 status=-1 req.st=MSG_DONE rsp.st=MSG_RPBEFORE req.f=0x4c rsp.f=0x00
0x55fffca4d700: [29/Nov/2026:16:36:05.600000] id=4 proto=tcpv4 source=127.0.0.1:34190
  frontend=front_web (id=2 mode=http), listener=? (id=1) addr=127.0.0.1:18740
  backend=app_web (id=3 mode=http) addr=127.0.0.1:33520
  server=green (id=2) addr=127.0.0.1:18732
  txn=0x55fffca4db99 flags=0x3000 meth=3 status=-1 req.st=MSG_DATA rsp.st=MSG_RPBEFORE req.f=0x4c rsp.f=0x00
0x55fffca4e570: [29/Nov/2026:16:36:06.510590] id=3 proto=unix_stream source=unix:1
  frontend=GLOBAL (id=0 mode=tcp), listener=? (id=1) addr=unix:1
  backend=<NONE> (id=-1 mode=-)
  server=<NONE> (id=-1)
0x7f000c041fd0: [29/Nov/2026:16:36:05.570187] id=1 proto=tcpv4 source=127.0.0.1:34166
  frontend=front_web (id=2 mode=http), listener=? (id=1) addr=127.0.0.1:18740
  backend=app_web (id=3 mode=http) addr=127.0.0.1:33500
  server=blue (id=1) addr=127.0.0.1:18731
  txn=0x7f000c0425a0 flags=0x3000 meth=1 status=200 req.st=MSG_DONE rsp.st=MSG_DATA req.f=0x4c rsp.f=0x0e
"""


def test_open_streams_are_counted_per_server_by_kind() -> None:
    blue = parse_open_streams(SHOW_SESS, "app_web", "blue")
    assert blue == OpenStreams(requests=1, responses=1, tunnels=1)
    assert blue.describe() == "1 request, 1 streamed response, 1 websocket"
    assert parse_open_streams(SHOW_SESS, "app_web", "green") == OpenStreams(requests=1)
    assert parse_open_streams(SHOW_SESS, "app_api", "blue").total == 0
    assert OpenStreams(requests=2, tunnels=3).describe() == "2 requests, 3 websockets"
