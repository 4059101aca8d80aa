"""Controller replicas on one real PostgreSQL database: one leader, takeover, wake-ups across replicas."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import psycopg
import pytest
from controller_fixtures import (
    DIGESTS,
    Harness,
    controller_settings,
    running_controller,
    shared_postgres,
    spec,
)
from controller_fixtures import wait_for as wait_until
from sqlalchemy import text

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store.db import Database
from shipyard.controller.store.leadership import LEADER_LOCK_KEY, libpq_url
from shipyard.fleet_api.schemas.agent import DesiredState

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_url() -> Iterator[str]:
    server = shared_postgres()
    url = server.create_database("replicas_test")
    yield url
    server.drop_database(url)


def _leading(harness: Harness) -> bool:
    answer = harness.http.get("/controller")
    assert answer.status_code == 200
    return bool(answer.json()["leader"])


def _leaders(replicas: list[Harness]) -> list[int]:
    return [index for index, replica in enumerate(replicas) if _leading(replica)]


HOLDER = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _terminate_lock_holder(url: str) -> int:
    """Ends the server process holding the leader lock, as a dropped connection would; its pid."""
    holder = _lock_holder(url)
    assert holder is not None, "nobody holds the leader lock"
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (holder,))
    return holder


def test_two_replicas_elect_exactly_one_leader_and_the_other_takes_over(postgres_url: str) -> None:
    settings = controller_settings(postgres_url)
    with ExitStack() as stack:
        replicas = [stack.enter_context(running_controller(settings)) for _ in range(2)]
        wait_until(lambda: len(_leaders(replicas)) == 1, what="one leader")
        for _ in range(5):  # and it stays one: the other keeps trying and keeps failing
            assert len(_leaders(replicas)) == 1
        first = _leaders(replicas)[0]
        infos = [replica.http.get("/controller").json() for replica in replicas]
        assert infos[0]["replica"] != infos[1]["replica"]
        assert {info["database"] for info in infos} == {"postgresql"}
        leader_gauge = re.compile(r'^shipyard_controller_leader\{replica="[^"]+"\} (\S+)$', re.MULTILINE)
        assert leader_gauge.findall(replicas[first].http.get("/metrics").text) == ["1.0"]
        assert leader_gauge.findall(replicas[1 - first].http.get("/metrics").text) == ["0.0"]

        changes: list[bool] = []
        _context(replicas[first]).leadership.on_change(changes.append)
        killed = _terminate_lock_holder(postgres_url)
        # The old leader steps down as soon as its lock connection fails, and one of the two leads again;
        # which one depends on who retries first, so either may be it, but never both.
        wait_until(lambda: False in changes, what="the leader to step down")
        wait_until(lambda: _lock_holder(postgres_url) not in (None, killed), what="a new lock holder")
        wait_until(lambda: len(_leaders(replicas)) == 1, what="a leader again")


def _context(harness: Harness) -> ControllerContext:
    context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
    return context


def _lock_holder(url: str) -> int | None:
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        row = admin.execute(HOLDER, (LEADER_LOCK_KEY & 0xFFFFFFFF,)).fetchone()
        return int(row[0]) if row is not None else None


def test_reports_to_a_follower_reach_the_leader_which_finishes_the_deployment(postgres_url: str) -> None:
    # No timer ticks: only the follower's tick requests (NOTIFY) and the monitor's due times move it.
    settings = controller_settings(postgres_url, tick_interval=30.0)
    with ExitStack() as stack:
        replicas = [stack.enter_context(running_controller(settings)) for _ in range(2)]
        wait_until(lambda: len(_leaders(replicas)) == 1, what="one leader")
        follower = replicas[1 - _leaders(replicas)[0]]
        agents = [follower.add_agent(name) for name in ("h1", "h2")]
        release = follower.admin.create_release("registry:5000/web", DIGESTS[0], spec(monitor=0.1))
        deployment = follower.admin.create_deployment(release.id, "production")
        # Only the follower hears from the agents; the leader's loop still moves every wave.
        # Well under the 30 s timer, so the leader's timer cannot be what moved it.
        assert follower.deploy_until(deployment.id, {"succeeded", "failed"}, timeout=20) == "succeeded"
        assert [agent.running for agent in agents] == [{"web": release.id}] * 2


def test_a_change_on_one_replica_wakes_a_long_poll_waiting_on_the_other(postgres_url: str) -> None:
    # Long-polls re-read the database only every 30 s here: only the NOTIFY can answer before that.
    settings = controller_settings(postgres_url, recheck_interval=30.0)
    with running_controller(settings) as changing, running_controller(settings) as waiting:
        agent = changing.add_agent("h1")
        token = agent.token
        before = waiting.client(token).desired()
        answers: list[DesiredState] = []
        poll = threading.Thread(
            target=lambda: answers.append(waiting.client(token).desired(before.version, wait=25.0))
        )
        poll.start()
        # The long-poll must be waiting before the change, or it would simply read the new state.
        wait_until(lambda: _waiters(waiting) == 1, what="the long-poll to wait")
        release = changing.admin.create_release("registry:5000/web", DIGESTS[1], spec())
        changing.admin.create_deployment(release.id, "production")
        poll.join(timeout=20.0)
        assert not poll.is_alive(), "the long-poll on the other replica was not woken"
        assert answers[0].version != before.version
        assert [app.release_id for app in answers[0].apps] == [release.id]


def _waiters(harness: Harness) -> int:
    return sum(len(waiting) for waiting in _context(harness).desired._waiters.values())


MIGRATE = "import sys; from shipyard.controller.store.db import Database; Database(sys.argv[1]).migrate()"


def test_replicas_starting_together_upgrade_a_fresh_database_one_after_the_other(postgres_url: str) -> None:
    # Processes, as replicas are: Alembic's context is one per process.
    upgrades = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, postgres_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [upgrade.communicate(timeout=120)[0] for upgrade in upgrades]
    assert [upgrade.returncode for upgrade in upgrades] == [0, 0], outputs
    database = Database(postgres_url)
    try:
        with database.read() as session:
            assert session.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        database.dispose()
