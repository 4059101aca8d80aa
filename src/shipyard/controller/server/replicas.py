"""Wires a controller process into a set of replicas sharing one PostgreSQL database.

The leader election (leadership.py) decides who runs the rollout loop, the scheduler and the
notification sender; the change feed (change_feed.py) carries desired-state changes and tick requests
between replicas. Every replica serves the API and the agents' long-polls, and runs a job worker (claims
use SKIP LOCKED, so workers of several replicas never take the same job).

A replica that does not lead still stores the last_seen times of the agents that poll it, every flush
interval, so the leader's lost-host detection sees them, and passes its agents' reports on to the
leader as tick requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from shipyard.controller.server.change_feed import CHANGED, TICK, ChangeFeed
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store.leadership import LeaderElection

log = structlog.get_logger("shipyard.controller.replicas")


def on_peer_message(context: ControllerContext, kind: str) -> None:
    """What another replica's message means here (called from the feed's listener thread)."""
    if kind == CHANGED:
        context.notifier.notify_from_peer()
    # The leader ticks on both: a deployment started elsewhere may need it before its timer.
    if context.leadership.is_leader:
        context.driver.request_tick()


@dataclass
class Replicas:
    election: LeaderElection
    feed: ChangeFeed

    def stop(self) -> None:
        self.election.stop()  # closing the lock connection hands the lead over at once
        self.feed.stop()


def start_replicas(context: ControllerContext) -> Replicas | None:
    """Join the election and the change feed; None on SQLite, where one process always leads."""
    if context.db.is_sqlite:
        return None
    leadership = context.leadership
    feed = ChangeFeed(context.db, leadership.replica, lambda kind: on_peer_message(context, kind))
    context.notifier.on_notify = lambda: feed.publish(CHANGED)
    context.ask_leader_to_tick = lambda: feed.publish(TICK)
    # Elected: the loop wakes and ticks at once rather than at the end of its follower wait.
    leadership.on_change(lambda _leading: context.driver.request_tick())
    election = LeaderElection(context.settings.database_url, leadership)
    feed.start()
    election.start()
    log.info("controller replica started", replica=leadership.replica)
    return Replicas(election, feed)
