"""The package's layering, read from the source: no import cycle (function-local imports
included, so none can hide one), evaluation below training, the spine below both."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """metra module -> the metra modules it imports anywhere in its body."""
    modules = {module_name(p): p for p in (SRC / "metra").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named = {f"{node.module}.{a.name}" for a in node.names}
                targets |= {m for m in named if m in modules} or {node.module}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


def test_find_cycle_sees_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("metra.eval", ("metra.train", "metra.api", "metra.cli")),
        ("metra.run", ("metra.train", "metra.eval", "metra.api", "metra.cli")),
        ("metra.envs", ("metra.train", "metra.eval", "metra.run", "metra.agents")),
        ("metra.agents", ("metra.train", "metra.eval", "metra.run", "metra.envs")),
    ],
)
def test_layers(package: str, forbidden: tuple[str, ...]) -> None:
    graph = import_graph()
    bad = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module == package or module.startswith(package + ".")
        for target in targets
        if target.startswith(forbidden)
    )
    assert bad == []
