"""Tells the other controller replicas (PostgreSQL LISTEN/NOTIFY) what happened here.

Two messages travel on one channel, each tagged with the sending replica so it ignores its own:
- `changed`: a committed change may have moved the desired state (a deployment tick, a release, a host).
  Every other replica wakes its waiting long-polls as a local change would (ChangeNotifier); the leader
  also ticks, so it learns when a deployment started elsewhere next needs it.
- `tick`: agents reported to a replica that does not lead; the leader ticks soon.

publish() only marks the message pending and returns: one publisher thread sends each pending kind once
per round through the pool, so a burst of a thousand reports is a handful of NOTIFYs. One listener
thread per replica holds a LISTEN connection; after each (re)connection it wakes everything once, since
a change may have been missed while it was away (and long-polls re-read every recheck interval anyway).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql
from sqlalchemy import text

from shipyard.controller.store.db import Database
from shipyard.controller.store.leadership import CONNECT_OPTIONS, libpq_url

log = structlog.get_logger("shipyard.controller.replicas")

CHANNEL = "shipyard_changes"
CHANGED = "changed"
TICK = "tick"
STOP = "stop"  # sent by a replica to itself at shutdown, to end its own listener's wait
KINDS = (CHANGED, TICK)
LISTEN_POLL_S = 1.0
RECONNECT_S = 1.0


def encode(kind: str, replica: str) -> str:
    return f"{kind} {replica}"


def decode(payload: str) -> tuple[str, str] | None:
    """(kind, replica) of a payload; None for anything this version does not send."""
    kind, _, replica = payload.partition(" ")
    return (kind, replica) if kind in KINDS and replica else None


class ChangeFeed:
    def __init__(
        self, db: Database, replica: str, on_message: Callable[[str], None], *, channel: str = CHANNEL
    ) -> None:
        """`on_message(kind)` is called from the listener thread for every other replica's message."""
        self._db, self._replica, self._on_message, self._channel = db, replica, on_message, channel
        self._conninfo = libpq_url(db.url)
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self.listening = threading.Event()  # set while the LISTEN connection is up (tests wait on it)
        self._threads: list[threading.Thread] = []
        self.sent = 0  # NOTIFYs sent (diagnostics, tests)

    def start(self) -> None:
        for target, name in ((self._listen, "listener"), (self._publish_loop, "publisher")):
            thread = threading.Thread(target=target, name=f"shipyard-feed-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self.listening.is_set():  # a message of its own ends the listener's wait at once
            with contextlib.suppress(Exception):
                self._send({STOP})
        for thread in self._threads:
            thread.join(timeout)

    def publish(self, kind: str) -> None:
        """Send `kind` to the other replicas soon; safe from any thread, cheap to call often."""
        with self._pending_lock:
            self._pending.add(kind)
        self._wakeup.set()

    def _publish_loop(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.wait()
            self._wakeup.clear()
            with self._pending_lock:
                kinds, self._pending = self._pending, set()
            if not kinds or self._stopping.is_set():
                continue
            try:
                self._send(kinds)
            except Exception:  # the others fall back on their recheck interval; the next change retries
                log.exception("telling the other replicas failed")

    def _send(self, kinds: set[str]) -> None:
        with self._db.core_transaction() as connection:
            for kind in sorted(kinds):
                connection.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": self._channel, "payload": encode(kind, self._replica)},
                )
        self.sent += len(kinds)

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **CONNECT_OPTIONS) as connection:  # type: ignore[arg-type]
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.listening.set()
                    self._on_message(CHANGED)  # whatever changed while not listening
                    while not self._stopping.is_set():
                        for note in connection.notifies(timeout=LISTEN_POLL_S):
                            if self._stopping.is_set():
                                break
                            self._receive(note.payload)
            except psycopg.Error as exc:
                log.warning("listening for the other replicas failed", error=type(exc).__name__)
            finally:
                self.listening.clear()
            self._stopping.wait(RECONNECT_S)

    def _receive(self, payload: str) -> None:
        message = decode(payload)
        if message is None or message[1] == self._replica:
            return
        try:
            self._on_message(message[0])
        except Exception:  # one bad handler call must not end the listener
            log.exception("handling another replica's message failed")
