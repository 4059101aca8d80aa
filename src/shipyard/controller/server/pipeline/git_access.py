"""How a job's git reaches the repository: never a prompt, and for ssh URLs the hook's deploy key.

The key comes from the controller's secret store (env `controller` under its SHIPYARD_HOME), is written
to a file only the controller's user can read inside the job's directory, used through
GIT_SSH_COMMAND, and deleted with that directory. Host keys are checked against the controller user's
known_hosts (add the git server's key there first); nothing is accepted blindly.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from shipyard.domain.spec import SecretsSpec
from shipyard.secrets.factory import open_store

CONTROLLER_SECRETS_ENV = "controller"
# git@host:org/app.git (scp-like) or ssh://[user@]host[:port]/path
SSH_URL = re.compile(r"^(ssh://|git\+ssh://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)")


def is_ssh_url(url: str) -> bool:
    return bool(SSH_URL.match(url))


def git_environment(base: Mapping[str, str], key_file: Path | None) -> dict[str, str]:
    """The environment git runs with: no terminal prompts; ssh in batch mode with the key, if any."""
    environment = {**base, "GIT_TERMINAL_PROMPT": "0"}
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if key_file is not None:
        ssh += ["-i", str(key_file), "-o", "IdentitiesOnly=yes"]
    environment["GIT_SSH_COMMAND"] = shlex.join(ssh)
    return environment


def read_deploy_key(secrets_root: Path, name: str) -> str:
    """The key named `name` in the controller's store; SecretError saying how to add it when missing."""
    value = open_store(SecretsSpec(), secrets_root, CONTROLLER_SECRETS_ENV).get(name)
    return value if value.endswith("\n") else value + "\n"  # ssh refuses a key without its last newline


def write_key_file(directory: Path, key: str) -> Path:
    path = directory / "deploy_key"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    return path
