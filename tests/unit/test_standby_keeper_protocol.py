"""The standby keeper's protocol: requests, validation, when it declines and when the command falls back."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from shipyard.cli import keeper_client
from shipyard.cli.keeper_client import app_name, connect, exchange, plain_output, request_for, try_keeper
from shipyard.cli.standby_keeper import (
    BadRequest,
    Keeper,
    RollbackRequest,
    decline_reason,
    parse_request,
)


def a_request(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    config = tmp_path / "shipyard.yml"
    request = request_for(
        app="web",
        config=config,
        config_text=b"app: web\n",
        release=None,
        dry_run=False,
        wait=True,
        as_json=False,
        policy_file=None,
    )
    request.update(changes)
    return request


def encoded(document: object) -> bytes:
    return json.dumps(document).encode()


def test_a_request_made_by_the_command_is_read_back_by_the_keeper(tmp_path: Path) -> None:
    request = a_request(tmp_path, release="r3", policy="policy.yml")
    parsed = parse_request(encoded(request))
    assert parsed.app == "web" and parsed.release == "r3" and parsed.wait and not parsed.dry_run
    assert parsed.config == tmp_path / "shipyard.yml"
    assert parsed.policy == Path("policy.yml")  # as given: the keeper works in the command's cwd
    assert parsed.cwd == Path(os.getcwd())
    assert parsed.config_sha256 == hashlib.sha256(b"app: web\n").hexdigest()  # as hashlib makes it


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"x" * (keeper_client.MAX_REQUEST_BYTES + 1), "too large"),
        (b"{not json", "not JSON"),
        (b"[1]", "not an object"),
    ],
)
def test_malformed_requests_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_request(raw)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"command": "deploy"}, "unknown protocol or command"),
        ({"protocol": 99}, "unknown protocol or command"),
        ({"app": ""}, "app must be"),
        ({"app": 3}, "app must be"),
        ({"dry_run": "yes"}, "dry_run must be true or false"),
        ({"config": "shipyard.yml"}, "config must be an absolute path"),
        ({"cwd": None}, "cwd must be"),
        ({"policy": ""}, "policy must be a non-empty string"),
        ({"actor": "a\0b"}, "actor must be"),
    ],
)
def test_requests_are_validated_field_by_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_request(encoded(a_request(tmp_path, **changes)))


def test_the_keeper_declines_what_it_would_not_do_exactly_as_the_command(tmp_path: Path) -> None:
    request = parse_request(encoded(a_request(tmp_path, docker_host="unix:///d.sock")))
    same = {"app": "web", "config_sha256": request.config_sha256, "docker_host": "unix:///d.sock"}
    assert decline_reason(request, **same) is None
    assert decline_reason(request, **{**same, "app": "api"}) == "this keeper serves api, not web"
    assert decline_reason(request, **{**same, "config_sha256": "0" * 64}) == (
        "the configuration differs from the command's"
    )
    assert decline_reason(request, **{**same, "config_sha256": None}) is not None
    assert decline_reason(request, **{**same, "docker_host": None}) == "another DOCKER_HOST"


@pytest.mark.parametrize(
    ("text", "app"),
    [
        ("app: web\nimage: x\n", "web"),
        ("image: x\napp: 'web-1'  # the app\n", "web-1"),
        ('app: "a.b_c"\n', "a.b_c"),
        ("  app: nested\n", None),
        ("app: {weird: 1}\n", None),
        ("image: x\n", None),
    ],
)
def test_the_socket_is_picked_by_a_plain_app_name(text: str, app: str | None) -> None:
    assert app_name(text) == app


class Tty:
    def isatty(self) -> bool:
        return True


class Pipe:
    def isatty(self) -> bool:
        return False


def test_the_actor_is_the_one_the_host_layer_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.host.context import default_actor

    monkeypatch.delenv("SHIPYARD_ACTOR", raising=False)
    assert keeper_client.actor() == default_actor()
    monkeypatch.setenv("LOGNAME", "someone")
    assert keeper_client.actor() == default_actor()
    monkeypatch.setenv("SHIPYARD_ACTOR", "ci@runner")
    assert keeper_client.actor() == default_actor() == "ci@runner"


def test_styled_output_is_left_to_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    assert plain_output((Pipe(), Pipe()))  # type: ignore[arg-type]
    assert not plain_output((Pipe(), Tty()))  # type: ignore[arg-type]
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not plain_output((Pipe(), Pipe()))  # type: ignore[arg-type]
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert plain_output((Tty(), Tty()))  # type: ignore[arg-type]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "home" / "run"
    directory.mkdir(parents=True, mode=0o700)
    return directory


def serve_once(listener: socket.socket, answer: Callable[[socket.socket, bytes], None]) -> threading.Thread:
    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            answer(conn, conn.makefile("rb").readline())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def listener(run_dir: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(run_dir / "web.sock"))
    sock.listen(1)
    yield sock
    sock.close()


def relay(sock: Any, request: dict[str, Any]) -> tuple[int | None, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    return exchange(sock, request, out.append, err.append), out, err


def test_lines_are_relayed_then_the_exit_code(run_dir: Path, listener: socket.socket, tmp_path: Path) -> None:
    def answer(conn: socket.socket, line: bytes) -> None:
        assert json.loads(line)["app"] == "web"
        for message in ({"out": "→ switch\n"}, {"err": "careful\n"}, {"out": "rolled back\n"}, {"exit": 3}):
            conn.sendall(encoded(message) + b"\n")

    thread = serve_once(listener, answer)
    sock = connect(run_dir, "web.sock")
    assert sock is not None
    with closing(sock):
        assert relay(sock, a_request(tmp_path)) == (3, ["→ switch\n", "rolled back\n"], ["careful\n"])
    thread.join(5)


def test_a_decline_or_a_keeper_gone_before_any_output_means_fall_back(
    run_dir: Path, listener: socket.socket, tmp_path: Path
) -> None:
    for answer in (
        lambda conn, line: conn.sendall(b'{"decline": "another DOCKER_HOST"}\n'),
        lambda conn, line: None,  # closed without a word
        lambda conn, line: conn.sendall(b"garbage\n"),
    ):
        thread = serve_once(listener, answer)
        sock = connect(run_dir, "web.sock")
        assert sock is not None
        with closing(sock):
            assert relay(sock, a_request(tmp_path)) == (None, [], [])
        thread.join(5)


def test_a_keeper_gone_after_output_is_an_error_not_a_second_rollback(
    run_dir: Path, listener: socket.socket, tmp_path: Path
) -> None:
    thread = serve_once(listener, lambda conn, line: conn.sendall(b'{"out": "-> switch\\n"}\n'))
    sock = connect(run_dir, "web.sock")
    assert sock is not None
    with closing(sock):
        code, out, err = relay(sock, a_request(tmp_path))
    assert (code, out) == (1, ["-> switch\n"])
    assert err == ["error: the standby keeper stopped before the rollback finished; see 'shipyard status'.\n"]
    thread.join(5)


def test_no_socket_a_stale_socket_or_an_open_directory_means_no_keeper(run_dir: Path) -> None:
    assert connect(run_dir, "web.sock") is None  # none
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(run_dir / "web.sock"))
    stale.close()  # the file stays, nobody listens
    assert connect(run_dir, "web.sock") is None
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    (run_dir / "web.sock").unlink()
    listening.bind(str(run_dir / "web.sock"))
    listening.listen(1)
    try:
        run_dir.chmod(0o755)  # others could reach or replace it: not trusted
        assert connect(run_dir, "web.sock") is None
        run_dir.chmod(0o700)
        reached = connect(run_dir, "web.sock")
        assert reached is not None
        reached.close()
    finally:
        listening.close()


def test_a_long_socket_path_is_reached_through_the_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "run"
    deep.mkdir(parents=True, mode=0o700)
    keeper = Keeper("web", deep.parent)
    assert keeper.listen()
    try:
        assert len(str(deep / "web.sock")) > 108
        assert oct((deep / "web.sock").stat().st_mode & 0o777) == "0o600"
        reached = connect(deep, "web.sock")
        assert reached is not None
        reached.close()
    finally:
        keeper.stop_serving()
    assert not (deep / "web.sock").exists()


def test_the_newest_keeper_takes_the_socket_over(tmp_path: Path) -> None:
    older, newer = Keeper("web", tmp_path), Keeper("web", tmp_path)
    assert older.listen()
    assert older.owns_socket()
    assert newer.listen()
    assert newer.owns_socket() and not older.owns_socket()
    assert oct((tmp_path / "run").stat().st_mode & 0o777) == "0o700"
    older.stop_serving()  # leaves the newer one's socket alone
    assert (tmp_path / "run" / "web.sock").exists()
    newer.stop_serving()
    assert not (tmp_path / "run" / "web.sock").exists()


def test_try_keeper_falls_back_without_a_keeper_or_when_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    config = tmp_path / "shipyard.yml"
    arguments: dict[str, Any] = {
        "config": config,
        "release": None,
        "dry_run": False,
        "wait": False,
        "as_json": False,
        "policy_file": None,
    }
    assert try_keeper(**arguments) is None  # no shipyard.yml: the command reports it
    config.write_text("app: web\n")
    assert try_keeper(**arguments) is None  # no keeper
    keeper = Keeper("web", tmp_path / "home")
    assert keeper.listen()
    try:
        monkeypatch.setenv("SHIPYARD_KEEPER", "0")
        assert try_keeper(**arguments) is None  # disabled: not even asked
    finally:
        keeper.stop_serving()


def test_a_served_request_is_the_rollback_of_the_keepers_app_only(tmp_path: Path) -> None:
    request = RollbackRequest(
        app="api",
        release=None,
        dry_run=True,
        wait=False,
        as_json=False,
        config=tmp_path / "shipyard.yml",
        config_sha256="0" * 64,
        policy=None,
        actor="me",
        cwd=tmp_path,
        docker_host=None,
    )
    assert decline_reason(request, app="web", config_sha256="0" * 64, docker_host=None) == (
        "this keeper serves web, not api"
    )
