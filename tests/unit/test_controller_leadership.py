"""Leadership state, the replicas' messages and the notifier's two ways in, without a database."""

from __future__ import annotations

import pytest

from shipyard.controller.server.change_feed import CHANGED, TICK, decode, encode
from shipyard.controller.server.notifier import ChangeNotifier
from shipyard.controller.store.leadership import Leadership, libpq_url


def test_without_an_election_the_only_process_leads() -> None:
    assert Leadership().is_leader
    assert not Leadership(elected=True).is_leader


def test_listeners_hear_each_change_once_and_terms_count_the_times_it_led() -> None:
    leadership = Leadership(elected=True)
    heard: list[bool] = []
    leadership.on_change(heard.append)
    for leading in (True, True, False, False, True):
        leadership.set_leader(leading)
    assert heard == [True, False, True]
    assert leadership.terms == 2


def test_a_failing_listener_does_not_stop_the_change_or_the_others() -> None:
    leadership = Leadership(elected=True)
    heard: list[bool] = []

    def broken(_leading: bool) -> None:
        raise RuntimeError("boom")

    leadership.on_change(broken)
    leadership.on_change(heard.append)
    leadership.set_leader(True)
    assert leadership.is_leader and heard == [True]


def test_replica_names_differ_between_instances() -> None:
    assert Leadership().replica != Leadership().replica


def test_the_lock_connection_takes_the_url_without_the_driver() -> None:
    url = libpq_url("postgresql+psycopg://postgres:secret@127.0.0.1:5432/shipyard")
    assert url == "postgresql://postgres:secret@127.0.0.1:5432/shipyard"


@pytest.mark.parametrize("kind", [CHANGED, TICK])
def test_messages_round_trip(kind: str) -> None:
    assert decode(encode(kind, "box:12:abcdef")) == (kind, "box:12:abcdef")


@pytest.mark.parametrize("payload", ["", "changed", "changed ", "restart box:1:a", "tick"])
def test_unknown_or_partial_messages_are_ignored(payload: str) -> None:
    assert decode(payload) is None


def test_a_local_change_is_passed_on_and_a_peers_change_is_not_echoed() -> None:
    notifier = ChangeNotifier()
    sent: list[str] = []
    notifier.on_notify = lambda: sent.append("changed")
    notifier.notify()
    assert notifier.generation == 1 and sent == ["changed"]
    notifier.notify_from_peer()
    assert notifier.generation == 2 and sent == ["changed"]  # woken here, not sent back


class _Driver:
    def __init__(self) -> None:
        self.requests = 0

    def request_tick(self) -> None:
        self.requests += 1


@pytest.mark.parametrize(
    ("kind", "leading", "woken", "ticks"),
    [
        (CHANGED, False, True, 0),  # a follower wakes its long-polls
        (CHANGED, True, True, 1),  # the leader also ticks: a deployment started elsewhere may need it
        (TICK, True, False, 1),  # reports to a follower: the leader ticks
        (TICK, False, False, 0),  # not for a follower
    ],
)
def test_what_another_replicas_message_does_here(kind: str, leading: bool, woken: bool, ticks: int) -> None:
    from types import SimpleNamespace

    from shipyard.controller.server.replicas import on_peer_message

    leadership = Leadership(elected=True)
    leadership.set_leader(leading)
    context = SimpleNamespace(notifier=ChangeNotifier(), leadership=leadership, driver=_Driver())
    on_peer_message(context, kind)  # type: ignore[arg-type]
    assert (context.notifier.generation == 1) is woken
    assert context.driver.requests == ticks
