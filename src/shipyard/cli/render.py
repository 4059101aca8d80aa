"""Rich output for the CLI: steps as they happen, pull progress, tables; every line masked.

Rich is loaded on the first line it has to style: a line to a pipe or a file (where rich would print
it without styles anyway) is written directly, so `shipyard rollback` run by a script or an agent
does not import it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from shipyard.errors import ShipyardError
from shipyard.secrets.masking import mask

if TYPE_CHECKING:
    from rich.console import Console

    from shipyard.domain.commands import Command

# Control characters rich drops from printed text (bell, backspace, vertical tab, form feed, CR).
_RICH_STRIPPED = str.maketrans("", "", "\x07\x08\x0b\x0c\x0d")


class LazyConsole:
    """A rich Console (highlight off, soft wrap) made on first use; attributes go to it."""

    def __init__(self, *, stderr: bool) -> None:
        self.stderr = stderr
        self._console: Console | None = None

    def rich(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self.stderr, highlight=False, soft_wrap=True)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich(), name)

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self.stderr else sys.stdout

    def plain(self) -> bool:
        """True when rich would print without styles: not a terminal, as rich's own test decides."""
        if self._console is not None:
            return not self._console.is_terminal
        compatible = os.environ.get("TTY_COMPATIBLE", "")
        if compatible in ("0", "1"):
            return compatible == "0"
        force_color = os.environ.get("FORCE_COLOR")
        if force_color is not None:
            return force_color == ""
        try:
            return not self.stream.isatty()
        except (AttributeError, ValueError):
            return True

    def line(self, *segments: tuple[str, str]) -> None:
        """One line of (style, text) segments, the text taken literally (no markup)."""
        if self.plain():
            text = "".join(text for _, text in segments)
            self.stream.write(text.translate(_RICH_STRIPPED).expandtabs(8) + "\n")
            self.stream.flush()
            return
        from rich.markup import escape

        self.rich().print(
            "".join(f"[{style}]{escape(text)}[/]" if style else escape(text) for style, text in segments)
        )


console = LazyConsole(stderr=False)
errors = LazyConsole(stderr=True)


def say(text: str) -> None:
    console.line(("", mask(text)))


def say_styled(*segments: tuple[str, str]) -> None:
    """One line of (style, text) segments, each text masked."""
    console.line(*((style, mask(text)) for style, text in segments))


def announce(text: str, as_json: bool) -> None:
    """A first line saying what a command acts on; on stderr under --json, so stdout stays one document."""
    (errors if as_json else console).line(("", mask(text)))


def print_json(document: Any) -> None:
    sys.stdout.write(mask(json.dumps(document, indent=2, sort_keys=True, default=str)) + "\n")


def print_error(exc: ShipyardError) -> None:
    errors.line(("bold red", "error:"), ("", f" {mask(exc.message)}"))
    for line in exc.details[-20:]:
        errors.line(("", "  "), ("dim", mask(line)))


class StepPrinter:
    """Prints each step when it starts and how long it took; pull progress as a compact line."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._layers: dict[str, str] = {}

    def step_started(self, step: Command) -> None:
        if not self.quiet:
            console.line(("cyan", "→"), ("", f" {mask(step.describe())}"))

    def step_finished(self, step: Command, seconds: float, note: str) -> None:
        if not self.quiet:
            segments = [("", "  "), ("green", "✓"), ("", f" {seconds * 1000:.0f} ms")]
            if note:
                segments += [("", " "), ("dim", mask(note))]
            console.line(*segments)

    def pull_progress(self, event: dict[str, Any]) -> None:
        if self.quiet or "id" not in event:
            return
        status = str(event.get("status", ""))
        self._layers[str(event["id"])] = status
        if status in ("Pull complete", "Already exists"):
            done = sum(1 for s in self._layers.values() if s in ("Pull complete", "Already exists"))
            console.line(("", "  "), ("dim", f"layers {done}/{len(self._layers)} {status.lower()}"))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    output = Table(title=title, title_justify="left")
    for column in columns:
        output.add_column(column)
    for row in rows:
        output.add_row(*[escape(mask("" if cell is None else str(cell))) for cell in row])
    console.print(output)
