"""Notifications, pure: backoff, redaction, the shown URL and the bodies posted."""

from __future__ import annotations

import pytest

from shipyard.controller.engine import notify
from shipyard.errors import ConfigError
from shipyard.secrets.masking import forget_registered_secrets, register_secret


def test_backoff_doubles_up_to_a_ceiling() -> None:
    assert [notify.backoff(n, 2.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert notify.backoff(30, 2.0) == notify.MAX_BACKOFF_S


def test_texts_are_redacted_before_they_are_queued() -> None:
    register_secret("hunter2-database-password")
    try:
        payload = notify.event_payload(
            "job.failed",
            {
                "message": "fetch failed: https://bob:s3cret@git.example.com/web.git; "
                "password hunter2-database-password; token sya_abcdefghijklmnop",
                "job_id": 4,
            },
        )
    finally:
        forget_registered_secrets()
    text = payload["message"]
    assert "s3cret" not in text and "hunter2-database-password" not in text and "abcdefghijklmnop" not in text
    assert "https://***@git.example.com" in text and payload["job_id"] == 4


def test_a_target_url_is_shown_without_its_token_path() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"
    assert notify.shown_url(url) == "https://hooks.slack.com/…"
    assert notify.shown_url("http://127.0.0.1:8123/x?token=1") == "http://127.0.0.1:8123/…"
    with pytest.raises(ConfigError, match="http"):
        notify.check_url("ftp://example.com/x")


def test_slack_bodies_are_a_text_and_json_bodies_the_payload() -> None:
    payload = notify.event_payload(
        "deployment.rolled_back",
        {
            "app": "web",
            "environment": "production",
            "deployment_id": 9,
            "sha": "d" * 40,
            "message": "h2 unhealthy",
        },
    )
    slack = notify.body_for("slack", payload)
    assert list(slack) == ["text"]
    assert "deployment 9 web -> production (dddddddddddd): rolled back" in slack["text"]
    assert "h2 unhealthy" in slack["text"]
    assert notify.body_for("json", payload) == payload and payload["event"] == "deployment.rolled_back"
