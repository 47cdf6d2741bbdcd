"""Placements' pure parts (core/placements/): the spec, CEL expressions, per-item arrays, the
ranking step with each rule kind on a hand-made catalogue (exact lists), impressions and the
coverage sketch."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pytest

from streamrec.core.catalog.records import Catalogue, InvalidItem, ItemRecord, parse_record
from streamrec.core.ids import IdIndex
from streamrec.core.placements.coverage import Coverage
from streamrec.core.placements.expressions import ExpressionError, activation, compile_expression
from streamrec.core.placements.impressions import (
    MAX_AGE_S,
    Impression,
    Impressions,
    decode,
    encode,
    skipped,
)
from streamrec.core.placements.masks import PlacementMasks
from streamrec.core.placements.rerank import PlacementRanker, demote
from streamrec.core.placements.spec import PlacementError, parse_placements, to_json

NOW = 1_800_000_000.0
#: Ten items, scores 10 (i0) down to 1 (i9); even items are "drama", odd "comedy";
#: i7 and i8 are sponsored; i9 is new.
IDS = [f"i{k}" for k in range(10)]


def _catalogue() -> Catalogue:
    return Catalogue(ItemRecord(
        f"i{k}", ("drama",) if k % 2 == 0 else ("comedy",),
        labels={"sponsored": "yes"} if k in (7, 8) else {},
        attributes={"price": float(k),
                    "published": datetime.fromtimestamp(NOW - (10 if k == 9 else 10**7), UTC)})
        for k in range(10))


def _scores() -> np.ndarray:
    return np.arange(10, 0, -1, dtype=np.float32)


def _one(spec: dict) -> tuple:
    (p,) = parse_placements([{"name": "p", **spec}])
    masks = PlacementMasks(_catalogue())
    counts = np.array([1] * 9 + [0], dtype=np.int64)  # users per item; i9: no events
    built = masks.refresh(IdIndex.of(IDS), lambda: counts, (p,), NOW)
    return p, built.arrays["p"], built


def _rank(spec: dict, n: int = 5, banned: list[int] | None = None, **kw: object) -> tuple:
    p, arrays, _ = _one(spec)
    ranker = PlacementRanker(p, arrays, rng=random.Random(0), **kw)  # type: ignore[arg-type]
    out = ranker(_scores(), np.asarray(banned or [], dtype=np.intp), None, n)
    return [IDS[i] for i in out.items], out.marks, out.scores


# --- the spec --------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "path"), [
    ({"name": "Home"}, "[0].name"),
    ({"name": "p", "filter": "1 +"}, "[0].filter"),
    ({"name": "p", "filter": "nosuch > 1"}, "[0].filter"),
    ({"name": "p", "boosts": [{"when": "true", "multiply": 2}, {"when": "foo()", "add": 1}]},
     "[0].boosts[1].when"),
    ({"name": "p", "boosts": [{"when": "true"}]}, "[0].boosts[0]"),
    ({"name": "p", "boosts": [{"when": "true", "multiply": 0}]}, "[0].boosts[0].multiply"),
    ({"name": "p", "rotation": {"seconds": 10, "factor": 1}}, "[0].rotation.factor"),
    ({"name": "p", "rotation": {"seconds": 10**6}}, "[0].rotation.seconds"),
    ({"name": "p", "rotation": {"seconds": 10, "skipWeight": 0.5}}, "[0].rotation.skipWeight"),
    ({"name": "p", "diversity": {"maxPerCategory": 2, "mmrLambda": 0.5}}, "[0].diversity"),
    ({"name": "p", "exploration": {"share": 0.2}}, "[0].exploration"),
    ({"name": "p", "promotions": {"share": 0.2}}, "[0].promotions.filter"),
    ({"name": "p", "scoring": {"recencyDecay": "x"}}, "[0].scoring.recencyDecay"),
    ({"name": "p", "colour": 1}, "[0].colour"),
])
def test_a_bad_placement_is_refused_naming_the_field(spec: dict, path: str) -> None:
    with pytest.raises(PlacementError) as e:
        parse_placements([spec])
    assert e.value.path == path, str(e.value)


def test_two_placements_with_one_name_are_refused() -> None:
    with pytest.raises(PlacementError, match="repeats"):
        parse_placements([{"name": "a"}, {"name": "a"}])


def test_placements_round_trip_through_json() -> None:
    spec = [{"name": "home", "scoring": {"sequentialWeight": 0.0}, "filter": "item != 'i1'",
             "excludeSeen": False,
             "boosts": [{"when": "'sponsored' in labels", "multiply": 2.0, "add": 0.5}],
             "promotions": {"filter": "true", "share": 0.2},
             "rotation": {"seconds": 60.0, "factor": 0.5, "skipWeight": -0.1},
             "diversity": {"maxPerCategory": 2},
             "exploration": {"share": 0.1, "filter": "true", "maxInteractions": 3}}]
    assert to_json(parse_placements(to_json(parse_placements(spec)))) == spec


# --- expressions and records -----------------------------------------------------------------


def test_an_expression_sees_categories_labels_typed_attributes_and_now() -> None:
    rec = parse_record({"item": "a", "categories": ["drama"], "labels": {"k": "v"},
                        "attributes": {"price": 3, "published": "2026-12-01T00:00:00Z"}})
    at = datetime(2026, 12, 2, tzinfo=UTC)
    e = compile_expression("'drama' in categories && labels.k == 'v' && attributes.price < 5.0 "
                           "&& now - attributes.published < duration('48h') && item == 'a'")
    assert e.uses_now and e.test(activation(rec, "a", at)) is True
    assert e.test(activation(rec, "a", datetime(2026, 12, 9, tzinfo=UTC))) is False
    assert e.test(activation(None, "b", at)) is False  # no record: empty categories
    assert compile_expression("labels.k == 'v'").test(activation(None, "b", at)) is None


def test_an_expression_that_fails_or_is_not_boolean_answers_none() -> None:
    assert compile_expression("labels.missing == 'x'").test(activation(None, "a", datetime.now(
        UTC))) is None
    assert compile_expression("1 + 1").test(activation(None, "a", datetime.now(UTC))) is None


@pytest.mark.parametrize("bad", ["", "x" * 2001, "a +", "foo(1)", "categoris.size() > 0", 3])
def test_a_bad_expression_does_not_compile(bad: object) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(bad)


@pytest.mark.parametrize("value", [True, "soon", "2026-01-01T00:00:00", float("nan")])
def test_an_attribute_that_is_not_a_number_or_a_dated_time_is_refused(value: object) -> None:
    with pytest.raises(InvalidItem) as e:
        parse_record({"item": "a", "attributes": {"x": value}})
    assert e.value.reason in ("bad_attribute", "bad_json")


def test_attributes_round_trip_through_the_record_json() -> None:
    rec = parse_record({"item": "a", "attributes": {"p": 2.5, "d": "2026-01-02T03:04:05+01:00"}})
    assert rec.to_dict()["attributes"] == {"p": 2.5, "d": "2026-01-02T02:04:05Z"}
    assert parse_record(rec.to_dict()) == rec
    assert "attributes" not in parse_record({"item": "b"}).to_dict()  # as before


# --- per-item arrays -------------------------------------------------------------------------


def test_the_arrays_follow_a_changed_record_without_a_full_rebuild() -> None:
    (p,) = parse_placements([{"name": "p", "filter": "'drama' in categories",
                              "boosts": [{"when": "attributes.price > 7.0", "multiply": 3}]}])
    cat = _catalogue()
    masks = PlacementMasks(cat)
    ids, ui = IdIndex.of(IDS), lambda: np.zeros(10, dtype=np.int64)
    first = masks.refresh(ids, ui, (p,), NOW)
    assert first.arrays["p"].allowed.tolist() == [k % 2 == 0 for k in range(10)]
    assert first.arrays["p"].multiply.tolist() == [3.0 if k > 7 else 1.0 for k in range(10)]
    assert masks.refresh(ids, ui, (p,), NOW + 1) is first  # nothing changed: the same arrays
    cat.upsert(ItemRecord("i1", ("drama",)))
    second = masks.refresh(ids, ui, (p,), NOW + 2)
    assert second.arrays["p"].allowed[1] and not first.arrays["p"].allowed[1]


def test_a_failed_evaluation_excludes_the_item_and_is_counted() -> None:
    _, arrays, built = _one({"filter": "labels.sponsored == 'yes'"})
    assert [IDS[i] for i in np.flatnonzero(arrays.allowed)] == ["i7", "i8"]
    assert built.errors == {"labels.sponsored == 'yes'": 8}


# --- each rule kind, exact lists -------------------------------------------------------------


def test_no_rule_is_the_plain_top_n() -> None:
    assert _rank({}, n=3)[0] == ["i0", "i1", "i2"]


def test_the_filter_keeps_only_matching_items_and_the_list_stays_n_long() -> None:
    items, marks, _ = _rank({"filter": "'comedy' in categories"}, n=4, banned=[1])
    assert items == ["i3", "i5", "i7", "i9"] and marks == [None] * 4


def test_a_multiplying_boost_lifts_and_an_adding_boost_shifts() -> None:
    items, _, scores = _rank({"boosts": [{"when": "'sponsored' in labels", "multiply": 4}]}, n=3)
    assert items == ["i7", "i0", "i1"] and scores.tolist() == [12.0, 10.0, 9.0]  # i7: 3 x 4
    items, _, scores = _rank({"boosts": [{"when": "attributes.price > 7.0", "add": 6}]}, n=4)
    assert items == ["i0", "i1", "i2", "i8"] and scores[-1] == 8.0  # i8: 2 + 6, after i2


def test_rotation_demotes_what_was_shown() -> None:
    items, _, _ = _rank({"rotation": {"seconds": 60, "factor": 0.1}}, n=3,
                        shown=np.asarray([0, 1], dtype=np.intp))
    assert items == ["i2", "i3", "i4"]


def test_promotions_take_spread_slots_from_the_promotion_pool_marked() -> None:
    items, marks, _ = _rank({"promotions": {"filter": "'sponsored' in labels", "share": 0.4}},
                            n=5)
    assert items == ["i7", "i0", "i8", "i1", "i2"]
    assert marks == ["promoted", None, "promoted", None, None]


def test_diversity_caps_each_category_and_fills_when_it_leaves_too_few() -> None:
    cats = _catalogue()
    evens_first = np.asarray([10, 5, 9, 4, 8, 3, 7, 2, 6, 1], dtype=np.float32)

    def listed(cap: int, n: int) -> list[str]:
        p, arrays, _ = _one({"diversity": {"maxPerCategory": cap}})
        ranker = PlacementRanker(p, arrays, categories=lambda r: cats.get(IDS[r]).categories)
        return [IDS[i] for i in ranker(evens_first.copy(), np.empty(0, dtype=np.intp), None,
                                       n).items]

    assert listed(1, 2) == ["i0", "i1"]  # without the cap: i0, i2 (both drama)
    assert listed(2, 4) == ["i0", "i2", "i1", "i3"]
    assert listed(1, 4) == ["i0", "i1", "i2", "i4"]  # two categories: the best of the rest fill


def test_mmr_with_lambda_zero_picks_the_most_dissimilar_after_the_best() -> None:
    p, arrays, _ = _one({"diversity": {"mmrLambda": 0.0}})
    factors = np.asarray([[1, 0]] * 5 + [[0, 1]] * 5, dtype=np.float32)
    out = PlacementRanker(p, arrays, factors=factors)(_scores(), np.empty(0, dtype=np.intp),
                                                      None, 2)
    assert [IDS[i] for i in out.items] == ["i0", "i5"]


def test_exploration_fills_slots_from_new_or_rare_items_marked() -> None:
    items, marks, _ = _rank({"exploration": {"share": 0.2, "maxInteractions": 1}}, n=5)
    assert items == ["i0", "i1", "i2", "i3", "i9"] and marks[-1] == "exploration"
    items, marks, _ = _rank({"exploration": {
        "share": 0.2, "filter": "now - attributes.published < duration('1h')"}}, n=5)
    assert items[-1] == "i9" and marks == [None] * 4 + ["exploration"]


def test_thompson_sampling_prefers_the_exploration_item_that_was_clicked() -> None:
    p, arrays, _ = _one({"exploration": {"share": 0.1, "filter": "'comedy' in categories"}})
    # i3 was mostly clicked when explored; the other comedies were shown and never clicked.
    clicks = {1: (50, 0), 3: (50, 45), 5: (20, 0), 7: (20, 0), 9: (20, 0)}
    wins = 0
    for seed in range(50):
        ranker = PlacementRanker(p, arrays, counts=lambda rows: {r: clicks[r] for r in rows
                                                                 if r in clicks},
                                 rng=random.Random(seed))
        out = ranker(_scores(), np.empty(0, dtype=np.intp), None, 1)
        wins += IDS[int(out.items[0])] == "i3"
    assert wins >= 40


def test_every_rule_at_once_keeps_the_list_exactly_n_long_without_banned_items() -> None:
    spec = {"filter": "item != 'i4'", "boosts": [{"when": "attributes.price > 5.0", "add": 1}],
            "promotions": {"filter": "'sponsored' in labels", "share": 0.2},
            "rotation": {"seconds": 60, "factor": 0.5},
            "diversity": {"maxPerCategory": 2},
            "exploration": {"share": 0.2, "maxInteractions": 1}}
    cats = _catalogue()
    for n in range(1, 9):
        items, marks, _ = _rank(spec, n=n, banned=[0], shown=np.asarray([2], dtype=np.intp),
                                categories=lambda r: cats.get(IDS[r]).categories)
        assert len(items) == n and len(set(items)) == n
        assert "i0" not in items and "i4" not in items
        assert marks.count("promoted") == min(2, max(1, round(0.2 * n)))


def test_demote_lowers_by_a_share_of_the_score_range_whatever_the_sign() -> None:
    s = np.asarray([2.0, -1.0, -2.0, -np.inf], dtype=np.float32)
    demote(s, np.asarray([0, 1, 3]), 0.5)  # range 4: minus 2
    assert s.tolist() == [0.0, -3.0, -2.0, -np.inf]


# --- impressions and coverage ----------------------------------------------------------------


def test_an_impression_round_trips_and_bad_messages_are_refused() -> None:
    imp = Impression("u/1", ("a", "b"), NOW, "home", ("b",), "w1")
    assert decode(encode(imp)) == imp
    for bad in (b"", b"[]", b'{"user":"u","items":"a","at":1,"placement":"p"}',
                b'{"user":"u","items":["a"],"explored":["z"],"at":1,"placement":"p"}'):
        with pytest.raises(ValueError):
            decode(bad)


def test_impressions_remember_what_was_shown_and_credit_exploration_clicks_once() -> None:
    imps = Impressions(max_users=2)
    imps.add(Impression("u", ("a", "b"), NOW, "p", ("b",)), NOW)
    imps.add(Impression("u", ("c",), NOW + 10, "p"), NOW)
    assert imps.shown("u", NOW + 5) == {"c": NOW + 10}
    assert set(imps.shown("u", NOW)) == {"a", "b", "c"}
    assert imps.click("u", "b", NOW + 20) and not imps.click("u", "b", NOW + 21)
    assert not imps.click("u", "a", NOW + 20)  # not an exploration slot
    assert imps.counts(["b", "a"]) == {"b": (1, 1)}
    imps.add(Impression("v", ("a",), NOW, "p"), NOW)
    imps.add(Impression("w", ("a",), NOW, "p"), NOW)
    assert imps.shown("u", 0) == {} and len(imps) == 2  # the least recent user went
    assert imps.forget(lambda user: user == "v") == 1 and imps.shown("v", 0) == {}
    assert imps.expire(NOW + MAX_AGE_S + 1) == 1 and len(imps) == 0


def test_skipped_items_are_those_not_acted_on_after_being_shown() -> None:
    assert skipped({"a": 10.0, "b": 10.0}, [("a", 12.0), ("b", 5.0)]) == ["b"]


def test_coverage_estimates_distinct_items_and_merges_by_or() -> None:
    one, two = Coverage(), Coverage()
    for k in range(3000):
        (one if k % 2 else two).add(f"item-{k}")
        one.add(f"item-{k % 10}")
    one.merge(Coverage.from_text(two.to_text()))
    assert abs(one.estimate() - 3000) < 90
