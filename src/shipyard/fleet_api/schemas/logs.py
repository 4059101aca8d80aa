"""Logs of an app across the hosts of an environment: the request, the agents' batches, the lines."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from shipyard.fleet_api.schemas.common import LINE_PATTERN, MAX_ID, Body, Name

MAX_FOLLOW = 600  # seconds a followed request stays open at most
MAX_TAIL = 10_000
MAX_BATCH = 500
MAX_LINE = 8192
LogText = Annotated[str, Field(max_length=MAX_LINE, pattern=r"^[^\x00]*$")]
Pattern = Annotated[str, Field(max_length=200, pattern=LINE_PATTERN)]
Process = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9-]*$")]


class LogQuery(Body):
    """What to read from each host (the CLI's options)."""

    grep: Pattern | None = Field(default=None, description="a regular expression a line must contain")
    since: int | None = Field(default=None, ge=1, le=366 * 86400, description="seconds back from now")
    process: Process | None = Field(default=None, description="only containers of this process (web, ...)")
    tail: int = Field(default=100, ge=0, le=MAX_TAIL, description="lines per container to start with")
    follow: int = Field(default=0, ge=0, le=MAX_FOLLOW, description="seconds to keep sending new lines")


class LogRequestCreate(LogQuery):
    app: Name
    environment: Name


class DesiredLogRequest(LogQuery):
    """A log request in a host's desired state; the agent answers each id once."""

    id: int = Field(ge=1, le=MAX_ID)
    app: Name


class AgentLogBatch(Body):
    request: int = Field(ge=1, le=MAX_ID)
    lines: list[LogText] = Field(default_factory=list, max_length=MAX_BATCH)
    finished: bool = Field(default=False, description="the host has sent everything it will send")
    message: Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")] = ""


class AgentLogAck(BaseModel):
    wanted: bool = Field(description="false once the request is over: the agent stops sending")


class LogLineOut(BaseModel):
    id: int
    host: str
    line: str


class LogRequestOut(BaseModel):
    id: int
    app: str
    environment: str
    hosts: list[str] = Field(description="the hosts of the environment asked for lines")
    finished: list[str] = Field(default_factory=list, description="hosts that sent all they will")
    messages: dict[str, str] = Field(default_factory=dict, description="a host's word when it sent none")
    open: bool = Field(description="false once followed long enough or cancelled")
    lines: list[LogLineOut] = Field(default_factory=list, description="lines after ?after=, oldest first")
    expires_at: datetime
