"""The host's layering, read from the source with `ast`: only adapters touch the Docker SDK or the
haproxy runtime client, and the host and domain packages import each other without a circle (a
function-level import counts: hiding a circle inside a function does not remove it)."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_fakes import FakeEngine, FakeHealth, FakeProxy, FakeReaper

import shipyard
from shipyard.adapters.docker import DockerEngine
from shipyard.adapters.haproxy import HaproxyProcess
from shipyard.host import ports
from shipyard.host.reaper_process import ReaperProcess
from shipyard.host.store import HostStore

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


def _methods(protocol: type) -> dict[str, inspect.Signature]:
    members = {}
    for name, member in vars(protocol).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(member, property):
            members[name] = inspect.Signature()
        elif callable(member):
            members[name] = inspect.signature(member)
    return members


@pytest.mark.parametrize(
    ("protocol", "implementations"),
    [
        (ports.Engine, [FakeEngine, DockerEngine]),
        (ports.Proxy, [FakeProxy, HaproxyProcess]),
        (ports.Store, [HostStore]),
        (ports.HealthCheck, [FakeHealth]),
        (ports.Reaper, [FakeReaper, ReaperProcess]),
    ],
)
def test_the_fakes_and_the_adapters_have_every_method_of_their_port(
    protocol: type, implementations: list[type]
) -> None:
    """Same names and parameters, so a test on the fakes exercises the calls the real host makes."""
    for implementation in implementations:
        for name, wanted in _methods(protocol).items():
            member = getattr(implementation, name, None)
            if member is None and f"self.{name} = " in inspect.getsource(implementation):
                continue  # an attribute set by the constructor
            assert member is not None, f"{implementation.__name__} has no {name}"
            if isinstance(member, property) or not wanted.parameters:
                continue
            have = list(inspect.signature(member).parameters)
            assert have[: len(wanted.parameters)] == list(wanted.parameters), (
                f"{implementation.__name__}.{name}{inspect.signature(member)} is not {name}{wanted}"
            )
