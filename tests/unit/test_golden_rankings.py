"""Rankings stay what they were: the fixed requests of ``tests/fixtures/scoring/queries.py`` on
three format-5 snapshots written before the scorer seam (issue 24) get, list by list, the items
and fallbacks that the code of that time answered (``rankings.json``), and its scores to float32
precision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.fixtures.scoring.queries import HERE, MODELS, answers

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot

GOLDEN = json.loads((HERE / "rankings.json").read_text())


def _close(got: object, want: object, where: tuple[object, ...]) -> None:
    """Items, fallbacks and the shape exactly; each score to float32 precision: float32 sums in
    another order (BLAS kernels differ between CPUs; the fixtures were written on an AVX-512
    machine) move the last bit or two."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _close(got[key], want[key], (*where, key))
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            _close(g, w, (*where, k))
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), where
    else:
        assert got == want, where


def _same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:  # one request at a time, so a failure names the list that changed
        _close(got[key], want[key], (key,))


@pytest.mark.parametrize("name", MODELS)
def test_a_format_5_snapshot_ranks_exactly_as_before_the_scorer_seam(tmp_path: Path, name: str):
    # A copy: the fixture stays untouched whatever the reader does.
    shutil.copytree(HERE / name, tmp_path / name)
    _same(answers(read_snapshot(tmp_path / name).model), GOLDEN[name])


@pytest.mark.parametrize("name", MODELS)
def test_a_snapshot_rewritten_by_this_build_ranks_exactly_as_before(tmp_path: Path, name: str):
    old = read_snapshot(HERE / name, mmap=False)
    write_snapshot(tmp_path / "new", old.model, old.window, old.offsets, "000000000002",
                   sync=False)
    _same(answers(read_snapshot(tmp_path / "new").model), GOLDEN[name])
