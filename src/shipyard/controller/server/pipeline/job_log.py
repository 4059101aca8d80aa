"""A running job's log: every line redacted, then stored in small batches so followers see it live."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from shipyard.controller.store import job_store
from shipyard.controller.store.db import Database
from shipyard.secrets.redaction import Redactor

FLUSH_EVERY_S = 0.5
FLUSH_LINES = 200


class JobLog:
    def __init__(self, db: Database, job_id: int, clock: Callable[[], datetime], redactor: Redactor) -> None:
        self._db, self._job_id, self._clock, self.redact = db, job_id, clock, redactor
        self._pending: list[tuple[str, str, datetime]] = []
        self._flushed_at = time.monotonic()
        self._lock = threading.Lock()
        self.step = ""

    def line(self, text: str) -> None:
        """One line of the current step; redacted here, before it is stored anywhere."""
        for part in text.rstrip("\n").splitlines() or [""]:
            with self._lock:
                self._pending.append((self.step, self.redact(part), self._clock()))
        if len(self._pending) >= FLUSH_LINES or time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._flushed_at = time.monotonic()
        if pending:
            with self._db.transaction() as session:
                job_store.append_log(session, self._job_id, pending)


class LogProgress:
    """The build pipeline's progress callbacks, written into the job log."""

    def __init__(self, log: JobLog) -> None:
        self._log = log

    def phase(self, text: str) -> None:
        self._log.line(f"==> {text}")

    def log_line(self, line: str) -> None:
        self._log.line(line)
