"""Previews: a copy of an app for each open pull request, on the hosts of a preview group.

The names both sides agree on (the controller that decides which previews exist and the hosts that run
them), and the port through which the controller creates and drops a preview's database. The settings
an app declares are `AppSpec.previews`; the placement a preview's release carries is `AppSpec.preview`
(shipyard.domain.spec).
"""

from __future__ import annotations

from typing import Protocol

# Every container, image reference and proxy entry of a preview carries this label, valued
# `REPOSITORY#PR`, so anything left behind can be found and removed whatever the records say.
PREVIEW_LABEL = "shipyard.preview"


def preview_app_name(app: str, pr: int) -> str:
    """The name a preview runs under on its hosts: a separate app there, with its own slots and records."""
    return f"{app}-pr-{pr}"


def preview_host_name(app: str, pr: int, domain: str) -> str:
    """The host name a preview answers: `pr-N.APP.DOMAIN`."""
    return f"pr-{pr}.{app}.{domain}"


def preview_label_value(repository: str, pr: int) -> str:
    """A preview is keyed by repository and PR number, never by branch name."""
    return f"{repository}#{pr}"


class PreviewDatabases(Protocol):
    """Creates and drops the database of one preview; both are idempotent."""

    def create(self, app: str, pr: int) -> str:
        """Create the preview's database (or find the one already there); return its DATABASE_URL."""
        ...

    def destroy(self, app: str, pr: int) -> None:
        """Drop the preview's database; one that does not exist is not an error."""
        ...
