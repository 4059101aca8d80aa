"""``shipyard secrets``: manage the encrypted per-environment secrets of an app.

Values are read from stdin or a file, never from an argument (shell history), and ``get`` is
the only command that prints one. Status lines go to stderr, data to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shipyard.domain.spec import SecretsSpec, load_spec
from shipyard.errors import ConfigError, ShipyardError
from shipyard.secrets.editing import edit_values, editor_command
from shipyard.secrets.factory import key_file_path, kms_provider, local_provider, open_store
from shipyard.secrets.local_key import MASTER_KEY_ENV, create_key_file
from shipyard.secrets.masking import mask
from shipyard.secrets.provider import KeyProvider
from shipyard.secrets.store import SecretStore, list_envs, validate_secret

DEFAULT_CONFIG = Path("shipyard.yml")

secrets_app = typer.Typer(
    name="secrets",
    help="Manage per-environment secrets, encrypted in .shipyard/secrets/<env>.enc (safe to commit).",
    no_args_is_help=True,
)

EnvOption = Annotated[str, typer.Option("--env", "-e", help="Environment whose secrets to use.")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Path to shipyard.yml [default: ./shipyard.yml].")
]
RepoOption = Annotated[
    Path | None, typer.Option("--repo", help="Repository root [default: the directory of the config file].")
]
NameArgument = Annotated[str, typer.Argument(help="Secret name, e.g. DATABASE_URL.")]


def _say(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(mask(message), markup=False)


@contextmanager
def _reported() -> Iterator[None]:
    """Turn a ShipyardError into one sentence on stderr and its exit code, never a traceback."""
    try:
        yield
    except ShipyardError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            mask(exc.message), markup=False, style="red"
        )
        raise typer.Exit(exc.exit_code) from None


def _settings(config: Path | None, repo: Path | None) -> tuple[SecretsSpec, Path]:
    # Without a shipyard.yml the defaults apply, but a --config given explicitly must exist.
    path = config or DEFAULT_CONFIG
    spec = load_spec(path).secrets if config is not None or path.is_file() else SecretsSpec()
    return spec, (repo or path.absolute().parent)


def _store(env: str, config: Path | None, repo: Path | None) -> SecretStore:
    spec, repo_root = _settings(config, repo)
    return open_store(spec, repo_root, env)


def _read_value(name: str, file: Path | None) -> str:
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{file} is not UTF-8 text; base64-encode binary values first.") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read {file}: {exc.strerror}.") from exc
    if sys.stdin.isatty():
        return str(typer.prompt(f"Value of {name}", hide_input=True, confirmation_prompt=True))
    value = sys.stdin.read()
    # `echo value |` and here-strings add one newline that is not part of the value.
    value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise ConfigError(f"no value for {name} on stdin: pipe it in or pass --file PATH.")
    return value


@secrets_app.command("set")
def set_secret(
    name: NameArgument,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the value from this file (kept verbatim).")
    ] = None,
    env: EnvOption = "production",
    config: ConfigOption = None,
    repo: RepoOption = None,
) -> None:
    """Set a secret, reading its value from stdin (or --file), never from the command line."""
    with _reported():
        validate_secret(name, "")
        store = _store(env, config, repo)
        store.set(name, _read_value(name, file))
        _say(f"set {name} in env {env} ({store.shown_path}).")


@secrets_app.command("get")
def get_secret(
    name: NameArgument, env: EnvOption = "production", config: ConfigOption = None, repo: RepoOption = None
) -> None:
    """Print the value of a secret to stdout."""
    with _reported():
        value = _store(env, config, repo).get(name)
    sys.stdout.write(value if value.endswith("\n") else value + "\n")


@secrets_app.command("list")
def list_secrets(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
    env: EnvOption = "production",
    config: ConfigOption = None,
    repo: RepoOption = None,
) -> None:
    """List the secret names of an environment (never the values)."""
    with _reported():
        store = _store(env, config, repo)
        names = store.names()
    if as_json:
        typer.echo(json.dumps({"env": env, "file": store.shown_path, "names": names}))
        return
    if not names:
        _say(f"env {env} has no secrets yet; add one with 'shipyard secrets set NAME --env {env}'.")
    for name in names:
        typer.echo(name)


@secrets_app.command("rm")
def remove_secret(
    name: NameArgument, env: EnvOption = "production", config: ConfigOption = None, repo: RepoOption = None
) -> None:
    """Remove a secret from an environment."""
    with _reported():
        store = _store(env, config, repo)
        store.remove(name)
        _say(f"removed {name} from env {env} ({store.shown_path}).")


@secrets_app.command("edit")
def edit_secrets(env: EnvOption = "production", config: ConfigOption = None, repo: RepoOption = None) -> None:
    """Edit every secret of an environment as JSON in $EDITOR; the clear copy is deleted afterwards."""
    with _reported():
        store = _store(env, config, repo)
        editor = editor_command()
        changed = store.update(lambda values: edit_values(values, editor, label=env))
        _say(f"saved {store.shown_path}." if changed else f"no changes; {store.shown_path} left as it was.")


def _new_provider(
    new_key_file: Path | None, new_kms_key_id: str | None, spec: SecretsSpec
) -> KeyProvider | None:
    if new_key_file is not None and new_kms_key_id is not None:
        raise ConfigError("pass either --new-key-file or --new-kms-key-id, not both.")
    if new_key_file is not None:
        # The new key comes from the file only: SHIPYARD_MASTER_KEY still holds the old one.
        return local_provider(new_key_file.expanduser(), environ={})
    if new_kms_key_id is not None:
        return kms_provider(spec, new_kms_key_id)
    return None


@secrets_app.command("rotate")
def rotate_secrets(
    new_key_file: Annotated[
        Path | None, typer.Option("--new-key-file", help="Re-seal with the local master key in this file.")
    ] = None,
    new_kms_key_id: Annotated[
        str | None, typer.Option("--new-kms-key-id", help="Re-seal with this AWS KMS key.")
    ] = None,
    all_envs: Annotated[
        bool, typer.Option("--all-envs", help="Rotate every environment of the repo.")
    ] = False,
    env: EnvOption = "production",
    config: ConfigOption = None,
    repo: RepoOption = None,
) -> None:
    """Re-encrypt with a new data key, and optionally a new master key; the values stay the same."""
    with _reported():
        spec, repo_root = _settings(config, repo)
        new_provider = _new_provider(new_key_file, new_kms_key_id, spec)
        for name in list_envs(repo_root) if all_envs else [env]:
            key_id = open_store(spec, repo_root, name).rotate(new_provider)
            _say(f"rotated env {name}: new data key, sealed with key {key_id}.")
        if new_key_file is not None:
            hint = f"now set secrets.key_file: {new_key_file} in shipyard.yml"
            _say(f"{hint}, or export {MASTER_KEY_ENV} with its contents.")
        elif new_kms_key_id is not None:
            _say(
                f"now set secrets.provider: aws-kms and secrets.kms_key_id: {new_kms_key_id} in shipyard.yml."
            )


@secrets_app.command("init-key")
def init_key(
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="Where to create the key [default: secrets.key_file or ~/.config/shipyard/master.key].",
        ),
    ] = None,
    config: ConfigOption = None,
    repo: RepoOption = None,
) -> None:
    """Create a new random local master key (mode 0600); an existing key is never overwritten."""
    with _reported():
        spec, repo_root = _settings(config, repo)
        path = key_file.expanduser() if key_file is not None else key_file_path(spec, repo_root)
        provider = create_key_file(path)
        _say(f"created master key {path} (key id {provider.key_id}).")
        _say("back it up: without it the secrets sealed with it are lost.")
        _say(f"for CI and deploy hosts, export {MASTER_KEY_ENV} with the contents of that file.")
