"""The host's layering, read from the source with `ast`: only adapters touch the Docker SDK or the
haproxy runtime client, and the host and domain packages import each other without a circle (a
function-level import counts: hiding a circle inside a function does not remove it)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import shipyard

ROOT = Path(shipyard.__file__).parent
ADAPTER_ONLY = ("docker", "shipyard.adapters.docker", "shipyard.adapters.haproxy")


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imported(module: str, path: Path) -> set[str]:
    """Every module the file imports, at any depth of the code (TYPE_CHECKING blocks included)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_only_adapters_import_the_docker_sdk_or_the_haproxy_client() -> None:
    offenders = []
    for module, path in modules():
        if is_under(module, "shipyard.adapters") or is_under(module, "shipyard.lab"):
            continue  # the lab drives real daemons on purpose, as the tests do
        for name in imported(module, path):
            if any(is_under(name, forbidden) for forbidden in ADAPTER_ONLY):
                offenders.append(f"{module} imports {name}")
    # The one sanctioned exception: the context names the concrete adapters (lazily).
    allowed = {"shipyard.host.context"}
    assert [line for line in offenders if line.split()[0] not in allowed] == []


def test_the_interpreter_and_the_domain_load_neither_docker_nor_httpx() -> None:
    light = {m: p for m, p in modules() if is_under(m, "shipyard.domain") or m == "shipyard.host.interpreter"}
    heavy = ("docker", "httpx", "shipyard.adapters.docker", "shipyard.adapters.haproxy")
    found = [
        f"{module} imports {name}"
        for module, path in light.items()
        for name in imported(module, path)
        if any(is_under(name, h) for h in heavy)
    ]
    assert found == []


def test_no_import_circle_among_host_and_domain_modules() -> None:
    scope = {m: p for m, p in modules() if is_under(m, "shipyard.host") or is_under(m, "shipyard.domain")}
    graph = {
        module: {
            target
            for name in imported(module, path)
            for target in (name, name.rpartition(".")[0])
            if target in scope and target != module
        }
        for module, path in scope.items()
    }
    cycles = []
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_circle_finder_finds_a_circle_hidden_in_a_function(tmp_path: Path) -> None:
    source = tmp_path / "hidden.py"
    source.write_text("def later():\n    from shipyard.host.service import recover\n")
    assert "shipyard.host.service" in imported("shipyard.host.hidden", source)
