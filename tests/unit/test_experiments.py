"""Experiments' pure core: the spec and its errors, assignment, interval math, results."""

from __future__ import annotations

from collections import Counter

import pytest

from streamrec.core.experiments.assign import arm_of, assign
from streamrec.core.experiments.intervals import mean_difference, mean_interval, newcombe, wilson
from streamrec.core.experiments.results import ArmCounts, summary
from streamrec.core.experiments.spec import ExperimentError, parse_experiments, to_json
from streamrec.core.scoring.blend import ScoringParams

START, END = "2026-12-01T00:00:00Z", "2026-12-15T00:00:00Z"
T0 = 1796083200.0  # 2026-12-01T00:00:00Z


def _spec(**kw: object) -> dict[str, object]:
    out: dict[str, object] = {"name": "recency", "start": START, "end": END, "traffic": 1.0,
                              "arms": [{"name": "control"},
                                       {"name": "no-recency", "scoring": {"recencyDecay": 0}}]}
    out.update(kw)
    return out


def test_a_spec_parses_into_arms_with_scoring_overrides_over_the_snapshots_own() -> None:
    (exp,) = parse_experiments([_spec()])
    assert exp.start == T0 and exp.end == T0 + 14 * 86400 and exp.traffic == 1.0
    control, treatment = exp.arms
    base = ScoringParams(recency_decay=0.05, item_item_weight=0.3)
    assert control.scoring_for(base) is base
    assert treatment.scoring_for(base) == ScoringParams(recency_decay=0.0, item_item_weight=0.3)
    assert parse_experiments(to_json([exp])) == (exp,)


@pytest.mark.parametrize(("change", "path"), [
    ({"arms": [{"name": "only"}]}, "[0].arms"),
    ({"traffic": 0}, "[0].traffic"),
    ({"traffic": 1.5}, "[0].traffic"),
    ({"end": "2026-11-01T00:00:00Z"}, "[0].end"),
    ({"start": "yesterday"}, "[0].start"),
    ({"start": "2026-12-01T00:00:00"}, "[0].start"),
    ({"name": "Bad_Name"}, "[0].name"),
    ({"name": None}, "[0].name"),
    ({"colour": "red"}, "[0].colour"),
    ({"arms": [{"name": "a"}, {"name": "a"}]}, "[0].arms[1].name"),
    ({"arms": [{"name": "a"}, {"name": "b", "weight": 0}]}, "[0].arms[1].weight"),
    ({"arms": [{"name": "a"}, {"name": "b", "scoring": {"historyCap": 0}}]},
     "[0].arms[1].scoring.historyCap"),
    ({"arms": [{"name": "a"}, {"name": "b", "scoring": {"weights": {"nope": 1}}}]},
     "[0].arms[1].scoring.weights"),
    ({"arms": [{"name": "a"}, {"name": "b", "scoring": {"speed": 1}}]},
     "[0].arms[1].scoring.speed"),
])
def test_a_bad_spec_is_refused_naming_the_field(change: dict[str, object], path: str) -> None:
    with pytest.raises(ExperimentError) as e:
        parse_experiments([_spec(**change)])
    assert e.value.path == path
    assert str(e.value).startswith(path + ": ")


def test_two_experiments_with_one_name_are_refused() -> None:
    with pytest.raises(ExperimentError, match=r"^\[1\]\.name"):
        parse_experiments([_spec(), _spec()])


def test_assignment_is_stable_and_computed_from_the_user_and_experiment_alone() -> None:
    (exp,) = parse_experiments([_spec()])
    (again,) = parse_experiments([_spec()])
    users = [f"u{k}" for k in range(1000)]
    assert [arm_of(exp, u) for u in users] == [arm_of(again, u) for u in users]


def test_a_fifty_fifty_split_is_uniform_within_one_percent_over_100k_users() -> None:
    (exp,) = parse_experiments([_spec()])
    counts = Counter(a.name if (a := arm_of(exp, f"user-{k}")) else None for k in range(100_000))
    assert counts[None] == 0
    assert abs(counts["control"] / 100_000 - 0.5) < 0.01


def test_the_traffic_share_and_arm_weights_are_respected() -> None:
    (exp,) = parse_experiments([_spec(traffic=0.2, arms=[
        {"name": "a", "weight": 3}, {"name": "b", "weight": 1}])])
    counts = Counter(a.name if (a := arm_of(exp, f"user-{k}")) else None for k in range(100_000))
    assert abs(counts[None] / 100_000 - 0.8) < 0.01
    assert abs(counts["a"] / (counts["a"] + counts["b"]) - 0.75) < 0.01


def test_raising_the_traffic_share_keeps_every_user_already_in_in_their_arm() -> None:
    (small,) = parse_experiments([_spec(traffic=0.1)])
    (large,) = parse_experiments([_spec(traffic=0.5)])
    for k in range(5000):
        a = arm_of(small, f"u{k}")
        if a is not None:
            assert arm_of(large, f"u{k}") == a


def test_two_experiments_assign_independently() -> None:
    one, two = parse_experiments([_spec(name="one"), _spec(name="two")])
    pairs = Counter((arm_of(one, f"u{k}").name, arm_of(two, f"u{k}").name)  # type: ignore[union-attr]
                    for k in range(100_000))
    # Independent 50/50 splits: each of the four cells holds a quarter (within 1%).
    assert len(pairs) == 4
    assert all(abs(c / 100_000 - 0.25) < 0.01 for c in pairs.values())


def test_only_running_experiments_assign_and_the_first_that_takes_a_user_wins() -> None:
    first, second = parse_experiments([_spec(name="first", traffic=0.5), _spec(name="second")])
    assert assign([first, second], "u1", T0 - 1) is None
    assert assign([first, second], "u1", T0 + 14 * 86400) is None
    taken = Counter(a.experiment.name for k in range(10_000)  # type: ignore[union-attr]
                    if (a := assign([first, second], f"u{k}", T0 + 1)))
    assert sum(taken.values()) == 10_000
    assert abs(taken["first"] / 10_000 - 0.5) < 0.02


# Newcombe (1998), Stat. Med. 17, 857-872, Table I (method 3, Wilson score interval).
@pytest.mark.parametrize(("x", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombes_published_values(x: int, n: int, low: float,
                                                    high: float) -> None:
    i = wilson(x, n)
    assert i is not None
    assert (round(i.low, 4), round(i.high, 4)) == (low, high)


# Newcombe (1998), Stat. Med. 17, 873-890, Table II (method 10, hybrid score interval).
@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "low", "high"), [
    (56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062), (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775), (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0), (10, 10, 0, 10, 0.6075, 1.0),
])
def test_newcombe_matches_the_published_hybrid_score_intervals(
        x1: int, n1: int, x2: int, n2: int, low: float, high: float) -> None:
    i = newcombe(x1, n1, x2, n2)
    assert i is not None
    assert (round(i.low, 4), round(i.high, 4)) == (low, high)


def test_intervals_without_trials_are_none_and_bad_counts_raise() -> None:
    assert wilson(0, 0) is None and newcombe(1, 2, 0, 0) is None
    assert mean_interval(0, 0, 0) is None
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_the_mean_interval_is_the_normal_approximation() -> None:
    values = [1, 2, 3, 4, 10]
    i = mean_interval(len(values), sum(values), sum(v * v for v in values))
    assert i is not None and i.estimate == 4.0
    # s = sqrt(12.5) (sample variance of the five values); half-width 1.96 s / sqrt(5).
    assert i.high - 4.0 == pytest.approx(1.959964 * 12.5 ** 0.5 / 5 ** 0.5, rel=1e-6)
    d = mean_difference((5, 20.0, 130.0), (5, 20.0, 130.0))
    assert d is not None and d.estimate == 0 and d.includes_zero


def test_the_summary_compares_each_arm_with_the_control_and_says_when_zero_is_inside() -> None:
    (exp,) = parse_experiments([_spec()])
    control = ArmCounts(lists=1000, clicked=100, events=800, hits=80)
    same = ArmCounts(lists=1000, clicked=104, events=800, hits=82)
    out = summary(exp, {"control": control, "no-recency": same}, T0 + 1)
    assert out["state"] == "running" and out["control"] == "control"
    assert out["arms"]["control"]["ctr"]["estimate"] == 0.1
    cmp = out["vs_control"]["no-recency"]
    assert cmp["ctr"]["includes_zero"] is True
    assert "still includes zero" in cmp["verdicts"][0]
    better = ArmCounts(lists=1000, clicked=200, events=800, hits=160)
    cmp = summary(exp, {"control": control, "no-recency": better}, T0 + 1)["vs_control"]
    assert cmp["no-recency"]["hit_rate"]["low"] > 0
    assert "excludes zero" in cmp["no-recency"]["verdicts"][1]


def test_arm_counts_add_and_round_trip_through_lists() -> None:
    a = ArmCounts(lists=2, clicked=1, attributed=1, events=3)
    a.add_hit(2)
    a.add_hit(3)
    assert ArmCounts.from_list(a.to_list()) == a
    assert a.plus(a).rank_sq == 26 and a.plus(a).hits == 4
