"""A controller thread that does one pass every `interval` seconds, on the leader only.

A pass that raises is logged and the next one retries (a database hiccup must not end the thread);
`wake` runs the next pass now instead of at the end of the period.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog


class PeriodicThread:
    name = "shipyard-periodic"

    def __init__(self, *, interval: float, active: Callable[[], bool] = lambda: True) -> None:
        """`active`: asked before each pass; False skips it (a controller replica that does not lead)."""
        self._interval, self._active = interval, active
        self._stopping = threading.Event()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> object:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._active():
                    self.run_once()
            except Exception:
                structlog.get_logger(self.name).exception("pass failed", thread=self.name)
            self._wakeup.wait(self._interval)
            self._wakeup.clear()
