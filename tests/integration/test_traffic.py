"""Traffic through swaps with the recording app: nothing handled twice, streams drained, bodies whole."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from shipyard.lab.fixtures import AppHome, TestImages
from shipyard.lab.load import LoadGenerator
from shipyard.lab.recording_app import PaymentClients, read_records, record_volume

pytestmark = pytest.mark.integration


def deploy_recording_app(home: AppHome, images: TestImages, records: Path, **overrides: object) -> None:
    home.write_config(images, volumes=[record_volume(records)], **overrides)
    home.run("deploy", images.ref("rec-v1"))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_request_the_app_dropped_unanswered_is_not_replayed(
    app_home: AppHome, images: TestImages, tmp_path: Path, method: str
) -> None:
    records = tmp_path / "records"
    deploy_recording_app(app_home, images, records)
    answer = httpx.request(method, f"{app_home.listen_url}/pay?close=1&id={method}-1", timeout=10)
    assert answer.status_code == 502  # the client sees the failure...
    assert read_records(records).received[f"{method}-1"] == 1  # ...and the app saw the request once


def test_idempotent_requests_are_still_replayed_and_put_only_when_listed(
    app_home: AppHome, images: TestImages, tmp_path: Path
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


def test_payments_through_20_swaps_are_handled_at_most_once_and_cut_ones_fail_visibly(
    app_home: AppHome, images: TestImages, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    # A drain shorter than the slow payments: at each swap some are still in flight when the old
    # container gets SIGTERM, and stop_timeout later SIGKILL cuts them.
    deploy_recording_app(app_home, images, records, deploy={"drain_timeout": 0.5, "stop_timeout": 1})
    swaps = 0
    with (
        LoadGenerator(app_home.listen_url + "/version", clients=2) as reads,
        PaymentClients(app_home.listen_url, clients=3, prefix="fast") as fast,
        PaymentClients(app_home.listen_url, clients=3, delay=2.0, prefix="slow") as slow,
    ):
        for swap in range(20):
            tag = "rec-v2" if swap % 2 == 0 else "rec-v1"
            swaps += json.loads(app_home.run("deploy", images.ref(tag), "--json").stdout)["changed"]
    assert swaps == 20
    seen = read_records(records)
    assert seen.duplicates() == {}  # no payment handled twice, whatever happened to its connection
    for outcomes in (fast.outcomes, slow.outcomes):
        assert outcomes.sent > 0
        for request_id in outcomes.succeeded:  # every payment the client saw succeed happened once
            assert seen.received[request_id] == 1 and seen.answered[request_id] == 1, request_id
    # A payment cut by a stopped container reached its client as an error, never replayed elsewhere.
    cut = [request_id for request_id in slow.outcomes.failed if seen.received[request_id] == 1]
    assert cut, slow.outcomes.failed
    assert all(seen.answered[request_id] == 0 for request_id in cut)
    # Requests no drain deadline overtook never fail.
    assert fast.outcomes.failed == {}
    stats = reads.stop()
    assert stats.failed == 0, stats.failures
