"""Controller settings: a plain value object, and one function that gathers them from the outside world.

ControllerSettings only stores values, so tests build it directly; load_settings reads the environment
and the bootstrap token file (creating it when asked), the only side effects before the app starts.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipyard.controller.option_bounds import DEFAULT_PREVIEW_RECONCILE_INTERVAL
from shipyard.errors import ConfigError
from shipyard.files import restrict, write_private
from shipyard.signing import load_private_key

DEFAULT_DB_FILE = "shipyard-controller.db"
# Request body limits by path prefix, consulted by whatever bounds request bodies (the longest matching
# prefix wins; other paths get the caller's default). Webhooks carry GitHub's largest payloads.
BODY_LIMITS_BY_PREFIX: dict[str, int] = {"/hooks/": 25 * 1024 * 1024}


def body_limit_for(path: str, default: int) -> int:
    """The most bytes a request body to `path` may have."""
    matches = [prefix for prefix in BODY_LIMITS_BY_PREFIX if path.startswith(prefix)]
    return BODY_LIMITS_BY_PREFIX[max(matches, key=len)] if matches else default


ADMIN_TOKEN_ENV = "SHIPYARD_ADMIN_TOKEN"
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: a spec snapshot or a report of many apps is a few kilobytes
SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 1000**2, "mb": 1000**2}
SIZE_UNITS |= {"mib": 1 << 20, "g": 1000**3, "gb": 1000**3, "gib": 1 << 30}
MAX_BODY_LIMIT = 1 << 30
# A job's lease is renewed every third of it: under 3 s the renewals crowd the database, and past an
# hour a dead controller's job waits too long for its retry.
MIN_JOB_LEASE, MAX_JOB_LEASE = 3.0, 3600.0


@dataclass(frozen=True)
class ControllerSettings:
    database_url: str
    lost_after: float = 30.0
    tick_interval: float = 0.5
    # A long-poll re-reads the database this often even without a local wake-up, so changes made by
    # another controller process sharing the database still reach the agent.
    recheck_interval: float = 1.0
    max_wait: float = 60.0
    # Largest request body accepted, in bytes; larger ones are answered 413 before they are read.
    max_body: int = DEFAULT_MAX_BODY
    # Shown once in the bootstrap file or given by the operator; repr=False keeps it out of logs.
    bootstrap_admin_token: str | None = field(default=None, repr=False)
    # Signs releases created without a CI signature (shipyard.signing); agents verify with its .pub.
    signing_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    # Pipeline jobs: a worker renews its claim this often x3; a lapsed claim is interrupted and retried.
    job_lease: float = 30.0
    run_jobs: bool = True
    # Notifications: the sender looks for due ones this often; a failed post waits base, 2x, 4x ... seconds.
    notify_interval: float = 1.0
    notify_backoff: float = 2.0
    # The preview reconciler's period: TTLs, teardowns of closed PRs, previews.max.
    preview_reconcile_interval: float = DEFAULT_PREVIEW_RECONCILE_INTERVAL
    # Holds .shipyard/secrets/controller.enc: deploy keys that fetch ssh repositories.
    secrets_root: Path = field(default_factory=Path.cwd)
    # Freeze the start-up heap once serving starts (see heap.py): the controller process does; an app
    # made in a test process does not, or every test's app would stay in memory.
    settle_heap: bool = False


def default_database_url(environ: Mapping[str, str]) -> str:
    home = environ.get("SHIPYARD_HOME")
    path = Path(home) / DEFAULT_DB_FILE if home else Path.cwd() / DEFAULT_DB_FILE
    return f"sqlite:///{path}"


def read_or_create_token_file(path: Path) -> str:
    """The admin token in `path`; a fresh one is written (mode 0600) when the file is absent or empty."""
    if path.is_file() and path.read_text().strip():
        try:
            restrict(path)  # a token file left readable by others is made 0600 before it is used
        except OSError as exc:
            raise ConfigError(f"cannot make the bootstrap token file {path} 0600: {exc.strerror}.") from exc
        return path.read_text().strip()
    token = "sya_" + secrets.token_urlsafe(32)
    try:
        write_private(path, token + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the bootstrap token file {path}: {exc.strerror}.") from exc
    return token


def parse_byte_size(text: str) -> int:
    """A byte count from `1048576`, `512KiB`, `1MiB` or `2MB`; ConfigError for anything else."""
    found = re.fullmatch(r"\s*([0-9]{1,12})\s*([A-Za-z]*)\s*", text)
    unit = found.group(2).lower() if found else ""
    size = int(found.group(1)) * SIZE_UNITS[unit] if found and unit in SIZE_UNITS else 0
    if not 0 < size <= MAX_BODY_LIMIT:
        raise ConfigError(
            f"--max-body {text!r} is not a size from 1 byte to 1GiB; give bytes or a unit, e.g. 1MiB."
        )
    return size


def ensure_sqlite_directory(database_url: str) -> None:
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and database_url != prefix + ":memory:":
        Path(database_url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)


def load_settings(
    *,
    database_url: str | None = None,
    lost_after: float = 30.0,
    bootstrap_token_file: Path | None = None,
    signing_key_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    max_body: str | None = None,
    job_lease: float = 30.0,
) -> ControllerSettings:
    env = os.environ if environ is None else environ
    url = database_url or default_database_url(env)
    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise ConfigError(
            f"unsupported database URL scheme in {url.split(':', 1)[0]!r}; use sqlite or postgresql."
        )
    if lost_after <= 0:
        raise ConfigError("--lost-after must be a positive number of seconds.")
    if not MIN_JOB_LEASE <= job_lease <= MAX_JOB_LEASE:
        raise ConfigError(
            f"--job-lease {job_lease:g} is out of range; give {MIN_JOB_LEASE:g} to {MAX_JOB_LEASE:g} seconds "
            "(default 30)."
        )
    body_limit = parse_byte_size(max_body) if max_body is not None else DEFAULT_MAX_BODY
    ensure_sqlite_directory(url)
    token = env.get(ADMIN_TOKEN_ENV) or None
    if bootstrap_token_file is not None:
        token = read_or_create_token_file(bootstrap_token_file)
    signing_key = load_private_key(signing_key_file) if signing_key_file is not None else None
    return ControllerSettings(
        database_url=url,
        lost_after=lost_after,
        bootstrap_admin_token=token,
        signing_key=signing_key,
        max_body=body_limit,
        job_lease=job_lease,
        secrets_root=Path(env.get("SHIPYARD_HOME") or Path.cwd()),
    )
