"""IdMap: dense indices in first-seen order, a pickle-free array form; IdIndex: the frozen,
array-backed index a model serves from."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamrec.core.ids import IdIndex, IdMap, decode_ids, encode_ids, hash_table, id_slot


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


# --- IdIndex ---------------------------------------------------------------------------------


@given(
    st.lists(
        st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12),
        unique=True,
        max_size=300,
    )
)
def test_index_finds_every_id_at_its_row_and_nothing_else(values):
    index = IdIndex.from_ids(values)
    assert len(index) == len(values) and index == values and list(index) == values
    assert all(index.get(v) == row and index[row] == v for row, v in enumerate(values))
    missing = "never-stored-\u00e9"
    assert index.get(missing) is None and missing not in index


def test_index_behaves_as_a_sequence_and_a_mapping_view():
    index = IdIndex.from_ids(["u0", "ü1", "u2"])
    assert index[-1] == "u2" and index[:2] == ["u0", "ü1"]
    with pytest.raises(IndexError):
        index[3]
    positions = index.positions
    assert positions["ü1"] == 1 and positions.get("zz") is None and "u2" in positions
    with pytest.raises(KeyError):
        positions["zz"]
    assert dict(positions) == {"u0": 0, "ü1": 1, "u2": 2}


def test_index_lookup_of_an_unencodable_or_non_string_id_is_a_miss():
    index = IdIndex.from_ids(["a"])
    assert index.get("\ud800") is None and 3 not in index


def test_index_refuses_duplicates():
    with pytest.raises(ValueError, match="duplicate"):
        IdIndex.from_ids(["a", "b", "a"])


def test_hash_table_holds_every_row_once_at_load_factor_at_most_half():
    data, offsets = encode_ids([f"user-{k}" for k in range(1000)])
    table = hash_table(data, offsets)
    assert len(table) == 2048 and sorted(table[table >= 0].tolist()) == list(range(1000))
    assert np.array_equal(table, hash_table(data, offsets))  # depends on the ids only
    # Each id sits at its first slot or after a run of occupied ones (linear probing).
    raw = data.tobytes()
    for row in (0, 517, 999):
        slot = id_slot(raw[offsets[row] : offsets[row + 1]], 11)
        while table[slot] != row:
            assert table[slot] >= 0
            slot = (slot + 1) % len(table)


def test_index_over_saved_arrays_is_the_same_index():
    ids = ["x", "yy", "zzz"]
    again = IdIndex.from_arrays(*IdIndex.from_ids(ids).arrays)
    assert again == IdIndex.from_ids(ids) and again.get("yy") == 1
    built = IdIndex.from_arrays(*encode_ids(ids))  # an older snapshot: no table stored
    assert built == ids and built.get("zzz") == 2


def test_index_refuses_a_table_that_does_not_fit_its_ids():
    data, offsets, table = IdIndex.from_ids(["a", "b", "c"]).arrays
    with pytest.raises(ValueError, match="power of two"):
        IdIndex(data, offsets, table[:6])
    wrong = table.copy()
    wrong[wrong >= 0] = 0
    with pytest.raises(ValueError, match="every row"):
        IdIndex(data, offsets, wrong)
    with pytest.raises(ValueError, match="offsets"):
        IdIndex(data[:-1], offsets, table)


def test_empty_index_finds_nothing():
    index = IdIndex.from_ids([])
    assert len(index) == 0 and index.get("a") is None and index == []
