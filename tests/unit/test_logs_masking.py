"""The process log: credentials masked in the final text, tracebacks plain (no local variables)."""

from __future__ import annotations

import io
import logging
import queue
from collections.abc import Iterator

import pytest
import structlog

from shipyard.controller.store.tokens import AGENT_PREFIX, API_PREFIX, JOIN_PREFIX, new_token
from shipyard.logs import DeferredQueueHandler, capture_exc_info, console_formatter
from shipyard.secrets.masking import forget_registered_secrets, mask_credentials, register_secret


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    forget_registered_secrets()
    yield
    forget_registered_secrets()


@pytest.mark.parametrize("prefix", [API_PREFIX, AGENT_PREFIX, JOIN_PREFIX])
def test_every_kind_of_token_is_masked_wherever_it_appears(prefix: str) -> None:
    for _ in range(50):  # token_urlsafe's alphabet includes - and _: every shape is masked whole
        token = new_token(prefix)
        masked = mask_credentials(f"GET /x?token={token} failed: {token!r}; ({token})")
        assert token[len(prefix) :] not in masked
        assert masked.count(prefix + "***") == 3


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer opaque.value",
        "authorization=Bearer opaque.value",
        "(b'authorization', b'Bearer opaque.value')",
        '{"Authorization": "Basic opaque.value"}',
        "('authorization', 'opaque.value')",
        "retry with bearer   opaque.value.of.some.length",
    ],
)
def test_authorization_values_are_masked_whatever_their_shape(text: str) -> None:
    masked = mask_credentials(text)
    assert "opaque" not in masked
    assert "***" in masked


def test_ordinary_text_and_error_sentences_are_unchanged() -> None:
    for text in [
        "this endpoint needs 'Authorization: Bearer <token>'.",
        "deployment 3 of web to production succeeded",
        "xsya_not-a-token since it is part of a word",
        "basic authentication is off; a bearer token is needed",
    ]:
        assert mask_credentials(text) == text


def test_a_registered_value_without_a_token_shape_is_masked_too() -> None:
    register_secret("operator-chosen-admin-secret")
    assert mask_credentials("token operator-chosen-admin-secret refused") == "token *** refused"


def _raise_with_token_in_locals_and_message(token: str) -> None:
    scope = {"headers": [(b"authorization", f"Bearer {token}".encode())]}
    raise RuntimeError(f"cannot handle {scope['headers'][0][1]!r}")


def _logger(stream: io.StringIO, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(console_formatter())
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    return logger


def test_a_structlog_traceback_shows_no_locals_and_no_token() -> None:
    stream, token = io.StringIO(), new_token(API_PREFIX)
    log = structlog.wrap_logger(
        _logger(stream, "shipyard.test.structlog"),
        processors=[capture_exc_info, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    try:
        _raise_with_token_in_locals_and_message(token)
    except RuntimeError:
        log.exception("unexpected error", reference="ref123", header=f"Bearer {token}")
    output = stream.getvalue()
    assert "Traceback (most recent call last)" in output
    assert "RuntimeError: cannot handle" in output
    assert "reference=ref123" in output
    assert token[len(API_PREFIX) :] not in output
    assert "scope = " not in output and "│" not in output, "local variables are never printed"


def test_a_standard_library_record_with_a_traceback_is_masked() -> None:
    stream, token = io.StringIO(), new_token(JOIN_PREFIX)
    logger = _logger(stream, "shipyard.test.stdlib")
    try:
        _raise_with_token_in_locals_and_message(token)
    except RuntimeError as exc:
        logger.error("Exception in ASGI application", exc_info=exc)
    logger.info('%s - "%s %s HTTP/1.1" %d', "127.0.0.1:5000", "GET", f"/x?t={token}", 200)
    output = stream.getvalue()
    assert "Exception in ASGI application" in output and "GET /x?t=syj_***" in output
    assert token[len(JOIN_PREFIX) :] not in output


def test_a_stream_that_does_not_keep_up_loses_records_not_memory_and_says_so() -> None:
    records: queue.Queue[logging.LogRecord] = queue.Queue(2)
    handler = DeferredQueueHandler(records)
    for number in range(5):
        handler.handle(logging.makeLogRecord({"msg": f"record {number}"}))
    assert [records.get_nowait().getMessage() for _ in range(2)] == ["record 0", "record 1"]
    handler.handle(logging.makeLogRecord({"msg": "record 5"}))
    queued = [records.get_nowait() for _ in range(2)]
    assert queued[0].getMessage() == "3 log records dropped: the log stream did not keep up"
    assert queued[0].levelname == "WARNING"
    assert queued[1].getMessage() == "record 5"
