"""Traffic through swaps with the recording app: nothing handled twice, streams drained, bodies whole."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shipyard.lab.fixtures import AppHome, TestImages
from shipyard.lab.recording_app import read_records, record_volume

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
