"""Editing an environment's secrets in the user's $EDITOR.

The decrypted values exist in clear only in a private (0700) temporary directory, for as long
as the editor runs, and are deleted afterwards whatever happens.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from shipyard.errors import ConfigError, SecretError

DEFAULT_EDITOR = "vi"


def editor_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """$VISUAL, else $EDITOR, else vi; split like a shell would ("code --wait")."""
    source = os.environ if environ is None else environ
    return shlex.split(source.get("VISUAL") or source.get("EDITOR") or DEFAULT_EDITOR)


def edit_values(values: Mapping[str, str], editor: list[str], *, label: str) -> dict[str, str]:
    """Let the user edit ``values`` as a JSON object; returns the edited map."""
    folder = Path(tempfile.mkdtemp(prefix="shipyard-secrets-"))
    try:
        os.chmod(folder, 0o700)
        draft = folder / f"{label}.json"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(dict(values), handle, indent=2, sort_keys=True)
            handle.write("\n")
        _run_editor(editor, draft)
        return _parse(draft.read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_editor(editor: list[str], draft: Path) -> None:
    try:
        finished = subprocess.run([*editor, str(draft)], check=False)
    except FileNotFoundError as exc:
        raise ConfigError(f"editor {editor[0]!r} not found; set $EDITOR to an installed editor.") from exc
    if finished.returncode != 0:
        raise SecretError(f"the editor exited with status {finished.returncode}, so nothing was saved.")


def _parse(text: str) -> dict[str, str]:
    try:
        edited = json.loads(text)
    except json.JSONDecodeError as exc:
        # Position only, and not chained: the decode error carries the whole (secret) text.
        raise ConfigError(
            f"the edited secrets are not valid JSON (line {exc.lineno}, column {exc.colno}); "
            "nothing was saved."
        ) from None
    if not isinstance(edited, dict) or not all(isinstance(v, str) for v in edited.values()):
        raise ConfigError(
            'the edited secrets must be one JSON object of "NAME": "value" strings; nothing was saved.'
        )
    return edited
