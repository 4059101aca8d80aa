"""The webhook reads its raw body bounded, whatever Content-Length says."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from shipyard.controller.server.api.webhooks import BodyTooLarge, read_limited


def _request(content_length: bytes, chunks: list[bytes]) -> Request:
    headers = [(b"content-length", content_length)]
    scope = {"type": "http", "method": "POST", "path": "/hooks/github/web", "headers": headers}
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    messages.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> Message:
        return messages.pop(0)

    return Request(scope, receive)


def test_a_non_ascii_digit_as_content_length_is_counted_not_parsed() -> None:
    # "²" is a digit to str.isdigit() but not to int(): it once made a 500.
    body = asyncio.run(read_limited(_request("²".encode("latin-1"), [b"{}"]), limit=10))
    assert body == b"{}"


def test_a_body_past_the_limit_is_refused_whatever_it_declared() -> None:
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_limited(_request(b"2", [b"{", b" " * 20, b"}"]), limit=10))
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_limited(_request(b"11", [b"{}"]), limit=10))
