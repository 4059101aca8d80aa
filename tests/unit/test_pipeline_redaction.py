"""Job logs are redacted before storage: raw, base64 and URL-encoded secrets, and URL credentials."""

from __future__ import annotations

import base64
from urllib.parse import quote

from shipyard.controller.server.settings import body_limit_for
from shipyard.secrets.masking import forget_registered_secrets, register_secret
from shipyard.secrets.redaction import Redactor

SECRET = "s3cr3t/value+with=chars"


def test_every_form_of_a_value_is_redacted() -> None:
    redact = Redactor([SECRET])
    for form in (
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        quote(SECRET, safe=""),
    ):
        assert redact(f"token={form}!") == "token=***!"


def test_credentials_in_urls_are_redacted() -> None:
    redact = Redactor()
    line = "fatal: could not read from https://deploy:ghp_abcdef@github.com/acme/web.git"
    assert redact(line) == "fatal: could not read from https://***@github.com/acme/web.git"
    assert redact("git@github.com:acme/web.git") == "git@github.com:acme/web.git"


def test_values_registered_later_are_redacted_too() -> None:
    forget_registered_secrets()
    redact = Redactor()
    assert redact("password hunter2-long") == "password hunter2-long"
    register_secret("hunter2-long")
    try:
        encoded = base64.b64encode(b"hunter2-long").decode()
        assert redact(f"password hunter2-long {encoded}") == "password *** ***"
    finally:
        forget_registered_secrets()


def test_webhooks_get_their_own_body_limit() -> None:
    assert body_limit_for("/hooks/github/web", 1024) == 25 * 1024 * 1024
    assert body_limit_for("/api/v1/releases", 1024) == 1024
