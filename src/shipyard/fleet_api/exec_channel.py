"""One WebSocket of an exec session (`shipyard exec --env`), for the CLI and for the agent.

Binary frames carry bytes (stdin one way; output the other, its first byte 1 for stdout, 2 for
stderr), text frames small JSON control messages. The socket authenticates like every API call
(Authorization: Bearer) and verifies the controller's certificate with the same context as httpx.
Every failure of the library becomes a ControllerError sentence here.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from shipyard.errors import ControllerError

STDOUT, STDERR = 1, 2
MAX_FRAME = 1 << 20


class ExecChannel:
    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    def send_bytes(self, data: bytes) -> None:
        self._send(data)

    def send_control(self, message: dict[str, Any]) -> None:
        self._send(json.dumps(message))

    def _send(self, frame: str | bytes) -> None:
        try:
            self._connection.send(frame)
        except ConnectionClosed as exc:
            raise ControllerError("the exec session's connection closed.") from exc

    def receive(self, timeout: float | None = None) -> bytes | dict[str, Any] | None:
        """The next frame: bytes, a control message, or None once the connection closed.
        TimeoutError when nothing came within `timeout` seconds."""
        try:
            frame = self._connection.recv(timeout=timeout)
        except ConnectionClosed:
            return None
        if isinstance(frame, bytes):
            return frame
        try:
            message = json.loads(frame)
        except ValueError:
            return {"type": "unknown"}
        return message if isinstance(message, dict) else {"type": "unknown"}

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ExecChannel:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def websocket_url(base: str, path: str) -> str:
    """ws(s)://... for an http(s):// controller URL."""
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + path
    return "ws://" + base.removeprefix("http://") + path


def open_channel(
    base: str, path: str, token: str | None, verify: ssl.SSLContext | None, timeout: float = 10.0
) -> ExecChannel:
    url = websocket_url(base.rstrip("/"), path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        connection = connect(
            url,
            ssl=verify if url.startswith("wss://") else None,
            additional_headers=headers,
            open_timeout=timeout,
            max_size=MAX_FRAME,
            compression=None,  # terminal bytes are small; no deflate state per session
        )
    except (InvalidHandshake, InvalidURI) as exc:
        raise ControllerError(
            f"the controller at {base} refused the exec connection ({type(exc).__name__}); "
            "is it a shipyard controller that serves WebSockets?"
        ) from exc
    except ssl.SSLError as exc:
        raise ControllerError(
            f"the controller at {base} failed the TLS handshake ({exc.reason}); check --ca-file."
        ) from exc
    except (OSError, TimeoutError) as exc:
        raise ControllerError(f"cannot reach the controller at {base} ({type(exc).__name__}).") from exc
    return ExecChannel(connection)
