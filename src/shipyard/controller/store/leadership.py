"""Which controller replica leads: the one that runs the rollout loop, the scheduler and the notifier.

Several controller processes may share one PostgreSQL database. Each serves the API and the agents'
long-polls; exactly one at a time holds the leader lock, a session-level advisory lock taken on a
connection of its own and kept for as long as it leads. The others try again every `retry` seconds,
so when the leader dies (its connection closes and PostgreSQL releases the lock) another takes over
within about that long. A leader whose lock connection fails steps down at once, before it knows
whether the lock is gone, so two replicas never both believe they lead for longer than a check.

On SQLite there is one controller process, and it always leads (Leadership() with no election).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator

import psycopg
import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import make_url

log = structlog.get_logger("shipyard.controller.leadership")

# Advisory lock keys are per database, so controllers of different databases on one server never meet.
LEADER_LOCK_KEY = 0x5348_4950_5941_5244  # "SHIPYARD"
# Taken for the length of each rollout tick's transaction, so a tick run inline by a replica that
# does not lead (after a change made through its API) never interleaves with the leader's.
TICK_LOCK_KEY = 0x5348_4950_5449_434B  # "SHIPTICK"
# Held by a schema upgrade's transaction: replicas starting together upgrade one at a time.
MIGRATION_LOCK_KEY = 0x5348_4950_4D49_4752  # "SHIPMIGR"
RETRY_S = 1.0
# A lock connection that stops answering (a network gone, not closed) is given up after about this long.
CONNECT_OPTIONS: dict[str, object] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5000,
}


def replica_name() -> str:
    """Names this process among the replicas: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as libpq takes it (no '+driver')."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Leadership:
    """Whether this replica leads now; without an election (SQLite, one process) it always does."""

    def __init__(self, *, elected: bool = False) -> None:
        self.replica = replica_name()
        self.elected = elected  # True when an election decides; False: the only process, always leader
        self._leader = not elected
        self._lock = threading.Lock()
        self._listeners: list[Callable[[bool], None]] = []
        self.terms = 0  # how many times this replica became leader (diagnostics, tests)

    @property
    def is_leader(self) -> bool:
        return self._leader

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(leading)` (from the election's thread) when this replica gains or loses the lead."""
        self._listeners.append(listener)

    def set_leader(self, leading: bool) -> None:
        with self._lock:
            if leading == self._leader:
                return
            self._leader = leading
            self.terms += leading
        log.info("leadership changed", replica=self.replica, leader=leading)
        for listener in self._listeners:
            try:
                listener(leading)
            except Exception:  # a listener's failure must not keep the election from going on
                log.exception("leadership listener failed")


class LeaderElection:
    """A thread that takes and holds the leader lock on its own connection, or keeps trying."""

    def __init__(self, database_url: str, leadership: Leadership, *, retry: float = RETRY_S) -> None:
        self._conninfo = libpq_url(database_url)
        self._leadership, self._retry = leadership, retry
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        self.backend_pid: int | None = None  # the lock connection's server process (tests, diagnostics)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="shipyard-leader-election", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop trying; a leader closes its lock connection, which hands the lock over at once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._round()
                except psycopg.Error as exc:
                    # Step down first: the lock may already be someone else's.
                    self._leadership.set_leader(False)
                    self._drop_connection()
                    log.warning("leader lock connection failed", error=type(exc).__name__)
                self._stopping.wait(self._retry)
        finally:
            self._leadership.set_leader(False)
            self._drop_connection()

    def _round(self) -> None:
        connection = self._connect()
        if self._leadership.is_leader:
            connection.execute("SELECT 1")  # the lock lives as long as this connection does
            return
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
        if row is not None and row[0] is True:
            self._leadership.set_leader(True)

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._conninfo, autocommit=True, **CONNECT_OPTIONS)  # type: ignore[arg-type]
            self.backend_pid = self._connection.info.backend_pid
        return self._connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):  # already broken: closing was all that was left
                connection.close()


class LeadershipCollector(Collector):
    """shipyard_controller_leader: 1 on the replica that leads, 0 on the others."""

    def __init__(self, leadership: Leadership) -> None:
        self._leadership = leadership

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "shipyard_controller_leader",
            "1 when this controller replica runs the rollout loop and the scheduler",
            labels=["replica"],
        )
        gauge.add_metric([self._leadership.replica], 1.0 if self._leadership.is_leader else 0.0)
        yield gauge
