"""No import circle in ``services/streamrec``, counting every import: module-level, lazy (inside
a function) and type-only (under ``TYPE_CHECKING``). A circle closed by a lazy or type-only
import is still a circle (STYLE.md, "Layered sub-packages").

The graph is grimp's (the engine of import-linter), not a parser of our own; its strongly
connected components are the circles. ``python -m pytest tests/unit/test_import_graph.py``
shows them, each with the lines that close it.
"""

from __future__ import annotations

import sys
import textwrap
from collections import Counter
from pathlib import Path

import grimp
import pytest

#: Circles that remain, to be removed by the branch that owns them. Empty since the serving
#: Blueprints (issue 24) ended app/routes/*routes; only serving's may ever be listed here.
KNOWN: list[frozenset[str]] = []


def circles(package: str) -> list[list[str]]:
    """Every import circle of ``package``: its strongly connected components of more than one
    module (Tarjan's algorithm, iterative), each sorted, with every import grimp finds."""
    graph = grimp.build_graph(package, cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:  # back in the caller: pass the lowest link up
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _describe(package: str, circle: list[str]) -> str:
    graph = grimp.build_graph(package, cache_dir=None)
    lines = []
    for a in circle:
        for b in sorted(graph.find_modules_directly_imported_by(a) & set(circle)):
            at = [d["line_number"] for d in graph.get_import_details(importer=a, imported=b)]
            lines.append(f"  {a} -> {b} (line {', '.join(map(str, at))})")
    return "\n".join(lines)


def test_services_streamrec_has_no_import_circle():
    new = [c for c in circles("streamrec") if frozenset(c) not in KNOWN]
    assert new == [], "\n".join(_describe("streamrec", c) for c in new)


def test_only_serving_circles_may_be_waived():
    assert all(m.startswith("streamrec.serving.") for circle in KNOWN for m in circle)


@pytest.fixture
def tangled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package with one circle closed by a lazy import and one by a type-only import."""
    root = tmp_path / "tangled"
    root.mkdir()
    files = {
        "__init__.py": "",
        "a.py": "from tangled import b\n",
        "b.py": "def f():\n    from tangled import a\n    return a\n",
        "c.py": "from tangled import d\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tangled import c\n",
        "e.py": "from tangled import a\n",
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "tangled"
    for name in [m for m in sys.modules if m == "tangled" or m.startswith("tangled.")]:
        del sys.modules[name]


def test_a_circle_closed_by_a_lazy_or_type_only_import_is_found(tangled: str):
    assert circles(tangled) == [["tangled.a", "tangled.b"], ["tangled.c", "tangled.d"]]
    assert "tangled.b -> tangled.a (line 2)" in _describe(tangled, ["tangled.a", "tangled.b"])


#: streamrec.core's floors: each sub-package imports only from the floors below it, and the
#: ground floor (``ids``, ``domains``) from none (docs/core.md, "Layout").
CORE_FLOORS = {
    "ground": set(),
    "events": {"ground"},
    "window": {"events", "ground"},
    "catalog": {"events", "ground"},
    "scoring": {"window", "catalog", "events", "ground"},
    "snapshot": {"scoring", "window", "catalog", "events", "ground"},
    "experiments": {"scoring", "window", "catalog", "events", "ground"},
    "placements": {"experiments", "scoring", "window", "catalog", "events", "ground"},
    "groups": {"events", "ground"},  # serving groups: a user's owner by Kafka partition
}


def _core_floor(module: str) -> str:
    part = module.split(".")[2] if module.count(".") >= 2 else ""
    return part if part in CORE_FLOORS else "ground"


def test_core_floors_import_only_downwards():
    graph = grimp.build_graph("streamrec", cache_dir=None)
    core = {m for m in graph.modules if m.startswith("streamrec.core.")}
    wrong = sorted(
        (a, b) for a in core for b in graph.find_modules_directly_imported_by(a)
        if b in core and _core_floor(b) != _core_floor(a)
        and _core_floor(b) not in CORE_FLOORS[_core_floor(a)])
    assert wrong == []


def test_every_core_module_lives_on_a_floor():
    graph = grimp.build_graph("streamrec", cache_dir=None)
    flat = sorted(m.rpartition(".")[2] for m in graph.modules
                  if m.count(".") == 2 and m.startswith("streamrec.core."))
    ground = {"ids", "domains", "origins"}  # origins: issue 23a's settings value, if merged
    assert set(flat) - ground == {"catalog", "events", "experiments", "groups", "placements",
                                  "scoring", "snapshot", "window"}


def test_every_test_module_has_a_basename_of_its_own():
    # pytest imports test modules of folders without __init__.py by basename: a second
    # tests/**/test_x.py stops the whole session at collection ("import file mismatch").
    tests = Path(__file__).resolve().parents[1]
    names = Counter(p.name for p in tests.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
