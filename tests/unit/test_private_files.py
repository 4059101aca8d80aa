"""Files holding a token or a key end up 0600 even when a looser file was there before."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shipyard.agent.identity import read_token, write_token
from shipyard.controller.server.settings import read_or_create_token_file
from shipyard.controller.store.db import Database
from shipyard.files import create_private, restrict, write_private
from shipyard.lab.control_plane import write_app_files
from shipyard.lab.state import LabState
from shipyard.secrets.local_key import create_key_file, read_key_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def loose(path: Path, content: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(0o644)
    return path


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that removes nothing: the modes below come from the code, not from the umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_write_private_replaces_a_looser_file_with_a_0600_one(tmp_path: Path, open_umask: None) -> None:
    path = loose(tmp_path / "token", "old")
    write_private(path, "secret\n")
    assert (path.read_text(), mode(path)) == ("secret\n", 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]


def test_write_private_does_not_write_through_a_symlink(tmp_path: Path) -> None:
    elsewhere = loose(tmp_path / "elsewhere", "untouched")
    link = tmp_path / "token"
    link.symlink_to(elsewhere)
    write_private(link, "secret")
    assert elsewhere.read_text() == "untouched"
    assert not link.is_symlink() and mode(link) == 0o600


def test_write_private_without_replace_keeps_an_existing_file(tmp_path: Path) -> None:
    path = loose(tmp_path / "key", "first")
    with pytest.raises(FileExistsError):
        write_private(path, "second", replace=False)
    assert path.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


def test_create_private_and_restrict_tighten_in_place(tmp_path: Path) -> None:
    database = loose(tmp_path / "db", "content")
    create_private(database)
    assert (database.read_text(), mode(database)) == ("content", 0o600)
    wal = loose(tmp_path / "db-wal")
    assert restrict(wal) and mode(wal) == 0o600
    assert not restrict(tmp_path / "absent")


def test_the_agent_token_file_is_0600_over_a_looser_file_and_draft(tmp_path: Path, open_umask: None) -> None:
    path = loose(tmp_path / "agent-token", "sya_old\n")
    loose(tmp_path / "agent-token.tmp")  # the draft name the agent used to reuse, mode and all
    write_token(path, "sya_new")
    assert (read_token(path), mode(path)) == ("sya_new", 0o600)


def test_existing_looser_token_files_are_made_0600_when_read(tmp_path: Path) -> None:
    agent = loose(tmp_path / "agent-token", "sya_agent\n")
    admin = loose(tmp_path / "admin-token", "sya_admin\n")
    assert (read_token(agent), read_or_create_token_file(admin)) == ("sya_agent", "sya_admin")
    assert (mode(agent), mode(admin)) == (0o600, 0o600)


def test_the_bootstrap_token_file_is_0600_over_a_looser_empty_file(tmp_path: Path, open_umask: None) -> None:
    path = loose(tmp_path / "admin-token")
    token = read_or_create_token_file(path)
    assert token.startswith("sya_") and path.read_text().strip() == token
    assert mode(path) == 0o600


def test_the_lab_env_file_is_0600_over_a_looser_file(tmp_path: Path, open_umask: None) -> None:
    state = LabState(root=str(tmp_path), registry_address="127.0.0.1:5000", controller_port=9000)
    loose(state.admin_token_file, "sya_lab\n")
    env = loose(tmp_path / "lab.env")
    write_app_files(state)
    assert mode(env) == 0o600
    assert "SHIPYARD_TOKEN=sya_lab" in env.read_text()


def test_a_new_master_key_is_0600_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "keys" / "master.key"
    create_key_file(path)
    assert mode(path) == 0o600
    assert len(read_key_file(path)) == 32
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.key"]


def test_the_controller_sqlite_files_are_0600(tmp_path: Path, open_umask: None) -> None:
    path = loose(tmp_path / "controller.db")
    loose(tmp_path / "controller.db-wal")
    database = Database(f"sqlite:///{path}")
    try:
        database.migrate()
        with database.transaction() as session:
            session.execute(text("CREATE TABLE probe (id INTEGER)"))
            session.execute(text("INSERT INTO probe VALUES (1)"))
        files = sorted(p.name for p in tmp_path.iterdir())
        assert {"controller.db", "controller.db-wal", "controller.db-shm"} <= set(files)
        assert {name: mode(tmp_path / name) for name in files} == {name: 0o600 for name in files}
    finally:
        database.dispose()


def test_a_fresh_controller_database_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "home" / "controller.db"
    database = Database(f"sqlite:///{path}")
    try:
        database.migrate()
        assert mode(path) == 0o600
        for sibling in path.parent.iterdir():
            assert mode(sibling) == 0o600, sibling.name
    finally:
        database.dispose()
