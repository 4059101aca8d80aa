"""The agent's identity: its own agent token, from a file or by spending a one-time join token."""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import ConfigError
from shipyard.files import restrict, write_private
from shipyard.fleet_api.client import ControllerClient

TOKEN_FILE_NAME = "agent-token"


def read_token(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
        restrict(path)  # a token file left readable by others is made 0600 before it is used
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the agent token file {path}: {exc.strerror}.") from exc
    return text or None


def write_token(path: Path, token: str) -> None:
    """Write the token readable by its owner only (0600), replacing the file atomically."""
    try:
        write_private(path, token + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the agent token file {path}: {exc.strerror}.") from exc


def agent_token(
    client: ControllerClient,
    token_file: Path,
    *,
    join_token: str | None,
    name: str,
    address: str,
    labels: dict[str, str],
    group: str | None,
    agent_version: str,
) -> str:
    """The saved agent token, or a new one from registering with the join token (then saved)."""
    saved = read_token(token_file)
    if saved:
        return saved
    if not join_token:
        raise ConfigError(
            f"no agent token in {token_file} and no join token; pass --join-token (an admin creates one)."
        )
    answer = client.register_agent(
        join_token, name, address=address, labels=labels, agent_version=agent_version
    )
    write_token(token_file, answer.agent_token)
    if group is not None and answer.group != group:
        raise ConfigError(
            f"the join token puts {name} in group {answer.group!r}, not {group!r}; "
            f"ask an admin for a join token of {group!r}."
        )
    return answer.agent_token
