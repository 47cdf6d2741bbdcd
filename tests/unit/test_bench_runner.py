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
    assert sorted(quality) == ["api_quality", "engines", "quality"]
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
