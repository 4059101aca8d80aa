"""Task bodies: one-off commands (`shipyard run`) and release phases, run once in a throwaway container,
and exec sessions (`shipyard exec --env`): a command in the serving container, relayed by the controller."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shipyard.fleet_api.schemas.common import MAX_ID, Body, Name, Text

TaskKind = Literal["run", "release", "exec"]
TaskStatus = Literal["pending", "running", "succeeded", "failed"]
TASK_FINAL = frozenset({"succeeded", "failed"})
MAX_ARGS = 256
MAX_LINES_PER_POST = 500
MAX_LINE = 4000  # characters of one output line kept; longer lines are cut
Argument = Annotated[str, Field(max_length=65_536, pattern=r"^[^\x00]*$")]


class TaskCreate(Body):
    app: Name
    environment: Name
    argv: list[Argument] = Field(
        min_length=1, max_length=MAX_ARGS, description="the command and its arguments"
    )
    host: Name | None = Field(
        default=None, description="the host to run it on; default: one healthy host of E"
    )


class ExecCreate(Body):
    """An exec session: `argv` in the app's serving container on `host`, its stdin and output relayed."""

    app: Name
    environment: Name
    host: Name = Field(description="the host whose serving container runs the command")
    argv: list[Argument] = Field(
        min_length=1, max_length=MAX_ARGS, description="the command and its arguments"
    )


class TaskOrder(BaseModel):
    """A task assigned to the host, as its desired state carries it until the agent starts it."""

    id: int
    kind: TaskKind
    app: str
    release_id: int
    release: str
    image: str
    digest: str
    spec: dict[str, Any]
    signature: str | None = None
    argv: list[str]
    timeout: float = Field(description="seconds the command may run before it is killed")
    sealed_secrets: str | None = Field(
        default=None, description="the release's env.secret values sealed for the host's environment"
    )


class TaskUpdate(Body):
    """What an agent says about a task it runs: its start, output lines (in order), its end."""

    start: bool = Field(
        default=False, description="the agent is about to run it: accepted once, refused (409) after that"
    )
    status: Literal["running", "succeeded", "failed"] = "running"
    lines: list[Annotated[str, Field(max_length=MAX_LINE, pattern=r"^[^\x00]*$")]] = Field(
        default_factory=list, max_length=MAX_LINES_PER_POST
    )
    exit_code: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    message: Text = Field(default="", max_length=2000)


class TaskLine(BaseModel):
    number: int = Field(description="1-based, in the order the command wrote them")
    text: str


class TaskOut(BaseModel):
    id: int
    kind: TaskKind
    app: str
    environment: str
    host: str | None
    release_id: int
    release: str
    deployment_id: int | None
    argv: list[str]
    status: TaskStatus
    exit_code: int | None
    message: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lines: list[TaskLine] = Field(default_factory=list, description="output lines after ?after=")


__all__ = ["MAX_ID", "TaskCreate", "TaskLine", "TaskOrder", "TaskOut", "TaskUpdate"]
