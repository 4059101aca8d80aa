"""Structured logs of host operations: JSON lines with secret values masked, in the host's log file.

A logger of its own (not structlog's global configuration), so a process that also logs elsewhere,
like the agent, keeps its own output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import structlog

from shipyard.secrets.masking import mask_processor

_files: dict[Path, TextIO] = {}


def host_logger(path: Path, **context: Any) -> Any:
    stream = _files.get(path)
    if stream is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = _files[path] = path.open("a", buffering=1)
    return structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_processor,
            structlog.processors.JSONRenderer(),
        ],
    ).bind(**context)
