"""The hooks strategy of preview databases: real scripts in a temporary directory, run as the controller
would run them."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from shipyard.adapters.preview_databases import HookDatabases, preview_databases
from shipyard.domain.spec import PreviewDatabaseHooksSpec, PreviewDatabaseSpec
from shipyard.errors import ConfigError, ExternalError, NotFoundError

pytestmark = pytest.mark.integration

DATABASE_URL = "postgresql://preview:hook-secret-password@db.internal:5432/shop_pr_4"


def no_secrets(name: str) -> str:
    raise NotFoundError(f"the preview environment has no secret {name}.")


def script(directory: Path, name: str, body: str, interpreter: str = "/bin/sh") -> str:
    path = directory / name
    path.write_text(f"#!{interpreter}\n{body}")
    path.chmod(0o755)
    return str(path)


def hooks(create: list[str], destroy: list[str], timeout: float = 60.0) -> HookDatabases:
    return HookDatabases(PreviewDatabaseHooksSpec(create=create, destroy=destroy), timeout=timeout)


def test_create_returns_the_last_stdout_line_and_logs_the_rest_without_it(tmp_path: Path) -> None:
    create = script(
        tmp_path,
        "create.sh",
        f'echo "cloning for $PREVIEW_APP #$PREVIEW_PR"\necho "url will be {DATABASE_URL}" >&2\n'
        f"echo {DATABASE_URL}\necho\n",
    )
    databases = preview_databases(
        PreviewDatabaseSpec(hooks=PreviewDatabaseHooksSpec(create=[create], destroy=["/bin/true"])),
        no_secrets,
    )
    with capture_logs() as logs:
        assert databases.create("shop", 4) == DATABASE_URL
    assert len(logs) == 1
    assert logs[0]["stdout"] == "cloning for shop #4"
    assert logs[0]["stderr"] == "url will be ***"
    assert logs[0]["status"] == 0
    assert "hook-secret-password" not in repr(logs)


def test_hooks_see_only_the_preview_variables_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "SHIPYARD_CONTROLLER_DATABASE_URL", "postgresql://controller:do-not-leak@db/controller"
    )
    seen = tmp_path / "seen"
    dump = (
        f"import json, os\njson.dump(dict(os.environ), open({str(seen)!r}, 'w'))\nprint({DATABASE_URL!r})\n"
    )
    program = script(tmp_path, "dump.py", dump, interpreter=sys.executable)

    hooks([program], [program]).create("shop", 12)
    environment = json.loads(seen.read_text())
    assert set(environment) <= {"PREVIEW_APP", "PREVIEW_PR", "PATH", "LC_CTYPE"}  # Python may add LC_CTYPE
    assert environment["PREVIEW_APP"] == "shop"
    assert environment["PREVIEW_PR"] == "12"
    assert environment["PATH"]

    seen.unlink()
    hooks([program], [program]).destroy("shop", 13)
    assert json.loads(seen.read_text())["PREVIEW_PR"] == "13"


def test_arguments_reach_the_program_verbatim_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    arguments = tmp_path / "arguments"
    program = script(tmp_path, "args.sh", f'printf "%s\\n" "$@" > {arguments}\necho {DATABASE_URL}\n')
    injected = f"$(touch {marker}); touch {marker}"

    hooks([program, injected, "*"], ["/bin/true"]).create("shop", 1)
    assert arguments.read_text().splitlines() == [injected, "*"]
    assert not marker.exists()


def test_a_failing_hook_is_one_error_with_the_tail_of_its_stderr(tmp_path: Path) -> None:
    failing = script(
        tmp_path,
        "fail.sh",
        'for i in 1 2 3 4 5 6 7; do echo "line $i" >&2; done\necho "role shop does not exist" >&2\nexit 3\n',
    )
    databases = hooks([failing], [failing])
    with capture_logs() as logs, pytest.raises(ExternalError) as raised:
        databases.create("shop", 2)
    assert str(raised.value) == (
        "the create hook (fail.sh) exited with 3: "
        "line 4 | line 5 | line 6 | line 7 | role shop does not exist."
    )
    assert logs[0]["status"] == 3
    with pytest.raises(ExternalError, match=r"^the destroy hook \(fail.sh\) exited with 3: "):
        databases.destroy("shop", 2)


def test_a_create_that_prints_no_url_is_an_error(tmp_path: Path) -> None:
    silent = script(tmp_path, "silent.sh", "echo only-on-stderr >&2\n")
    with pytest.raises(ExternalError, match="printed no DATABASE_URL"):
        hooks([silent], ["/bin/true"]).create("shop", 2)


def test_a_hook_past_its_timeout_is_stopped_with_its_children(tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    slow = script(tmp_path, "slow.sh", f"sleep 600 &\necho $! > {child}\nwait\n")
    with pytest.raises(ExternalError) as raised:
        hooks([slow], ["/bin/true"], timeout=1).create("shop", 5)
    assert str(raised.value) == (
        "the create hook (slow.sh) did not finish within 1 s and was stopped; make it faster or find what it "
        "waits for."
    )
    stat = Path(f"/proc/{child.read_text().strip()}/stat")
    for _ in range(100):
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the hook's child process still runs")


def test_a_hook_program_that_cannot_run_is_a_config_error(tmp_path: Path) -> None:
    not_executable = tmp_path / "plain.sh"
    not_executable.write_text("echo hi\n")
    with pytest.raises(ConfigError, match=r"^the create hook's program '/nonexistent/create' cannot be run"):
        hooks(["/nonexistent/create"], ["/bin/true"]).create("shop", 1)
    with pytest.raises(ConfigError, match="cannot be run"):
        hooks(["/bin/true"], [str(not_executable)]).destroy("shop", 1)


def test_bad_preview_names_never_reach_a_hook(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    program = script(tmp_path, "touch.sh", f"touch {ran}\necho {DATABASE_URL}\n")
    for app, pr in [("../etc", 1), ("shop", -1), ("shop", "1")]:
        with pytest.raises(ConfigError):
            hooks([program], [program]).create(app, pr)  # type: ignore[arg-type]
    assert not ran.exists()
