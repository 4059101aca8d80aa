"""Rich output for the CLI: steps as they happen, pull progress, tables; every line masked."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shipyard.domain.steps import Step
from shipyard.errors import ShipyardError
from shipyard.secrets.masking import mask

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    console.print(escape(mask(text)))


def announce(text: str, as_json: bool) -> None:
    """A first line saying what a command acts on; on stderr under --json, so stdout stays one document."""
    (errors if as_json else console).print(escape(mask(text)))


def print_json(document: Any) -> None:
    sys.stdout.write(mask(json.dumps(document, indent=2, sort_keys=True, default=str)) + "\n")


def print_error(exc: ShipyardError) -> None:
    errors.print(f"[bold red]error:[/] {escape(mask(exc.message))}")
    for line in exc.details[-20:]:
        errors.print(f"  [dim]{escape(mask(line))}[/]")


class StepPrinter:
    """Prints each step when it starts and how long it took; pull progress as a compact line."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._layers: dict[str, str] = {}

    def step_started(self, step: Step) -> None:
        if not self.quiet:
            console.print(f"[cyan]→[/] {escape(mask(step.describe()))}")

    def step_finished(self, step: Step, seconds: float, note: str) -> None:
        if not self.quiet:
            extra = f" [dim]{escape(mask(note))}[/]" if note else ""
            console.print(f"  [green]✓[/] {seconds * 1000:.0f} ms{extra}")

    def pull_progress(self, event: dict[str, Any]) -> None:
        if self.quiet or "id" not in event:
            return
        status = str(event.get("status", ""))
        self._layers[str(event["id"])] = status
        if status in ("Pull complete", "Already exists"):
            done = sum(1 for s in self._layers.values() if s in ("Pull complete", "Already exists"))
            console.print(f"  [dim]layers {done}/{len(self._layers)} {escape(status.lower())}[/]")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    output = Table(title=title, title_justify="left")
    for column in columns:
        output.add_column(column)
    for row in rows:
        output.add_row(*[escape(mask("" if cell is None else str(cell))) for cell in row])
    console.print(output)
