"""`make bench`'s suites and budgets (bench/_runner.py): the speed suite leaves the long
quality replays to `make bench-quality`, and every benchmark runs under a budget of its own."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import _runner  # noqa: E402


def test_every_benchmark_has_its_own_budget():
    names = {p.stem for p in _runner.discover()}
    assert names - set(_runner.BUDGETS) == set(), "give each new bench/*.py a budget"
    assert set(_runner.BUDGETS) - names == set(), "a budget for a benchmark that is gone"


def test_the_quality_replays_run_only_in_their_own_suite():
    names = [p.stem for p in _runner.discover()]
    speed = [n for n in names if _runner.in_suite(n, "speed")]
    quality = [n for n in names if _runner.in_suite(n, "quality")]
    assert sorted(quality) == ["ann", "api_quality", "engines", "groups", "quality", "scale"]
    assert set(speed) | set(quality) == set(names) and not set(speed) & set(quality)
    assert all(_runner.in_suite(n, "all") for n in names)


def test_a_budget_stretches_with_the_load_per_cpu_within_bounds():
    assert _runner.stretch(0.5, 2) == 1.0  # a quiet box: the budget as documented
    assert _runner.stretch(4.0, 2) == 2.0  # each process gets half a core
    assert _runner.stretch(40.0, 2) == _runner.MAX_STRETCH


def test_the_makefile_documents_each_suite_budget_as_the_sum_of_its_benchmarks():
    names = [p.stem for p in _runner.discover()]
    speed = _runner.suite_budget([n for n in names if _runner.in_suite(n, "speed")])
    quality = _runner.suite_budget(_runner.QUALITY)
    assert speed <= 1200  # make bench: under 20 minutes on the 2-core machine kind
    help_text = (ROOT / "Makefile").read_text()
    assert re.search(rf"make bench .*budget {speed:.0f} s", help_text)
    assert re.search(rf"make bench-quality .*budget {quality:.0f} s", help_text)


def test_rows_holding_rows_render_as_one_flat_table_without_a_repr():
    result = {"benchmark": "ann", "sizes": [
        {"items": 200_000, "requests": [{"search": "exact", "p50_ms": 23.4},
                                        {"search": "hnsw", "p50_ms": 0.35}]},
        {"items": 1_000_000, "requests": [{"search": "exact", "p50_ms": 120.0}]}]}
    table = _runner.json_markdown(result)
    assert "{" not in table and "[" not in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| items | search | p50_ms |"
    assert rows[1:] == ["| 200,000 | exact | 23.40 |", "| 200,000 | hnsw | 0.35 |",
                        "| 1,000,000 | exact | 120 |"]


def test_a_collected_result_says_when_it_was_measured_not_when_the_file_was_checked_out(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(_runner, "RESULTS", tmp_path)
    (tmp_path / "fields.json").write_text(
        '{"measured_at": "2026-12-04T21:29:46Z", "seconds": 17.8}')
    collected = _runner.collect_one(Path("bench/fields.py"))
    assert collected["status"] == "collected (2026-12-04T21:29:46Z)"
    assert collected["seconds"] == 17.8


def test_every_benchmark_module_imports():
    """A stale import fails here, not minutes into `make bench-quality` (api_quality.py
    imported `score` from where it no longer lived)."""
    import subprocess

    names = [p.stem for p in _runner.discover()]
    code = ("import importlib, sys; sys.path.insert(0, 'bench'); "
            f"[importlib.import_module(n) for n in {names!r}]")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
