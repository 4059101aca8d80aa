"""`shipyard signing-key`: make the Ed25519 key pair that signs releases (controller or CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import JsonOption, handle_errors
from shipyard.cli.render import print_json, say
from shipyard.errors import ConfigError
from shipyard.signing import generate_private_key, key_id, public_key_pem, write_private_key


@handle_errors
def signing_key(
    path: Annotated[
        Path, typer.Argument(help="private key file to write (0600); the public key goes to PATH.pub")
    ],
    force: Annotated[bool, typer.Option("--force", help="overwrite existing key files")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a new release signing key pair: the private key for the controller or CI, PATH.pub for agents."""
    public_path = path.with_name(path.name + ".pub")
    for existing in (path, public_path):
        if existing.exists() and not force:
            raise ConfigError(f"{existing} already exists; pass --force to replace the key pair.")
    key = generate_private_key()
    write_private_key(path, key)
    try:
        public_path.write_bytes(public_key_pem(key.public_key()))
    except OSError as exc:
        raise ConfigError(f"cannot write {public_path}: {exc.strerror or exc}.") from exc
    if as_json:
        print_json(
            {"private_key": str(path), "public_key": str(public_path), "key_id": key_id(key.public_key())}
        )
        return
    say(
        f"wrote {path} (private, key id {key_id(key.public_key())}) and {public_path} (give it to the agents)"
    )
