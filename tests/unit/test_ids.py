"""IdMap: dense indices in first-seen order, and a pickle-free array form."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamrec.core.ids import IdMap, decode_ids, encode_ids


def test_indices_are_dense_in_first_seen_order():
    ids = IdMap()
    assert [ids.index(x) for x in ["b", "a", "b", "c", "a"]] == [0, 1, 0, 2, 1]
    assert ids.ids() == ["b", "a", "c"]
    assert len(ids) == 3


def test_get_never_adds():
    ids = IdMap(["x"])
    assert ids.get("x") == 0
    assert ids.get("y") is None
    assert "y" not in ids and len(ids) == 1


def test_id_of_inverts_index():
    ids = IdMap(["x", "y"])
    assert ids.id_of(ids.index("y")) == "y"
    with pytest.raises(IndexError):
        ids.id_of(2)
    with pytest.raises(IndexError):
        ids.id_of(-1)


def test_index_many_agrees_with_index():
    one, many = IdMap(["a"]), IdMap(["a"])
    values = ["b", "a", "c", "b"]
    assert many.index_many(values).tolist() == [one.index(v) for v in values]
    assert many == one


def test_from_ids_keeps_positions_and_refuses_duplicates():
    assert IdMap.from_ids(["p", "q"]).get("q") == 1
    with pytest.raises(ValueError):
        IdMap.from_ids(["p", "p"])


def test_ids_returns_a_copy():
    ids = IdMap(["a"])
    ids.ids().append("b")
    assert ids.ids() == ["a"]


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), unique=True))
def test_array_form_round_trips_any_unicode_ids(values):
    data, offsets = IdMap(values).to_arrays()
    assert data.dtype == np.uint8 and offsets.dtype == np.int64
    assert IdMap.from_arrays(data, offsets).ids() == values


def test_array_form_saves_and_loads_without_pickle():
    data, offsets = encode_ids(["ü", "b", "€uro"])
    loaded = []
    for array in (data, offsets):
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        buffer.seek(0)
        loaded.append(np.load(buffer, allow_pickle=False))
    assert decode_ids(*loaded) == ["ü", "b", "€uro"]


def test_inconsistent_arrays_are_refused():
    data, offsets = encode_ids(["ab", "c"])
    with pytest.raises(ValueError):
        decode_ids(data[:-1], offsets)
    with pytest.raises(ValueError):
        decode_ids(data, offsets[::-1].copy())
    with pytest.raises(ValueError):
        decode_ids(data, np.empty(0, dtype=np.int64))
