"""Every command that prints something takes --json; the others are listed here with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from typer.main import get_command

from shipyard.cli.main import app

# Commands without --json, and why each needs none.
WITHOUT_JSON = {
    "controller": "a long-running server; it writes structured logs, not a result",
    "job-worker": "a long-running worker process; it writes structured logs, not a result",
    "agent": "a long-running agent; it writes structured logs, not a result",
    "secrets set": "prints nothing on stdout (its confirmation goes to stderr)",
    "secrets rm": "prints nothing on stdout (its confirmation goes to stderr)",
    "secrets rotate": "prints nothing on stdout (its confirmation goes to stderr)",
    "secrets init-key": "prints nothing on stdout (its confirmation goes to stderr)",
    "secrets get": "prints the secret's raw value, for a pipe",
    "secrets edit": "interactive: opens $EDITOR",
    "exec": "attaches to a container: its output is the command's own, as it runs",
    "host bootstrap": "its output is the document asked for with --format (script, cloud-init, packer)",
}


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every leaf command; groups are asked for theirs, so lazily registered ones load too."""
    if hasattr(command, "list_commands"):
        context = command.context_class(command)
        for name in command.list_commands(context):
            yield from commands(command.get_command(context, name), (*path, name))
    else:
        yield " ".join(path), command


def test_every_command_that_prints_something_takes_json_or_says_why_not() -> None:
    found = dict(commands(get_command(app)))
    lacking = {
        path
        for path, command in found.items()
        if "--json" not in {opt for param in command.params for opt in getattr(param, "opts", [])}
    }
    assert lacking - WITHOUT_JSON.keys() == set(), "add --json to these commands, or list them with a reason"
    assert WITHOUT_JSON.keys() - found.keys() == set(), "the allow-list names a command that does not exist"
    assert lacking == WITHOUT_JSON.keys(), "a listed command has --json now: drop it from the list"
    assert {"status", "maintenance", "logs", "hosts", "prune"} <= found.keys() - lacking
