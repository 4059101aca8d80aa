"""The exec session's rules as data: who may attach, and every way a session ends on its own."""

from __future__ import annotations

import pytest

from shipyard.controller.engine import exec_sessions
from shipyard.controller.engine.exec_sessions import ATTACHED, CLOSED, REQUESTED, ExecLimits, ExecSession
from shipyard.controller.errors import ConflictError, ForbiddenError

LIMITS = ExecLimits(pickup=30.0, idle=60.0, max_duration=300.0)


def requested(at: float = 100.0) -> ExecSession:
    return ExecSession(7, host_id=2, host="h2", user="alice", requested_at=at, limits=LIMITS)


def test_only_the_requesting_user_attaches_the_client_side() -> None:
    exec_sessions.check_client(requested(), "alice")
    with pytest.raises(ForbiddenError, match="belongs to 'alice'"):
        exec_sessions.check_client(requested(), "mallory")


def test_only_the_agent_of_the_sessions_host_attaches_and_only_once() -> None:
    session = requested()
    exec_sessions.check_agent(session, 2)
    with pytest.raises(ForbiddenError, match="not for this host"):
        exec_sessions.check_agent(session, 3)
    attached = exec_sessions.attach(session, 101.0)
    assert attached.state == ATTACHED and attached.attached_at == 101.0
    with pytest.raises(ConflictError):
        exec_sessions.check_agent(attached, 2)
    with pytest.raises(ConflictError):
        exec_sessions.attach(attached, 102.0)
    with pytest.raises(ConflictError):
        exec_sessions.check_client(attached, "alice")


def test_a_session_nobody_picks_up_expires_after_the_pickup_timeout() -> None:
    session = requested(at=100.0)
    assert session.state == REQUESTED
    assert exec_sessions.expiry(session, 129.9) is None
    assert exec_sessions.next_check(session) == 130.0
    reason = exec_sessions.expiry(session, 130.0)
    assert reason == "no agent of h2 attached within 30 s (is the agent of h2 running?)"


def test_an_attached_session_ends_when_idle_and_activity_keeps_it_open() -> None:
    session = exec_sessions.attach(requested(), 100.0)
    assert exec_sessions.expiry(session, 159.0) is None
    busy = exec_sessions.active(session, 150.0)
    assert exec_sessions.next_check(busy) == 210.0
    assert exec_sessions.expiry(busy, 209.0) is None
    assert "idle timeout" in (exec_sessions.expiry(busy, 210.0) or "")


def test_an_attached_session_ends_at_its_maximum_duration_however_busy() -> None:
    session = exec_sessions.attach(requested(), 100.0)
    for now in range(110, 400, 10):
        session = exec_sessions.active(session, float(now))
        if now >= 400:
            break
    assert exec_sessions.next_check(session) == 400.0
    assert exec_sessions.expiry(session, 399.0) is None
    assert exec_sessions.expiry(session, 400.0) == "the session reached its maximum duration of 300 s"


def test_close_keeps_the_first_reason_and_a_closed_session_never_expires() -> None:
    session = exec_sessions.attach(requested(), 100.0)
    closed = exec_sessions.close(session, "the command exited with 3")
    again = exec_sessions.close(closed, "the client left")
    assert again.state == CLOSED and again.closed_reason == "the command exited with 3"
    assert exec_sessions.expiry(again, 10_000.0) is None and exec_sessions.next_check(again) is None
    assert exec_sessions.active(again, 500.0) == again  # activity after the end changes nothing
