"""The lighttpd test image: its build context from this machine's lighttpd, the image on the real Docker
Engine, and the same server run natively."""

from __future__ import annotations

import http.client
import io
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from shipyard.lab.ports import free_port
from shipyard.lab.server_image import (
    IMAGE_BINARY,
    IMAGE_CONFIG,
    build_server_context,
    build_server_image,
    lighttpd_path,
    pages,
    shared_libraries,
    write_native_root,
)
from shipyard.lab.single_host import unique_name


def _wait_up(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/up")
            if connection.getresponse().read() == b"ok\n":
                return
        except OSError:
            if time.monotonic() > end:
                raise
        time.sleep(0.05)


def _assert_serves_pages_on_one_connection(port: int, version: str) -> None:
    """Several requests on one connection: the server keeps it alive and answers each."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    expected = pages(version)
    sockets = set()
    for path, name in [("/", "index.html"), ("/up", "up"), ("/version", "version"), ("/", "index.html")]:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == expected[name]
        assert response.getheader("Connection", "").lower() != "close"
        assert connection.sock is not None
        sockets.add(connection.sock.fileno())
    assert len(sockets) == 1
    connection.close()


@pytest.fixture
def client(docker_url: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=docker_url)
    yield client
    client.close()


def test_image_serves_with_keep_alive_and_stops_on_sigterm(client: docker.DockerClient) -> None:
    tag = f"{unique_name('shipyard-test-lighttpd-')}:v5"
    build_server_image(client, tag, "v5")
    port = free_port()
    container = client.containers.run(
        tag,
        detach=True,
        network_mode="host",
        environment={"HOST": "127.0.0.1", "PORT": str(port)},
        name=unique_name("lighttpd-"),
    )
    try:
        _wait_up(port)
        _assert_serves_pages_on_one_connection(port, "v5")
        # lighttpd is PID 1 here: exit code 0 means it ended on SIGTERM itself (a kill after the
        # timeout would give 137).
        container.stop(timeout=10)
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0
    finally:
        container.remove(force=True)
        client.images.remove(tag)


def test_the_same_server_runs_natively(tmp_path: Path) -> None:
    argv = write_native_root(tmp_path, "v6")
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
    process = subprocess.Popen(argv, env=env, start_new_session=True, stderr=subprocess.PIPE)
    try:
        _wait_up(port)
        _assert_serves_pages_on_one_connection(port, "v6")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def test_context_holds_lighttpd_its_libraries_the_config_and_the_pages() -> None:
    with tarfile.open(fileobj=io.BytesIO(build_server_context("v7"))) as tar:
        names = set(tar.getnames())
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
        index = tar.extractfile("rootfs/www/index.html").read()  # type: ignore[union-attr]
    assert dockerfile.startswith("FROM scratch\n")
    assert f"rootfs{IMAGE_BINARY}" in names
    assert f"rootfs{IMAGE_CONFIG}" in names
    for library in shared_libraries(lighttpd_path()):
        assert f"rootfs{library}" in names
    assert {"rootfs/www/up", "rootfs/www/version"} <= names
    assert index == pages("v7")["index.html"]
    assert b"version v7" in index
