"""Traffic through swaps with the recording app: nothing handled twice, streams drained, bodies whole."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from shipyard.domain.spec import load_spec
from shipyard.host import service
from shipyard.host.context import HostContext
from shipyard.lab.edge import EdgeProxy
from shipyard.lab.load import LoadGenerator
from shipyard.lab.ports import free_port
from shipyard.lab.recording_app import PaymentClients, read_records, record_volume
from shipyard.lab.single_host import AppHome, PushedImages, unique_name

pytestmark = pytest.mark.integration


def deploy_recording_app(home: AppHome, images: PushedImages, records: Path, **overrides: object) -> None:
    home.write_config(images, volumes=[record_volume(records)], **overrides)
    home.run("deploy", images.ref("rec-v1"))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_request_the_app_dropped_unanswered_is_not_replayed(
    app_home: AppHome, images: PushedImages, tmp_path: Path, method: str
) -> None:
    records = tmp_path / "records"
    deploy_recording_app(app_home, images, records)
    answer = httpx.request(method, f"{app_home.listen_url}/pay?close=1&id={method}-1", timeout=10)
    assert answer.status_code == 502  # the client sees the failure...
    assert read_records(records).received[f"{method}-1"] == 1  # ...and the app saw the request once


def test_idempotent_requests_are_still_replayed_and_put_only_when_listed(
    app_home: AppHome, images: PushedImages, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    deploy_recording_app(
        app_home,
        images,
        records,
        proxy={"retries": {"attempts": 2, "methods": ["GET", "HEAD", "OPTIONS", "PUT"]}},
    )
    for method in ("GET", "PUT", "POST"):
        httpx.request(method, f"{app_home.listen_url}/?close=1&id={method}-2", timeout=10)
    received = read_records(records).received
    assert received["GET-2"] == 3 and received["PUT-2"] == 3  # the first attempt and two retries
    assert received["POST-2"] == 1


def deploy_in_process(home: AppHome, image: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    """The deploy the CLI runs, without starting a Python per deploy (20 swaps in one test)."""
    environment = home.env()
    for name in ("SHIPYARD_HOME", "DOCKER_HOST", "SHIPYARD_TEST_REG_USER", "SHIPYARD_TEST_REG_PASS"):
        monkeypatch.setenv(name, environment[name])
    context = HostContext(home=home.home)
    try:
        return not service.deploy(context, load_spec(home.config), image).plan.empty
    finally:
        context.close()


def _pay_once(url: str) -> str:
    try:
        return f"HTTP {httpx.post(url, content=b'{}', timeout=90).status_code}"
    except httpx.HTTPError as exc:
        return type(exc).__name__


def _wait_until_received(records: Path, request_id: str) -> None:
    deadline = time.monotonic() + 30
    while read_records(records).received[request_id] == 0:
        assert time.monotonic() < deadline, f"{request_id} never reached the app"
        time.sleep(0.05)


def test_payments_through_20_swaps_are_handled_at_most_once_and_cut_ones_fail_visibly(
    app_home: AppHome, images: PushedImages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = tmp_path / "records"
    # A drain shorter than the slow payments: at a swap some are still in flight when the old
    # container gets SIGTERM, and stop_timeout later SIGKILL cuts them. One payment per swap is sure
    # to be: it takes 55 s (a slow swap on a loaded machine still cuts it, and haproxy's 60 s server
    # timeout does not) and reaches the old slot before the deploy starts.
    deploy_recording_app(app_home, images, records, deploy={"drain_timeout": 0.5, "stop_timeout": 1})
    swaps, doomed = 0, {}
    with (
        LoadGenerator(app_home.listen_url + "/version", clients=1) as reads,
        PaymentClients(app_home.listen_url, clients=3, prefix="fast", pause=0.01) as fast,
        PaymentClients(app_home.listen_url, clients=3, delay=2.0, prefix="slow") as slow,
        ThreadPoolExecutor(4) as pool,
    ):
        for swap in range(20):
            request_id = f"doomed-{swap}"
            doomed[request_id] = pool.submit(_pay_once, f"{app_home.listen_url}/pay?id={request_id}&delay=55")
            _wait_until_received(records, request_id)
            tag = "rec-v2" if swap % 2 == 0 else "rec-v1"
            swaps += deploy_in_process(app_home, images.ref(tag), monkeypatch)
        doomed_outcomes = {request_id: outcome.result() for request_id, outcome in doomed.items()}
    assert swaps == 20
    seen = read_records(records)
    assert seen.duplicates() == {}  # no payment handled twice, whatever happened to its connection
    for outcomes in (fast.outcomes, slow.outcomes):
        assert outcomes.sent > 0
        for request_id in outcomes.succeeded:  # every payment the client saw succeed happened once
            assert seen.received[request_id] == 1 and seen.answered[request_id] == 1, request_id
    # A payment cut by a stopped container reached its client as an error, never replayed elsewhere.
    assert doomed_outcomes == dict.fromkeys(doomed, "HTTP 502")
    cut = [request_id for request_id in [*slow.outcomes.failed, *doomed] if seen.received[request_id] == 1]
    assert len(cut) >= len(doomed)
    assert all(seen.answered[request_id] == 0 for request_id in cut)
    # Requests no drain deadline overtook never fail.
    assert fast.outcomes.failed == {}
    stats = reads.stop()
    assert stats.failed == 0, stats.failures


async def _wait_for_version(url: str, version: str) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        while (await client.get(f"{url}/version")).text.strip() != f"recording app version {version}":
            await asyncio.sleep(0.05)


def test_websockets_and_event_streams_stay_up_through_the_drain_then_close_cleanly(
    app_home: AppHome, images: PushedImages, tmp_path: Path
) -> None:
    drain = 4.0
    deploy_recording_app(
        app_home, images, tmp_path / "records", deploy={"drain_timeout": drain, "stop_timeout": 5}
    )
    base = app_home.listen_url
    ws_base = base.replace("http://", "ws://")

    async def scenario() -> dict[str, object]:
        async with (
            connect(f"{ws_base}/ws?id=old-ws") as old_socket,
            httpx.AsyncClient(timeout=httpx.Timeout(30)) as client,
        ):
            assert old_socket.response.headers["X-App-Version"] == "v1"

            async def stream(query: str) -> list[str]:
                lines = []
                async with client.stream("GET", f"{base}/events?{query}") as response:
                    assert response.headers["X-App-Version"] == "v1"
                    async for line in response.aiter_lines():  # raises if the stream is cut
                        lines.append(line)
                return lines

            endless = asyncio.ensure_future(stream("interval=0.2&id=old-sse"))
            short = asyncio.ensure_future(stream("interval=0.2&count=8&id=short-sse"))
            await asyncio.sleep(0.5)
            started = time.monotonic()
            deploy = asyncio.ensure_future(asyncio.to_thread(app_home.run, "deploy", images.ref("rec-v2")))
            await _wait_for_version(base, "v2")
            async with connect(f"{ws_base}/ws?id=new-ws") as new_socket:  # new ones go to the new slot
                new_version = new_socket.response.headers["X-App-Version"]
                await new_socket.send("to the new slot")
                assert await new_socket.recv() == "to the new slot"
            echoes = 0
            try:  # the old websocket keeps working through the drain until the app closes it
                while True:
                    await old_socket.send(f"ping {echoes}")
                    assert await old_socket.recv() == f"ping {echoes}"
                    echoes += 1
                    await asyncio.sleep(0.1)
            except ConnectionClosed:
                pass
            closed_after = time.monotonic() - started
            return {
                "new_version": new_version,
                "echoes": echoes,
                "closed_after": closed_after,
                "close": (old_socket.close_code, old_socket.close_reason),
                "closed_ok": isinstance(old_socket.protocol.close_exc, ConnectionClosedOK),
                "endless": await endless,
                "short": await short,
                "deploy": await deploy,
            }

    seen = asyncio.run(scenario())
    assert seen["new_version"] == "v2"
    assert seen["echoes"] > 0
    # Open until the drain deadline (the deploy started the new slot first, so later still), then a
    # normal close: 1001 from the app on SIGTERM, answered by the client, no reset.
    assert seen["closed_after"] >= drain  # type: ignore[operator]
    assert seen["close"] == (1001, "server going away") and seen["closed_ok"]
    endless, short = seen["endless"], seen["short"]
    assert isinstance(endless, list) and isinstance(short, list)
    assert endless[-3:] == ["event: end", "data: shutdown", ""]  # ended by the app, the stream complete
    assert short[-3:] == ["event: end", "data: complete", ""] and short.count("event: tick") == 8
    deploy = seen["deploy"]
    assert isinstance(deploy, subprocess.CompletedProcess)
    assert "1 streamed response, 1 websocket still open when the container was stopped" in deploy.stdout


def _body(
    size: int, pace: float, piece: int, sending: threading.Semaphore, switched: threading.Event
) -> tuple[Iterator[bytes], str]:
    """A body of `size` pseudo-random bytes in pieces `pace` seconds apart, and its sha256.

    Releases `sending` once its request head is out (the proxy has chosen the slot); its second half
    waits for `switched`: the upload is in flight on the old slot across the switch.
    """
    seed = hashlib.sha256(str(size).encode()).digest()
    block = seed * (piece // len(seed))
    sizes = [min(piece, size - offset) for offset in range(0, size, piece)]
    digest = hashlib.sha256()
    for length in sizes:
        digest.update(block[:length])

    def pieces() -> Iterator[bytes]:
        for number, length in enumerate(sizes):
            if number == len(sizes) // 2:
                switched.wait(60)
            if number:
                time.sleep(pace)
            yield block[:length]
            if not number:
                sending.release()

    return pieces(), digest.hexdigest()


def test_a_100_mb_upload_and_a_slow_upload_across_a_swap_arrive_whole(
    app_home: AppHome, images: PushedImages, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    deploy_recording_app(app_home, images, records, deploy={"drain_timeout": 30, "stop_timeout": 5})
    url = app_home.listen_url
    sending, switched = threading.Semaphore(0), threading.Event()
    large_size, slow_size = 100 * 1024 * 1024, 40 * 1024
    large_body, large_digest = _body(large_size, 0.02, 1 << 20, sending, switched)
    slow_body, slow_digest = _body(slow_size, 0.1, 1024, sending, switched)  # 10 KB/s, chunked

    def upload(request_id: str, body: Iterator[bytes], headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{url}/upload?id={request_id}", content=body, headers=headers, timeout=60)

    def watch_for_the_switch() -> None:
        asyncio.run(_wait_for_version(url, "v2"))
        switched.set()

    with ThreadPoolExecutor(3) as pool:
        large = pool.submit(upload, "large", large_body, {"Content-Length": str(large_size)})
        slow = pool.submit(upload, "slow", slow_body, {})
        pool.submit(watch_for_the_switch)
        for _upload in (large, slow):
            assert sending.acquire(timeout=30)
        deploy = app_home.run("deploy", images.ref("rec-v2"))
        large_answer, slow_answer = large.result().json(), slow.result().json()
    assert (large_answer["length"], large_answer["sha256"]) == (large_size, large_digest)
    assert (slow_answer["length"], slow_answer["sha256"]) == (slow_size, slow_digest)
    # Both finished on the old slot, which the drain waited for; each was handled once.
    assert large_answer["version"] == slow_answer["version"] == "v1"
    assert "still open" not in deploy.stdout
    assert read_records(records).received == {"large": 1, "slow": 1}


def test_body_limit_and_request_head_timeout_are_enforced_by_the_proxy(
    app_home: AppHome, images: PushedImages, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    deploy_recording_app(app_home, images, records, proxy={"max_body": "1m", "timeouts": {"http_request": 1}})
    url = app_home.listen_url
    too_large = httpx.post(f"{url}/upload?id=too-large", content=b"x" * (1024 * 1024 + 1), timeout=10)
    assert too_large.status_code == 413
    fits = httpx.post(f"{url}/upload?id=fits", content=b"x" * (1024 * 1024), timeout=10)
    assert fits.status_code == 200 and fits.json()["length"] == 1024 * 1024
    unknown_length = httpx.post(f"{url}/upload?id=chunked", content=iter([b"x" * 10]), timeout=10)
    assert unknown_length.status_code == 411
    assert read_records(records).received == {"fits": 1}  # refused bodies never reached the app
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as slow_head:
        slow_head.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
        answer = slow_head.recv(200)
    assert answer.startswith(b"HTTP/1.1 408")


def test_the_lab_edge_does_not_replay_a_post_a_host_dropped(
    docker_url: str, images: PushedImages, tmp_path: Path
) -> None:
    records, app_port = tmp_path / "records", free_port()
    client = docker.DockerClient(base_url=docker_url)
    container = client.containers.run(
        images.ref("rec-v1"),
        detach=True,
        name=unique_name("edge-rec-"),
        network_mode="host",
        environment={"HOST": "127.0.0.1", "PORT": str(app_port)},
        volumes=[record_volume(records)],
    )
    edge = EdgeProxy(tmp_path / "edge", free_port())
    try:
        edge.start()
        edge.add_host("h1", f"127.0.0.1:{app_port}", inter_ms=100)
        deadline = time.monotonic() + 30
        while edge.servers().get("h1") != "up":
            assert time.monotonic() < deadline, edge.servers()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{edge.port}"
        assert httpx.post(f"{url}/pay?close=1&id=edge-post", timeout=10).status_code == 502
        httpx.get(f"{url}/?close=1&id=edge-get", timeout=10)
        received = read_records(records).received
        assert received["edge-post"] == 1
        assert received["edge-get"] == 4  # an idempotent request is still retried (3 retries)
    finally:
        edge.stop()
        container.remove(force=True)
        client.close()


def test_an_upload_the_drain_deadline_overtakes_fails_cleanly(
    app_home: AppHome, images: PushedImages, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    deploy_recording_app(app_home, images, records, deploy={"drain_timeout": 1, "stop_timeout": 1})
    url = app_home.listen_url
    sending, deployed = threading.Semaphore(0), threading.Event()
    size = 100 * 1024 * 1024
    body, _digest = _body(size, 0.0, 1 << 20, sending, deployed)  # its second half waits for the stop

    def upload() -> str:
        try:
            answer = httpx.post(
                f"{url}/upload?id=overtaken", content=body, headers={"Content-Length": str(size)}, timeout=60
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return f"HTTP {answer.status_code}"

    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(upload)
        assert sending.acquire(timeout=30)
        deploy = app_home.run("deploy", images.ref("rec-v2"))
        deployed.set()
        result = outcome.result()
    # A 502 from the proxy or a cut connection: an error, never a success for half a body.
    assert result == "HTTP 502" or not result.startswith("HTTP"), result
    assert "1 request still open when the container was stopped" in deploy.stdout
    assert read_records(records).received["overtaken"] == 0  # the app never took a partial body as whole
