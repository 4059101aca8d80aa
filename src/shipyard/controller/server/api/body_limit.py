"""Request bodies bounded before anything parses them: 413 past the controller's max_body setting.

A declared Content-Length over the limit is refused before a byte of the body is read; a chunked body
(or one longer than it declared) is counted as it streams in and refused as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.controller.server.api.errors import answer_for
from shipyard.controller.server.settings import body_limit_for


class RequestBodyTooLarge(HTTPException):
    """An HTTPException, so the framework's body parsing passes it on unchanged (other errors become 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than {limit} bytes; send a smaller body "
            "(the limit is the controller's --max-body setting).",
        )


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestBodyLimit:
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self._app, self._max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = body_limit_for(scope["path"], self._max_body)
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestBodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, limited_receive, tracked_send)
        except RequestBodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = await answer_for(Request(scope), RequestBodyTooLarge(limit))
        # The rest of the body is never read: the connection closes after the answer.
        response.headers["connection"] = "close"
        await response(scope, receive, send)
