"""The host's operation log: JSON lines with the bound context, masked, exceptions as text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.host.oplog import host_logger
from shipyard.secrets.masking import forget_registered_secrets, register_secret


@pytest.fixture(autouse=True)
def _forget_masks() -> None:
    forget_registered_secrets()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lines_carry_the_context_the_fields_and_the_level(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "shipyard.log"
    log = host_logger(path, app="web", history_id=7, actor="ops")

    log.info("step_done", step="switch haproxy", seconds=0.0123, note="")
    log.bind(release=3).warning("slow")

    done, slow = _lines(path)
    assert list(done)[:7] == ["app", "history_id", "actor", "step", "seconds", "note", "event"]
    assert (done["event"], done["level"], done["app"], done["seconds"]) == (
        "step_done",
        "info",
        "web",
        0.0123,
    )
    assert str(done["timestamp"]).endswith("Z")
    assert (slow["level"], slow["release"], slow["history_id"]) == ("warning", 3, 7)


def test_secrets_are_masked_in_fields_and_in_tracebacks(tmp_path: Path) -> None:
    token = "tok-abcdef-123456"
    register_secret(token)
    path = tmp_path / "shipyard.log"
    log = host_logger(path, app="web")

    log.error("step_failed", error=f"registry refused {token}")
    try:
        raise RuntimeError(f"hook printed {token}")
    except RuntimeError:
        log.error("crashed", exc_info=True)

    text = path.read_text()
    assert token not in text
    failed, crashed = _lines(path)
    assert failed["error"] == "registry refused ***"
    assert "RuntimeError: hook printed ***" in str(crashed["exception"])
