"""How a job's git reaches the repository: ssh URLs, the deploy key file, never a prompt."""

from __future__ import annotations

import base64
import shlex
import stat
from pathlib import Path

import pytest

from shipyard.controller.server.pipeline import git_access
from shipyard.domain.spec import SecretsSpec
from shipyard.errors import SecretError
from shipyard.secrets.factory import open_store
from shipyard.secrets.masking import forget_registered_secrets
from shipyard.secrets.redaction import Redactor

KEY = "\n".join(
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
        "-----END OPENSSH PRIVATE KEY-----",
    ]
)


@pytest.mark.parametrize(
    ("url", "ssh"),
    [
        ("git@github.com:acme/web.git", True),
        ("ssh://git@github.com/acme/web.git", True),
        ("ssh://127.0.0.1:2222/srv/web.git", True),
        ("git+ssh://git@host/web.git", True),
        ("https://github.com/acme/web.git", False),
        ("file:///srv/git/web.git", False),
        ("/srv/git/web.git", False),
    ],
)
def test_ssh_urls(url: str, ssh: bool) -> None:
    assert git_access.is_ssh_url(url) is ssh


def test_git_never_prompts_and_checks_host_keys(tmp_path: Path) -> None:
    plain = git_access.git_environment({"PATH": "/usr/bin"}, None)
    assert plain["GIT_TERMINAL_PROMPT"] == "0" and plain["PATH"] == "/usr/bin"
    assert shlex.split(plain["GIT_SSH_COMMAND"]) == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
    ]
    keyed = git_access.git_environment({}, tmp_path / "a dir" / "deploy_key")
    argv = shlex.split(keyed["GIT_SSH_COMMAND"])
    assert argv[argv.index("-i") + 1] == str(tmp_path / "a dir" / "deploy_key")
    assert "IdentitiesOnly=yes" in argv


def test_the_key_comes_from_the_controller_store_into_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", base64.b64encode(b"k" * 32).decode())
    with pytest.raises(SecretError, match=r"has no secrets yet"):
        git_access.read_deploy_key(tmp_path, "web_deploy")
    open_store(SecretsSpec(), tmp_path, "controller").set("web_deploy", KEY)
    key = git_access.read_deploy_key(tmp_path, "web_deploy")
    assert key == KEY + "\n"
    path = git_access.write_key_file(tmp_path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == key
    forget_registered_secrets()


def test_a_key_added_to_the_redactor_disappears_line_by_line() -> None:
    forget_registered_secrets()
    redact = Redactor()
    redact.add(KEY)
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in redact(
        "line b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
    )
    assert redact(KEY).count("***") >= 1 and "b3Bl" not in redact(KEY)
