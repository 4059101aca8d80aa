"""Exec sessions (`shipyard exec --env E --host H`): who may attach, and when a session ends. Pure.

A session is requested by a deployer (the CLI waits on its WebSocket), attached once the agent of its
host connects its own WebSocket, and closed when either side leaves, the command ends, nobody attached
in time, nothing passed for `idle` seconds, or it ran for `max_duration` seconds. Times are seconds
of a monotonic clock, so the state machine is tested as data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shipyard.controller.errors import ConflictError, ForbiddenError

REQUESTED, ATTACHED, CLOSED = "requested", "attached", "closed"
IDLE_TIMEOUT = 900.0  # seconds without a byte either way before the relay ends a session
MAX_DURATION = 4 * 3600.0  # seconds a session may last, busy or not
PICKUP_TIMEOUT = 60.0  # seconds for the host's agent to attach, unless the CLI says (--timeout)
MAX_PICKUP = 600.0


@dataclass(frozen=True)
class ExecLimits:
    pickup: float = PICKUP_TIMEOUT
    idle: float = IDLE_TIMEOUT
    max_duration: float = MAX_DURATION


@dataclass(frozen=True)
class ExecSession:
    task_id: int
    host_id: int
    host: str
    user: str  # the token name that requested it: the only one that may attach the client side
    requested_at: float
    limits: ExecLimits = ExecLimits()
    state: str = REQUESTED
    attached_at: float | None = None
    last_activity: float | None = None
    closed_reason: str = ""


def check_client(session: ExecSession, user: str) -> None:
    """Only the deployer that requested the session attaches to it: a session is a shell on a host."""
    if user != session.user:
        raise ForbiddenError(
            f"exec session {session.task_id} belongs to {session.user!r}; start your own with shipyard exec."
        )
    if session.state != REQUESTED:
        raise ConflictError(f"exec session {session.task_id} is {session.state}; start a new one.")


def check_agent(session: ExecSession, host_id: int) -> None:
    """An agent attaches only to its own host's sessions, and only once."""
    if host_id != session.host_id:
        raise ForbiddenError(f"exec session {session.task_id} is not for this host.")
    if session.state != REQUESTED:
        raise ConflictError(
            f"exec session {session.task_id} is {session.state}; it cannot be attached again."
        )


def attach(session: ExecSession, now: float) -> ExecSession:
    if session.state != REQUESTED:
        raise ConflictError(
            f"exec session {session.task_id} is {session.state}; it cannot be attached again."
        )
    return replace(session, state=ATTACHED, attached_at=now, last_activity=now)


def active(session: ExecSession, now: float) -> ExecSession:
    """Bytes passed one way or the other: the idle timer starts again."""
    if session.state != ATTACHED:
        return session
    return replace(session, last_activity=now)


def close(session: ExecSession, reason: str) -> ExecSession:
    if session.state == CLOSED:
        return session  # the first reason stays: it is what ended it
    return replace(session, state=CLOSED, closed_reason=reason)


def expiry(session: ExecSession, now: float) -> str | None:
    """Why the session must end now, or None while it may go on."""
    limits = session.limits
    if session.state == REQUESTED and now - session.requested_at >= limits.pickup:
        return (
            f"no agent of {session.host} attached within {limits.pickup:g} s "
            f"(is the agent of {session.host} running?)"
        )
    if session.state == ATTACHED:
        assert session.attached_at is not None and session.last_activity is not None
        if now - session.attached_at >= limits.max_duration:
            return f"the session reached its maximum duration of {limits.max_duration:g} s"
        if now - session.last_activity >= limits.idle:
            return f"nothing was sent either way for {limits.idle:g} s (idle timeout)"
    return None


def next_check(session: ExecSession) -> float | None:
    """The clock time at which expiry() may first say something new; None once closed."""
    limits = session.limits
    if session.state == REQUESTED:
        return session.requested_at + limits.pickup
    if session.state == ATTACHED:
        assert session.attached_at is not None and session.last_activity is not None
        return min(session.attached_at + limits.max_duration, session.last_activity + limits.idle)
    return None
