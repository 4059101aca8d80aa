"""Build secrets: resolved before the build starts, handed to BuildKit as files nobody else can read.

Each ``build.secrets`` entry names its value's source: an environment variable (``env``), a file
(``file``, relative to shipyard.yml) or the encrypted secret store (``secret``). The values are
written to 0600 files in a fresh 0700 directory outside the build context, passed as
``--secret id=ID,src=FILE`` and deleted when the build ends. A Dockerfile reads one with
``RUN --mount=type=secret,id=ID``; it never reaches the context or a layer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from shipyard.adapters.registry import Credentials
from shipyard.domain.spec import BuildSecretSpec
from shipyard.errors import BuildError, SecretError
from shipyard.secrets.masking import register_secret
from shipyard.secrets.store import SecretStore


def resolve_build_secrets(
    specs: Sequence[BuildSecretSpec],
    store: SecretStore,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Secret id -> value for every entry; one SecretError naming every missing one."""
    values, missing = _collect(specs, store, base_dir, environ)
    if missing:
        many = len(missing) > 1
        raise SecretError(
            f"the build needs {len(missing)} secret{'s' if many else ''} that {'are' if many else 'is'} "
            f"not set: {'; '.join(missing)}. Set {'them' if many else 'it'}, then build again.",
            details=missing,
        )
    return values


def available_build_secrets(
    specs: Sequence[BuildSecretSpec],
    store: SecretStore,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The build secrets that are set (a scan looks for those it can, without failing on the rest)."""
    return _collect(specs, store, base_dir, environ)[0]


def known_secret_values(
    store: SecretStore, build_values: Mapping[str, str], credentials: Credentials | None
) -> dict[str, str]:
    """Every value a scan must not find in an image: the env's store, build secrets, registry password."""
    known = {**(store.items() if store.exists() else {}), **build_values}
    if credentials is not None:
        known["registry password"] = credentials.password
    return known


def _collect(
    specs: Sequence[BuildSecretSpec], store: SecretStore, base_dir: Path, environ: Mapping[str, str] | None
) -> tuple[dict[str, str], list[str]]:
    environ = os.environ if environ is None else environ
    stored = store.items() if store.exists() and any(spec.secret for spec in specs) else {}
    values: dict[str, str] = {}
    missing: list[str] = []
    for spec in specs:
        value = _value_of(spec, stored, base_dir, environ)
        if value is None:
            missing.append(_source_of(spec, store.env))
        else:
            values[spec.id] = value
            register_secret(value)
    return values, missing


def _value_of(
    spec: BuildSecretSpec, stored: Mapping[str, str], base_dir: Path, environ: Mapping[str, str]
) -> str | None:
    if spec.env is not None:
        return environ.get(spec.env)
    if spec.file is not None:
        path = base_dir / Path(spec.file).expanduser()
        try:
            return path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"the build secret file {path} cannot be read ({type(exc).__name__}).") from exc
    name = spec.secret or ""
    return stored.get(name, environ.get(name))


def _source_of(spec: BuildSecretSpec, env: str) -> str:
    if spec.env is not None:
        return f"build secret {spec.id}: environment variable {spec.env} (export it)"
    if spec.file is not None:
        return f"build secret {spec.id}: file {spec.file} does not exist"
    return (
        f"build secret {spec.id}: secret {spec.secret} "
        f"(add it with 'shipyard secrets set {spec.secret} --env {env}')"
    )


@contextmanager
def secret_files(values: Mapping[str, str], *, outside: Path | None = None) -> Iterator[dict[str, Path]]:
    """Secret id -> a 0600 file holding its value, in a 0700 directory deleted on exit."""
    folder = Path(tempfile.mkdtemp(prefix="shipyard-build-secrets-"))
    try:
        if outside is not None and folder.resolve().is_relative_to(outside.resolve()):
            raise BuildError(
                f"the temporary directory {folder} lies inside the build context; set TMPDIR elsewhere."
            )
        os.chmod(folder, 0o700)
        files: dict[str, Path] = {}
        for index, (secret_id, value) in enumerate(sorted(values.items())):
            path = folder / f"secret-{index}"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(value)
            files[secret_id] = path
        yield files
    finally:
        shutil.rmtree(folder, ignore_errors=True)
