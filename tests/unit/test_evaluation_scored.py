"""The scored views of a replay (recency fold-in, EASE, blend) and the validation/test split."""

from __future__ import annotations

import pytest

from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.model import ALSParams
from streamrec.evaluation.prequential import Protocol, replay
from streamrec.evaluation.strategies import RetrainedALS, ScoredView
from streamrec.evaluation.suite import Grid, build
from streamrec.evaluation.synthetic import SyntheticSpec, generate

ALS = ALSParams(factors=8, iterations=3, num_threads=1)


def test_validation_and_test_parts_split_the_scored_events():
    events = generate(SyntheticSpec(events=3000, users=100, items=150, seed=1))
    counts = {}
    for part in ("all", "validation", "test"):
        (pop,) = replay(events, build(Grid([1000], [2000], ALS), 4.0)[:1],
                        Protocol(part=part)).strategies
        counts[part] = pop.warm["events"] + pop.cold["events"]
    assert counts["validation"] > 0 and counts["test"] > 0
    assert counts["validation"] + counts["test"] == counts["all"]


def test_a_grid_with_scorings_adds_one_scored_view_per_scoring_on_the_chosen_learners():
    scorings = [ScoringParams(0.1, None, 50, 0.0, 0.0), ScoringParams(0.1, None, 50, 0.5, 0.0),
                ScoringParams(0.1, None, 50, 0.5, 0.3)]
    grid = Grid([500, 1000], [2000], ALS, scorings=scorings,
                item_item=ItemItemParams(l2=10.0), scored_retrain_every=[1000])
    views = [r for r in build(grid, 4.0) if isinstance(r, ScoredView)]
    assert [v.kind for v in views] == ["fold-in+recency", "blend+recency", "blend+sr+recency"]
    assert all(v.core.retrain_every == 1000 and {"item_item", "sequential"} <= set(v.core.scorers)
               for v in views)
    events = generate(SyntheticSpec(events=3000, users=100, items=150, seed=2))
    result = replay(events, views, Protocol(sample=0.3))
    assert all(s.warm["events"] > 0 and s.warm["recall"] > 0 for s in result.strategies)
    assert result.strategies[0].learner["item_item_seconds"] > 0


def test_a_blend_view_needs_a_learner_that_fits_the_item_item_model():
    with pytest.raises(ValueError, match="item_item"):
        ScoredView(RetrainedALS(ALS, 100, 1000), ScoringParams(item_item_weight=0.5))


def _grid(*flags: str) -> list[ScoringParams]:
    import argparse

    from streamrec.evaluation.cli import _settings, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    grid, _ = _settings(parser.parse_args(list(flags)))
    return grid.scorings


def test_evaluate_scores_the_services_default_blend_with_the_sequential_scorer_by_default():
    scorings = _grid()
    assert ScoringParams() in scorings  # what `streamrec run` serves, SR included
    assert all(s.sequential_weight == 0.0 for s in scorings if s != ScoringParams())


def test_evaluate_crosses_the_sequential_weights_given_with_the_rest_of_the_grid():
    scorings = _grid("--sequential-weight", "0,0.5", "--item-item-weight", "0.3",
                     "--recency-decay", "0.05")
    assert [(s.item_item_weight, s.sequential_weight) for s in scorings] == [(0.3, 0.0),
                                                                              (0.3, 0.5)]


@pytest.mark.parametrize(("value", "message"), [
    ("0,x", "is not a list of numbers"), ("0,,0.5", "empty entry"), ("2", "in [0, 1]"),
    ("-1", "in [0, 1]"), ("nan", "in [0, 1]"), ("", "empty entry")])
def test_a_bad_sequential_weight_flag_exits_2_naming_it(capsys, value, message):
    with pytest.raises(SystemExit) as e:
        _grid("--sequential-weight", value)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --sequential-weight: " in err and message in err
    assert err.count("--sequential-weight") == 2  # the usage line and the error, once each
