"""The server's module layout: no import cycle between its modules, SQL only in the store, each module importable.

A cycle (the runtime importing sagas importing the runtime) makes every module
depend on all the others; these checks read the source, so they are cheap and
say which import or which statement is out of place.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "pipelinectl" / "server"
MODULES = sorted(p.stem for p in SERVER.glob("*.py") if p.stem not in ("__init__", "__main__"))
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|BEGIN|COMMIT|ROLLBACK)\b")


def is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def server_imports(tree: ast.AST) -> set[str]:
    """Sibling modules a module imports anywhere (functions too), except under `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if is_type_checking(node):
            return
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif (node.module or "").startswith("pipelinectl.server."):
                found.add(node.module.split(".")[2])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found & set(MODULES)


def graph() -> dict[str, set[str]]:
    return {name: server_imports(ast.parse((SERVER / f"{name}.py").read_text())) for name in MODULES}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_no_import_cycle_between_server_modules():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_parts_depend_on_the_store_not_on_the_runtime():
    edges = graph()
    for part in ("sagas", "scheduler", "verbs"):
        assert "store" in edges[part], part
        assert "runtime" not in edges[part], f"{part} imports the runtime"
    assert edges["store"] == set(), "the store depends on nothing else in the server"
    assert "verbs" not in edges["sagas"] and "scheduler" not in edges["sagas"]


def test_only_the_store_holds_sql():
    offenders = []
    for name in MODULES:
        if name == "store":
            continue
        for node in ast.walk(ast.parse((SERVER / f"{name}.py").read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
                offenders.append(f"{name}.py:{node.lineno}: {node.value.strip()[:60]}")
    assert not offenders, "SQL belongs in store.py: " + "; ".join(offenders)


@pytest.mark.parametrize("name", MODULES)
def test_each_module_imports_on_its_own(name):
    r = subprocess.run([sys.executable, "-c", f"import pipelinectl.server.{name}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
