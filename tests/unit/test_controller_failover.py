"""Several controller URLs: which one a client uses, when it moves on, and what it says when all fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.errors import ConfigError, ControllerError
from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.endpoints import Endpoints, Failure, controller_urls, fails_over
from shipyard.lab.ports import free_port

A, B, C = "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"


def test_urls_come_from_a_list_commas_or_both_in_order_without_repeats() -> None:
    assert controller_urls(f"{A}, {B}/,{A}") == (A, B)
    assert controller_urls([A, f"{B},{C}"]) == (A, B, C)


@pytest.mark.parametrize("urls", ["", " , ", []])
def test_no_url_at_all_is_one_sentence(urls: str | list[str]) -> None:
    with pytest.raises(ConfigError, match="no controller URL given"):
        controller_urls(urls)


def test_every_url_goes_through_the_url_policy() -> None:
    with pytest.raises(ConfigError, match="refusing plain http"):
        controller_urls(f"{A},http://10.0.0.1:8700")


def test_too_many_urls_are_refused() -> None:
    with pytest.raises(ConfigError, match="too many"):
        controller_urls([f"http://127.0.0.1:{port}" for port in range(1000, 1017)])


def test_attempts_start_at_the_url_that_answered_last_and_wrap_around() -> None:
    endpoints = Endpoints((A, B, C))
    assert endpoints.attempts() == [0, 1, 2]
    endpoints.answered(2)
    assert endpoints.attempts() == [2, 0, 1]
    assert Endpoints((A,)).attempts() == [0]


@pytest.mark.parametrize(
    ("method", "failure", "repeatable", "expected"),
    [
        ("POST", Failure(reached=False), False, True),  # never connected: nothing happened there
        ("POST", Failure(True, 503), False, True),
        ("POST", Failure(True, 502), False, True),
        ("POST", Failure(True, 500), False, False),  # it may have been done: not again elsewhere
        ("POST", Failure(True, None), False, False),
        ("POST", Failure(True, None), True, True),  # an agent's report is safe to repeat
        ("GET", Failure(True, None), False, True),  # a long-poll whose replica died
        ("GET", Failure(True, 504), False, True),
        ("DELETE", Failure(True, 500), False, True),
        ("GET", Failure(True, 404), False, False),  # an answer, not an outage
        ("GET", Failure(True, 401), False, False),
        ("POST", Failure(True, 409), True, False),
    ],
)
def test_which_failures_move_on(method: str, failure: Failure, repeatable: bool, expected: bool) -> None:
    assert fails_over(method, failure, repeatable=repeatable) is expected


class _Fixed(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        body = json.dumps({"status": "ok"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def _serve(status: int) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    handler = type("Handler", (_Fixed,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def healthy() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    yield from _serve(200)


@pytest.fixture
def unavailable() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    yield from _serve(503)


def test_a_client_skips_a_refused_url_and_sticks_to_the_one_that_answered(
    healthy: tuple[str, ThreadingHTTPServer],
) -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    url, server = healthy
    with ControllerClient([refused, url], timeout=2.0) as client:
        client.healthz()
        assert client.url == url
        client.healthz()
    assert server.hits == 2  # type: ignore[attr-defined]


def test_a_503_moves_on_and_when_every_url_fails_the_last_failure_is_told(
    healthy: tuple[str, ThreadingHTTPServer], unavailable: tuple[str, ThreadingHTTPServer]
) -> None:
    with ControllerClient(f"{unavailable[0]},{healthy[0]}", timeout=2.0) as client:
        client.healthz()
        assert client.url == healthy[0]
    refused = f"http://127.0.0.1:{free_port()}"
    with ControllerClient([unavailable[0], refused], timeout=2.0) as client:
        with pytest.raises(ControllerError, match=f"cannot reach the controller at {refused}"):
            client.healthz()
        assert client.url == unavailable[0]  # nothing answered: it starts where it did


def test_the_agent_takes_repeated_or_comma_separated_controllers(tmp_path: object) -> None:
    refused = "http://10.0.0.1:8700"
    result = CliRunner().invoke(
        app, ["agent", "--controller", "http://127.0.0.1:1", "--controller", refused, "--home", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "refusing plain http:// to the controller at 10.0.0.1" in result.output
    assert "Traceback" not in result.output
