"""The Engine API client for the reads a rollback needs: which engines it serves, how errors read."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.adapters.docker import DockerEngine, EngineApi
from shipyard.errors import DockerError, NotFoundError


def test_unix_and_plain_tcp_engines_are_read_directly_others_by_the_sdk() -> None:
    assert EngineApi.for_url("unix:///var/run/docker.sock", 5) is not None
    assert EngineApi.for_url("unix://var/run/docker.sock", 5) is not None
    assert EngineApi.for_url("tcp://127.0.0.1:2375", 5) is not None
    assert EngineApi.for_url("ssh://user@host", 5) is None
    assert EngineApi.for_url("https://127.0.0.1:2376", 5) is None
    assert EngineApi.for_url("unix://", 5) is None


def _serve(path: Path, answers: list[bytes]) -> threading.Thread:
    """A one-answer-per-connection HTTP server on a unix socket, answering `answers` in order."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)

    def run() -> None:
        with server:
            for answer in answers:
                connection, _ = server.accept()
                with connection:
                    connection.recv(65536)
                    connection.sendall(answer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _http(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "engine.sock"


def test_error_answers_become_one_clear_error(engine_socket: Path) -> None:
    _serve(
        engine_socket,
        [
            _http("200 OK", b"OK", "text/plain; charset=utf-8"),  # the ping
            _http("404 Not Found", b'{"message":"No such container: web"}'),
            _http("500 Internal Server Error", b'{"message":"driver failed"}'),
            _http("200 OK", b"{not json"),
        ],
    )
    engine = DockerEngine(f"unix://{engine_socket}")

    with pytest.raises(NotFoundError, match=r"^inspecting container web failed: No such container: web$"):
        engine.status("web")
    with pytest.raises(DockerError, match=r"^listing containers of web failed: driver failed$"):
        engine.containers("web")
    with pytest.raises(DockerError, match=r"does not answer .*broken JSON"):
        engine.present_digests("registry:5000/web")
    assert engine._client is None
