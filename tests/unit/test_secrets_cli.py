"""The ``shipyard secrets`` sub-app, driven through Typer's CliRunner."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from shipyard.cli.secrets_cmd import secrets_app

DB_URL = "postgres://app:hunter2@db/app"
runner = CliRunner()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_MASTER_KEY", raising=False)
    repo = tmp_path / "app"
    repo.mkdir()
    key_file = tmp_path / "keys" / "master.key"
    (repo / "shipyard.yml").write_text(
        f"app: web\nimage: registry:5000/web\nsecrets:\n  provider: local\n  key_file: {key_file}\n"
    )
    assert run(repo, "init-key").exit_code == 0
    return repo


def run(repo: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(secrets_app, [*args, "--config", str(repo / "shipyard.yml")], input=stdin, env=env)


def assert_clean_failure(result: Result, exit_code: int) -> None:
    assert result.exit_code == exit_code
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_set_reads_stdin_and_get_prints_the_value(repo: Path) -> None:
    set_result = run(repo, "set", "DATABASE_URL", stdin=DB_URL + "\n")
    get_result = run(repo, "get", "DATABASE_URL")

    assert set_result.exit_code == 0, set_result.output
    assert "hunter2" not in set_result.output
    assert "set DATABASE_URL in env production" in set_result.stderr
    assert get_result.stdout == DB_URL + "\n"
    assert (repo / ".shipyard" / "secrets" / "production.enc").is_file()


def test_a_value_is_never_accepted_as_an_argument(repo: Path) -> None:
    result = run(repo, "set", "DATABASE_URL", DB_URL)

    assert result.exit_code == 2
    assert not (repo / ".shipyard").exists()


def test_set_from_a_file_keeps_it_verbatim(repo: Path, tmp_path: Path) -> None:
    pem = tmp_path / "tls.pem"
    pem.write_text("-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n-----END KEY-----\n")

    assert run(repo, "set", "TLS_KEY", "--file", str(pem), "--env", "staging").exit_code == 0

    assert run(repo, "get", "TLS_KEY", "--env", "staging").stdout == pem.read_text()


def test_set_with_empty_stdin_is_a_config_error(repo: Path) -> None:
    result = run(repo, "set", "DATABASE_URL", stdin="")

    assert_clean_failure(result, 2)
    assert "no value for DATABASE_URL on stdin" in result.stderr


def test_list_shows_names_only(repo: Path) -> None:
    run(repo, "set", "DATABASE_URL", stdin=DB_URL)
    run(repo, "set", "API_TOKEN", stdin="tok-0123456789")

    plain = run(repo, "list")
    as_json = run(repo, "list", "--json")

    assert plain.stdout.splitlines() == ["API_TOKEN", "DATABASE_URL"]
    assert json.loads(as_json.stdout) == {
        "env": "production",
        "file": ".shipyard/secrets/production.enc",
        "names": ["API_TOKEN", "DATABASE_URL"],
    }
    assert "hunter2" not in plain.output + as_json.output


def test_rm_removes_a_secret(repo: Path) -> None:
    run(repo, "set", "DATABASE_URL", stdin=DB_URL)
    run(repo, "set", "API_TOKEN", stdin="tok-0123456789")

    assert run(repo, "rm", "API_TOKEN").exit_code == 0
    assert run(repo, "list").stdout.splitlines() == ["DATABASE_URL"]
    assert_clean_failure(run(repo, "rm", "API_TOKEN"), 11)


def test_get_of_a_missing_env_file_is_one_sentence_with_exit_11(repo: Path) -> None:
    result = run(repo, "get", "DATABASE_URL", "--env", "staging")

    assert_clean_failure(result, 11)
    assert "shipyard secrets set DATABASE_URL --env staging" in result.stderr
    assert result.stdout == ""


def test_a_wrong_master_key_fails_cleanly(repo: Path) -> None:
    run(repo, "set", "DATABASE_URL", stdin=DB_URL)
    other_key = "A" * 43 + "="

    result = run(repo, "get", "DATABASE_URL", env={"SHIPYARD_MASTER_KEY": other_key})

    assert_clean_failure(result, 11)
    assert "cannot be decrypted: wrong master key or the file was modified" in result.stderr
    assert "hunter2" not in result.output


def test_edit_runs_the_editor_on_a_private_copy_and_deletes_it(repo: Path, tmp_path: Path) -> None:
    run(repo, "set", "DATABASE_URL", stdin=DB_URL)
    seen = tmp_path / "seen.json"
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, os, pathlib, stat, sys\n"
        "draft = pathlib.Path(sys.argv[1])\n"
        "values = json.loads(draft.read_text())\n"
        f"pathlib.Path({str(seen)!r}).write_text(json.dumps({{'path': str(draft), 'values': values,\n"
        "    'dir_mode': stat.S_IMODE(draft.parent.stat().st_mode)}))\n"
        "values['API_TOKEN'] = 'tok-from-editor'\n"
        "draft.write_text(json.dumps(values))\n"
    )

    result = run(repo, "edit", env={"VISUAL": "", "EDITOR": f"{sys.executable} {editor}"})

    assert result.exit_code == 0, result.output
    record = json.loads(seen.read_text())
    assert record["values"] == {"DATABASE_URL": DB_URL}
    assert record["dir_mode"] == 0o700
    assert not Path(record["path"]).parent.exists()
    assert run(repo, "get", "API_TOKEN").stdout == "tok-from-editor\n"
    assert "hunter2" not in result.output


def test_edit_saves_nothing_when_the_editor_fails(repo: Path) -> None:
    run(repo, "set", "DATABASE_URL", stdin=DB_URL)
    secrets_file = repo / ".shipyard" / "secrets" / "production.enc"
    before = secrets_file.read_bytes()

    result = run(repo, "edit", env={"VISUAL": "", "EDITOR": "false"})

    assert_clean_failure(result, 11)
    assert secrets_file.read_bytes() == before


def test_rotate_to_a_new_key_file_for_every_env(repo: Path, tmp_path: Path) -> None:
    for env in ("production", "staging"):
        run(repo, "set", "DATABASE_URL", "--env", env, stdin=f"{DB_URL}-{env}")
    new_key = tmp_path / "keys" / "new.key"
    assert run(repo, "init-key", "--key-file", str(new_key)).exit_code == 0

    result = run(repo, "rotate", "--all-envs", "--new-key-file", str(new_key))

    assert result.exit_code == 0, result.output
    assert "rotated env production" in result.stderr and "rotated env staging" in result.stderr
    assert_clean_failure(run(repo, "get", "DATABASE_URL"), 11)
    with_new_key = {"SHIPYARD_MASTER_KEY": new_key.read_text().strip()}
    for env in ("production", "staging"):
        assert run(repo, "get", "DATABASE_URL", "--env", env, env=with_new_key).stdout == f"{DB_URL}-{env}\n"


def test_rotate_with_the_same_key_keeps_values(repo: Path) -> None:
    run(repo, "set", "DATABASE_URL", stdin=DB_URL)
    secrets_file = repo / ".shipyard" / "secrets" / "production.enc"
    before = json.loads(secrets_file.read_text())

    assert run(repo, "rotate").exit_code == 0

    assert json.loads(secrets_file.read_text())["wrapped_key"] != before["wrapped_key"]
    assert run(repo, "get", "DATABASE_URL").stdout == DB_URL + "\n"


def test_init_key_without_a_config_uses_the_home_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    result = runner.invoke(secrets_app, ["init-key"])

    key_file = tmp_path / "home" / ".config" / "shipyard" / "master.key"
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in result.output
    assert_clean_failure(runner.invoke(secrets_app, ["init-key"]), 11)


def test_an_explicit_config_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    result = runner.invoke(secrets_app, ["list", "--config", str(tmp_path / "nope.yml")])

    assert_clean_failure(result, 2)
    assert "nope.yml not found" in result.stderr
