"""The installed package holds no test support, and its packages are named for what they hold."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import shipyard

PACKAGE = Path(shipyard.__file__).parent
TEST_SUPPORT = {"support", "tests", "conftest", "pytest"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_of_the_package_imports_test_support() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(imported_roots(path) & TEST_SUPPORT)
        for path in PACKAGE.rglob("*.py")
        if imported_roots(path) & TEST_SUPPORT
    }
    assert offenders == {}


def test_the_package_ships_no_test_fixtures() -> None:
    assert not list(PACKAGE.rglob("fixtures.py"))
    assert importlib.util.find_spec("support.images") is not None  # on the test path, outside the package
    assert not Path(importlib.util.find_spec("support.images").origin or "").is_relative_to(PACKAGE)


def test_the_image_package_is_not_named_like_build_output() -> None:
    # `build/` is skipped by tools that ignore build output; the images package is shipyard.imaging
    assert not (PACKAGE / "build").exists()
    assert importlib.util.find_spec("shipyard.imaging.pipeline") is not None
