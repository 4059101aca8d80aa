"""Masking: every registered value disappears from text and from structlog events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from shipyard.secrets.masking import forget_registered_secrets, mask, mask_processor, register_secret


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    forget_registered_secrets()
    yield
    forget_registered_secrets()


def test_every_occurrence_of_a_registered_value_is_masked() -> None:
    register_secret("hunter2-password")

    assert mask("pw=hunter2-password; again hunter2-password.") == "pw=***; again ***."


def test_text_without_secrets_is_unchanged() -> None:
    assert mask("nothing registered yet") == "nothing registered yet"
    register_secret("s3cr3t-value")
    assert mask("deploying web to production") == "deploying web to production"


def test_values_shorter_than_four_characters_are_not_masked() -> None:
    register_secret("abc")
    register_secret("abcd")

    assert mask("abc abcd") == "abc ***"


def test_a_value_containing_another_is_masked_whole() -> None:
    register_secret("token")
    register_secret("token-with-suffix")

    assert mask("x token-with-suffix y token z") == "x *** y *** z"


def test_regex_characters_in_values_are_taken_literally() -> None:
    register_secret("a.b*c+(d)")

    assert mask("a.b*c+(d) axbbbcd") == "*** axbbbcd"


def test_each_line_of_a_multi_line_value_is_masked() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    register_secret(pem)

    assert mask(pem) == "***"
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in mask(repr(pem))


def test_the_structlog_processor_masks_nested_strings() -> None:
    register_secret("postgres://app:pw@db/app")
    event: dict[str, Any] = {
        "event": "starting postgres://app:pw@db/app",
        "env": {"DATABASE_URL": "postgres://app:pw@db/app"},
        "argv": ["run", "-e", "DATABASE_URL=postgres://app:pw@db/app"],
        "attempt": 3,
    }

    masked = mask_processor(None, "info", event)

    assert masked == {
        "event": "starting ***",
        "env": {"DATABASE_URL": "***"},
        "argv": ["run", "-e", "DATABASE_URL=***"],
        "attempt": 3,
    }


def test_the_processor_works_in_a_real_structlog_chain() -> None:
    register_secret("api-key-0123456789")
    logger = structlog.wrap_logger(
        structlog.ReturnLogger(), processors=[mask_processor, structlog.processors.KeyValueRenderer()]
    )

    rendered = logger.info("calling api", header="Bearer api-key-0123456789")

    assert rendered == "header='Bearer ***' event='calling api'"
