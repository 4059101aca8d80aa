"""Lines written without rich (output not a terminal) are what rich prints there, byte for byte."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from shipyard.cli import render
from shipyard.domain.commands import EnsureProxy
from shipyard.errors import DeployFailedError

TEXTS = [
    "switch haproxy to the blue slot from green",
    "a [bold]bracket[/] that is text, \\[escaped] too",
    "carriage\rreturn, bell\x07 and a\ttab",
    "",
]


def _rich_plain(markup: str) -> str:
    out = io.StringIO()
    Console(file=out, highlight=False, soft_wrap=True, force_terminal=False).print(markup)
    return out.getvalue()


@pytest.mark.parametrize("text", TEXTS)
def test_plain_lines_match_rich(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.markup import escape

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    lazy = render.LazyConsole(stderr=False)
    lazy.line(("cyan", "→"), ("", f" {text}"))
    lazy.line(("", "  "), ("green", "✓"), ("", " 12 ms"), ("", " "), ("dim", text))
    render.LazyConsole(stderr=True).line(("bold red", "error:"), ("", f" {text}"))

    assert out.getvalue() == _rich_plain(f"[cyan]→[/] {escape(text)}") + _rich_plain(
        f"  [green]✓[/] 12 ms [dim]{escape(text)}[/]"
    )
    assert err.getvalue() == _rich_plain(f"[bold red]error:[/] {escape(text)}")
    assert lazy._console is None  # rich was never needed


def test_step_lines_and_errors_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    printer = render.StepPrinter()
    step = EnsureProxy("haproxy is not running")
    printer.step_started(step)
    printer.step_finished(step, 0.0123, "cutover 0.4 ms")
    render.print_error(DeployFailedError("it failed", details=["last log line"]))

    assert out.getvalue() == f"→ {step.describe()}\n  ✓ 12 ms cutover 0.4 ms\n"
    assert err.getvalue() == "error: it failed\n  last log line\n"


def test_forced_colour_goes_through_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    lazy = render.LazyConsole(stderr=False)
    lazy.line(("green", "✓"), ("", " done"))

    assert "\x1b[" in out.getvalue() and "done" in out.getvalue()
