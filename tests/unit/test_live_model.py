"""The live model without HTTP: a real snapshot joined with fresh events, seen sets, the
catalogue and erasures, asked directly (serving/live/model.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.core.catalog.filters import ItemFilter
from streamrec.core.catalog.records import parse_record
from streamrec.core.events import Event
from streamrec.core.events.erasure import Erasure
from streamrec.core.events.erasurekey import ErasureHasher, new_key
from streamrec.core.scoring.model import ALSParams, UnknownItem, UnknownUser
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.live.answers import ErasedItem, ListQuery, NoModel
from streamrec.serving.live.fresh import FreshEvents
from streamrec.serving.live.holder import Served
from streamrec.serving.live.model import LiveModel

ITEMS = [f"i{i}" for i in range(12)]


@pytest.fixture(scope="module")
def snapshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Checker board: user u likes the items of u's parity, except item u."""
    window = SlidingWindow(200)
    window.extend(Event(f"u{u}", f"i{i}", 1.0 + (u + i) % 3)
                  for u in range(12) for i in range(u % 2, 12, 2) if i != u)
    path = tmp_path_factory.mktemp("snap") / "000000000001"
    write_snapshot(path, fit(window.build(), ALSParams(factors=4, iterations=10, num_threads=1)),
                   window.contents(), {0: 10}, "000000000001")
    return path


def live_model(snapshot_dir: Path, fresh: FreshEvents | None = None) -> LiveModel:
    live = LiveModel(ErasureHasher(new_key()), fresh)
    live.holder.on_swap(live.take_catalogue)
    live.holder.swap(Served(read_snapshot(snapshot_dir)))
    return live


def test_every_answer_is_no_model_before_the_first_snapshot():
    live = LiveModel(ErasureHasher(new_key()))
    for ask in (lambda: live.recommend("u0", ListQuery()), lambda: live.popular(ListQuery()),
                lambda: live.similar("i1", ListQuery()), lambda: live.known_items("u0"),
                lambda: live.because("u0", "i2", 3), lambda: live.record("i1"),
                lambda: live.recommend_batch(["u0"], ListQuery())):
        with pytest.raises(NoModel):
            ask()


def test_a_list_names_the_snapshot_it_came_from_and_the_fresh_events_folded_in(
        snapshot_dir: Path):
    live = live_model(snapshot_dir)
    assert live.recommend("u0", ListQuery(n=3)).fresh_events == 0
    live.fresh.add(Event("u0", "i1", 2.0), 0, 10)
    answer = live.recommend("u0", ListQuery(n=3))
    assert answer.version == "000000000001" and answer.fresh_events == 1
    assert "i1" not in answer.recs.items  # taken since the snapshot: seen


def test_seen_stays_seen_when_the_history_bound_drops_fresh_items(snapshot_dir: Path):
    live = live_model(snapshot_dir, FreshEvents(max_per_user=1))
    live.fresh.add(Event("u0", "i1", 1.0), 0, 10)
    live.fresh.add(Event("u0", "i3", 1.0), 0, 11)  # i1 leaves the fold-in history
    assert live.fresh.pairs("u0") == [("i3", 1.0)]
    for listed in (live.recommend("u0", ListQuery(n=11)).recs.items,
                   live.recommend_batch(["u0", "u1"], ListQuery(n=11))[1]["u0"].recs.items):
        assert "i1" not in listed and "i3" not in listed
    assert "i1" in live.recommend("u0", ListQuery(n=11, exclude_seen=False)).recs.items


def test_a_batch_answers_each_user_as_one_by_one(snapshot_dir: Path):
    live = live_model(snapshot_dir, FreshEvents(max_per_user=1))
    live.fresh.add(Event("u2", "i1", 1.0), 0, 10)
    live.fresh.add(Event("u2", "i3", 1.0), 0, 11)  # u2's seen set outgrew the history
    live.fresh.add(Event("u4", "i5", 1.0), 0, 12)
    q = ListQuery(n=4, filter=ItemFilter())
    version, lists = live.recommend_batch(["u2", "u4", "nobody"], q)
    assert version == "000000000001"
    for user in ("u2", "u4", "nobody"):
        one = live.recommend(user, q)
        assert lists[user].recs == one.recs and lists[user].fresh_events == one.fresh_events


def test_hidden_items_leave_every_list_and_the_category_filter_narrows_it(snapshot_dir: Path):
    live = live_model(snapshot_dir)
    live.catalogue.upsert(parse_record({"item": "i4", "hidden": True}))
    for item in ("i2", "i6"):
        live.catalogue.upsert(parse_record({"item": item, "categories": ["red"]}))
    everything = ListQuery(n=11, exclude_seen=False)
    assert "i4" not in live.popular(everything).recs.items
    assert "i4" not in live.recommend("u0", everything).recs.items
    assert "i4" not in live.similar("i2", everything).recs.items
    red = ListQuery(n=11, exclude_seen=False, filter=ItemFilter(("red",)))
    assert set(live.recommend("u0", red).recs.items) == {"i2", "i6"}


def test_an_erased_item_is_never_listed_explained_or_looked_up(snapshot_dir: Path):
    live = live_model(snapshot_dir)
    live.fresh.add(Event("u0", "i8", 1.0), 0, 10)
    assert len(live.forget([Erasure("item", "i8", 1.0)])) == 1
    assert live.fresh.pairs("u0") == []  # its fresh event went too
    assert live.erased("i8") and live.record("i8") is None
    everything = ListQuery(n=11, exclude_seen=False)
    assert "i8" not in live.popular(everything).recs.items
    assert "i8" not in live.recommend("u1", everything).recs.items
    assert "i8" not in [i for i, _ in live.known_items("u0").known]
    assert "i8" not in [i for i, _ in live.because("u0", "i2", 11).items]
    with pytest.raises(ErasedItem, match="was erased"):
        live.similar("i8", ListQuery())
    with pytest.raises(UnknownItem):
        live.check_item("i8")


def test_an_erased_user_is_unknown_until_a_snapshot_without_them(snapshot_dir: Path):
    live = live_model(snapshot_dir)
    assert live.known_items("u3").known
    live.forget([Erasure("user", "u3", 2e9)])
    with pytest.raises(UnknownUser):
        live.known_items("u3")
    assert live.recommend("u3", ListQuery()).recs.fallback == "popular"


def test_a_new_user_is_known_by_their_fresh_events_alone(snapshot_dir: Path):
    live = live_model(snapshot_dir)
    with pytest.raises(UnknownUser):
        live.known_items("newcomer")
    live.fresh.add(Event("newcomer", "i2", 1.0), 0, 10)
    known = live.known_items("newcomer")
    assert known.known == [] and known.fresh == [("i2", 1.0)]
    assert live.recommend("newcomer", ListQuery()).recs.fallback is None
