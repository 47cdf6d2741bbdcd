"""The serving package's floor plan: no import circle, layers import downwards, short functions.

Every import counts, lazy (inside a function) and type-only (under ``TYPE_CHECKING``) alike: a
circle closed by one of them is still a circle (STYLE.md, "Layered sub-packages").
"""

from __future__ import annotations

import ast
from pathlib import Path

import streamrec.serving

ROOT = Path(streamrec.serving.__file__).parent
PACKAGE = "streamrec.serving"
MAX_FUNCTION_LINES = 80

#: Each floor may import only from the floors listed (and itself); the top may import all.
FLOORS = {
    "metrics": set(),
    "live": {"metrics"},
    "online": {"live", "metrics"},
    "feeds": {"live", "metrics"},
    "service": {"live", "online", "feeds", "metrics"},
    "http": {"service", "live", "online", "feeds", "metrics"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([PACKAGE, *parts])] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The serving modules ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = f"{base}.{node.module}" if node.level and node.module else (
                base if node.level else node.module or "")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _floor(module: str) -> str:
    rest = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    return rest.split(".")[0]


def test_serving_has_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_serving_floors_import_only_downwards():
    wrong = [(a, b) for a, targets in _graph().items() for b in targets
             if _floor(a) in FLOORS and _floor(b) != _floor(a)
             and _floor(b) not in FLOORS[_floor(a)]]
    assert wrong == []


def test_no_serving_function_is_longer_than_80_lines():
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append((name, node.name, lines))
    assert long == []


def test_the_floor_checks_see_every_sub_package():
    graph = _graph()
    assert {"live", "feeds", "online", "http", "service", "app"} <= {_floor(m) for m in graph}
    # The checker itself resolves relative imports: the app reaches the HTTP views.
    assert f"{PACKAGE}.http.recommend" in graph[f"{PACKAGE}.app"]
