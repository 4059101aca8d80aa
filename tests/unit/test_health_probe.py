"""The health probe against a real local HTTP server: 200 is healthy, anything else says why."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from shipyard.host.health import probe


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/up?deep=1" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_200_is_healthy_and_the_query_is_sent(server: str) -> None:
    assert probe(f"{server}/up?deep=1", 5.0) == (True, "200 OK")


def test_another_status_is_named(server: str) -> None:
    assert probe(f"{server}/down", 5.0) == (False, "answered 503")


def test_nobody_listening_is_no_answer() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    healthy, reason = probe(f"http://127.0.0.1:{port}/up", 2.0)
    assert not healthy and reason.startswith("no answer (")
