"""The host's operation log: one JSON line per step, secrets masked, appended to shipyard.log.

Written with the standard library rather than structlog: every host command writes it, and loading
structlog (which loads rich's tracebacks and pygments) costs more than a warm-standby rollback does.
The lines are those structlog's JSONRenderer wrote: the bound context, the fields, then `event`,
`level`, `timestamp` (ISO 8601, UTC), and `exception` when `exc_info` is given.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from shipyard.secrets.masking import mask_processor

_files: dict[Path, TextIO] = {}


class HostLog:
    """A logger bound to some context (app, history id, actor)."""

    def __init__(self, stream: TextIO, context: dict[str, Any]) -> None:
        self._stream = stream
        self._context = context

    def bind(self, **context: Any) -> HostLog:
        return HostLog(self._stream, {**self._context, **context})

    def debug(self, event: str, **fields: Any) -> None:
        self._write("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._write("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._write("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._write("error", event, fields)

    def _write(self, level: str, event: str, fields: dict[str, Any]) -> None:
        exc_info = fields.pop("exc_info", None)
        line: dict[str, Any] = {**self._context, **fields, "event": event, "level": level}
        line["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        exception = _exception_text(exc_info)
        if exception:
            line["exception"] = exception
        mask_processor(None, level, line)
        self._stream.write(json.dumps(line, default=repr) + "\n")


def _exception_text(exc_info: Any) -> str | None:
    if not exc_info:
        return None
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if exc_info[0] is None:
        return None
    return "".join(traceback.format_exception(*exc_info)).rstrip("\n")


def host_logger(path: Path, **context: Any) -> HostLog:
    stream = _files.get(path)
    if stream is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = _files[path] = path.open("a", buffering=1)
    return HostLog(stream, context)
