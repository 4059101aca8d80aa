"""Which host runs a one-off command (`shipyard run`): pure, tested as data like the rollout rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.controller.errors import ConflictError
from shipyard.errors import NotFoundError


@dataclass(frozen=True)
class TaskHost:
    """A host of the environment as the controller last heard of it, for one app."""

    host_id: int
    name: str
    lost: bool = False
    runs_release: bool = False  # the app's active release serves there
    healthy: bool = False  # and the agent reported it healthy


def choose_run_host(
    hosts: Sequence[TaskHost], requested: str | None, *, app: str, environment: str
) -> TaskHost:
    """The requested host when it can run the command; else the first healthy host running the app."""
    if requested is not None:
        host = next((host for host in hosts if host.name == requested), None)
        if host is None:
            raise NotFoundError(
                f"host {requested} is not in {environment}; "
                f"list its hosts with 'shipyard hosts --env {environment}'."
            )
        if host.lost:
            raise ConflictError(
                f"host {requested} is lost (its agent stopped reporting); pick another with --host."
            )
        return host
    serving = sorted((h for h in hosts if not h.lost and h.runs_release and h.healthy), key=lambda h: h.name)
    if not serving:
        raise ConflictError(
            f"no healthy host of {environment} runs {app}'s active release; "
            "deploy it first or pick one with --host."
        )
    return serving[0]
