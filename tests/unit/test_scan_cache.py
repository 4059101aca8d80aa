"""The clean-layer cache of build scans: keyed by a salted, slow fingerprint of the rules."""

from __future__ import annotations

import stat
from pathlib import Path

from shipyard.imaging.detectors import scan_rules
from shipyard.imaging.scan_cache import CleanLayers

LAYER_A = "sha256:" + "a" * 64
LAYER_B = "sha256:" + "b" * 64
DB_URL = "postgres://app:hunter2@db/app"


def test_layers_are_clean_once_remembered(tmp_path: Path) -> None:
    cache = CleanLayers(tmp_path, scan_rules({}))
    assert not cache.all_clean([LAYER_A])

    cache.remember([LAYER_A])

    assert cache.all_clean([LAYER_A])
    assert not cache.all_clean([LAYER_A, LAYER_B])
    assert not cache.all_clean([])
    assert CleanLayers(tmp_path, scan_rules({})).all_clean([LAYER_A])


def test_a_new_known_value_invalidates_every_verdict(tmp_path: Path) -> None:
    CleanLayers(tmp_path, scan_rules({})).remember([LAYER_A])

    assert not CleanLayers(tmp_path, scan_rules({"DATABASE_URL": DB_URL})).all_clean([LAYER_A])
    assert not CleanLayers(tmp_path, scan_rules({"DATABASE_URL": DB_URL + "x"})).all_clean([LAYER_A])


def test_the_cache_is_private_and_holds_no_value(tmp_path: Path) -> None:
    CleanLayers(tmp_path / "scan", scan_rules({"DATABASE_URL": DB_URL})).remember([LAYER_A])

    files = [path for path in (tmp_path / "scan").rglob("*") if path.is_file()]
    assert stat.S_IMODE((tmp_path / "scan").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "scan" / "salt").stat().st_mode) == 0o600
    for path in files:
        assert b"hunter2" not in path.read_bytes() and "hunter2" not in str(path)


def test_each_cache_directory_has_its_own_salt(tmp_path: Path) -> None:
    one = CleanLayers(tmp_path / "one", scan_rules({"K": DB_URL}))
    two = CleanLayers(tmp_path / "two", scan_rules({"K": DB_URL}))

    assert one.folder.name != two.folder.name
    assert CleanLayers(tmp_path / "one", scan_rules({"K": DB_URL})).folder == one.folder
