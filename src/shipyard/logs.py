"""Logs: the process-wide console log of the controller and the agent (the host's operation log,
`host_logger`, lives in shipyard.host.oplog and is re-exported here).

host_logger writes JSON lines to the host's log file with a logger of its own (not structlog's global
configuration), so a process that also logs elsewhere, like the agent, keeps its own output.

configure_process_logging routes structlog and the standard library's loggers (uvicorn's included)
through one handler: plain tracebacks without local variables (a request's scope holds its
Authorization header), credentials masked in the final text, and formatting and writing done by a
thread of their own, so a traceback never holds up the event loop.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from shipyard.host.oplog import host_logger
from shipyard.secrets.masking import mask_credentials, mask_processor

__all__ = ["configure_process_logging", "console_formatter", "host_logger", "stop_process_logging"]
_listener: logging.handlers.QueueListener | None = None
# What configure_process_logging replaced, put back by stop_process_logging: a command run in-process
# (a test, an embedding program) leaves logging as it found it.
_replaced: tuple[list[logging.Handler], int, dict[str, Any]] | None = None
MAX_QUEUED_RECORDS = 10_000


def capture_exc_info(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Turns ``exc_info=True`` into the exception itself while still in the thread that caught it."""
    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        event_dict["exc_info"] = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        event_dict["exc_info"] = (type(exc_info), exc_info, exc_info.__traceback__)
    return event_dict


class MaskingFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders a record, then masks credentials in the final text, tracebacks and messages included."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_credentials(super().format(record))


class DeferredQueueHandler(logging.handlers.QueueHandler):
    """Queues records unformatted: the listener's thread renders them, not the thread that logged.

    The queue is bounded: when the stream does not keep up (a full pipe), records are dropped and
    counted, and the next one that fits says how many were lost, rather than memory growing.
    """

    def __init__(self, records: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            if self.dropped:
                notice = logging.makeLogRecord(
                    {"name": "shipyard.logs", "levelno": logging.WARNING, "levelname": "WARNING"}
                )
                notice.msg = f"{self.dropped} log records dropped: the log stream did not keep up"
                self.queue.put_nowait(notice)
                self.dropped = 0
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


def console_formatter() -> logging.Formatter:
    shared: list[Any] = [
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    return MaskingFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            mask_processor,
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
        ],
    )


def configure_process_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every log line of this process, masked, to `stream` (stderr); once per process."""
    global _listener, _replaced
    if _listener is not None:
        return
    root = logging.getLogger()
    _replaced = (list(root.handlers), root.level, structlog.get_config())
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(console_formatter())
    records: queue.Queue[logging.LogRecord] = queue.Queue(MAX_QUEUED_RECORDS)
    _listener = logging.handlers.QueueListener(records, handler, respect_handler_level=False)
    _listener.start()
    atexit.register(stop_process_logging)
    root.handlers = [DeferredQueueHandler(records)]
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin, each start
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            capture_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def stop_process_logging() -> None:
    """Write every queued line (at exit, or before the process hands its stream to something else)."""
    global _listener, _replaced
    if _listener is not None:
        _listener.stop()
        _listener = None
    if _replaced is not None:
        handlers, level, config = _replaced
        _replaced = None
        root = logging.getLogger()
        root.handlers, root.level = handlers, level
        structlog.configure(**config)
