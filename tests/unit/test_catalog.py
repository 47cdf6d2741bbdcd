"""The item catalogue: strict records, and filters applied inside ranking (exact n, no holes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamrec.core.catalog.filters import CatalogueIndex, ItemFilter, parse_filter
from streamrec.core.catalog.records import (
    MAX_CATEGORIES,
    MAX_TEXT_BYTES,
    Catalogue,
    InvalidItem,
    ItemRecord,
    parse_record,
    parse_record_bytes,
)
from streamrec.core.events import Event
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow

PARAMS = ALSParams(factors=4, regularization=0.05, iterations=10, alpha=2.0, num_threads=1)
ITEMS = 40


@pytest.fixture(scope="module")
def model() -> Model:
    rng = np.random.default_rng(3)
    window = SlidingWindow(300)
    window.extend(Event(f"u{rng.integers(30)}", f"i{rng.integers(ITEMS)}",
                        float(rng.integers(1, 4))) for _ in range(300))
    return fit(window.build(), PARAMS)


def catalogue() -> Catalogue:
    """Even items are "even", multiples of 3 are "three"; i0..i3 hidden or expiring."""
    out = Catalogue()
    for i in range(ITEMS):
        cats = [c for c, ok in (("even", i % 2 == 0), ("three", i % 3 == 0)) if ok]
        out.upsert(ItemRecord(f"i{i}", tuple(cats), hidden=i == 0,
                              expires_at=100.0 if i == 6 else None))
    return out


# --- records --------------------------------------------------------------------------------


def test_a_full_record_parses_and_round_trips_through_json() -> None:
    body = {"item": "m1", "categories": ["Comedy", "Drama", "Comedy"], "labels": {"lang": "en"},
            "hidden": True, "expires_at": 1700000000, "title": "Toy Story (1995)"}
    rec = parse_record(body)
    assert rec == ItemRecord("m1", ("Comedy", "Drama"), {"lang": "en"}, True, 1.7e9,
                             "Toy Story (1995)")
    assert parse_record_bytes(json.dumps(rec.to_dict()).encode()) == rec


def test_missing_fields_take_their_defaults_and_the_url_id_is_used() -> None:
    assert parse_record({}, item="x") == ItemRecord("x")


@pytest.mark.parametrize(("body", "reason"), [
    ([], "malformed"),
    ({"item": "a", "hiden": True}, "malformed"),
    ({"categories": []}, "bad_id"),
    ({"item": ""}, "bad_id"),
    ({"item": 7}, "bad_id"),
    ({"item": "a\x00"}, "control_char"),
    ({"item": "a" * 300}, "id_too_long"),
    ({"item": "a", "categories": "Comedy"}, "malformed"),
    ({"item": "a", "categories": [""]}, "bad_category"),
    ({"item": "a", "categories": ["a,b"]}, "bad_category"),
    ({"item": "a", "categories": ["x\n"]}, "bad_category"),
    ({"item": "a", "categories": [1]}, "bad_category"),
    ({"item": "a", "categories": [" "]}, "bad_category"),  # category= could never match these
    ({"item": "a", "categories": [" Drama"]}, "bad_category"),
    ({"item": "a", "categories": ["Drama\u3000"]}, "bad_category"),
    ({"item": " "}, "bad_id"),
    ({"item": "a", "categories": ["c"] * (MAX_CATEGORIES + 1)}, "bad_category"),
    ({"item": "a", "labels": []}, "malformed"),
    ({"item": "a", "labels": {"k": 1}}, "bad_label"),
    ({"item": "a", "labels": {"k": "v" * (MAX_TEXT_BYTES + 1)}}, "bad_label"),
    ({"item": "a", "hidden": "yes"}, "malformed"),
    ({"item": "a", "expires_at": 1.7e12}, "bad_timestamp"),
    ({"item": "a", "expires_at": -1}, "bad_timestamp"),
    ({"item": "a", "expires_at": True}, "bad_timestamp"),
    ({"item": "a", "title": ""}, "bad_title"),
])
def test_a_malformed_record_is_refused_with_its_reason(body: object, reason: str) -> None:
    with pytest.raises(InvalidItem) as e:
        parse_record(body)
    assert e.value.reason == reason
    assert e.value.detail


def test_a_body_naming_another_item_than_the_url_is_refused() -> None:
    with pytest.raises(InvalidItem, match="URL") as e:
        parse_record({"item": "b"}, item="a")
    assert e.value.reason == "bad_id"


@pytest.mark.parametrize(("value", "reason"), [
    (b"", "malformed"), (b"\xff{}", "bad_encoding"), (b"{nope", "bad_json"),
    (b"{" + b" " * 70000 + b"}", "too_large"),
])
def test_a_bad_message_value_is_refused_with_its_reason(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidItem) as e:
        parse_record_bytes(value)
    assert e.value.reason == reason


def test_an_upsert_replaces_the_whole_record_and_its_categories() -> None:
    cat = Catalogue([ItemRecord("a", ("x", "y"), hidden=True)])
    cat.upsert(ItemRecord("a", ("y",)))
    assert cat.get("a") == ItemRecord("a", ("y",))
    assert cat.members("x") == frozenset() and cat.members("y") == {"a"}
    assert cat.hidden() == frozenset()
    assert cat.remove("a") and not cat.remove("a") and cat.get("a") is None


def test_the_catalogue_round_trips_with_its_offsets() -> None:
    cat = catalogue()
    back, offsets = Catalogue.from_arrays(cat.to_arrays({0: 12, 1: 3}))
    assert back.records() == cat.records() and offsets == {0: 12, 1: 3}
    assert back.base is not None and len(back) == len(cat)
    old, offsets = Catalogue.from_bytes(cat.to_bytes({0: 12}))  # formats 4 to 7
    assert old.records() == cat.records() and offsets == {0: 12}


# --- filters --------------------------------------------------------------------------------


def _ids(recs: object) -> list[str]:
    return list(recs.items)  # type: ignore[attr-defined]


def test_a_category_filter_keeps_the_list_exactly_n_long(model: Model) -> None:
    index = CatalogueIndex(catalogue())
    r = index.restrict(model.item_ids, ItemFilter(("even",)), now=0.0)
    for user in ("u1", "u2", "u3"):
        got = _ids(model.recommend(user, n=5, restrict=r))
        assert len(got) == 5
        assert all(int(i[1:]) % 2 == 0 and i != "i0" for i in got)
        # The same as ranking every allowed item: no holes, nothing better left out.
        full = _ids(model.recommend(user, n=ITEMS, exclude_seen=True))
        assert got == [i for i in full if int(i[1:]) % 2 == 0 and i != "i0"][:5]


def test_any_is_the_union_and_all_the_intersection(model: Model) -> None:
    index = CatalogueIndex(catalogue())
    any_ = _ids(model.popular(n=ITEMS, restrict=index.restrict(
        model.item_ids, ItemFilter(("even", "three")), 0.0)))
    all_ = _ids(model.popular(n=ITEMS, restrict=index.restrict(
        model.item_ids, ItemFilter(("even", "three"), "all"), 0.0)))
    nums = {int(i[1:]) for i in any_}
    assert nums == {i for i in range(1, ITEMS) if (i % 2 == 0 or i % 3 == 0)}
    assert {int(i[1:]) for i in all_} == {i for i in range(1, ITEMS) if i % 6 == 0}


def test_unknown_categories_asked_for_are_not_remembered_but_a_later_one_is_found(
        model: Model) -> None:
    cat = catalogue()
    index = CatalogueIndex(cat)
    for k in range(2000):  # any string a client sends: the cache must not grow with them
        r = index.restrict(model.item_ids, ItemFilter((f"nope{k}",)), 0.0)
        assert r.candidates is not None and len(r.candidates) == 0
    assert index._view is not None and len(index._view.categories) == 0
    cat.upsert(ItemRecord("i4", ("nope7",)))  # the category comes to exist: it is found
    r = index.restrict(model.item_ids, ItemFilter(("nope7",)), 0.0)
    assert r.candidates is not None and list(r.candidates) == [model.item_ids.get("i4")]


def test_hidden_and_expired_items_are_never_returned(model: Model) -> None:
    index = CatalogueIndex(catalogue())
    before = index.restrict(model.item_ids, None, now=99.0)
    after = index.restrict(model.item_ids, None, now=100.0)
    assert before.candidates is None
    popular = _ids(model.popular(n=ITEMS, restrict=before))
    assert "i0" not in popular and "i6" in popular and len(popular) == ITEMS - 1
    assert "i6" not in _ids(model.popular(n=ITEMS, restrict=after))
    similar = _ids(model.similar_items("i1", n=ITEMS, restrict=after))
    assert not {"i0", "i6"} & set(similar) and len(similar) == ITEMS - 3


def test_hiding_takes_effect_on_the_next_restriction(model: Model) -> None:
    cat = catalogue()
    index = CatalogueIndex(cat)
    first = _ids(model.popular(n=3, restrict=index.restrict(model.item_ids, None, 0.0)))
    cat.upsert(ItemRecord(first[0], hidden=True))
    again = _ids(model.popular(n=3, restrict=index.restrict(model.item_ids, None, 0.0)))
    assert first[0] not in again and len(again) == 3 and again[:2] == first[1:]


def test_an_unknown_category_is_an_empty_list_not_an_error(model: Model) -> None:
    index = CatalogueIndex(catalogue())
    r = index.restrict(model.item_ids, ItemFilter(("nope",)), 0.0)
    assert _ids(model.recommend("u1", n=5, restrict=r)) == []
    assert _ids(model.recommend("nobody", n=5, restrict=r)) == []  # the popular fallback too
    both = index.restrict(model.item_ids, ItemFilter(("nope", "three")), 0.0)
    assert len(_ids(model.popular(n=5, restrict=both))) == 5


def test_fewer_passing_items_than_n_gives_all_of_them(model: Model) -> None:
    index = CatalogueIndex(catalogue())
    r = index.restrict(model.item_ids, ItemFilter(("even", "three"), "all"), 0.0)
    got = model.recommend_batch(["u1", "u2"], n=20, exclude_seen=False, restrict=r)
    for recs in got.values():
        assert sorted(int(i[1:]) for i in recs.items) == [6, 12, 18, 24, 30, 36]


def test_batch_answers_equal_single_answers_under_a_filter(model: Model) -> None:
    index = CatalogueIndex(catalogue())
    r = index.restrict(model.item_ids, ItemFilter(("three",)), 0.0, excluded={"i3"})
    batch = model.recommend_batch(["u1", "u4", "u9"], n=4, restrict=r)
    for user, recs in batch.items():
        assert recs.items == model.recommend(user, n=4, restrict=r).items
        assert "i3" not in recs.items


def test_a_session_is_filtered_too(model: Model) -> None:
    index = CatalogueIndex(catalogue())
    r = index.restrict(model.item_ids, ItemFilter(("even",)), 0.0)
    got = _ids(model.recommend_anonymous(["i1", "i3"], n=6, restrict=r))
    assert len(got) == 6 and all(int(i[1:]) % 2 == 0 for i in got)


def test_filter_parsing_splits_commas_and_checks_the_mode() -> None:
    assert parse_filter(["Comedy,Drama", "Drama"], None) == ItemFilter(("Comedy", "Drama"))
    assert parse_filter(["a"], "all").mode == "all"
    with pytest.raises(ValueError, match="category_mode"):
        parse_filter(["a"], "some")
    with pytest.raises(ValueError, match="at most"):
        parse_filter([",".join(f"c{i}" for i in range(100))], None)


@pytest.mark.parametrize("flt", [ItemFilter(("even",)), ItemFilter(("three",)),
                                 ItemFilter(("even", "three"), "all"), ItemFilter(("few",))])
def test_wide_and_narrow_filters_rank_exactly_like_filtering_the_full_ranking(
        model: Model, flt: ItemFilter) -> None:
    cat = catalogue()
    for i in (5, 11, 17):  # "few": 3 items, the narrow path (a whitelist under 1/8 of items)
        cat.upsert(ItemRecord(f"i{i}", ("few",)))
    r = CatalogueIndex(cat).restrict(model.item_ids, flt, now=0.0)
    members = {i for c in flt.categories for i in cat.members(c)}
    if flt.mode == "all":
        members = set.intersection(*(set(cat.members(c)) for c in flt.categories))
    ok = members - {"i0"}
    for user in ("u1", "u5", "nobody"):
        full = [i for i in _ids(model.recommend(user, n=ITEMS)) if i in ok]
        assert _ids(model.recommend(user, n=4, restrict=r)) == full[:4]
    popular = [i for i in _ids(model.popular(n=ITEMS)) if i in ok]
    assert _ids(model.popular(n=4, restrict=r)) == popular[:4]


def test_recategorising_an_item_shows_in_cached_category_and_filter_lists(model: Model) -> None:
    cat = catalogue()
    index = CatalogueIndex(cat)

    def members(flt: ItemFilter) -> set[str]:
        r = index.restrict(model.item_ids, flt, 0.0)
        assert r.candidates is not None
        return {model.item_ids[i] for i in r.candidates.tolist()}

    one, both = ItemFilter(("three",)), ItemFilter(("even", "three"), "all")
    assert "i4" not in members(one) and "i4" not in members(both)  # cached now
    cat.upsert(ItemRecord("i4", ("even", "three")))
    assert "i4" in members(one) and "i4" in members(both)
    cat.upsert(ItemRecord("i5", ("odd",)))  # another category: the caches stay right
    assert "i4" in members(both) and "i5" not in members(one)
    cat.remove("i4")
    assert "i4" not in members(one) and "i4" not in members(both)
    cat.replace(Catalogue([ItemRecord("i1", ("three",))]))
    assert members(one) == {"i1"} and members(both) == set()


def test_the_incremental_index_always_equals_a_fresh_one(model: Model) -> None:
    """Random upserts, removes and replaces, read between them by one long-lived index: the
    banned rows and candidates equal those of an index built from scratch each time."""
    rng = np.random.default_rng(7)
    cat = Catalogue()
    live = CatalogueIndex(cat)
    flt = ItemFilter(("a", "b"))
    for step in range(400):
        roll = rng.random()
        item = f"i{rng.integers(ITEMS + 5)}"  # some are not in the model
        if roll < 0.75:
            cats = tuple(c for c in ("a", "b") if rng.random() < 0.5)
            cat.upsert(ItemRecord(item, cats, hidden=bool(rng.random() < 0.3),
                                  expires_at=float(rng.integers(0, 20)) if rng.random() < 0.3
                                  else None))
        elif roll < 0.97:
            cat.remove(item)
        elif rng.random() < 0.5:
            cat.replace(Catalogue(cat.records()[: int(rng.integers(0, 10))]))
        else:  # a snapshot's catalogue: the arrays, changed from then on by Python records
            cat.replace(Catalogue.from_arrays(Catalogue(cat.records()).to_arrays({}))[0])
        if step % 3:
            continue
        now = float(rng.integers(0, 20))
        got = live.restrict(model.item_ids, flt, now)
        want = CatalogueIndex(Catalogue(cat.records())).restrict(model.item_ids, flt, now)
        assert set(got.banned.tolist()) == set(want.banned.tolist()), step
        assert got.candidates is not None and want.candidates is not None
        assert got.candidates.tolist() == want.candidates.tolist(), step


def _tabled(records: list[ItemRecord]) -> Catalogue:
    return Catalogue.from_arrays(Catalogue(records).to_arrays({0: 1}))[0]


def test_a_catalogue_on_snapshot_arrays_answers_like_one_of_records_through_changes() -> None:
    """The same random upserts and removes on a catalogue of records and on one resting on a
    table: every read agrees after each, and the table round-trips what it holds."""
    rng = np.random.default_rng(11)
    start = [ItemRecord(f"i{k}", tuple(c for c in ("a", "b", "c") if rng.random() < 0.4),
                        {"k": str(k)}, hidden=k % 7 == 0,
                        expires_at=float(k) if k % 5 == 0 else None, title=f"é{k}")
             for k in range(30)]
    plain, tabled = Catalogue(start), _tabled(start)
    assert tabled.base is not None and tabled.records() == plain.records()
    for step in range(300):
        item = f"i{rng.integers(40)}"
        if rng.random() < 0.7:
            record = ItemRecord(item, tuple(c for c in ("a", "b", "d") if rng.random() < 0.5),
                                hidden=bool(rng.random() < 0.3),
                                expires_at=float(step) if rng.random() < 0.3 else None)
            plain.upsert(record)
            tabled.upsert(record)
        else:
            assert plain.remove(item) == tabled.remove(item), step
        assert len(tabled) == len(plain) and tabled.items() == plain.items(), step
        assert tabled.get(item) == plain.get(item), step
        assert tabled.categories_of(item) == plain.categories_of(item), step
        brief, full = tabled.summary(item), plain.get(item)
        assert (brief is None) == (full is None), step
        if brief is not None and full is not None:
            assert (brief.categories, brief.hidden, brief.expires_at, brief.title) == (
                full.categories, full.hidden, full.expires_at, full.title), step
        for c in ("a", "b", "c", "d", "nobody"):
            assert tabled.members(c) == plain.members(c), (step, c)
        assert tabled.hidden() == plain.hidden() and tabled.expiring() == plain.expiring()
    assert tabled.records() == plain.records()
    assert _tabled(tabled.records()).records() == plain.records()
    again, offsets = Catalogue.from_arrays(tabled.to_arrays({0: 9}))  # base rows copied as is
    assert again.records() == plain.records() and offsets == {0: 9}


def test_a_tabled_catalogue_keeps_a_bounded_number_of_decoded_records() -> None:
    tabled = _tabled([ItemRecord(f"i{k}", title=f"t{k}") for k in range(50)])
    tabled.DECODED_KEPT = 8
    for k in range(50):
        assert tabled.get(f"i{k}") == ItemRecord(f"i{k}", title=f"t{k}")
    assert len(tabled._decoded) == 8
    assert tabled.get("i49") is tabled.get("i49")  # kept: the same object
    assert tabled.get("i0", keep=False) is not tabled.get("i0", keep=False)


def test_catalogue_arrays_that_do_not_fit_together_are_refused() -> None:
    arrays = Catalogue([ItemRecord("a", ("x",)), ItemRecord("b")]).to_arrays({})
    for name, bad in (("catalog.hidden", np.zeros(3, dtype=np.bool_)),
                      ("catalog.categories.codes", np.asarray([5], dtype=np.int32)),
                      ("catalog.records.offsets", np.asarray([0, 3, 2], dtype=np.int64))):
        with pytest.raises(ValueError, match="catalogue arrays"):
            Catalogue.from_arrays({**arrays, name: bad})


def test_changed_since_names_the_changes_or_says_read_it_all() -> None:
    cat = Catalogue([ItemRecord("a")])
    v = cat.version
    cat.upsert(ItemRecord("b"))
    cat.remove("a")
    assert cat.changed_since(v) == ["b", "a"] and cat.changed_since(cat.version) == []
    cat.replace(Catalogue())
    assert cat.changed_since(v) is None


def test_a_copy_keeps_its_records_while_the_original_changes() -> None:
    original = _tabled([ItemRecord("a", ("x",)), ItemRecord("b", ("y",))])
    original.upsert(ItemRecord("c", ("x",)))
    copy = original.copy()
    original.upsert(ItemRecord("a", ("y",)))
    original.remove("b")
    original.remove("c")
    assert [r.item for r in copy.records()] == ["a", "b", "c"]
    assert copy.members("x") == {"a", "c"} and copy.base is original.base
    assert original.items() == ["a"] and original.members("x") == frozenset()
