"""Path, query and header parameters of the routes: the API's value types bound to where FastAPI reads them.

The bodies themselves (shipyard.fleet_api.schemas) stay free of FastAPI, so the agent and the CLI that
share them do not import the web framework.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query

from shipyard.fleet_api.schemas.common import MAX_ID, NAME_PATTERN
from shipyard.fleet_api.schemas.pipeline import HOOK_APP_PATTERN

# The id of the last server-sent event a client received: a reconnecting stream resumes after it.
LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        le=MAX_ID,
        description="the id of the last event received: the stream resumes after it",
    ),
]
# A name as a query filter.
NameQuery = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NAME_PATTERN)]
HookAppInPath = Annotated[str, Path(min_length=1, max_length=40, pattern=HOOK_APP_PATTERN)]
