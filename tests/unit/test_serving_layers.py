"""The serving package's floor plan: layers import downwards, and functions are short.

Every import counts, lazy (inside a function) and type-only (under ``TYPE_CHECKING``) alike
(STYLE.md, "Layered sub-packages"); ``test_import_graph.py`` checks that there is no circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

import streamrec.serving

ROOT = Path(streamrec.serving.__file__).parent
PACKAGE = "streamrec.serving"
MAX_FUNCTION_LINES = 80

#: Each floor may import only from the floors listed (and itself); the top may import all.
FLOORS = {
    "metrics": set(),
    "groups": set(),  # the forwarding client and the group prefix: no serving state
    "live": {"metrics"},
    "online": {"live", "metrics"},
    "feeds": {"live", "metrics"},
    "placements": {"live", "feeds", "metrics"},
    "service": {"live", "online", "feeds", "placements", "groups", "metrics"},
    "http": {"service", "live", "online", "feeds", "placements", "groups", "metrics"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([PACKAGE, *parts])] = path
    return found


def _graph() -> dict[str, set[str]]:
    """The serving modules each serving module imports, anywhere in its body (grimp's graph,
    as ``test_import_graph.py``, which also checks that there is no circle)."""
    graph = grimp.build_graph("streamrec", cache_dir=None)
    modules = set(_modules())
    return {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}


def _floor(module: str) -> str:
    rest = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    return rest.split(".")[0]


def test_serving_floors_import_only_downwards():
    wrong = [(a, b) for a, targets in _graph().items() for b in targets
             if _floor(a) in FLOORS and _floor(b) != _floor(a)
             and _floor(b) not in FLOORS[_floor(a)]]
    assert wrong == []


def test_no_function_in_the_package_is_longer_than_80_lines():
    """All of ``services/streamrec`` (issue 24), not serving alone."""
    long = []
    for path in sorted(ROOT.parent.rglob("*.py")):
        name = str(path.relative_to(ROOT.parent))
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
