"""Rankings stay what they were: the fixed requests of ``tests/fixtures/scoring/queries.py`` on
three format-5 snapshots written before the scorer seam (issue 24) get, list by list, the items,
scores and fallbacks that the code of that time answered (``rankings.json``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.fixtures.scoring.queries import HERE, MODELS, answers

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot

GOLDEN = json.loads((HERE / "rankings.json").read_text())


def _same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:  # one request at a time, so a failure names the list that changed
        assert got[key] == want[key], key


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
